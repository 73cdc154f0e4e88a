//! What tests share: the source block of the `events` topic, events, fast retries, and reading
//! ids back from the receiver.

use hookline::dev::receiver::Recorded;
use serde_json::{json, Value};

/// The topic most tests read.
pub const TOPIC: &str = "events";

/// The source every rule file of the tests starts with: topic `events`, category, severity
/// and event id read from the fields of the same names. A macro, so rule files that are
/// constants can start with it: `concat!(events_source!(), r#"subscriptions: ..."#)`.
#[macro_export]
macro_rules! events_source {
    () => {
        "
sources:
  - id: test
    topics: [events]
    category: category
    severity: severity
    event_id: id
"
    };
}

/// [`events_source!`] as a constant.
pub const EVENTS_SOURCE: &str = events_source!();

/// A rule file: [`EVENTS_SOURCE`] followed by `rest` (subscriptions and routes; `{receiver}`
/// stands for the receiver's URL).
pub fn rules(rest: &str) -> String {
    format!("{EVENTS_SOURCE}{rest}")
}

/// An event with `id`, `category` and severity `high`.
pub fn event(id: &str, category: &str) -> Value {
    json!({"id": id, "category": category, "severity": "high"})
}

/// Fast in-memory retries (for a subscription's `retry`), so tests finish quickly.
pub fn fast_retry(attempts: u32) -> Value {
    json!({"attempts": attempts, "initial_backoff": "10ms", "max_backoff": "50ms", "max_retry_after": "5s"})
}

/// The `id` field of each recorded request's body, in arrival order.
pub fn ids(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect()
}
