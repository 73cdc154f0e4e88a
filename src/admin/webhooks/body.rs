//! Request bodies of `/api/v1/webhooks`: read field by field (so every problem is reported at
//! once), merged with what is stored (`PUT` and `PATCH` keep secrets that are not sent again),
//! and checked with the seed API's `authType` rules and the rule compiler.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::view::AuthType;
use crate::deliver::config::{AuthConfig, AuthKind, SigningConfig, TlsConfig};
use crate::deliver::signing::Signer;
use crate::deliver::{Secret, SubscriptionConfig};
use crate::rules::compile::api;
use crate::rules::inputs::RouteSubscription;

/// Field errors, by field.
pub type Errors = BTreeMap<String, Vec<String>>;

fn push(errors: &mut Errors, field: &str, message: impl Into<String>) {
    errors
        .entry(field.to_string())
        .or_default()
        .push(message.into());
}

/// A subscription as a client describes it (`POST` and `PUT`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // the schema of the body; it is read field by field (see `Draft`)
pub struct WebhookInput {
    /// Unique name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Where events are POSTed: `http` or `https`, no credentials in it.
    pub url: String,
    /// Categories it receives; globs allowed; `["*"]` (the default) for every one.
    pub event_types: Option<Vec<String>>,
    /// The lowest severity it receives: `info`, `low`, `medium`, `high`, `critical`.
    pub min_severity: Option<String>,
    /// Only events read from these topics (names or globs); every topic when absent.
    pub topics: Option<Vec<String>>,
    /// A JMESPath predicate over `{event, hookline}`; it receives the events for which it is
    /// truthy.
    pub filter: Option<String>,
    /// A built-in template (`raw`, `pagerduty`, `slack`, `teams`, ...) or a JMESPath
    /// expression; `raw` when absent.
    pub template: Option<String>,
    /// Static headers sent with every request (not for credentials: use `authType`).
    pub headers: Option<BTreeMap<String, String>>,
    /// Accept any server certificate.
    pub skip_tls_verify: Option<bool>,
    /// Requests in flight at once, 1 to 256 (default 8); 1 delivers in the order of the
    /// source partition.
    #[schema(minimum = 1, maximum = 256)]
    pub concurrency: Option<u32>,
    /// How the receiver authenticates hookline.
    pub auth_type: AuthType,
    /// Required when `authType` is `basic`; not allowed otherwise.
    pub user_name: Option<String>,
    /// Required when `authType` is `basic`; not allowed otherwise.
    pub password: Option<String>,
    /// Required when `authType` is `querystring`, `authheader`, `header` or `bearer`; not
    /// allowed otherwise.
    pub token: Option<String>,
    /// The header name (`header`, required) or query parameter (`querystring`, default
    /// `token`).
    pub token_name: Option<String>,
    /// A Standard Webhooks secret (`whsec_` + base64 of at least 16 bytes); a new one is
    /// generated when absent, and returned once.
    pub signing_token: Option<String>,
}

/// A partial change (`PATCH`, JSON merge patch): only the fields sent change; `null` clears
/// an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // the schema of the body; it is read field by field (see `Draft`)
pub struct WebhookPatch {
    /// Unique name.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Destination.
    pub url: Option<String>,
    /// Categories (globs).
    pub event_types: Option<Vec<String>>,
    /// Severity floor.
    pub min_severity: Option<String>,
    /// Topics.
    pub topics: Option<Vec<String>>,
    /// JMESPath predicate.
    pub filter: Option<String>,
    /// Template.
    pub template: Option<String>,
    /// Static headers (replaced as a whole).
    pub headers: Option<BTreeMap<String, String>>,
    /// Accept any server certificate.
    pub skip_tls_verify: Option<bool>,
    /// Requests in flight at once.
    #[schema(minimum = 1, maximum = 256)]
    pub concurrency: Option<u32>,
    /// Authentication type.
    pub auth_type: Option<AuthType>,
    /// Basic user name.
    pub user_name: Option<String>,
    /// Basic password.
    pub password: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// Header or query parameter name.
    pub token_name: Option<String>,
    /// A new current signing secret; the previous one keeps signing for
    /// `subscriptions.signing_overlap`.
    pub signing_token: Option<String>,
}

const FIELDS: &[&str] = &[
    "name",
    "url",
    "eventTypes",
    "minSeverity",
    "topics",
    "filter",
    "template",
    "headers",
    "skipTlsVerify",
    "concurrency",
    "authType",
    "userName",
    "password",
    "token",
    "tokenName",
    "signingToken",
];

/// Everything a subscription is made of, secrets in clear (in memory only).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub name: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub min_severity: Option<String>,
    pub topics: Vec<String>,
    pub filter: Option<String>,
    pub template: String,
    pub headers: BTreeMap<String, String>,
    pub skip_tls_verify: bool,
    pub concurrency: usize,
    pub auth_type: AuthKind,
    pub user_name: Option<Secret>,
    pub password: Option<Secret>,
    pub token: Option<Secret>,
    pub token_name: Option<String>,
    /// A signing secret the client sent (not the stored ones).
    pub signing_token: Option<Secret>,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            name: String::new(),
            url: String::new(),
            event_types: vec!["*".into()],
            min_severity: None,
            topics: Vec::new(),
            filter: None,
            template: "raw".into(),
            headers: BTreeMap::new(),
            skip_tls_verify: false,
            concurrency: 8,
            auth_type: AuthKind::None,
            user_name: None,
            password: None,
            token: None,
            token_name: None,
            signing_token: None,
        }
    }
}

/// How a body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST`, `PUT`: the whole subscription; `name`, `url` and `authType` required.
    Whole,
    /// `PATCH`: only what is sent.
    Patch,
}

/// Reads one field of `map` into `T`, recording a type error.
fn field<T: DeserializeOwned>(
    map: &Map<String, Value>,
    name: &str,
    errors: &mut Errors,
) -> Option<Option<T>> {
    let value = map.get(name)?;
    if value.is_null() {
        return Some(None);
    }
    match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => Some(Some(v)),
        Err(e) => {
            push(errors, name, e.to_string());
            None
        }
    }
}

/// Applies `body` onto `base` (the stored subscription for `PUT`/`PATCH`, the defaults for
/// `POST`). Secrets not sent are kept while `authType` stays the same. Returns the draft (with
/// the fields that could be read) and the problems found reading it.
pub fn read(body: &Map<String, Value>, base: Draft, mode: Mode) -> (Draft, Errors) {
    let mut errors = Errors::new();
    for key in body.keys() {
        if !FIELDS.contains(&key.as_str()) {
            push(&mut errors, key, "unknown field");
        }
    }
    if mode == Mode::Whole {
        for required in ["name", "url", "authType"] {
            if body.get(required).is_none_or(Value::is_null) {
                push(&mut errors, required, "is required");
            }
        }
    }
    let mut d = if mode == Mode::Whole {
        // A whole replacement starts from the defaults; stored secrets are looked up below.
        Draft::default()
    } else {
        base.clone()
    };
    let e = &mut errors;
    if let Some(v) = field::<String>(body, "name", e) {
        d.name = v.unwrap_or_default();
    }
    if let Some(v) = field::<String>(body, "url", e) {
        d.url = v.unwrap_or_default();
    }
    if let Some(v) = field::<Vec<String>>(body, "eventTypes", e) {
        d.event_types = v.unwrap_or_else(|| vec!["*".into()]);
    }
    if let Some(v) = field::<String>(body, "minSeverity", e) {
        d.min_severity = v;
    }
    if let Some(v) = field::<Vec<String>>(body, "topics", e) {
        d.topics = v.unwrap_or_default();
    }
    if let Some(v) = field::<String>(body, "filter", e) {
        d.filter = v;
    }
    if let Some(v) = field::<String>(body, "template", e) {
        d.template = v.unwrap_or_else(|| "raw".into());
    }
    if let Some(v) = field::<BTreeMap<String, String>>(body, "headers", e) {
        d.headers = v.unwrap_or_default();
    }
    if let Some(v) = field::<bool>(body, "skipTlsVerify", e) {
        d.skip_tls_verify = v.unwrap_or(false);
    }
    if let Some(v) = field::<u32>(body, "concurrency", e) {
        match v {
            Some(n) if (1..=256).contains(&n) => d.concurrency = n as usize,
            Some(_) => push(e, "concurrency", "must be between 1 and 256"),
            None => d.concurrency = 8,
        }
    }
    if let Some(v) = field::<AuthType>(body, "authType", e) {
        match v {
            Some(t) => d.auth_type = t.into(),
            None => push(e, "authType", "must not be null"),
        }
    }
    if let Some(v) = field::<String>(body, "tokenName", e) {
        d.token_name = v;
    }
    // Secrets not sent stay as stored while the auth type stays; a new type drops them.
    let keep = d.auth_type == base.auth_type;
    d.user_name = if keep { base.user_name.clone() } else { None };
    d.password = if keep { base.password.clone() } else { None };
    d.token = if keep { base.token.clone() } else { None };
    if mode == Mode::Whole && !keep && body.get("tokenName").is_none() {
        d.token_name = None;
    }
    for (name, slot) in [
        ("userName", &mut d.user_name),
        ("password", &mut d.password),
        ("token", &mut d.token),
    ] {
        if let Some(v) = field::<String>(body, name, e) {
            *slot = v.map(Secret::new);
        }
    }
    if let Some(v) = field::<String>(body, "signingToken", e) {
        d.signing_token = v.map(Secret::new);
    }
    if mode == Mode::Whole && d.name.trim().is_empty() && !errors.contains_key("name") {
        push(&mut errors, "name", "must not be empty");
    }
    (d, errors)
}

/// [`read`] then [`check`]: the subscription the rules would compile, or every problem of
/// both (a field named by [`read`] is not named again by [`check`]).
pub fn read_and_check(
    body: &Map<String, Value>,
    base: Draft,
    mode: Mode,
    id: &str,
    signing: impl FnOnce(&Draft) -> Vec<Secret>,
) -> Result<(Draft, RouteSubscription), Errors> {
    let (draft, mut errors) = read(body, base, mode);
    match check(id, &draft, &signing(&draft)) {
        Ok(route) if errors.is_empty() => Ok((draft, route)),
        Ok(_) => Err(errors),
        Err(more) => {
            for (field, messages) in more {
                errors.entry(field).or_insert(messages);
            }
            Err(errors)
        }
    }
}

/// The seed API's `authType` rules, every one that is broken.
pub fn auth_rules(d: &Draft, errors: &mut Errors) {
    let given = |s: &Option<Secret>| s.is_some();
    let blank = |s: &Option<Secret>| s.as_ref().is_some_and(Secret::is_blank);
    let kind = AuthType::from(d.auth_type);
    let name = kind.as_str();
    match d.auth_type {
        AuthKind::None => {
            for (field, value) in [
                ("userName", &d.user_name),
                ("password", &d.password),
                ("token", &d.token),
            ] {
                if given(value) {
                    push(errors, field, "must not be provided when authType is none");
                }
            }
            if d.token_name.is_some() {
                push(
                    errors,
                    "tokenName",
                    "must not be provided when authType is none",
                );
            }
        }
        AuthKind::Basic => {
            for (field, value) in [("userName", &d.user_name), ("password", &d.password)] {
                if !given(value) {
                    push(errors, field, "is required when authType is basic");
                } else if blank(value) {
                    push(errors, field, "must not be empty");
                }
            }
            if given(&d.token) {
                push(
                    errors,
                    "token",
                    "give either user credentials (userName/password) or a token, not both",
                );
            }
            if d.token_name.is_some() {
                push(errors, "tokenName", "is not used when authType is basic");
            }
            if d.user_name
                .as_ref()
                .is_some_and(|u| u.expose().contains(':'))
            {
                push(
                    errors,
                    "userName",
                    "must not contain ':' (HTTP Basic cannot carry it)",
                );
            }
        }
        _ => {
            if !given(&d.token) {
                push(
                    errors,
                    "token",
                    format!("is required when authType is {name}"),
                );
            } else if blank(&d.token) {
                push(errors, "token", "must not be empty");
            }
            for (field, value) in [("userName", &d.user_name), ("password", &d.password)] {
                if given(value) {
                    push(
                        errors,
                        field,
                        "give either user credentials (userName/password) or a token, not both",
                    );
                }
            }
            match d.auth_type {
                AuthKind::Header if d.token_name.as_deref().is_none_or(|n| n.trim().is_empty()) => {
                    push(
                        errors,
                        "tokenName",
                        "is required when authType is header (the header's name)",
                    )
                }
                AuthKind::Bearer | AuthKind::Authheader if d.token_name.is_some() => push(
                    errors,
                    "tokenName",
                    format!("is not used when authType is {name}"),
                ),
                _ => {}
            }
        }
    }
}

/// Checks a draft completely: name, the auth rules, the signing token, and what the rule
/// compiler says; the subscription the rules would compile, if there is no problem.
/// `signing` are the signing secrets it will have.
pub fn check(id: &str, d: &Draft, signing: &[Secret]) -> Result<RouteSubscription, Errors> {
    let mut errors = Errors::new();
    let name = d.name.trim();
    if name.is_empty() {
        push(&mut errors, "name", "must not be empty");
    } else if name.chars().count() > 200 {
        push(&mut errors, "name", "must have at most 200 characters");
    }
    if d.url.trim().is_empty() {
        push(&mut errors, "url", "must not be empty");
    }
    auth_rules(d, &mut errors);
    if let Some(s) = &d.signing_token {
        if let Err(e) = Signer::from_secrets(std::slice::from_ref(s)) {
            push(
                &mut errors,
                "signingToken",
                e.to_string().replace("secret #1", "it"),
            );
        }
    }
    let route = RouteSubscription {
        config: SubscriptionConfig {
            template: Some(d.template.clone()),
            headers: d.headers.clone(),
            auth: AuthConfig {
                kind: d.auth_type,
                username: d.user_name.clone(),
                password: d.password.clone(),
                token: d.token.clone(),
                name: d.token_name.clone(),
            },
            signing: (!signing.is_empty()).then(|| SigningConfig {
                secrets: signing.to_vec(),
            }),
            tls: TlsConfig {
                skip_verify: d.skip_tls_verify,
                ..TlsConfig::default()
            },
            concurrency: d.concurrency,
            ..SubscriptionConfig::minimal(id, d.url.trim())
        },
        template: d.template.clone(),
        event_types: d.event_types.clone(),
        min_severity: d.min_severity.clone(),
        topics: d.topics.clone(),
        filter: d.filter.clone(),
    };
    for p in api::check(&route) {
        // The auth rules above already named these fields more precisely.
        let auth = ["userName", "password", "token", "tokenName", "authType"];
        if auth.contains(&p.field) && errors.keys().any(|k| auth.contains(&k.as_str())) {
            continue;
        }
        if p.field == "signingToken" && errors.contains_key("signingToken") {
            continue;
        }
        push(&mut errors, p.field, p.message);
    }
    if errors.is_empty() {
        Ok(route)
    } else {
        Err(errors)
    }
}
