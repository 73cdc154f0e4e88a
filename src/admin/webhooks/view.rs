//! Response bodies of `/api/v1/webhooks`, in the seed APIs' shape: a `data` envelope with
//! `meta` (`requestId`, `timestamp`), `status` as `Active|Paused|Disabled`, and every secret as
//! `********` (the signing secret itself only in the create and rotate answers).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::deliver::config::AuthKind;
use crate::deliver::secret::REDACTED;
use crate::deliver::{SubscriptionSettings, SubscriptionStatus};
use crate::subscription::model::{HealthRecord, StoredWebhook};

/// The seed's statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Status {
    /// Receives events.
    Active,
    /// Events wait in its backlog.
    Paused,
    /// Nothing new is routed to it; its backlog waits.
    Disabled,
}

impl From<SubscriptionStatus> for Status {
    fn from(s: SubscriptionStatus) -> Self {
        match s {
            SubscriptionStatus::Active => Status::Active,
            SubscriptionStatus::Paused => Status::Paused,
            SubscriptionStatus::Disabled => Status::Disabled,
        }
    }
}

/// The generic webhook API's authentication types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// No credentials.
    None,
    /// HTTP Basic with `userName` and `password`.
    Basic,
    /// `?<tokenName>=<token>`.
    Querystring,
    /// `Authorization: <token>`.
    Authheader,
    /// `<tokenName>: <token>`.
    Header,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

impl AuthType {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "none",
            AuthType::Basic => "basic",
            AuthType::Querystring => "querystring",
            AuthType::Authheader => "authheader",
            AuthType::Header => "header",
            AuthType::Bearer => "bearer",
        }
    }
}

impl From<AuthType> for AuthKind {
    fn from(t: AuthType) -> Self {
        match t {
            AuthType::None => AuthKind::None,
            AuthType::Basic => AuthKind::Basic,
            AuthType::Querystring => AuthKind::Querystring,
            AuthType::Authheader => AuthKind::Authheader,
            AuthType::Header => AuthKind::Header,
            AuthType::Bearer => AuthKind::Bearer,
        }
    }
}

impl From<AuthKind> for AuthType {
    fn from(k: AuthKind) -> Self {
        match k {
            AuthKind::None => AuthType::None,
            AuthKind::Basic => AuthType::Basic,
            AuthKind::Querystring => AuthType::Querystring,
            AuthKind::Authheader => AuthType::Authheader,
            AuthKind::Header => AuthType::Header,
            AuthKind::Bearer => AuthType::Bearer,
        }
    }
}

/// Where a subscription is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Created through this API.
    Api,
    /// A rule file's `subscriptions:` (read-only here; routed by the files' routes).
    File,
}

/// A subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// UUID (API) or the rule file's id.
    pub id: String,
    /// Unique name (a file subscription's is its id).
    pub name: String,
    /// Destination (a file subscription's without query string).
    pub url: String,
    /// Categories it receives (empty for a file subscription: its routes decide).
    pub event_types: Vec<String>,
    /// Severity floor.
    pub min_severity: Option<String>,
    /// Topics it is limited to.
    pub topics: Vec<String>,
    /// JMESPath predicate.
    pub filter: Option<String>,
    /// Template.
    pub template: String,
    /// Static header names; values are shown as `********`.
    pub headers: BTreeMap<String, String>,
    /// Any server certificate is accepted.
    pub skip_tls_verify: bool,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Authentication type.
    pub auth_type: AuthType,
    /// `********` when set.
    pub user_name: Option<String>,
    /// `********` when set.
    pub password: Option<String>,
    /// `********` when set.
    pub token: Option<String>,
    /// Header or query parameter name.
    pub token_name: Option<String>,
    /// Requests are signed (Standard Webhooks).
    pub has_signing_token: bool,
    /// Status.
    pub status: Status,
    /// Why it is disabled.
    pub disable_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Its deliveries have failed since then without a success (auto-disable counts from it).
    pub failing_since: Option<DateTime<Utc>>,
    /// Creation time (API subscriptions).
    pub created_at: Option<DateTime<Utc>>,
    /// Last change (API subscriptions).
    pub last_modified_at: Option<DateTime<Utc>>,
    /// `api` or `file`.
    pub source: Source,
}

fn redacted(set: bool) -> Option<String> {
    set.then(|| REDACTED.to_string())
}

fn header_names<'a>(names: impl Iterator<Item = &'a String>) -> BTreeMap<String, String> {
    names.map(|n| (n.clone(), REDACTED.to_string())).collect()
}

impl Webhook {
    /// An API subscription.
    pub fn of_api(w: &StoredWebhook, health: Option<&HealthRecord>, now: DateTime<Utc>) -> Webhook {
        Webhook {
            id: w.id.clone(),
            name: w.name.clone(),
            url: w.url.clone(),
            event_types: w.event_types.clone(),
            min_severity: w.min_severity.clone(),
            topics: w.topics.clone(),
            filter: w.filter.clone(),
            template: w.template.clone(),
            headers: header_names(w.headers.keys()),
            skip_tls_verify: w.skip_tls_verify,
            concurrency: w.concurrency,
            auth_type: w.auth_type.into(),
            user_name: redacted(w.user_name.is_some()),
            password: redacted(w.password.is_some()),
            token: redacted(w.token.is_some()),
            token_name: w.token_name.clone(),
            has_signing_token: w.has_signing_token(now),
            status: w.status.into(),
            disable_reason: w.disable_reason.clone(),
            disabled_at: w.disabled_at,
            failing_since: health.and_then(|h| h.failing_since),
            created_at: Some(w.created_at),
            last_modified_at: Some(w.last_modified_at),
            source: Source::Api,
        }
    }

    /// A rule-file subscription, as the rules in force have it.
    pub fn of_file(
        s: &SubscriptionSettings,
        health: Option<&HealthRecord>,
        disabled_at: Option<DateTime<Utc>>,
    ) -> Webhook {
        let c = &s.config;
        let mut url = s.url.clone();
        url.set_query(None);
        Webhook {
            id: s.id.to_string(),
            name: s.id.to_string(),
            url: url.to_string(),
            event_types: Vec::new(),
            min_severity: None,
            topics: Vec::new(),
            filter: None,
            template: c.template.clone().unwrap_or_else(|| "raw".into()),
            headers: header_names(c.headers.keys()),
            skip_tls_verify: c.tls.skip_verify,
            concurrency: c.concurrency,
            auth_type: c.auth.kind.into(),
            user_name: redacted(c.auth.username.is_some()),
            password: redacted(c.auth.password.is_some()),
            token: redacted(c.auth.token.is_some()),
            token_name: c.auth.name.clone(),
            has_signing_token: !s.signer.is_empty(),
            status: c.status.into(),
            disable_reason: c.disable_reason.clone(),
            disabled_at,
            failing_since: health.and_then(|h| h.failing_since),
            created_at: None,
            last_modified_at: None,
            source: Source::File,
        }
    }
}

/// `meta` of every answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The request's id.
    pub request_id: String,
    /// When the answer was made.
    pub timestamp: DateTime<Utc>,
}

/// `meta` of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// The request's id.
    pub request_id: String,
    /// When the answer was made.
    pub timestamp: DateTime<Utc>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// Subscriptions that match the filter, in all pages.
    pub total: usize,
}

/// One subscription.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookResponse {
    /// The subscription.
    pub data: Webhook,
    /// About the answer.
    pub meta: Meta,
}

/// A page of subscriptions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookList {
    /// The subscriptions, by id.
    pub data: Vec<Webhook>,
    /// About the answer.
    pub meta: ListMeta,
}

/// A created subscription, with its signing secret (shown this once).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCreated {
    /// The subscription.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The `whsec_` signing secret: the one sent, or the one generated. Shown only here.
    pub secret: String,
}

/// The answer to a create.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookCreatedResponse {
    /// The subscription and its secret.
    pub data: WebhookCreated,
    /// About the answer.
    pub meta: Meta,
}

/// A new signing secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotated {
    /// The subscription.
    pub id: String,
    /// The new `whsec_` secret, signing from now on. Shown only here.
    pub secret: String,
    /// Until when the previous secret keeps signing beside it.
    pub previous_expires_at: Option<DateTime<Utc>>,
}

/// The answer to a rotation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotatedResponse {
    /// The new secret.
    pub data: Rotated,
    /// About the answer.
    pub meta: Meta,
}

/// What a test delivery came to.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// The receiver answered 2xx.
    pub delivered: bool,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Milliseconds from sending to the answer (or the failure).
    pub latency_ms: u64,
    /// The `webhook-id` it was sent with.
    pub webhook_id: String,
    /// What went wrong, when something did.
    pub error: Option<String>,
}

/// The answer to a test.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestResponse {
    /// The outcome.
    pub data: TestResult,
    /// About the answer.
    pub meta: Meta,
}
