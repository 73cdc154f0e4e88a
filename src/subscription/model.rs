//! What a subscription created through the API is, as it is kept in the subscriptions topic
//! (secrets sealed, see [`crypto`](super::crypto)), and the records beside it: a status set on
//! a rule-file subscription, and the delivery health that drives auto-disable.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::crypto::{SealError, SecretBox};
use crate::deliver::config::{AuthConfig, AuthKind, SigningConfig, TlsConfig};
use crate::deliver::{Secret, SubscriptionConfig, SubscriptionStatus};
use crate::rules::inputs::RouteSubscription;

/// The version of the records this build writes.
pub const RECORD_VERSION: u32 = 1;

/// A subscription created through the API, as stored (key: its id).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredWebhook {
    /// Record format version.
    pub version: u32,
    /// UUID.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Destination.
    pub url: String,
    /// Categories (globs allowed).
    pub event_types: Vec<String>,
    /// Severity floor.
    pub min_severity: Option<String>,
    /// Topics (names or globs); every topic when empty.
    pub topics: Vec<String>,
    /// JMESPath predicate.
    pub filter: Option<String>,
    /// Built-in template name or JMESPath expression.
    pub template: String,
    /// Static headers (not secrets: credentials belong in `authType`).
    pub headers: BTreeMap<String, String>,
    /// Accept any server certificate.
    pub skip_tls_verify: bool,
    /// Requests in flight at once (1 keeps the order of events).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How the receiver authenticates hookline.
    pub auth_type: AuthKind,
    /// Sealed user name (basic).
    pub user_name: Option<String>,
    /// Sealed password (basic).
    pub password: Option<String>,
    /// Sealed token (token types).
    pub token: Option<String>,
    /// Header name (`header`) or query parameter (`querystring`).
    pub token_name: Option<String>,
    /// Signing secrets, newest first.
    pub signing: Vec<SigningKey>,
    /// Active, paused or disabled.
    pub status: SubscriptionStatus,
    /// Why it is disabled.
    pub disable_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change through the API (status changes included).
    pub last_modified_at: DateTime<Utc>,
}

fn default_concurrency() -> usize {
    8
}

/// One signing secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    /// The sealed `whsec_` secret.
    pub secret: String,
    /// Since when it signs.
    pub created_at: DateTime<Utc>,
    /// When it stops signing (a rotated-out secret); `None` for the current one.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A status set on a rule-file subscription from outside its file (key `status:<id>`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    /// Record format version.
    pub version: u32,
    /// The subscription.
    pub id: String,
    /// Paused or disabled.
    pub status: SubscriptionStatus,
    /// Why it is disabled.
    pub disable_reason: Option<String>,
    /// When it was disabled or paused.
    pub changed_at: DateTime<Utc>,
}

/// Whether a subscription's deliveries succeed, fleet-wide (key `health:<id>`). Written only
/// when a failure streak starts or ends, so its volume does not grow with traffic.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthRecord {
    /// Record format version.
    pub version: u32,
    /// The subscription.
    pub id: String,
    /// The first failed delivery after the last success; `None` while deliveries succeed.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last success that ended a failure streak.
    pub last_success_at: Option<DateTime<Utc>>,
}

/// The key of each kind of record.
pub mod keys {
    /// A subscription created through the API.
    pub fn webhook(id: &str) -> String {
        id.to_string()
    }
    /// The status of a rule-file subscription.
    pub fn status(id: &str) -> String {
        format!("status:{id}")
    }
    /// Delivery health.
    pub fn health(id: &str) -> String {
        format!("health:{id}")
    }
}

/// Field names, as the sealing's associated data.
pub mod fields {
    /// `userName`.
    pub const USER_NAME: &str = "userName";
    /// `password`.
    pub const PASSWORD: &str = "password";
    /// `token`.
    pub const TOKEN: &str = "token";
    /// A signing secret.
    pub const SIGNING: &str = "signingToken";
}

impl StoredWebhook {
    /// Whether it has a signing secret in force at `now`.
    pub fn has_signing_token(&self, now: DateTime<Utc>) -> bool {
        self.signing.iter().any(|k| k.signs_at(now))
    }

    /// The earliest time a rotated-out secret stops signing, if any is still signing.
    pub fn next_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.signing
            .iter()
            .filter_map(|k| k.expires_at)
            .filter(|e| *e > now)
            .min()
    }

    /// What the rules compile: the record with its secrets opened (in memory only), and the
    /// signing secrets that still sign at `now`.
    pub fn to_route(
        &self,
        secrets: &SecretBox,
        now: DateTime<Utc>,
    ) -> Result<RouteSubscription, SealError> {
        let open = |field: &str, v: &Option<String>| -> Result<Option<Secret>, SealError> {
            v.as_deref()
                .map(|s| secrets.open(&self.id, field, s))
                .transpose()
        };
        let signing: Vec<Secret> = self
            .signing
            .iter()
            .filter(|k| k.signs_at(now))
            .map(|k| secrets.open(&self.id, fields::SIGNING, &k.secret))
            .collect::<Result<_, _>>()?;
        let config = SubscriptionConfig {
            id: self.id.clone(),
            url: self.url.clone(),
            template: Some(self.template.clone()),
            status: self.status,
            disable_reason: self.disable_reason.clone(),
            headers: self.headers.clone(),
            auth: AuthConfig {
                kind: self.auth_type,
                username: open(fields::USER_NAME, &self.user_name)?,
                password: open(fields::PASSWORD, &self.password)?,
                token: open(fields::TOKEN, &self.token)?,
                name: self.token_name.clone(),
            },
            signing: (!signing.is_empty()).then_some(SigningConfig { secrets: signing }),
            tls: TlsConfig {
                skip_verify: self.skip_tls_verify,
                ..TlsConfig::default()
            },
            concurrency: self.concurrency,
            ..SubscriptionConfig::minimal(&self.id, &self.url)
        };
        Ok(RouteSubscription {
            config,
            template: self.template.clone(),
            event_types: self.event_types.clone(),
            min_severity: self.min_severity.clone(),
            topics: self.topics.clone(),
            filter: self.filter.clone(),
        })
    }
}

impl SigningKey {
    /// Whether it signs at `now`.
    pub fn signs_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }
}
