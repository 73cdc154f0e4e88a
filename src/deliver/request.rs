//! What flows through a subscription's stack: one [`Delivery`] in (a single event or a batch),
//! one [`Response`] out.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::secret::Secret;

/// One HTTP request to make, retried as a unit. Cheap to clone: retries clone the request as
/// it was before the per-attempt layers (auth, signing) added their headers.
#[derive(Clone)]
pub struct Delivery {
    /// `webhook-id`: stable for the event (or batch) across retries and redeliveries.
    pub webhook_id: Arc<str>,
    /// The JSON body.
    pub body: Bytes,
    /// Headers added by the per-attempt layers.
    pub headers: HeaderMap,
    /// Query parameters added by the per-attempt layers (query-string auth).
    pub query: Vec<(String, Secret)>,
    /// Attempts made so far, shared by every clone, so whoever submitted the delivery learns
    /// the count whatever the outcome (a timeout error carries no count of its own).
    attempts: Arc<AtomicU32>,
    /// Whether it carries an event read from a source topic or a retry tier, whose offset
    /// waits for it (events read from a subscription's backlog hold up nobody else).
    pub holds_source: bool,
}

impl Delivery {
    /// A delivery of `body` under `webhook_id`, not yet attempted.
    pub fn new(webhook_id: impl Into<Arc<str>>, body: impl Into<Bytes>) -> Self {
        Delivery {
            webhook_id: webhook_id.into(),
            body: body.into(),
            headers: HeaderMap::new(),
            query: Vec::new(),
            attempts: Arc::new(AtomicU32::new(0)),
            holds_source: false,
        }
    }

    /// Attempts made so far (all clones share the count).
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Acquire)
    }

    /// Counts one more finished attempt and returns the new count.
    pub(crate) fn count_attempt(&self) -> u32 {
        self.attempts.fetch_add(1, Ordering::AcqRel) + 1
    }
}

impl fmt::Debug for Delivery {
    // Headers may hold credentials and the body may be large: show neither.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("webhook_id", &self.webhook_id)
            .field("body_bytes", &self.body.len())
            .field("attempts", &self.attempts())
            .finish_non_exhaustive()
    }
}

/// What the receiver answered (any status; classification happens in the retry policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// The receiver's `Retry-After`, as a delay from when the answer arrived.
    pub retry_after: Option<Duration>,
}

impl Response {
    /// A response with `status` and no `Retry-After`.
    pub fn status(status: u16) -> Self {
        Response {
            status: StatusCode::from_u16(status).expect("valid status"),
            retry_after: None,
        }
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(date.timestamp().max(0) as u64);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn clones_share_the_attempt_count() {
        let d = Delivery::new("msg_1", "{}");
        let c = d.clone();
        c.count_attempt();
        assert_eq!(c.count_attempt(), 2);
        assert_eq!(d.attempts(), 2);
    }
}
