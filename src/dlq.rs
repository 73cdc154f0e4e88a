//! The dead-letter producer: where events go when they cannot be delivered, with headers that
//! say why and where from, so an operator can inspect them and `hookline replay` can re-inject.

use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::event::Origin;

/// Header names on every dead-letter record.
pub mod headers {
    /// Why: one of [`super::Reason::as_str`].
    pub const REASON: &str = "hookline-reason";
    /// The error text (never contains secrets).
    pub const ERROR: &str = "hookline-error";
    /// Source topic.
    pub const TOPIC: &str = "hookline-source-topic";
    /// Source partition.
    pub const PARTITION: &str = "hookline-source-partition";
    /// Source offset.
    pub const OFFSET: &str = "hookline-source-offset";
    /// Index of the event inside its message.
    pub const INDEX: &str = "hookline-source-index";
    /// The subscription, when the failure belongs to one.
    pub const SUBSCRIPTION: &str = "hookline-subscription";
    /// The stable `webhook-id` used for the delivery.
    pub const WEBHOOK_ID: &str = "hookline-webhook-id";
    /// HTTP attempts made.
    pub const ATTEMPTS: &str = "hookline-attempts";
    /// Last HTTP status, when there was one.
    pub const STATUS: &str = "hookline-status";
    /// RFC 3339 time of the failure.
    pub const FAILED_AT: &str = "hookline-failed-at";
    /// Present when Kafka refused the whole record and it was written without its payload:
    /// the payload's size in bytes. The event is still in its source topic at the offset the
    /// other headers name.
    pub const TRUNCATED: &str = "hookline-truncated";
}

/// Why an event was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The message was not JSON (or not an object / array of objects).
    NotJson,
    /// The message was JSON, but not an object or an array of objects.
    NotAnEvent,
    /// The message was larger than `kafka.max_message_bytes`.
    TooLarge,
    /// A template could not render the event.
    Render,
    /// The receiver answered with a status that is never retried (most 4xx).
    Rejected,
    /// Every in-memory retry failed.
    RetriesExhausted,
    /// The durable retry schedule ran out.
    RetryScheduleExhausted,
    /// The destination is refused by policy (SSRF guard, bad TLS config).
    Refused,
    /// Kafka refused the event's backlog record (too large, not authorised).
    BacklogWriteFailed,
    /// Kafka refused the event's retry-tier record (too large, not authorised).
    RetryWriteFailed,
    /// The event waited in the backlog of a subscription that no rule set has any more.
    SubscriptionRemoved,
    /// A record read back from hookline's own backlog or retry topics was unreadable.
    InvalidRecord,
    /// The event's backlog record refers to it in its source topic, and it is no longer
    /// there (retention or compaction removed it before its subscription took it, or the
    /// topic was created again).
    SourceGone,
}

impl Reason {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotJson => "not-json",
            Reason::NotAnEvent => "not-an-event",
            Reason::TooLarge => "too-large",
            Reason::Render => "render-failed",
            Reason::Rejected => "rejected",
            Reason::RetriesExhausted => "retries-exhausted",
            Reason::RetryScheduleExhausted => "retry-schedule-exhausted",
            Reason::Refused => "refused",
            Reason::BacklogWriteFailed => "backlog-write-failed",
            Reason::RetryWriteFailed => "retry-write-failed",
            Reason::SubscriptionRemoved => "subscription-removed",
            Reason::InvalidRecord => "invalid-record",
            Reason::SourceGone => "source-gone",
        }
    }
}

/// One record for the dead-letter topic.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Where the event came from.
    pub origin: Origin,
    /// Why.
    pub reason: Reason,
    /// The error, for humans.
    pub error: String,
    /// The subscription that failed, if the failure belongs to one.
    pub subscription: Option<String>,
    /// The stable delivery id, if a delivery was attempted.
    pub webhook_id: Option<String>,
    /// HTTP attempts made.
    pub attempts: u32,
    /// Last HTTP status.
    pub status: Option<u16>,
    /// The original event (one element, for array messages) or the raw message bytes.
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// A dead letter for an input problem (no subscription involved).
    pub fn input(
        origin: Origin,
        reason: Reason,
        error: impl Into<String>,
        payload: Vec<u8>,
    ) -> Self {
        DeadLetter {
            origin,
            reason,
            error: error.into(),
            subscription: None,
            webhook_id: None,
            attempts: 0,
            status: None,
            payload,
        }
    }

    /// A dead letter for an event `subscription`'s template could not render.
    pub fn render_failed(
        origin: Origin,
        error: impl Into<String>,
        subscription: &str,
        webhook_id: String,
        event: &crate::event::Payload,
    ) -> Self {
        DeadLetter {
            origin,
            reason: Reason::Render,
            error: error.into(),
            subscription: Some(subscription.to_string()),
            webhook_id: Some(webhook_id),
            attempts: 0,
            status: None,
            payload: event.json().to_vec(),
        }
    }

    fn headers(&self) -> OwnedHeaders {
        let partition = self.origin.partition.to_string();
        let offset = self.origin.offset.to_string();
        let index = self.origin.index.to_string();
        let attempts = self.attempts.to_string();
        let failed_at = Utc::now().to_rfc3339();
        let mut h = OwnedHeaders::new()
            .insert(header(headers::REASON, self.reason.as_str()))
            .insert(header(headers::ERROR, &self.error))
            .insert(header(headers::TOPIC, &self.origin.topic))
            .insert(header(headers::PARTITION, &partition))
            .insert(header(headers::OFFSET, &offset))
            .insert(header(headers::INDEX, &index))
            .insert(header(headers::ATTEMPTS, &attempts))
            .insert(header(headers::FAILED_AT, &failed_at));
        if let Some(sub) = &self.subscription {
            h = h.insert(header(headers::SUBSCRIPTION, sub));
        }
        if let Some(id) = &self.webhook_id {
            h = h.insert(header(headers::WEBHOOK_ID, id));
        }
        if let Some(status) = self.status {
            h = h.insert(header(headers::STATUS, &status.to_string()));
        }
        h
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Writing a dead letter failed (the caller retries; nothing is settled until it succeeds).
#[derive(Debug, thiserror::Error)]
#[error("writing to dead-letter topic {topic:?} failed")]
pub struct WriteError {
    topic: String,
    #[source]
    source: rdkafka::error::KafkaError,
}

impl WriteError {
    /// Kafka will refuse this record every time (see [`crate::produce::is_permanent`]).
    pub fn is_permanent(&self) -> bool {
        crate::produce::is_permanent(&self.source)
    }
}

/// Produces dead letters to one topic. Cheap to clone.
#[derive(Clone)]
pub struct DeadLetterProducer {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetterProducer {
    /// A producer writing to `topic`.
    pub fn new(producer: FutureProducer, topic: impl Into<String>) -> Self {
        DeadLetterProducer {
            producer,
            topic: topic.into(),
        }
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes one record and waits for the broker's acknowledgement.
    pub async fn write(&self, letter: &DeadLetter) -> Result<(), WriteError> {
        self.send(letter, &letter.payload, letter.headers()).await
    }

    /// The fallback for a record Kafka refuses for good: the same headers (origin, reason,
    /// subscription, id) with an empty payload and [`headers::TRUNCATED`] giving its size.
    /// The event can be read again from its source at the origin's offset.
    pub async fn write_truncated(&self, letter: &DeadLetter) -> Result<(), WriteError> {
        let size = letter.payload.len().to_string();
        let headers = letter.headers().insert(header(headers::TRUNCATED, &size));
        self.send(letter, &[], headers).await
    }

    async fn send(
        &self,
        letter: &DeadLetter,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), WriteError> {
        // Keyed by origin so a dead-lettered event's records stay in order on one partition.
        let key = letter.origin.key();
        let record = FutureRecord::to(&self.topic)
            .key(&key)
            .payload(payload)
            .headers(headers);
        self.producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
            .map(|_| ())
            .map_err(|(source, _)| WriteError {
                topic: self.topic.clone(),
                source,
            })
    }
}
