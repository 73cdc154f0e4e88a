//! `POST /api/v1/webhooks/{id}/pause|resume|test|secret/rotate`.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;

use super::responses::ActionErrors;
use super::view::{Rotated, RotatedResponse, TestResponse, TestResult, WebhookResponse};
use super::{meta, new_secret, WebhooksApi};
use crate::admin::problem::{ApiError, RequestId};
use crate::event::{Event, Origin};
use crate::subscription::status::{Action, StatusError};

async fn status(
    api: WebhooksApi,
    rid: RequestId,
    id: String,
    action: Action,
) -> Result<Json<WebhookResponse>, ApiError> {
    let changed = api
        .status
        .apply(&id, action.clone())
        .await
        .map_err(|e| match e {
            StatusError::NotFound(_) => ApiError::not_found(&id),
            StatusError::Store(e) => super::store_failed(e),
        })?;
    if let Some(offset) = changed {
        api.settle(offset).await;
    }
    let name = if action == Action::Resume {
        "resume"
    } else {
        "pause"
    };
    api.metrics
        .subscription_changes
        .with_label_values(&[name])
        .inc();
    api.respond(&id, &rid)
}

/// Pause a subscription: new events wait in its backlog until it is resumed.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/pause", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "Paused", body = WebhookResponse),
        ActionErrors,
    ))]
pub async fn pause(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<WebhookResponse>, ApiError> {
    status(api, rid, id, Action::Pause).await
}

/// Resume a paused or disabled subscription: what waited in its backlog is delivered in
/// order; a disable reason is cleared.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/resume", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "Active", body = WebhookResponse),
        ActionErrors,
    ))]
pub async fn resume(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<WebhookResponse>, ApiError> {
    status(api, rid, id, Action::Resume).await
}

/// The sample event a test sends.
fn sample(id: &str) -> Event {
    let origin = Origin {
        topic: "hookline.test".into(),
        partition: 0,
        offset: 0,
        index: 0,
    };
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Event::new(
        origin,
        serde_json::json!({
            "id": format!("hookline-test-{}", uuid::Uuid::new_v4()),
            "category": "hookline.test",
            "severity": "info",
            "title": "Test event from hookline",
            "message": format!("hookline sent this test event to subscription {id}"),
            "timestamp": now,
        }),
    )
}

/// Send a sample event now, bypassing the queue, the rate limit and the breaker, and report
/// the receiver's status and latency. Nothing is retried.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "What the receiver answered (a failure to deliver is an answer too)", body = TestResponse),
        ActionErrors,
    ))]
pub async fn test(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<TestResponse>, ApiError> {
    let rules = api.router.current();
    let sub = rules
        .subscriptions()
        .iter()
        .find(|s| *s.id == *id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&id))?;
    let event = sample(&id);
    let webhook_id = format!("msg_test_{}", uuid::Uuid::new_v4().simple());
    let body = match rules.render_for(&event, &id) {
        Some((_, Ok(body))) => body,
        Some((_, Err(e))) => {
            let data = TestResult {
                delivered: false,
                status: None,
                latency_ms: 0,
                webhook_id,
                error: Some(e.to_string()),
            };
            return Ok(Json(TestResponse {
                data,
                meta: meta(&rid),
            }));
        }
        None => return Err(ApiError::not_found(&id)),
    };
    let bytes = serde_json::to_vec(&body).expect("JSON serialises");
    let started = Instant::now();
    let result =
        crate::deliver::probe::send_once(&sub, api.dispatcher.guard(), &webhook_id, bytes.into())
            .await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let data = match result {
        Ok(r) => TestResult {
            delivered: r.status.is_success(),
            status: Some(r.status.as_u16()),
            latency_ms,
            webhook_id,
            error: (!r.status.is_success()).then(|| format!("receiver answered {}", r.status)),
        },
        Err(e) => TestResult {
            delivered: false,
            status: None,
            latency_ms,
            webhook_id,
            error: Some(if e.is::<tower::timeout::error::Elapsed>() {
                "no answer within the timeout".into()
            } else {
                crate::deliver::client::chain(e.as_ref())
            }),
        },
    };
    tracing::info!(subscription = %id, delivered = data.delivered, status = data.status, latency_ms, "test delivery");
    Ok(Json(TestResponse {
        data,
        meta: meta(&rid),
    }))
}

/// Rotate the signing secret: a new `whsec_` secret signs from now on, returned this once;
/// the previous one keeps signing beside it for `subscriptions.signing_overlap`.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/secret/rotate", tag = "Webhooks",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The new secret", body = RotatedResponse),
        ActionErrors,
    ))]
pub async fn rotate(
    State(api): State<WebhooksApi>,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RotatedResponse>), ApiError> {
    let mut stored = api.stored(&id)?;
    let now = Utc::now();
    let secret = new_secret();
    let (keys, previous) = api.rotate_keys(&stored, &secret, now)?;
    stored.signing = keys;
    stored.last_modified_at = now;
    api.put(&stored).await?;
    api.metrics
        .subscription_changes
        .with_label_values(&["rotate"])
        .inc();
    tracing::info!(subscription = %id, previous_expires_at = ?previous, "signing secret rotated");
    let data = Rotated {
        id,
        secret: secret.expose().to_string(),
        previous_expires_at: previous,
    };
    Ok((
        StatusCode::OK,
        Json(RotatedResponse {
            data,
            meta: meta(&rid),
        }),
    ))
}
