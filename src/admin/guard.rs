//! Who may use the admin API, and how much: bearer tokens (a write token for everything, a
//! read-only token for `GET`), compared in constant time, and a rate limit answered with 429
//! and `Retry-After`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::{ApiError, RequestId};
use crate::config::AdminSettings;
use crate::metrics::Metrics;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading: the read or the write token.
    Read,
    /// Changing: the write token.
    Write,
}

/// The tokens, as digests (so comparing takes the same time whatever the lengths).
pub struct Access {
    write: Option<[u8; 32]>,
    read: Option<[u8; 32]>,
    metrics: Metrics,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Access {
    /// From the admin settings.
    pub fn new(settings: &AdminSettings, metrics: Metrics) -> Access {
        Access {
            write: settings.write_token.as_ref().map(|t| digest(t.expose())),
            read: settings.read_token.as_ref().map(|t| digest(t.expose())),
            metrics,
        }
    }

    /// Whether any token is configured (else everything is open).
    pub fn enabled(&self) -> bool {
        self.write.is_some()
    }

    /// Whether `authorization` (the header's value: `Bearer <token>`) allows `need`.
    pub fn check(&self, authorization: Option<&str>, need: Need) -> Result<(), ApiError> {
        let presented = authorization.and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
        self.check_token(presented.as_deref(), need)
    }

    /// [`Access::check`] that also takes HTTP Basic with the token as the password (any user
    /// name), which a browser asks for by itself: the playground page.
    pub fn check_browser(&self, authorization: Option<&str>, need: Need) -> Result<(), ApiError> {
        let basic = authorization.and_then(|v| {
            let (scheme, encoded) = v.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return None;
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            Some(text.split_once(':')?.1.to_string())
        });
        match basic {
            Some(token) => self.check_token(Some(&token), need),
            None => self.check(authorization, need),
        }
    }

    fn check_token(&self, token: Option<&str>, need: Need) -> Result<(), ApiError> {
        let Some(write) = &self.write else {
            return Ok(());
        };
        let presented = token.map(digest);
        let Some(presented) = presented else {
            self.metrics
                .admin_rejected
                .with_label_values(&["unauthorized"])
                .inc();
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin bearer token is required (Authorization: Bearer <token>)",
            ));
        };
        // Both compared, always, in constant time.
        let is_write: bool = presented.ct_eq(write).into();
        let is_read: bool = self
            .read
            .map(|r| bool::from(presented.ct_eq(&r)))
            .unwrap_or(false);
        match (is_write, is_read, need) {
            (true, _, _) | (_, true, Need::Read) => Ok(()),
            (false, true, Need::Write) => {
                self.metrics
                    .admin_rejected
                    .with_label_values(&["forbidden"])
                    .inc();
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the read-only token cannot make changes",
                ))
            }
            _ => {
                self.metrics
                    .admin_rejected
                    .with_label_values(&["unauthorized"])
                    .inc();
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the bearer token is not valid",
                ))
            }
        }
    }
}

/// Reading methods need the read token; every other the write token.
pub fn need_of(method: &Method) -> Need {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Need::Read
    } else {
        Need::Write
    }
}

fn reject(req: &Request, e: ApiError) -> Response {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    e.respond(req.uri().path(), &id)
}

/// The request's `Authorization` header, if it has a readable one.
fn authorization(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Middleware: the request needs a token for its method.
pub async fn require_token(
    State(access): State<Arc<Access>>,
    req: Request,
    next: Next,
) -> Response {
    let authorization = authorization(&req);
    match access.check(authorization, need_of(req.method())) {
        Ok(()) => next.run(req).await,
        Err(e) => reject(&req, e),
    }
}

/// Middleware: the request needs the read (or write) token whatever its method (`/metrics`
/// and the probes, when protected; the playground).
pub async fn require_read_token(
    State(access): State<Arc<Access>>,
    req: Request,
    next: Next,
) -> Response {
    let authorization = authorization(&req);
    match access.check(authorization, Need::Read) {
        Ok(()) => next.run(req).await,
        Err(e) => reject(&req, e),
    }
}

/// Middleware: the read (or write) token whatever the method, as a bearer token or as the
/// password of HTTP Basic; without one, 401 asks the browser for it (`WWW-Authenticate:
/// Basic`). For pages a person opens in a browser (the playground).
pub async fn require_read_token_browser(
    State(access): State<Arc<Access>>,
    req: Request,
    next: Next,
) -> Response {
    let authorization = authorization(&req);
    match access.check_browser(authorization, Need::Read) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let mut response = reject(&req, e);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(
                    "Basic realm=\"hookline admin: the read token as password\", charset=\"UTF-8\"",
                ),
            );
            response
        }
    }
}

/// The admin rate limit, for all clients together.
pub struct Limit {
    limiter: DefaultDirectRateLimiter,
    metrics: Metrics,
}

impl Limit {
    /// `per_second` sustained (fractions allowed), `burst` at once.
    pub fn new(per_second: f64, burst: u32, metrics: Metrics) -> Limit {
        let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
        let quota = Quota::with_period(period)
            .expect("a positive period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("at least 1"));
        Limit {
            limiter: RateLimiter::direct(quota),
            metrics,
        }
    }
}

/// Middleware: 429 with `Retry-After` past the limit.
pub async fn rate_limit(State(limit): State<Arc<Limit>>, req: Request, next: Next) -> Response {
    match limit.limiter.check() {
        Ok(()) => next.run(req).await,
        Err(not_until) => {
            limit
                .metrics
                .admin_rejected
                .with_label_values(&["rate_limited"])
                .inc();
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "too many admin requests; try again after Retry-After seconds",
            );
            e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
            reject(&req, e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::Secret;

    fn access() -> Access {
        let settings = crate::config::AdminConfig {
            write_token: Some("w".repeat(20)),
            read_token: Some("r".repeat(20)),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(settings.write_token, Some(Secret::new("w".repeat(20))));
        Access::new(&settings, Metrics::new())
    }

    #[test]
    fn tokens_open_what_they_should() {
        let a = access();
        let w = format!("Bearer {}", "w".repeat(20));
        let r = format!("bearer {}", "r".repeat(20));
        assert!(a.check(Some(&w), Need::Write).is_ok());
        assert!(a.check(Some(&w), Need::Read).is_ok());
        assert!(a.check(Some(&r), Need::Read).is_ok());
        assert_eq!(a.check(Some(&r), Need::Write).unwrap_err().status, 403);
        assert_eq!(a.check(None, Need::Read).unwrap_err().status, 401);
        assert_eq!(
            a.check(Some("Bearer nope"), Need::Read).unwrap_err().status,
            401
        );
        assert_eq!(
            a.check(Some(&"w".repeat(20)), Need::Read)
                .unwrap_err()
                .status,
            401
        );
        let basic = |t: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("anyone:{t}"))
            )
        };
        assert!(a
            .check_browser(Some(&basic(&"r".repeat(20))), Need::Read)
            .is_ok());
        assert!(a.check_browser(Some(&r), Need::Read).is_ok());
        assert_eq!(
            a.check_browser(Some(&basic("nope")), Need::Read)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            a.check(Some(&basic(&"w".repeat(20))), Need::Read)
                .unwrap_err()
                .status,
            401
        );
        let open = Access::new(
            &crate::config::AdminConfig::default().validate().unwrap(),
            Metrics::new(),
        );
        assert!(open.check(None, Need::Write).is_ok());
    }
}
