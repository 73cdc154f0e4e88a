//! Every observable occurrence in delivery, as one named event that both logs and counts, so
//! logs and metrics cannot drift apart. Settling outcomes (delivered, dead-lettered, dropped)
//! are emitted by [`crate::settle::Settler`], which owns them for every stage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Histogram, IntCounter};

use crate::metrics::Metrics;

/// Emits delivery events for one subscription. Cheap to clone.
#[derive(Clone)]
pub struct Observer {
    subscription: Arc<str>,
    metrics: Metrics,
    /// The receiver answered its last attempt and its circuit is not open. Shared by every
    /// clone, so the dispatcher sees what the stack's layers observed.
    healthy: Arc<AtomicBool>,
    /// The series counted on every delivery, looked up by label once.
    every: Arc<Every>,
}

/// This subscription's series of the metrics counted on every delivery.
struct Every {
    latency: Histogram,
    attempts_2xx: IntCounter,
    delivered: IntCounter,
    from_backlog: IntCounter,
}

/// A circuit's state, as the `hookline_circuit_state` gauge encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// One probe request is allowed.
    HalfOpen,
    /// Requests wait.
    Open,
}

impl CircuitState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    /// The `state` label.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }
}

impl Observer {
    /// An observer for `subscription`.
    pub fn new(subscription: Arc<str>, metrics: Metrics) -> Self {
        let label = [&*subscription];
        let every = Arc::new(Every {
            latency: metrics.delivery_latency.with_label_values(&label),
            attempts_2xx: metrics
                .delivery_attempts
                .with_label_values(&[&subscription, "2xx"]),
            delivered: metrics
                .deliveries
                .with_label_values(&[&subscription, "delivered"]),
            from_backlog: metrics.backlog_deliveries.with_label_values(&label),
        });
        Observer {
            subscription,
            metrics,
            healthy: Arc::new(AtomicBool::new(true)),
            every,
        }
    }

    /// Whether the receiver looks alive: its last attempt got an HTTP answer other than 5xx
    /// and its circuit is not open. A full queue of a healthy receiver back-pressures; one of
    /// an unhealthy receiver is diverted to the retry topic.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// `QueueStalled`: the queue was full and no room freed for a while; until an attempt
    /// gets an answer, count the receiver as unhealthy.
    pub fn queue_stalled(&self) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(subscription = %self.subscription, "queue full and not moving; overflow goes to the retry topic");
        }
    }

    /// The subscription id.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The metrics handle.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `AttemptFinished`: one HTTP attempt ended with `class` (`2xx`, `timeout`, ...);
    /// `retry_in` is the wait before the next attempt, if there is one.
    pub fn attempt_finished(
        &self,
        webhook_id: &str,
        attempt: u32,
        class: &str,
        retry_in: Option<Duration>,
    ) {
        match class {
            "2xx" => self.every.attempts_2xx.inc(),
            _ => self
                .metrics
                .delivery_attempts
                .with_label_values(&[&self.subscription, class])
                .inc(),
        }
        let answered = matches!(class, "2xx" | "3xx" | "4xx");
        self.healthy.store(answered, Ordering::Release);
        tracing::debug!(subscription = %self.subscription, webhook_id, attempt, class, ?retry_in, "delivery attempt finished");
    }

    /// `RateLimited`: a request waits `wait` for the token bucket.
    pub fn rate_limited(&self, wait: Duration) {
        self.metrics
            .rate_limited
            .with_label_values(&[&self.subscription])
            .inc();
        tracing::trace!(subscription = %self.subscription, ?wait, "rate limited");
    }

    /// `CircuitTransition`: the breaker moved from `from` to `to`.
    pub fn circuit_transition(&self, from: CircuitState, to: CircuitState) {
        self.metrics
            .circuit_state
            .with_label_values(&[&self.subscription])
            .set(to.gauge());
        self.metrics
            .circuit_transitions
            .with_label_values(&[&self.subscription, to.as_str()])
            .inc();
        self.healthy
            .store(to == CircuitState::Closed, Ordering::Release);
        match to {
            CircuitState::Open => {
                tracing::warn!(subscription = %self.subscription, from = from.as_str(), "circuit opened; deliveries wait")
            }
            _ => {
                tracing::info!(subscription = %self.subscription, from = from.as_str(), to = to.as_str(), "circuit state changed")
            }
        }
    }

    /// `DeliverySucceeded`: `events` events reached the receiver; `latency` is from reading
    /// the (oldest) event to the receiver's answer.
    pub fn delivery_succeeded(
        &self,
        webhook_id: &str,
        events: usize,
        attempts: u32,
        latency: Duration,
    ) {
        self.every.latency.observe(latency.as_secs_f64());
        tracing::debug!(subscription = %self.subscription, webhook_id, events, attempts, ?latency, "delivered");
    }

    /// A delivered event settles (counted as `Settler::delivered` counts it); `from_backlog`
    /// when it was read from the subscription's backlog.
    pub fn settle_delivered(&self, ack: crate::source::ack::Ack, from_backlog: bool) {
        if from_backlog {
            self.every.from_backlog.inc();
        }
        self.every.delivered.inc();
        ack.settle();
    }

    /// `QueueDepthChanged`: `delta` events entered (positive) or left the queue.
    pub fn queue_depth(&self, delta: i64) {
        self.metrics
            .queue_depth
            .with_label_values(&[&self.subscription])
            .add(delta);
    }
}
