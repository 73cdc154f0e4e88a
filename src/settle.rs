//! Settling: the last stage of every event's path. A delivery is settled when it was delivered,
//! when its dead-letter record was acknowledged by Kafka, or when a rule dropped it. Only then
//! is its [`Ack`] released, which is what lets the offset tracker move the watermark.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::dlq::{DeadLetter, DeadLetterProducer};
use crate::metrics::Metrics;
use crate::source::ack::Ack;

/// The settle stage. Cheap to clone.
#[derive(Clone)]
pub struct Settler {
    dlq: DeadLetterProducer,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl Settler {
    /// A settler writing dead letters through `dlq`. `shutdown` stops DLQ retries; whatever
    /// is unsettled then stays uncommitted and is re-delivered after a restart.
    pub fn new(dlq: DeadLetterProducer, metrics: Metrics, shutdown: CancellationToken) -> Self {
        Settler {
            dlq,
            metrics,
            shutdown,
        }
    }

    /// The metrics handle.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Cancelled when waiting for Kafka must stop (the shutdown grace is over): writes still
    /// unacknowledged then leave their events unsettled.
    pub fn stopping(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The subscription delivered it.
    pub fn delivered(&self, subscription: &str, ack: Ack) {
        self.metrics
            .deliveries
            .with_label_values(&[subscription, "delivered"])
            .inc();
        ack.settle();
    }

    /// A rule decided the delivery should not happen (disabled subscription, dedup window).
    pub fn dropped(&self, subscription: &str, ack: Ack) {
        self.metrics
            .deliveries
            .with_label_values(&[subscription, "dropped"])
            .inc();
        ack.settle();
    }

    /// Dead-letters an event read back from hookline's own topics (a retry tier, a backlog)
    /// whose body cannot be rendered with the rules in force (`letter` from
    /// [`DeadLetter::render_failed`]), counting it in its subscription's render errors.
    pub async fn render_failed(&self, letter: DeadLetter, ack: Ack) {
        if let Some(subscription) = &letter.subscription {
            self.metrics
                .render_errors
                .with_label_values(&[subscription])
                .inc();
        }
        self.dead_letter(letter, ack).await;
    }

    /// Writes `letter` to the dead-letter topic, retrying until Kafka acknowledges it, then
    /// settles. Returns without settling only on shutdown (the event is then re-delivered).
    ///
    /// A record Kafka refuses for good (too large, not authorised) is written once more
    /// without its payload ([`DeadLetterProducer::write_truncated`]), which keeps the origin
    /// so the event can be replayed from its source; that form is retried until it passes
    /// (an ACL problem then stalls the partition visibly instead of losing the event).
    pub async fn dead_letter(&self, letter: DeadLetter, ack: Ack) {
        let mut backoff = Duration::from_millis(100);
        let mut truncated = false;
        loop {
            let write = async {
                if truncated {
                    self.dlq.write_truncated(&letter).await
                } else {
                    self.dlq.write(&letter).await
                }
            };
            let attempt = tokio::select! {
                r = write => r,
                _ = self.shutdown.cancelled() => {
                    tracing::warn!(origin = %letter.origin, "shutdown before dead letter was written; it will be re-delivered");
                    drop(ack);
                    return;
                }
            };
            match attempt {
                Ok(()) => break,
                Err(e) if e.is_permanent() && !truncated => {
                    self.metrics.dead_letter_write_errors.inc();
                    self.metrics
                        .dead_letters_truncated
                        .with_label_values(&[letter.reason.as_str()])
                        .inc();
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e), origin = %letter.origin, bytes = letter.payload.len(), "Kafka refuses this dead letter; writing it without its payload (the event stays in its source at the origin's offset)");
                    truncated = true;
                }
                Err(e) => {
                    self.metrics.dead_letter_write_errors.inc();
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e), origin = %letter.origin, "dead-letter write failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.cancelled() => { drop(ack); return; }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        self.metrics
            .dead_letters
            .with_label_values(&[letter.reason.as_str()])
            .inc();
        if let Some(sub) = &letter.subscription {
            self.metrics
                .deliveries
                .with_label_values(&[sub, "dead_lettered"])
                .inc();
        }
        tracing::warn!(
            origin = %letter.origin,
            reason = letter.reason.as_str(),
            subscription = letter.subscription.as_deref().unwrap_or("-"),
            attempts = letter.attempts,
            status = letter.status,
            error = %letter.error,
            "event dead-lettered"
        );
        ack.settle();
    }
}
