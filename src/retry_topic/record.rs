//! One record of a retry tier: everything needed to deliver the job again, later, anywhere in
//! the consumer group. The payload is this JSON; a few headers repeat what people look for
//! with kcat.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deliver::Job;
use crate::event::{Event, Origin, Payload};

/// Where the event first came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OriginRecord {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Index inside the source message.
    pub index: u32,
}

impl From<&Origin> for OriginRecord {
    fn from(o: &Origin) -> Self {
        OriginRecord {
            topic: o.topic.to_string(),
            partition: o.partition,
            offset: o.offset,
            index: o.index,
        }
    }
}

impl OriginRecord {
    /// The origin it records.
    pub fn to_origin(&self) -> Origin {
        Origin {
            topic: Arc::from(self.topic.as_str()),
            partition: self.partition,
            offset: self.offset,
            index: self.index,
        }
    }
}

/// A job waiting for its next round.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RetryRecord {
    /// The subscription it is for.
    pub subscription: String,
    /// The stable delivery id (unchanged across rounds).
    pub webhook_id: String,
    /// The event's category.
    pub event_type: String,
    /// The round this record waits for (1-based; 0 for a replay, due at once).
    pub round: u32,
    /// When it is due, in milliseconds since the epoch.
    pub due_ms: i64,
    /// The original event.
    pub event: Value,
    /// The body to send; absent when it must be rendered again with the rules in force
    /// (replays of dead letters).
    pub body: Option<Value>,
    /// Where the event came from.
    pub origin: OriginRecord,
    /// When hookline first read the event.
    pub received_at: DateTime<Utc>,
    /// Why the last round failed.
    pub last_error: Option<String>,
    /// The last HTTP status.
    pub last_status: Option<u16>,
}

/// Why a record read back from a retry tier cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not a retry record at all.
    #[error("unreadable retry record: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// A field hookline would put in a header, an id or an offset is malformed.
    #[error("retry record has an invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Reads a retry record, refusing anything hookline could not have written: the id ends up in
/// the `webhook-id` header and the origin in dead-letter headers and offsets.
pub fn decode(bytes: &[u8]) -> Result<RetryRecord, RecordError> {
    let record: RetryRecord = serde_json::from_slice(bytes)?;
    let invalid = |field, reason| Err(RecordError::Invalid { field, reason });
    if !crate::event::is_webhook_id(&record.webhook_id) {
        return invalid(
            "webhook_id",
            "not a hookline delivery id (msg_ and up to 124 letters, digits or _)",
        );
    }
    if record.subscription.is_empty() {
        return invalid("subscription", "empty");
    }
    if record.origin.topic.is_empty() || record.origin.partition < 0 || record.origin.offset < 0 {
        return invalid("origin", "empty topic, or negative partition or offset");
    }
    if !record.event.is_object() {
        return invalid("event", "not a JSON object");
    }
    Ok(record)
}

impl RetryRecord {
    /// The record that sends `job` in `round`, due at `due`.
    pub fn from_job(
        job: &Job,
        round: u32,
        due: DateTime<Utc>,
        error: Option<String>,
        status: Option<u16>,
    ) -> Result<Self, serde_json::Error> {
        Ok(RetryRecord {
            subscription: job.subscription.id.to_string(),
            webhook_id: job.webhook_id.clone(),
            event_type: job.event_type.clone(),
            round,
            due_ms: due.timestamp_millis(),
            event: job.event.payload.whole()?.clone(),
            body: job.body.clone(),
            origin: OriginRecord::from(&job.event.origin),
            received_at: job.event.received_at,
            last_error: error,
            last_status: status,
        })
    }

    /// The event as it was read from its source.
    pub fn to_event(&self) -> Event {
        Event {
            origin: self.origin.to_origin(),
            payload: Arc::new(Payload::from_value(self.event.clone())),
            received_at: self.received_at,
            kafka_timestamp_ms: None,
        }
    }

    /// When it is due.
    pub fn due(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.due_ms.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::{test_job, JobFrom};

    #[test]
    fn a_job_round_trips_and_records_hookline_never_writes_are_refused() {
        let mut job = test_job(3, JobFrom::Source);
        job.event = Event::new(job.event.origin.clone(), serde_json::json!({"id": "e"}));
        job.body = Some(serde_json::json!({"b": 1}));
        let record = RetryRecord::from_job(&job, 1, Utc::now(), None, None).unwrap();
        let bytes = serde_json::to_vec(&record).unwrap();
        assert_eq!(decode(&bytes).unwrap(), record);

        let bad = |field: &str, value: Value| {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            v[field] = value;
            decode(&serde_json::to_vec(&v).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(bad("webhook_id", "msg_\r\nX-Injected: 1".into()).contains("webhook_id"));
        assert!(bad("webhook_id", "".into()).contains("webhook_id"));
        assert!(bad("subscription", "".into()).contains("subscription"));
        assert!(bad("event", 7.into()).contains("event"));
        let origin = serde_json::json!({"topic": "t", "partition": -1, "offset": 0, "index": 0});
        assert!(bad("origin", origin).contains("origin"));
        assert!(matches!(decode(b"{"), Err(RecordError::Unreadable(_))));
    }
}
