//! One record of a backlog topic: deliveries waiting for one subscription, everything needed
//! to deliver them later, anywhere in the consumer group. The payload is JSON (readable with
//! kcat); a few headers repeat what people look for. Bodies are not stored: they are rendered
//! when the record is read, with the subscription's template then in force.
//!
//! A record (version 2) holds up to [`MAX_DELIVERIES`] deliveries of events from one source
//! partition, in the order they were spilled. One record per event made a spilling
//! subscription cost about as much CPU as a delivering one (a Kafka message, its headers and
//! its delivery report each time); ten dead neighbours then took most of the router's CPU
//! from the healthy ones. Version 1 records (one delivery each) are still read.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::deliver::{Job, SpillCause};
use crate::retry_topic::record::OriginRecord;
use crate::rules::dedup::DedupKey;

/// The record format's version this hookline writes.
pub const VERSION: u32 = 2;

/// The most deliveries one record holds.
pub const MAX_DELIVERIES: usize = 64;

/// The size a record is closed at, if it has not reached [`MAX_DELIVERIES`] before (or the
/// broker's record limit, if smaller).
pub const TARGET_BYTES: usize = 256 * 1024;

/// A backlog record as read back.
#[derive(Clone, Debug)]
pub struct BacklogRecord {
    /// The subscription it is for.
    pub subscription: String,
    /// Why its first delivery went to the backlog (a [`SpillCause`] label).
    pub cause: String,
    /// When it was written.
    pub spilled_at: DateTime<Utc>,
    /// Its deliveries, in the order they were spilled (never empty).
    pub deliveries: Vec<Waiting>,
}

/// One delivery waiting in a backlog record.
#[derive(Clone, Debug)]
pub struct Waiting {
    /// The stable delivery id.
    pub webhook_id: String,
    /// Rounds of the durable retry schedule already spent (0 from a source topic).
    pub round: u32,
    /// Where the event came from.
    pub origin: OriginRecord,
    /// When hookline first read the event.
    pub received_at: DateTime<Utc>,
    /// Dedup keys to apply when it is delivered.
    pub dedup: Vec<DedupKey>,
    /// The event's JSON as it was read (parsed by the reader, for what the rules read).
    pub event: Box<RawValue>,
}

/// Builds one record, delivery by delivery, straight into its payload bytes.
///
/// Written by hand rather than through a serde struct so that an event already serialised
/// for another subscription's record is copied in as bytes, not serialised again.
#[derive(Debug)]
pub struct RecordBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl RecordBuilder {
    /// A record for `subscription` of events from `topic`/`partition`; its first delivery
    /// spilled because of `cause`.
    pub fn new(subscription: &str, cause: SpillCause, topic: &str, partition: i32) -> Self {
        // Most records fill to MAX_DELIVERIES: start big enough for that with small events,
        // rather than growing (and copying) a few times.
        let mut buf = Vec::with_capacity(32 * 1024);
        buf.extend_from_slice(br#"{"v":"#);
        push_int(&mut buf, VERSION);
        buf.extend_from_slice(br#","subscription":"#);
        write_json(&mut buf, subscription);
        buf.extend_from_slice(br#","cause":""#);
        buf.extend_from_slice(cause.as_str().as_bytes());
        buf.extend_from_slice(br#"","spilled_at_ms":"#);
        push_int(&mut buf, Utc::now().timestamp_millis());
        buf.extend_from_slice(br#","topic":"#);
        write_json(&mut buf, topic);
        buf.extend_from_slice(br#","partition":"#);
        push_int(&mut buf, partition);
        buf.extend_from_slice(br#","deliveries":["#);
        RecordBuilder { buf, count: 0 }
    }

    /// Appends `job`, whose event serialises to `event_json`.
    pub fn push(&mut self, job: &Job, event_json: &[u8]) {
        let buf = &mut self.buf;
        if self.count > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(br#"{"webhook_id":"#);
        write_json(buf, &job.webhook_id);
        buf.extend_from_slice(br#","offset":"#);
        push_int(buf, job.event.origin.offset);
        buf.extend_from_slice(br#","index":"#);
        push_int(buf, job.event.origin.index);
        buf.extend_from_slice(br#","received_at_ms":"#);
        push_int(buf, job.event.received_at.timestamp_millis());
        if job.retry_round > 0 {
            buf.extend_from_slice(br#","round":"#);
            push_int(buf, job.retry_round);
        }
        if !job.dedup.is_empty() {
            buf.extend_from_slice(br#","dedup":"#);
            write_json(buf, &job.dedup);
        }
        buf.extend_from_slice(br#","event":"#);
        buf.extend_from_slice(event_json);
        buf.push(b'}');
        self.count += 1;
    }

    /// Deliveries so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Payload bytes so far.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Calls `f` with the payload as it would be finished now, and leaves the record open
    /// (the producer copies what it sends; a refused send may be tried again later).
    pub fn with_closed<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> R {
        let open = self.buf.len();
        self.buf.extend_from_slice(b"]}");
        let result = f(&self.buf);
        self.buf.truncate(open);
        result
    }
}

fn write_json(buf: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(buf, value).expect("writing JSON to memory cannot fail");
}

fn push_int(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Why a record read back from a backlog cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not a backlog record at all.
    #[error("unreadable backlog record: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// Written by a newer hookline.
    #[error("backlog record version {0} is not supported (this hookline reads 1 and {VERSION})")]
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

/// Version 1: one delivery per record.
#[derive(Deserialize)]
struct V1 {
    subscription: String,
    webhook_id: String,
    #[serde(default)]
    round: u32,
    cause: String,
    origin: OriginRecord,
    received_at: DateTime<Utc>,
    spilled_at: DateTime<Utc>,
    #[serde(default)]
    dedup: Vec<DedupKey>,
    event: Box<RawValue>,
}

/// Version 2: deliveries of events from one source partition.
#[derive(Deserialize)]
struct V2 {
    subscription: String,
    cause: String,
    spilled_at_ms: i64,
    topic: String,
    partition: i32,
    deliveries: Vec<V2Delivery>,
}

#[derive(Deserialize)]
struct V2Delivery {
    webhook_id: String,
    offset: i64,
    #[serde(default)]
    index: u32,
    received_at_ms: i64,
    #[serde(default)]
    round: u32,
    #[serde(default)]
    dedup: Vec<DedupKey>,
    event: Box<RawValue>,
}

#[derive(Deserialize)]
struct Versioned {
    v: u32,
}

fn millis(ms: i64, field: &'static str) -> Result<DateTime<Utc>, RecordError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or(RecordError::Invalid {
            field,
            reason: "not a time",
        })
}

/// Reads a backlog record, refusing anything that could not have been written by hookline:
/// ids end up in HTTP headers and dead-letter headers.
pub fn decode(bytes: &[u8]) -> Result<BacklogRecord, RecordError> {
    let record = match serde_json::from_slice::<Versioned>(bytes)?.v {
        1 => {
            let r: V1 = serde_json::from_slice(bytes)?;
            BacklogRecord {
                subscription: r.subscription,
                cause: r.cause,
                spilled_at: r.spilled_at,
                deliveries: vec![Waiting {
                    webhook_id: r.webhook_id,
                    round: r.round,
                    origin: r.origin,
                    received_at: r.received_at,
                    dedup: r.dedup,
                    event: r.event,
                }],
            }
        }
        2 => {
            let r: V2 = serde_json::from_slice(bytes)?;
            let mut deliveries = Vec::with_capacity(r.deliveries.len());
            for d in r.deliveries {
                deliveries.push(Waiting {
                    webhook_id: d.webhook_id,
                    round: d.round,
                    origin: OriginRecord {
                        topic: r.topic.clone(),
                        partition: r.partition,
                        offset: d.offset,
                        index: d.index,
                    },
                    received_at: millis(d.received_at_ms, "received_at_ms")?,
                    dedup: d.dedup,
                    event: d.event,
                });
            }
            BacklogRecord {
                subscription: r.subscription,
                cause: r.cause,
                spilled_at: millis(r.spilled_at_ms, "spilled_at_ms")?,
                deliveries,
            }
        }
        v => return Err(RecordError::Version(v)),
    };
    check(&record)?;
    Ok(record)
}

fn check(record: &BacklogRecord) -> Result<(), RecordError> {
    let invalid = |field, reason| Err(RecordError::Invalid { field, reason });
    if record.subscription.is_empty() {
        return invalid("subscription", "empty");
    }
    if record.deliveries.is_empty() {
        return invalid("deliveries", "none");
    }
    for d in &record.deliveries {
        if !crate::event::is_webhook_id(&d.webhook_id) {
            return invalid(
                "webhook_id",
                "not a hookline delivery id (msg_ and up to 124 letters, digits or _)",
            );
        }
        if d.origin.partition < 0 || d.origin.offset < 0 {
            return invalid("origin", "negative partition or offset");
        }
        if !d.event.get().starts_with('{') {
            return invalid("event", "not a JSON object");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::{test_job, JobFrom};

    fn encode(jobs: &[Job], cause: SpillCause) -> Vec<u8> {
        let origin = &jobs[0].event.origin;
        let mut b = RecordBuilder::new("s", cause, &origin.topic, origin.partition);
        for job in jobs {
            b.push(job, &job.event.payload.json());
        }
        assert_eq!(b.count(), jobs.len());
        b.with_closed(<[u8]>::to_vec)
    }

    #[test]
    fn deliveries_round_trip_in_order() {
        let mut first = test_job(7, JobFrom::Source);
        first.retry_round = 2;
        first.dedup = vec![DedupKey {
            route: "r".into(),
            key: "\"k\"".into(),
            window: std::time::Duration::from_secs(60),
        }];
        let jobs = [first, test_job(8, JobFrom::Source)];
        let bytes = encode(&jobs, SpillCause::Paused);
        let first = &jobs[0];
        let record = decode(&bytes).unwrap();
        assert_eq!(record.subscription, "s");
        assert_eq!(record.cause, "paused");
        assert_eq!(record.deliveries.len(), 2);
        let (a, b) = (&record.deliveries[0], &record.deliveries[1]);
        assert_eq!(a.webhook_id, first.webhook_id);
        assert_eq!(a.round, 2);
        assert_eq!(a.dedup, first.dedup);
        assert_eq!(a.origin.to_origin(), first.event.origin);
        assert_eq!(a.event.get().as_bytes(), &*first.event.payload.json());
        assert_eq!(
            a.received_at.timestamp_millis(),
            first.event.received_at.timestamp_millis()
        );
        assert_eq!((b.round, b.origin.offset), (0, 8));
        assert!(b.dedup.is_empty());
    }

    #[test]
    fn version_1_records_are_still_read() {
        let v1 = serde_json::json!({
            "v": 1, "subscription": "s", "webhook_id": "msg_abc", "cause": "slow",
            "origin": {"topic": "t", "partition": 1, "offset": 5, "index": 0},
            "received_at": "2026-01-01T00:00:00Z", "spilled_at": "2026-01-01T00:00:01Z",
            "event": {"a": 1}
        });
        let record = decode(&serde_json::to_vec(&v1).unwrap()).unwrap();
        assert_eq!(record.deliveries.len(), 1);
        assert_eq!(record.deliveries[0].origin.offset, 5);
        assert_eq!(record.deliveries[0].event.get(), r#"{"a":1}"#);
    }

    #[test]
    fn bad_records_are_refused() {
        let bytes = encode(&[test_job(7, JobFrom::Source)], SpillCause::Slow);
        let mut bad: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        bad["deliveries"][0]["webhook_id"] = "msg_\r\nX-Injected: 1".into();
        let e = decode(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(e.to_string().contains("webhook_id"), "{e}");

        let mut bad: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        bad["deliveries"] = serde_json::json!([]);
        let e = decode(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(e.to_string().contains("deliveries"), "{e}");

        let mut bad: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        bad["partition"] = (-1).into();
        assert!(decode(&serde_json::to_vec(&bad).unwrap()).is_err());

        bad["v"] = 9.into();
        assert!(matches!(
            decode(&serde_json::to_vec(&bad).unwrap()),
            Err(RecordError::Version(9))
        ));
        assert!(matches!(decode(b"{"), Err(RecordError::Unreadable(_))));
    }
}
