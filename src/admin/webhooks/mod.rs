//! `/api/v1/webhooks`: subscriptions created, read, changed and deleted through the API. A
//! change is written to the subscriptions topic and answered once it is in force on this
//! instance (every other instance follows the topic within moments). Rule-file subscriptions
//! are listed and readable (`source: file`), and may be paused, resumed and tested; their
//! definition changes only in their files.
//!
//! - [`body`]: reading and checking request bodies (the seed's `authType` rules).
//! - [`view`]: what the answers look like.
//! - [`actions`]: pause, resume, test, secret rotation.
//! - `state`: what every handler does with [`WebhooksApi`].

pub mod actions;
pub mod body;
mod responses;
mod state;
pub mod view;

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use super::problem::{ApiError, JsonObject, RequestId};
use crate::deliver::{Dispatcher, Secret};
use crate::metrics::Metrics;
use crate::rules::Router;
use crate::subscription::crypto::SealError;
use crate::subscription::model::{keys, HealthRecord, SigningKey, StoredWebhook};
use crate::subscription::status::StatusChanges;
use crate::subscription::{Catalogue, StoreWriter};
use body::{Draft, Mode};
use responses::{ActionErrors, ChangeErrors, ReadErrors};
use view::{
    ListMeta, Meta, Source, Status, Webhook, WebhookCreated, WebhookCreatedResponse, WebhookList,
    WebhookResponse,
};

/// How long a change may take to be in force here before the answer goes out anyway (it is
/// durable in Kafka already; this instance has only not read it back yet).
pub const APPLY_WAIT: Duration = Duration::from_secs(10);

/// What the webhook handlers use. Cheap to clone.
#[derive(Clone)]
pub struct WebhooksApi {
    /// What the topic says.
    pub catalogue: Catalogue,
    /// Writes changes.
    pub writer: StoreWriter,
    /// Status changes.
    pub status: StatusChanges,
    /// The rules in force.
    pub router: Router,
    /// For test deliveries (its SSRF guard).
    pub dispatcher: Dispatcher,
    /// Counters.
    pub metrics: Metrics,
    /// How long a rotated-out signing secret keeps signing.
    pub signing_overlap: Duration,
}

pub(crate) fn meta(id: &RequestId) -> Meta {
    Meta {
        request_id: id.0.clone(),
        timestamp: Utc::now(),
    }
}

pub(crate) fn sealing(e: SealError) -> ApiError {
    ApiError::unavailable(e.to_string())
}

pub(crate) fn store_failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(format!("the change could not be stored: {e}"))
}

/// A new Standard Webhooks secret: 32 random bytes.
pub(crate) fn new_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Query of `GET /api/v1/webhooks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only subscriptions with this status.
    pub status: Option<Status>,
    /// Only subscriptions from this source.
    pub source: Option<Source>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `meta.nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// List subscriptions.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "Webhooks", params(ListQuery),
    responses(
        (status = 200, description = "A page of subscriptions, by id", body = WebhookList),
        ReadErrors,
    ))]
pub async fn list(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookList>, ApiError> {
    let Query(q) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "validation", e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        let mut errors = body::Errors::new();
        errors.insert("limit".into(), vec!["must be between 1 and 200".into()]);
        return Err(ApiError::invalid(errors));
    }
    let all: Vec<Webhook> = api
        .all()
        .into_iter()
        .filter(|w| q.status.is_none_or(|s| w.status == s))
        .filter(|w| q.source.is_none_or(|s| w.source == s))
        .collect();
    let total = all.len();
    let after = match &q.cursor {
        None => None,
        Some(c) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    let mut errors = body::Errors::new();
                    errors.insert(
                        "cursor".into(),
                        vec!["is not a cursor this API gave".into()],
                    );
                    ApiError::invalid(errors)
                })?,
        ),
    };
    let page: Vec<Webhook> = all
        .into_iter()
        .filter(|w| after.as_ref().is_none_or(|a| w.id.as_str() > a.as_str()))
        .take(limit as usize + 1)
        .collect();
    let more = page.len() > limit as usize;
    let page: Vec<Webhook> = page.into_iter().take(limit as usize).collect();
    let next_cursor = more.then(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(&page.last().expect("a full page").id)
    });
    Ok(Json(WebhookList {
        data: page,
        meta: ListMeta {
            request_id: rid.0,
            timestamp: Utc::now(),
            next_cursor,
            total,
        },
    }))
}

/// Read one subscription.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookResponse),
        ReadErrors,
    ))]
pub async fn get_one(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<WebhookResponse>, ApiError> {
    api.respond(&id, &rid)
}

/// Create a subscription.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "Webhooks",
    request_body(content = body::WebhookInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; `secret` is shown only here", body = WebhookCreatedResponse),
        ChangeErrors,
    ))]
pub async fn create(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::new_v4().to_string();
    let generated = new_secret();
    let mut secret = generated.clone();
    let (draft, _) = body::read_and_check(&body, Draft::default(), Mode::Whole, &id, |d| {
        secret = d.signing_token.clone().unwrap_or(generated);
        vec![secret.clone()]
    })
    .map_err(ApiError::invalid)?;
    api.unique_name(&draft.name, &id)?;
    if !api.catalogue.secrets().has_key() {
        return Err(sealing(SealError::NoKey));
    }
    let now = Utc::now();
    let mut stored = api.record(&id, &draft, Vec::new(), None, now)?;
    stored.signing = api.rotate_keys(&stored, &secret, now)?.0;
    api.put(&stored).await?;
    api.metrics
        .subscription_changes
        .with_label_values(&["create"])
        .inc();
    tracing::info!(subscription = %id, name = %stored.name, "subscription created");
    let webhook = api
        .view(&id)
        .unwrap_or_else(|| Webhook::of_api(&stored, None, now));
    let body = WebhookCreatedResponse {
        data: WebhookCreated {
            webhook,
            secret: secret.expose().to_string(),
        },
        meta: meta(&rid),
    };
    let location = format!("/api/v1/webhooks/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

async fn change(
    api: WebhooksApi,
    rid: RequestId,
    id: String,
    body: serde_json::Map<String, serde_json::Value>,
    mode: Mode,
) -> Result<Json<WebhookResponse>, ApiError> {
    let stored = api.stored(&id)?;
    let base = api.draft_of(&stored)?;
    let now = Utc::now();
    let current: Vec<SigningKey> = stored
        .signing
        .iter()
        .filter(|k| k.signs_at(now))
        .cloned()
        .collect();
    let mut secrets = api.signing_secrets(&id, &current, now)?;
    let (draft, _) = body::read_and_check(&body, base, mode, &id, |d| {
        if let Some(s) = &d.signing_token {
            secrets.insert(0, s.clone());
        }
        secrets
    })
    .map_err(ApiError::invalid)?;
    let keys = match &draft.signing_token {
        Some(secret) => api.rotate_keys(&stored, secret, now)?.0,
        None => current,
    };
    api.unique_name(&draft.name, &id)?;
    let updated = api.record(&id, &draft, keys, Some(&stored), now)?;
    api.put(&updated).await?;
    api.metrics
        .subscription_changes
        .with_label_values(&["update"])
        .inc();
    tracing::info!(subscription = %id, "subscription changed");
    let data = api
        .view(&id)
        .unwrap_or_else(|| Webhook::of_api(&updated, None, now));
    Ok(Json(WebhookResponse {
        data,
        meta: meta(&rid),
    }))
}

/// Replace a subscription (secrets not sent are kept while `authType` stays the same).
#[utoipa::path(put, path = "/api/v1/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    request_body(content = body::WebhookInput, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = WebhookResponse),
        ChangeErrors,
    ))]
pub async fn replace(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<WebhookResponse>, ApiError> {
    change(api, rid, id, body, Mode::Whole).await
}

/// Change some fields of a subscription (JSON merge patch: `null` clears an optional field).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    request_body(content = body::WebhookPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed", body = WebhookResponse),
        ChangeErrors,
    ))]
pub async fn patch(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<WebhookResponse>, ApiError> {
    change(api, rid, id, body, Mode::Patch).await
}

/// Delete a subscription. What waits in its backlog is kept `delivery.orphan_after`, then
/// dead-lettered as `subscription-removed` (replayable).
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Deleted"),
        ActionErrors,
    ))]
pub async fn delete(
    State(api): State<WebhooksApi>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    api.stored(&id)?;
    let failed = |e| {
        api.metrics
            .subscription_store_errors
            .with_label_values(&["write"])
            .inc();
        store_failed(e)
    };
    api.writer
        .write::<HealthRecord>(&keys::health(&id), None)
        .await
        .map_err(failed)?;
    let offset = api
        .writer
        .write::<StoredWebhook>(&keys::webhook(&id), None)
        .await
        .map_err(failed)?;
    api.settle(offset).await;
    api.metrics
        .subscription_changes
        .with_label_values(&["delete"])
        .inc();
    tracing::info!(subscription = %id, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}
