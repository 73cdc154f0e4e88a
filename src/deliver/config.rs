//! What users write for a subscription (`SubscriptionConfig`, the `subscriptions:` entries of
//! rule files) and what the delivery stack runs on (`SubscriptionSettings`), validated once at
//! load time so a bad subscription is reported with its file and line, never at send time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::auth::AuthSettings;
use super::secret::Secret;
use super::signing::Signer;
use super::tls::TlsSettings;

/// A subscription as written in a rule file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Unique id across all rule files.
    pub id: String,
    /// Destination URL (http or https). Never taken from event data.
    pub url: String,
    /// Name of the template that renders the body; `raw` when absent.
    #[serde(default)]
    pub template: Option<String>,
    /// Active, paused (events wait) or disabled (events are dropped by rule).
    #[serde(default)]
    pub status: SubscriptionStatus,
    /// Why the subscription is disabled, when it is.
    #[serde(default)]
    pub disable_reason: Option<String>,
    /// Static headers added to every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Receiver authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Standard Webhooks signing.
    #[serde(default)]
    pub signing: Option<SigningConfig>,
    /// TLS options.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Per-attempt timeout.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Requests in flight at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Bound of the in-memory queue.
    #[serde(default = "defaults::queue")]
    pub queue: usize,
    /// Token-bucket rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// In-memory retry policy.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Batching: several events in one request, as a JSON array.
    #[serde(default)]
    pub batch: Option<BatchConfig>,
}

/// The seeds' subscription states.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Receives events.
    #[default]
    Active,
    /// Matches, but deliveries wait until it is active again.
    Paused,
    /// Matches nothing; events for it are dropped by rule.
    Disabled,
}

/// Receiver authentication, with the generic webhook API's types.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// none | basic | bearer | header | authheader | querystring
    #[serde(default, rename = "type")]
    pub kind: AuthKind,
    /// For basic.
    #[serde(default, alias = "userName")]
    pub username: Option<Secret>,
    /// For basic.
    #[serde(default)]
    pub password: Option<Secret>,
    /// For the token types.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Header name (`header`) or query parameter name (`querystring`).
    #[serde(default)]
    pub name: Option<String>,
}

/// Authentication types.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// No credentials.
    #[default]
    None,
    /// HTTP Basic.
    Basic,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A custom header `<name>: <token>`.
    Header,
    /// A raw `Authorization: <token>` value.
    Authheader,
    /// `?<name>=<token>` on the URL.
    Querystring,
}

/// Standard Webhooks signing secrets (`whsec_` + base64). Several at once during rotation.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// Secrets; each produces one `v1,` signature.
    pub secrets: Vec<Secret>,
}

/// TLS options.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Do not verify the server certificate (Netography's "Skip SSL Verification").
    #[serde(default)]
    pub skip_verify: bool,
    /// Extra CA certificate (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM, PKCS#8).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// Token bucket.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Bucket size; `per_second` rounded up when absent.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimitConfig {
    /// `burst`, or `per_second` rounded up (at least 1).
    pub fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| self.per_second.ceil().clamp(1.0, u32::MAX as f64) as u32)
    }
}

/// In-memory retries.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    #[serde(default = "defaults::attempts")]
    pub attempts: u32,
    /// First backoff ceiling (full jitter below it).
    #[serde(default = "defaults::initial_backoff", with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Largest backoff.
    #[serde(default = "defaults::max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured.
    #[serde(default = "defaults::max_retry_after", with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: defaults::attempts(),
            initial_backoff: defaults::initial_backoff(),
            max_backoff: defaults::max_backoff(),
            max_retry_after: defaults::max_retry_after(),
        }
    }
}

/// Circuit breaker thresholds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Off when false.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Opens when this share of requests in the window failed...
    #[serde(default = "defaults::failure_ratio")]
    pub failure_ratio: f64,
    /// ...over at least this many requests...
    #[serde(default = "defaults::min_requests")]
    pub min_requests: u32,
    /// ...within this window.
    #[serde(default = "defaults::window", with = "humantime_serde")]
    pub window: Duration,
    /// Or after this many failures in a row.
    #[serde(default = "defaults::consecutive_failures")]
    pub consecutive_failures: u32,
    /// How long it stays open before a half-open probe.
    #[serde(default = "defaults::open_for", with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failure_ratio: defaults::failure_ratio(),
            min_requests: defaults::min_requests(),
            window: defaults::window(),
            consecutive_failures: defaults::consecutive_failures(),
            open_for: defaults::open_for(),
        }
    }
}

/// Batching thresholds: a batch is sent when any is reached.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Events per request.
    pub max_events: usize,
    /// Body bytes per request.
    #[serde(default = "defaults::batch_bytes")]
    pub max_bytes: usize,
    /// Longest an event waits for its batch to fill.
    #[serde(default = "defaults::batch_wait", with = "humantime_serde")]
    pub max_wait: Duration,
}

mod defaults {
    use std::time::Duration;
    pub fn timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn concurrency() -> usize {
        8
    }
    pub fn queue() -> usize {
        1024
    }
    pub fn attempts() -> u32 {
        4
    }
    pub fn initial_backoff() -> Duration {
        Duration::from_millis(200)
    }
    pub fn max_backoff() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_retry_after() -> Duration {
        Duration::from_secs(60)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn failure_ratio() -> f64 {
        0.5
    }
    pub fn min_requests() -> u32 {
        20
    }
    pub fn window() -> Duration {
        Duration::from_secs(30)
    }
    pub fn consecutive_failures() -> u32 {
        10
    }
    pub fn open_for() -> Duration {
        Duration::from_secs(15)
    }
    pub fn batch_bytes() -> usize {
        1024 * 1024
    }
    pub fn batch_wait() -> Duration {
        Duration::from_secs(1)
    }
}

/// A subscription validated and ready to build a delivery stack from.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionSettings {
    /// Unique id.
    pub id: std::sync::Arc<str>,
    /// Parsed destination.
    pub url: reqwest::Url,
    /// Credentials, prepared.
    pub auth: AuthSettings,
    /// Decoded signing keys (empty: requests carry id and timestamp but no signature).
    pub signer: Signer,
    /// TLS material, loaded.
    pub tls: TlsSettings,
    /// The static `headers`, parsed.
    pub headers: reqwest::header::HeaderMap,
    /// The validated configuration it came from.
    pub config: SubscriptionConfig,
}

/// Why a subscription is invalid; the rules loader adds file and line.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("subscription {id:?}: {field}: {reason}")]
pub struct InvalidSubscription {
    /// The subscription id.
    pub id: String,
    /// The offending field (`url`, `auth.token`, ...).
    pub field: &'static str,
    /// What is wrong (never a secret's value).
    pub reason: String,
}

/// Headers hookline sets itself; a subscription may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

fn positive(d: Duration) -> Result<(), String> {
    if d.is_zero() {
        Err("must be greater than zero".into())
    } else {
        Ok(())
    }
}

impl SubscriptionConfig {
    /// A subscription of `id` to `url` with every other field at its default.
    pub fn minimal(id: &str, url: &str) -> SubscriptionConfig {
        SubscriptionConfig {
            id: id.into(),
            url: url.into(),
            template: None,
            status: SubscriptionStatus::Active,
            disable_reason: None,
            headers: BTreeMap::new(),
            auth: AuthConfig::default(),
            signing: None,
            tls: TlsConfig::default(),
            timeout: defaults::timeout(),
            concurrency: defaults::concurrency(),
            queue: defaults::queue(),
            rate_limit: None,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            batch: None,
        }
    }

    /// Validates into settings. Checks only what needs no network (DNS is checked at connect);
    /// reads the TLS files it names.
    pub fn validate(self) -> Result<SubscriptionSettings, InvalidSubscription> {
        let bad = |field: &'static str, reason: String| InvalidSubscription {
            id: self.id.clone(),
            field,
            reason,
        };
        if self.id.trim().is_empty() {
            return Err(bad("id", "must not be empty".into()));
        }
        let url = reqwest::Url::parse(&self.url).map_err(|e| bad("url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(
                "url",
                format!("scheme {:?} is not http or https", url.scheme()),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Credentials in a URL end up in logs; `auth` keeps them out.
            return Err(bad(
                "url",
                "must not contain credentials; use auth (type basic)".into(),
            ));
        }
        let auth = AuthSettings::from_config(&self.auth).map_err(|e| bad(e.field, e.reason))?;
        let signer = match &self.signing {
            Some(signing) => Signer::from_secrets(&signing.secrets)
                .map_err(|e| bad("signing.secrets", e.to_string()))?,
            None => Signer::default(),
        };
        let tls =
            TlsSettings::load(&self.tls).map_err(|e| bad(e.field(), super::client::chain(&e)))?;
        let headers = self.parse_headers(&auth).map_err(|r| bad("headers", r))?;
        positive(self.timeout).map_err(|r| bad("timeout", r))?;
        if self.concurrency == 0 {
            return Err(bad("concurrency", "must be at least 1".into()));
        }
        if self.queue == 0 {
            return Err(bad("queue", "must be at least 1".into()));
        }
        if let Some(rl) = &self.rate_limit {
            if !(rl.per_second.is_finite() && rl.per_second > 0.0) {
                return Err(bad(
                    "rate_limit.per_second",
                    "must be a number greater than zero".into(),
                ));
            }
            if rl.burst == Some(0) {
                return Err(bad("rate_limit.burst", "must be at least 1".into()));
            }
        }
        let retry = &self.retry;
        if retry.attempts == 0 {
            return Err(bad("retry.attempts", "must be at least 1".into()));
        }
        positive(retry.initial_backoff).map_err(|r| bad("retry.initial_backoff", r))?;
        if retry.max_backoff < retry.initial_backoff {
            return Err(bad(
                "retry.max_backoff",
                "must not be less than initial_backoff".into(),
            ));
        }
        let breaker = &self.breaker;
        if !(breaker.failure_ratio > 0.0 && breaker.failure_ratio <= 1.0) {
            return Err(bad(
                "breaker.failure_ratio",
                format!("{} is not in (0, 1]", breaker.failure_ratio),
            ));
        }
        if breaker.min_requests == 0 {
            return Err(bad("breaker.min_requests", "must be at least 1".into()));
        }
        if breaker.consecutive_failures == 0 {
            return Err(bad(
                "breaker.consecutive_failures",
                "must be at least 1".into(),
            ));
        }
        positive(breaker.window).map_err(|r| bad("breaker.window", r))?;
        positive(breaker.open_for).map_err(|r| bad("breaker.open_for", r))?;
        if let Some(batch) = &self.batch {
            if batch.max_events == 0 {
                return Err(bad("batch.max_events", "must be at least 1".into()));
            }
            if batch.max_bytes < 2 {
                return Err(bad("batch.max_bytes", "must be at least 2".into()));
            }
        }
        Ok(SubscriptionSettings {
            id: self.id.as_str().into(),
            url,
            auth,
            signer,
            tls,
            headers,
            config: self,
        })
    }

    fn parse_headers(&self, auth: &AuthSettings) -> Result<reqwest::header::HeaderMap, String> {
        use reqwest::header::{HeaderName, HeaderValue};
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a valid header name"))?;
            if RESERVED_HEADERS.contains(&parsed.as_str()) {
                return Err(format!(
                    "{name:?} is set by hookline and cannot be overridden"
                ));
            }
            if let AuthSettings::Header {
                name: auth_name, ..
            } = auth
            {
                if *auth_name == parsed {
                    return Err(format!("{name:?} is already set by auth"));
                }
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of {name:?} is not a valid header value"))?;
            map.insert(parsed, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(extra: serde_json::Value) -> Result<SubscriptionSettings, InvalidSubscription> {
        let mut v = serde_json::json!({"id": "s", "url": "https://example.com/hook"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<SubscriptionConfig>(v)
            .expect("parses")
            .validate()
    }

    fn field(extra: serde_json::Value) -> &'static str {
        validate(extra).unwrap_err().field
    }

    #[test]
    fn defaults_are_sensible() {
        let s = validate(serde_json::json!({})).unwrap();
        let c = &s.config;
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!((c.concurrency, c.queue, c.retry.attempts), (8, 1024, 4));
        assert!(c.breaker.enabled && !c.tls.skip_verify);
        assert!(c.rate_limit.is_none() && c.batch.is_none());
        assert_eq!(s.auth, AuthSettings::None);
        assert!(s.signer.is_empty());
    }

    #[test]
    fn each_rule_names_its_field() {
        use serde_json::json;
        assert_eq!(field(json!({"url": "ftp://x/"})), "url");
        assert_eq!(field(json!({"url": "https://u:p@x/"})), "url");
        assert_eq!(
            field(json!({"auth": {"type": "basic", "username": "u"}})),
            "auth.password"
        );
        assert_eq!(
            field(json!({"auth": {"type": "none", "token": "t"}})),
            "auth.token"
        );
        assert_eq!(
            field(json!({"signing": {"secrets": ["whsec_???"]}})),
            "signing.secrets"
        );
        assert_eq!(
            field(json!({"signing": {"secrets": []}})),
            "signing.secrets"
        );
        assert_eq!(
            field(json!({"tls": {"ca_file": "/nonexistent/ca.pem"}})),
            "tls"
        );
        assert_eq!(field(json!({"headers": {"bad header": "x"}})), "headers");
        assert_eq!(
            field(json!({"headers": {"Webhook-Signature": "x"}})),
            "headers"
        );
        assert_eq!(
            field(
                json!({"auth": {"type": "bearer", "token": "t"}, "headers": {"Authorization": "x"}})
            ),
            "headers"
        );
        assert_eq!(field(json!({"timeout": "0s"})), "timeout");
        assert_eq!(field(json!({"concurrency": 0})), "concurrency");
        assert_eq!(
            field(json!({"rate_limit": {"per_second": 0.0}})),
            "rate_limit.per_second"
        );
        assert_eq!(
            field(json!({"rate_limit": {"per_second": 5.0, "burst": 0}})),
            "rate_limit.burst"
        );
        assert_eq!(
            field(json!({"retry": {"initial_backoff": "5s", "max_backoff": "1s"}})),
            "retry.max_backoff"
        );
        assert_eq!(
            field(json!({"breaker": {"failure_ratio": 1.5}})),
            "breaker.failure_ratio"
        );
        assert_eq!(
            field(json!({"breaker": {"min_requests": 0}})),
            "breaker.min_requests"
        );
        assert_eq!(
            field(json!({"batch": {"max_events": 0}})),
            "batch.max_events"
        );
    }

    #[test]
    fn unknown_fields_are_rejected_and_secrets_never_print() {
        let unknown = serde_json::from_value::<SubscriptionConfig>(
            serde_json::json!({"id": "s", "url": "https://x/", "retries": 3}),
        );
        assert!(unknown.unwrap_err().to_string().contains("retries"));
        let s = validate(serde_json::json!({
            "auth": {"type": "basic", "username": "alice", "password": "hunter2"},
            "signing": {"secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
        }))
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("MfKQ9r8"),
            "{shown}"
        );
        let e = validate(serde_json::json!({"auth": {"type": "bearer", "token": "bad\ntoken"}}))
            .unwrap_err();
        assert!(!e.to_string().contains("bad\ntoken"));
        assert_eq!(
            RateLimitConfig {
                per_second: 2.5,
                burst: None
            }
            .burst(),
            3
        );
    }
}
