//! One record of a backlog topic: deliveries waiting for one subscription, everything needed
//! to deliver them later, anywhere in the consumer group. The payload is JSON (readable with
//! kcat); a few headers repeat what people look for. Bodies are not stored: they are rendered
//! when the record is read, with the subscription's template then in force.
//!
//! A record holds up to [`MAX_DELIVERIES`] deliveries of events from one source partition, in
//! the order they were spilled. One record per event made a spilling subscription cost about
//! as much CPU as a delivering one (a Kafka message, its headers and its delivery report each
//! time); ten dead neighbours then took most of the router's CPU from the healthy ones.
//!
//! A delivery either refers to its event where it already is, in its source topic (version 3;
//! a compact array `[offset, index, age_ms, lag_ms]`, plus its dedup keys if it has any), or
//! carries a copy of it (an object with the event, as in version 2): a copy for events read
//! from a retry tier, and for every event with `delivery.backlog_events = "copy"`. A copy per
//! spilling subscription wrote about 3 KB to Kafka per event beside ten dead subscriptions,
//! and that, more than anything else, is what slowed the healthy ones. Versions 1 (one
//! delivery per record) and 2 (copies only) are still read.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::deliver::{Job, SpillCause};
use crate::retry_topic::record::OriginRecord;
use crate::rules::dedup::DedupKey;

/// The record format's version this hookline writes.
pub const VERSION: u32 = 3;

/// The most deliveries one record holds. A lane takes a whole record past its read-ahead, so
/// this bounds what a lane may hold beyond it too.
pub const MAX_DELIVERIES: usize = 256;

/// Room a delivery that refers to its event takes in a record, at most, besides its dedup
/// keys.
pub const REFERENCE_BYTES: usize = 64;

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
    /// The event, or where to read it.
    pub event: Stored,
}

/// Where a waiting delivery's event is.
#[derive(Clone, Debug)]
pub enum Stored {
    /// In the record: the event's JSON as it was read (parsed by the reader, for what the
    /// rules read).
    Copied(Box<RawValue>),
    /// In its source topic, at the delivery's origin: the message there must still carry
    /// this timestamp, or it is not the message the event was read from (the topic was
    /// deleted and created again).
    InSource {
        /// The Kafka timestamp of the message, if it had one.
        timestamp_ms: Option<i64>,
    },
}

/// Builds one record, delivery by delivery, straight into its payload bytes.
///
/// Written by hand rather than through a serde struct: a spill appends a few integers, or an
/// event's bytes as they were read, without building anything in between.
#[derive(Debug)]
pub struct RecordBuilder {
    buf: Vec<u8>,
    count: usize,
    /// `spilled_at_ms`, which references count their deliveries' ages from.
    spilled_at_ms: i64,
}

impl RecordBuilder {
    /// A record for `subscription` of events from `topic`/`partition`; its first delivery
    /// spilled because of `cause`.
    pub fn new(subscription: &str, cause: SpillCause, topic: &str, partition: i32) -> Self {
        // Most records fill to MAX_DELIVERIES references: start big enough for that, rather
        // than growing (and copying) a few times.
        let mut buf = Vec::with_capacity(4 * 1024);
        let spilled_at_ms = Utc::now().timestamp_millis();
        buf.extend_from_slice(br#"{"v":"#);
        push_int(&mut buf, VERSION);
        buf.extend_from_slice(br#","subscription":"#);
        write_json(&mut buf, subscription);
        buf.extend_from_slice(br#","cause":""#);
        buf.extend_from_slice(cause.as_str().as_bytes());
        buf.extend_from_slice(br#"","spilled_at_ms":"#);
        push_int(&mut buf, spilled_at_ms);
        buf.extend_from_slice(br#","topic":"#);
        write_json(&mut buf, topic);
        buf.extend_from_slice(br#","partition":"#);
        push_int(&mut buf, partition);
        buf.extend_from_slice(br#","deliveries":["#);
        RecordBuilder {
            buf,
            count: 0,
            spilled_at_ms,
        }
    }

    /// Appends `job` as a reference to its event in its source topic:
    /// `[offset, index, age_ms, lag_ms]` and, if it has any, its dedup keys. `age_ms` is
    /// `spilled_at_ms` minus when hookline read the event, `lag_ms` when hookline read it minus
    /// the message's Kafka timestamp (`null` without one). Its `webhook-id` is derived again
    /// from its origin and the subscription; its retry round is 0.
    pub fn push_reference(&mut self, job: &Job) {
        let buf = &mut self.buf;
        if self.count > 0 {
            buf.push(b',');
        }
        let origin = &job.event.origin;
        let received_ms = job.event.received_at.timestamp_millis();
        buf.push(b'[');
        push_int(buf, origin.offset);
        buf.push(b',');
        push_int(buf, origin.index);
        buf.push(b',');
        push_int(buf, self.spilled_at_ms - received_ms);
        buf.push(b',');
        match job.event.kafka_timestamp_ms {
            Some(ts) => push_int(buf, received_ms - ts),
            None => buf.extend_from_slice(b"null"),
        }
        if !job.dedup.is_empty() {
            buf.push(b',');
            write_json(buf, &job.dedup);
        }
        buf.push(b']');
        self.count += 1;
    }

    /// Appends `job` with a copy of its event, whose JSON is `event_json`.
    pub fn push_copy(&mut self, job: &Job, event_json: &[u8]) {
        let buf = &mut self.buf;
        if self.count > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(br#"{"webhook_id":"#);
        write_json(buf, &*job.delivery_id());
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
    #[error("backlog record version {0} is not supported (this hookline reads 1 to {VERSION})")]
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

impl V2Delivery {
    /// The delivery, with its event copied, at `origin`.
    fn waiting(self, origin: OriginRecord) -> Result<Waiting, RecordError> {
        Ok(Waiting {
            webhook_id: self.webhook_id,
            round: self.round,
            origin,
            received_at: millis(self.received_at_ms, "received_at_ms")?,
            dedup: self.dedup,
            event: Stored::Copied(self.event),
        })
    }
}

/// Version 3: as version 2, but a delivery may be a reference (see [`Reference`]).
#[derive(Deserialize)]
struct V3 {
    subscription: String,
    cause: String,
    spilled_at_ms: i64,
    topic: String,
    partition: i32,
    deliveries: Vec<Box<RawValue>>,
}

/// A delivery that refers to its event: `[offset, index, age_ms, lag_ms, dedup?]`.
struct Reference {
    offset: i64,
    index: u32,
    age_ms: i64,
    lag_ms: Option<i64>,
    dedup: Vec<DedupKey>,
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Reference;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[offset, index, age_ms, lag_ms] and optionally dedup keys")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Reference, A::Error> {
                use serde::de::Error;
                let missing = |n| A::Error::invalid_length(n, &self);
                Ok(Reference {
                    offset: seq.next_element()?.ok_or_else(|| missing(0))?,
                    index: seq.next_element()?.ok_or_else(|| missing(1))?,
                    age_ms: seq.next_element()?.ok_or_else(|| missing(2))?,
                    lag_ms: seq.next_element()?.ok_or_else(|| missing(3))?,
                    dedup: match seq.next_element()? {
                        Some(dedup) => {
                            if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                                return Err(A::Error::invalid_length(6, &self));
                            }
                            dedup
                        }
                        None => Vec::new(),
                    },
                })
            }
        }
        d.deserialize_seq(Visit)
    }
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
            let event = Stored::Copied(r.event);
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
                    event,
                }],
            }
        }
        2 => {
            let r: V2 = serde_json::from_slice(bytes)?;
            let mut deliveries = Vec::with_capacity(r.deliveries.len());
            for d in r.deliveries {
                let origin = OriginRecord {
                    topic: r.topic.clone(),
                    partition: r.partition,
                    offset: d.offset,
                    index: d.index,
                };
                deliveries.push(d.waiting(origin)?);
            }
            BacklogRecord {
                subscription: r.subscription,
                cause: r.cause,
                spilled_at: millis(r.spilled_at_ms, "spilled_at_ms")?,
                deliveries,
            }
        }
        3 => {
            let r: V3 = serde_json::from_slice(bytes)?;
            let mut deliveries = Vec::with_capacity(r.deliveries.len());
            let origin = |offset, index| OriginRecord {
                topic: r.topic.clone(),
                partition: r.partition,
                offset,
                index,
            };
            for d in r.deliveries {
                if !d.get().starts_with('[') {
                    let d: V2Delivery = serde_json::from_str(d.get())?;
                    let at = origin(d.offset, d.index);
                    deliveries.push(d.waiting(at)?);
                    continue;
                }
                let d: Reference = serde_json::from_str(d.get())?;
                let received_ms =
                    r.spilled_at_ms
                        .checked_sub(d.age_ms)
                        .ok_or(RecordError::Invalid {
                            field: "age_ms",
                            reason: "out of range",
                        })?;
                let origin = origin(d.offset, d.index);
                deliveries.push(Waiting {
                    webhook_id: crate::event::webhook_id(&origin.to_origin(), &r.subscription),
                    round: 0,
                    origin,
                    received_at: millis(received_ms, "age_ms")?,
                    dedup: d.dedup,
                    event: Stored::InSource {
                        timestamp_ms: d.lag_ms.and_then(|lag| received_ms.checked_sub(lag)),
                    },
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
        if let Stored::Copied(event) = &d.event {
            if !event.get().starts_with('{') {
                return invalid("event", "not a JSON object");
            }
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
            if job.from == JobFrom::Source {
                b.push_reference(job);
            } else {
                b.push_copy(job, &job.event.payload.json());
            }
        }
        assert_eq!(b.count(), jobs.len());
        b.with_closed(<[u8]>::to_vec)
    }

    fn copied(w: &Waiting) -> &str {
        match &w.event {
            Stored::Copied(event) => event.get(),
            Stored::InSource { .. } => panic!("a reference, not a copy"),
        }
    }

    #[test]
    fn deliveries_round_trip_in_order() {
        let mut first = test_job(7, JobFrom::Retry);
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
        assert_eq!(copied(a).as_bytes(), &*first.event.payload.json());
        assert_eq!(
            a.received_at.timestamp_millis(),
            first.event.received_at.timestamp_millis()
        );
        assert_eq!((b.round, b.origin.offset), (0, 8));
        assert!(b.dedup.is_empty());
    }

    #[test]
    fn references_round_trip_beside_copies() {
        let mut a = test_job(7, JobFrom::Source);
        a.event.origin.index = 3;
        a.webhook_id = crate::event::webhook_id(&a.event.origin, "s");
        a.event.kafka_timestamp_ms = Some(a.event.received_at.timestamp_millis() - 1500);
        a.dedup = vec![DedupKey {
            route: "r".into(),
            key: "\"k\"".into(),
            window: std::time::Duration::from_secs(60),
        }];
        let b = test_job(8, JobFrom::Retry);
        let c = test_job(9, JobFrom::Source);
        let jobs = [a, b, c];
        let bytes = encode(&jobs, SpillCause::CircuitOpen);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.contains(r#""deliveries":[[7,3,"#), "{text}");
        let record = decode(&bytes).unwrap();
        assert_eq!(record.deliveries.len(), 3);
        let (ra, rb, rc) = (
            &record.deliveries[0],
            &record.deliveries[1],
            &record.deliveries[2],
        );
        // A reference: its id derived again, its times to the millisecond, its dedup keys.
        assert_eq!(ra.webhook_id, jobs[0].webhook_id);
        assert_eq!(ra.origin.to_origin(), jobs[0].event.origin);
        assert_eq!(ra.dedup, jobs[0].dedup);
        assert_eq!(
            ra.received_at.timestamp_millis(),
            jobs[0].event.received_at.timestamp_millis()
        );
        assert!(matches!(
            ra.event,
            Stored::InSource { timestamp_ms: Some(ts) } if Some(ts) == jobs[0].event.kafka_timestamp_ms
        ));
        // A copy between references keeps its place.
        assert_eq!(rb.origin.offset, 8);
        assert_eq!(copied(rb), "{}");
        assert!(matches!(rc.event, Stored::InSource { timestamp_ms: None }));
        assert_eq!(rc.webhook_id, jobs[2].webhook_id);
    }

    #[test]
    fn a_reference_takes_a_few_bytes() {
        let one = encode(&[test_job(1_000_000, JobFrom::Source)], SpillCause::Slow);
        let many: Vec<Job> = (0..100)
            .map(|n| test_job(1_000_000 + n, JobFrom::Source))
            .collect();
        let hundred = encode(&many, SpillCause::Slow);
        let per_delivery = (hundred.len() - one.len()) / 99;
        assert!(per_delivery <= 24, "{per_delivery} bytes per reference");
        assert!(per_delivery <= REFERENCE_BYTES);
    }

    #[test]
    fn malformed_references_are_refused() {
        let bytes = encode(&[test_job(7, JobFrom::Source)], SpillCause::Slow);
        for bad in [
            serde_json::json!([7, 0, 1]),
            serde_json::json!([7, 0, 1, null, [], 9]),
            serde_json::json!([7, -1, 1, null]),
            serde_json::json!([-7, 0, 1, null]),
            serde_json::json!(["7", 0, 1, null]),
        ] {
            let mut record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            record["deliveries"][0] = bad.clone();
            assert!(
                decode(&serde_json::to_vec(&record).unwrap()).is_err(),
                "{bad} was accepted"
            );
        }
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
        assert_eq!(copied(&record.deliveries[0]), r#"{"a":1}"#);
    }

    #[test]
    fn bad_records_are_refused() {
        let bytes = encode(&[test_job(7, JobFrom::Retry)], SpillCause::Slow);
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
