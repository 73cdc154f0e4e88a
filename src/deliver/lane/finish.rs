//! Settling the jobs of one request when its answer comes back: delivered; or, after
//! retriable failures, to the retry tiers ([`Divert`](crate::deliver::Divert)); or to the
//! dead-letter topic with the cause.

use std::future::Future;

use tokio::time::Instant;
use tower::BoxError;

use super::super::batch::Batch;
use super::super::client::{self, chain};
use super::super::request::Response;
use super::super::retry::policy::{classify, Class};
use super::super::{DivertCause, JobFrom, SpillCause};
use super::Lane;
use crate::dlq::{DeadLetter, Reason};

/// The disable reason a `410 Gone` gives.
pub const GONE_REASON: &str = "the receiver answered 410 Gone";

/// Waits for one request's outcome and settles each of its jobs.
pub(super) async fn finish(
    lane: Lane,
    batch: Batch,
    response: impl Future<Output = Result<Response, BoxError>>,
    reason: Option<Reason>,
) {
    let shared = &lane.inner.shared;
    let result = tokio::select! {
        r = response => r,
        // Abandoned at shutdown: the acks drop unsettled and the events are re-delivered.
        _ = shared.abort.cancelled() => return,
    };
    let attempts = batch.delivery.attempts();
    let sub = lane.inner.id.clone();
    let observer = &lane.inner.observer;
    let class = classify(&result);
    if class == Class::Delivered && reason.is_none() {
        let now = chrono::Utc::now();
        shared.health.success(&sub, now);
        let instant = Instant::now().into_std();
        for job in batch.jobs {
            let latency = (now - job.event.received_at).to_std().unwrap_or_default();
            observer.delivery_succeeded(&batch.delivery.webhook_id, 1, attempts, latency);
            shared
                .dedup
                .delivered(&sub, &job.dedup, &job.webhook_id, instant);
            observer.settle_delivered(job.ack, job.from == JobFrom::Backlog);
        }
        return;
    }
    let gone = matches!(&result, Ok(r) if r.status == reqwest::StatusCode::GONE);
    if gone && reason.is_none() {
        if let (Some(hook), Some(_)) = (shared.gone_hook(), shared.spill_hook()) {
            // The receiver says the subscription is over: disable it everywhere, and keep
            // this delivery (and what waits behind it) in its backlog, for a resume.
            tracing::warn!(subscription = %sub, webhook_id = %batch.delivery.webhook_id, "receiver answered 410 Gone; disabling the subscription");
            hook.gone(&sub, &batch.delivery.webhook_id);
            lane.suspend(GONE_REASON);
            lane.put_back(SpillCause::Disabled, batch.jobs).await;
            return;
        }
    }
    shared.health.failure(&sub, chrono::Utc::now());
    let (status, error) = match &result {
        Ok(response) => (
            Some(response.status.as_u16()),
            format!("receiver answered {}", response.status),
        ),
        Err(e) => (None, describe(e.as_ref())),
    };
    let reason = reason.unwrap_or(match (&result, class) {
        (Err(e), _) if matches!(e.downcast_ref(), Some(client::Error::Refused(_))) => {
            Reason::Refused
        }
        (_, Class::Transient { .. }) => Reason::RetriesExhausted,
        _ => Reason::Rejected,
    });
    let divert = (reason == Reason::RetriesExhausted)
        .then(|| shared.divert())
        .flatten();
    for job in batch.jobs {
        shared.dedup.released(&sub, &job.dedup, &job.webhook_id);
        let job = match &divert {
            Some(divert) => {
                let cause = DivertCause::RetriesExhausted {
                    attempts,
                    status,
                    error: error.clone(),
                };
                // Abandoned at shutdown like a request: a divert waits for Kafka.
                let diverted = tokio::select! {
                    r = divert.divert(job, cause) => r,
                    _ = shared.abort.cancelled() => return,
                };
                match diverted {
                    Ok(()) => continue,
                    Err(job) => job,
                }
            }
            None => job,
        };
        let letter = DeadLetter {
            origin: job.event.origin.clone(),
            reason,
            error: error.clone(),
            subscription: Some(sub.to_string()),
            webhook_id: Some(job.webhook_id.clone()),
            attempts,
            status,
            payload: job.event.payload.json().to_vec(),
        };
        tokio::select! {
            () = shared.settler.dead_letter(letter, job.ack) => {}
            _ = shared.abort.cancelled() => return,
        }
    }
}

fn describe(error: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if error.is::<tower::timeout::error::Elapsed>() {
        return "no answer within the timeout".into();
    }
    chain(error)
}
