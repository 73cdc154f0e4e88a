//! One record of a backlog topic: everything needed to deliver the event later, anywhere in
//! the consumer group. The payload is this JSON (readable with kcat); a few headers repeat
//! what people look for. The body is not stored: it is rendered when the record is read, with
//! the subscription's template then in force.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deliver::{Job, SpillCause};
use crate::event::Event;
use crate::retry_topic::record::OriginRecord;
use crate::rules::dedup::DedupKey;

/// The record format's version.
pub const VERSION: u32 = 1;

/// A delivery waiting in its subscription's backlog.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BacklogRecord {
    /// [`VERSION`].
    pub v: u32,
    /// The subscription it is for.
    pub subscription: String,
    /// The stable delivery id.
    pub webhook_id: String,
    /// Rounds of the durable retry schedule already spent (0 from a source topic).
    #[serde(default)]
    pub round: u32,
    /// Why it went to the backlog (a [`SpillCause`] label).
    pub cause: String,
    /// Where the event came from.
    pub origin: OriginRecord,
    /// When hookline first read the event.
    pub received_at: DateTime<Utc>,
    /// When it was written here.
    pub spilled_at: DateTime<Utc>,
    /// Dedup keys to apply when it is delivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dedup: Vec<DedupKey>,
    /// The event.
    pub event: Value,
}

/// The same, borrowing from a job, to serialise without copying the event.
#[derive(Serialize)]
struct RecordRef<'a> {
    v: u32,
    subscription: &'a str,
    webhook_id: &'a str,
    round: u32,
    cause: &'a str,
    origin: OriginRecord,
    received_at: DateTime<Utc>,
    spilled_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "<[DedupKey]>::is_empty")]
    dedup: &'a [DedupKey],
    event: &'a Value,
}

/// Why a record read back from a backlog cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not a backlog record at all.
    #[error("unreadable backlog record: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// Written by a newer hookline.
    #[error("backlog record version {0} is not supported (this hookline reads {VERSION})")]
    Version(u32),
    /// A field hookline would put in a header or an id is malformed.
    #[error("backlog record has an invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The payload recording `job` for its backlog.
pub fn encode(job: &Job, cause: SpillCause) -> Vec<u8> {
    let record = RecordRef {
        v: VERSION,
        subscription: &job.subscription.id,
        webhook_id: &job.webhook_id,
        round: job.retry_round,
        cause: cause.as_str(),
        origin: OriginRecord::from(&job.event.origin),
        received_at: job.event.received_at,
        spilled_at: Utc::now(),
        dedup: &job.dedup,
        event: &job.event.payload,
    };
    serde_json::to_vec(&record).expect("a backlog record serialises")
}

/// Reads a backlog record, refusing anything that could not have been written by hookline:
/// ids end up in HTTP headers and dead-letter headers.
pub fn decode(bytes: &[u8]) -> Result<BacklogRecord, RecordError> {
    let record: BacklogRecord = serde_json::from_slice(bytes)?;
    if record.v != VERSION {
        return Err(RecordError::Version(record.v));
    }
    if !crate::event::is_webhook_id(&record.webhook_id) {
        return Err(RecordError::Invalid {
            field: "webhook_id",
            reason: "not a hookline delivery id (msg_ and up to 124 letters, digits or _)",
        });
    }
    if record.subscription.is_empty() {
        return Err(RecordError::Invalid {
            field: "subscription",
            reason: "empty",
        });
    }
    if record.origin.partition < 0 || record.origin.offset < 0 {
        return Err(RecordError::Invalid {
            field: "origin",
            reason: "negative partition or offset",
        });
    }
    Ok(record)
}

impl BacklogRecord {
    /// The event as it was read from its source.
    pub fn to_event(&self) -> Event {
        Event {
            origin: self.origin.to_origin(),
            payload: std::sync::Arc::new(self.event.clone()),
            received_at: self.received_at,
            kafka_timestamp_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::{test_job, JobFrom};

    #[test]
    fn a_job_round_trips_and_bad_records_are_refused() {
        let mut job = test_job(7, JobFrom::Source);
        job.retry_round = 2;
        job.dedup = vec![DedupKey {
            route: "r".into(),
            key: "\"k\"".into(),
            window: std::time::Duration::from_secs(60),
        }];
        let bytes = encode(&job, SpillCause::Paused);
        let record = decode(&bytes).unwrap();
        assert_eq!(record.subscription, "s");
        assert_eq!(record.webhook_id, job.webhook_id);
        assert_eq!(record.round, 2);
        assert_eq!(record.cause, "paused");
        assert_eq!(record.origin.offset, 7);
        assert_eq!(record.dedup, job.dedup);
        assert_eq!(record.to_event().origin, job.event.origin);

        let mut bad: Value = serde_json::from_slice(&bytes).unwrap();
        bad["webhook_id"] = "msg_\r\nX-Injected: 1".into();
        let e = decode(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(e.to_string().contains("webhook_id"), "{e}");
        bad["webhook_id"] = job.webhook_id.clone().into();
        bad["v"] = 9.into();
        assert!(matches!(
            decode(&serde_json::to_vec(&bad).unwrap()),
            Err(RecordError::Version(9))
        ));
        assert!(matches!(decode(b"{"), Err(RecordError::Unreadable(_))));
    }
}
