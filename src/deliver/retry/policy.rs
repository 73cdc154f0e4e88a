//! Which outcomes are worth another attempt. Kept apart from how long to wait
//! ([`super::backoff`]) and used by the circuit breaker too, so "the receiver is failing"
//! means the same thing in both places.

use std::time::Duration;

use reqwest::StatusCode;

use crate::deliver::client;
use crate::deliver::request::Response;

/// What one attempt's outcome means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 2xx: delivered.
    Delivered,
    /// Worth retrying: connection errors, timeouts, 408, 429, 5xx except 501 and 505.
    /// These also count as failures for the circuit breaker.
    Transient {
        /// The receiver's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Never retried: other statuses (most 4xx, 3xx since redirects are not followed, 501,
    /// 505) and destinations refused by policy. The receiver is alive and said no.
    Permanent,
}

/// Classifies an HTTP status.
pub fn classify_status(status: StatusCode, retry_after: Option<Duration>) -> Class {
    match status.as_u16() {
        200..=299 => Class::Delivered,
        408 | 429 => Class::Transient { retry_after },
        501 | 505 => Class::Permanent,
        500..=599 => Class::Transient { retry_after },
        _ => Class::Permanent,
    }
}

/// Classifies one attempt's result as it comes out of the per-attempt timeout.
pub fn classify(result: &Result<Response, tower::BoxError>) -> Class {
    match result {
        Ok(response) => classify_status(response.status, response.retry_after),
        Err(e) => match e.downcast_ref::<client::Error>() {
            Some(client::Error::Refused(_)) => Class::Permanent,
            // Timeouts, connection errors and anything unknown: the receiver may recover.
            _ => Class::Transient { retry_after: None },
        },
    }
}

/// The `class` label of `hookline_delivery_attempts_total` for one attempt's result.
pub fn attempt_label(result: &Result<Response, tower::BoxError>) -> &'static str {
    match result {
        Ok(r) => match r.status.as_u16() / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
        Err(e) if e.is::<tower::timeout::error::Elapsed>() => "timeout",
        Err(e) => match e.downcast_ref::<client::Error>() {
            Some(client::Error::Refused(_)) => "refused",
            Some(client::Error::Connect(_)) => "connect",
            _ => "error",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Class {
        classify_status(StatusCode::from_u16(code).unwrap(), None)
    }

    #[test]
    fn statuses() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(status(code), Class::Delivered, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504, 507, 599] {
            assert!(matches!(status(code), Class::Transient { .. }), "{code}");
        }
        for code in [
            301, 302, 304, 400, 401, 403, 404, 405, 409, 410, 413, 422, 451, 501, 505,
        ] {
            assert_eq!(status(code), Class::Permanent, "{code}");
        }
        let ra = Some(Duration::from_secs(3));
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, ra),
            Class::Transient { retry_after: ra }
        );
    }

    #[test]
    fn errors() {
        let timeout: tower::BoxError = Box::new(tower::timeout::error::Elapsed::new());
        let r = Err(timeout);
        assert_eq!(classify(&r), Class::Transient { retry_after: None });
        assert_eq!(attempt_label(&r), "timeout");
        let refused: tower::BoxError =
            Box::new(client::Error::Refused(crate::deliver::ssrf::Refused {
                host: "h".into(),
                addr: "10.0.0.1".parse().unwrap(),
                kind: "private",
            }));
        let r = Err(refused);
        assert_eq!(classify(&r), Class::Permanent);
        assert_eq!(attempt_label(&r), "refused");
    }
}
