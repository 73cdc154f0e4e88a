//! The unit that flows through the data path.
//!
//! A Kafka message becomes one or more [`Event`]s (a JSON array is split per element). Every
//! event keeps its [`Origin`], which is what offsets, idempotency ids and dead-letter headers
//! are derived from.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

mod payload;

pub use payload::{Payload, Wanted};

/// Where an event came from. Stable across redeliveries of the same Kafka message, so ids
/// derived from it (the `webhook-id`) stay the same after a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Source topic.
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Offset of the Kafka message.
    pub offset: i64,
    /// Position of the event inside the message (0 for a message holding one JSON object).
    pub index: u32,
}

impl Origin {
    /// `topic/partition/offset/index`: the stable key of one event.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.topic, self.partition, self.offset, self.index
        )
    }
}

/// One security event as read from Kafka, before classification.
#[derive(Clone, Debug)]
pub struct Event {
    /// Where it came from.
    pub origin: Origin,
    /// The event JSON (one element of an array message, or the whole object).
    pub payload: Arc<Payload>,
    /// When hookline read it.
    pub received_at: DateTime<Utc>,
    /// The Kafka message timestamp, when the broker set one (milliseconds since the epoch).
    pub kafka_timestamp_ms: Option<i64>,
}

impl Event {
    /// An event received now, for tests and the dry-run CLI.
    pub fn new(origin: Origin, payload: Value) -> Self {
        Event {
            origin,
            payload: Arc::new(Payload::from_value(payload)),
            received_at: Utc::now(),
            kafka_timestamp_ms: None,
        }
    }
}

/// The stable delivery id of the event at `origin` for `subscription`: the same on every retry
/// and after a crash and redelivery (it depends only on where the event sits in Kafka), so a
/// receiver can dedupe on the `webhook-id` header.
pub fn webhook_id(origin: &Origin, subscription: &str) -> String {
    use sha2::{Digest, Sha256};
    // The hash of `origin.key()`, NUL, `subscription`, fed piece by piece: it runs once per
    // delivery, and formatting the key into a string first cost more than the hash.
    let mut n = itoa::Buffer::new();
    let digest = Sha256::new()
        .chain_update(origin.topic.as_bytes())
        .chain_update(b"/")
        .chain_update(n.format(origin.partition))
        .chain_update(b"/")
        .chain_update(n.format(origin.offset))
        .chain_update(b"/")
        .chain_update(n.format(origin.index))
        .chain_update([0u8])
        .chain_update(subscription)
        .finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    id.push_str("msg_");
    for byte in &digest[..16] {
        id.push(HEX[usize::from(byte >> 4)] as char);
        id.push(HEX[usize::from(byte & 15)] as char);
    }
    id
}

/// Whether `id` has the shape of a delivery id hookline makes (`msg_` and up to 124 letters,
/// digits or `_`). Ids read back from Kafka (backlog and retry records, dead-letter headers)
/// are checked with it: they end up in HTTP and Kafka headers, so a control character or a
/// newline must never get through.
pub fn is_webhook_id(id: &str) -> bool {
    id.starts_with("msg_")
        && id.len() > 4
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(offset: i64) -> Origin {
        Origin {
            topic: "t".into(),
            partition: 1,
            offset,
            index: 0,
        }
    }

    #[test]
    fn webhook_id_is_stable_and_distinct() {
        assert_eq!(webhook_id(&origin(5), "a"), webhook_id(&origin(5), "a"));
        assert_ne!(webhook_id(&origin(5), "a"), webhook_id(&origin(5), "b"));
        assert_ne!(webhook_id(&origin(5), "a"), webhook_id(&origin(6), "a"));
        assert!(webhook_id(&origin(5), "a").starts_with("msg_"));
        assert!(is_webhook_id(&webhook_id(&origin(5), "a")));
        // Ids never change across versions: a receiver dedupes on them after an upgrade.
        // (sha256 of "t/1/5/0\0a", its first 16 bytes in hex.)
        assert_eq!(
            webhook_id(&origin(5), "a"),
            "msg_cf8e4c50e0dcf0e2402bd4e542980611"
        );
    }

    #[test]
    fn only_hookline_shaped_ids_are_accepted() {
        assert!(is_webhook_id("msg_batch_0123abc"));
        for bad in [
            "",
            "msg_",
            "id_1",
            "msg_\r\nX: 1",
            "msg_é",
            &format!("msg_{}", "a".repeat(125)),
        ] {
            assert!(!is_webhook_id(bad), "{bad:?}");
        }
    }
}
