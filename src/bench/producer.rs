//! The benchmark's events and their producer. Events are keyed (so they spread over every
//! partition), carry their produce time in `produced_us`, and are half high or critical. A
//! shape sets their size and how many extra fields they have, as real security events are
//! larger and wider than a four-field test event.

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::ClientConfig;

use super::receiver::server::PRODUCED_FIELD;
use super::HarnessError;

/// Severities in turn: half of the events are high or critical.
const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// How big and how wide the events are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventShape {
    /// Approximate size of one event in bytes (padded up to it).
    pub bytes: usize,
    /// Extra short fields (`"f07":"value-07-…"`) besides the ones routing reads.
    pub extra_fields: usize,
}

impl EventShape {
    /// About 250 bytes, six fields.
    pub const SMALL: EventShape = EventShape {
        bytes: 250,
        extra_fields: 0,
    };
    /// About 2.3 KB with 60 extra short fields (a Netography event is about 1.5 KB).
    pub const LARGE: EventShape = EventShape {
        bytes: 2300,
        extra_fields: 60,
    };

    /// Writes event number `i`, produced at `produced_us`, into `out` (cleared first).
    pub fn write(&self, out: &mut Vec<u8>, i: u64, produced_us: u64) {
        out.clear();
        let severity = SEVERITIES[(i % 4) as usize];
        let _ = write!(
            out,
            r#"{{"id":"e{i:08}","category":"bench","severity":"{severity}","title":"bench event {i:08}","host":"host-{:03}","{PRODUCED_FIELD}":{produced_us}"#,
            i % 997
        );
        for f in 0..self.extra_fields {
            let _ = write!(
                out,
                r#","f{f:02}":"value-{f:02}-{:06}""#,
                (i + f as u64) % 1_000_000
            );
        }
        // Pad to the size: `,"pad":"xxx…"}` is 10 bytes plus the x's.
        let pad = self.bytes.saturating_sub(out.len() + 10);
        if pad > 0 {
            out.extend_from_slice(br#","pad":""#);
            out.resize(out.len() + pad, b'x');
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// Whether event number `i` is high or critical (what a `min_severity: high` route takes).
    pub fn is_high(i: u64) -> bool {
        i % 4 < 2
    }
}

/// How fast to produce.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the broker takes them.
    Max,
    /// This many events per second, evenly spaced.
    PerSecond(f64),
}

/// What one call to [`Producer::produce`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Produced {
    /// Events produced (acknowledged or not yet: call [`Producer::flush`]).
    pub events: u64,
    /// Of which high or critical.
    pub high: u64,
    /// Wall time producing took.
    pub elapsed: Duration,
}

/// A producer of benchmark events to one topic. Its calls block: run them on a blocking thread.
pub struct Producer {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    /// When set, event `i` goes to partition `i % partitions` (so a receiver can check each
    /// partition's order); otherwise the key spreads them.
    partitions: Option<i32>,
}

impl Producer {
    /// A producer to `topic` on `bootstrap`. `linger_ms` 0 sends each event at once (for
    /// latency, so the producer's own batching is not measured); more batches for speed.
    pub fn new(bootstrap: &str, topic: &str, linger_ms: u32) -> Result<Producer, HarnessError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", linger_ms.to_string())
            .set("message.timeout.ms", "60000")
            .create()
            .map_err(HarnessError::kafka("cannot create the benchmark producer"))?;
        Ok(Producer {
            producer,
            topic: topic.to_string(),
            partitions: None,
        })
    }

    /// Sends event `i` to partition `i % partitions`.
    pub fn partitioned(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Produces events `first..first + count` of `shape` at `pace`.
    pub fn produce(&self, first: u64, count: u64, shape: EventShape, pace: Pace) -> Produced {
        let started = Instant::now();
        let mut payload = Vec::with_capacity(shape.bytes + 64);
        let mut key = String::new();
        let mut high = 0;
        for n in 0..count {
            if let Pace::PerSecond(rate) = pace {
                let due = started + Duration::from_secs_f64(n as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let i = first + n;
            shape.write(&mut payload, i, super::now_micros());
            key.clear();
            let _ = std::fmt::Write::write_fmt(&mut key, format_args!("{i}"));
            high += u64::from(EventShape::is_high(i));
            let mut record = BaseRecord::<str, [u8]>::to(&self.topic)
                .key(&key)
                .payload(&payload);
            if let Some(p) = self.partitions {
                record = record.partition((i % p as u64) as i32);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // The local queue is full: let the broker catch up.
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, "cannot produce a benchmark event");
                        break;
                    }
                }
            }
        }
        Produced {
            events: count,
            high,
            elapsed: started.elapsed(),
        }
    }

    /// Waits until everything produced is acknowledged.
    pub fn flush(&self) -> Result<(), HarnessError> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(HarnessError::kafka("cannot flush the benchmark producer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_their_size_and_fields() {
        let mut out = Vec::new();
        for (shape, fields) in [(EventShape::SMALL, 7), (EventShape::LARGE, 67)] {
            shape.write(&mut out, 12345, 1_700_000_000_000_000);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v.as_object().unwrap().len(), fields, "{v}");
            assert_eq!(v["produced_us"], 1_700_000_000_000_000u64);
            assert!(out.len().abs_diff(shape.bytes) <= 2, "{} bytes", out.len());
        }
    }

    #[test]
    fn half_are_high_or_critical() {
        let mut out = Vec::new();
        for i in 0..8 {
            EventShape::SMALL.write(&mut out, i, 1);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let high = matches!(v["severity"].as_str(), Some("high" | "critical"));
            assert_eq!(high, EventShape::is_high(i));
        }
    }
}
