//! `/api/v1/rules`: what is in force, reload it, and dry-run an event against it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AdminState;
use crate::rules::{dry_run, reload};

/// `GET /api/v1/rules`: ids of what the rules in force define. Destinations are shown without
/// credentials or query strings, which may hold tokens.
pub async fn summary(State(state): State<AdminState>) -> Json<Value> {
    let rules = state.router.current();
    let subscriptions: Vec<Value> = rules
        .subscriptions()
        .iter()
        .map(|s| {
            let mut url = s.url.clone();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            json!({
                "id": &*s.id,
                "url": url.as_str(),
                "template": s.config.template.as_deref().unwrap_or("raw"),
                "status": s.config.status,
            })
        })
        .collect();
    Json(json!({
        "sources": rules.source_ids().collect::<Vec<_>>(),
        "routes": rules.route_ids().collect::<Vec<_>>(),
        "subscriptions": subscriptions,
        "topics": rules.topic_patterns(),
    }))
}

/// `POST /api/v1/rules/reload`: load the rules directory now. 200 when the new set is in
/// force; 422 with every problem when it was rejected (the previous set stays).
pub async fn reload(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    match reload::reload_now(&state.rules_dir, &state.router, &state.metrics).await {
        Ok(()) => {
            let rules = state.router.current();
            (
                StatusCode::OK,
                Json(json!({
                    "status": "ok",
                    "routes": rules.route_ids().count(),
                    "subscriptions": rules.subscriptions().len(),
                })),
            )
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "status": "rejected",
                "problems": e.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            })),
        ),
    }
}

/// Body of `POST /api/v1/rules/test`.
#[derive(Debug, Deserialize)]
pub struct DryRun {
    /// The topic the event would be read from.
    pub topic: String,
    /// The event: an object, or an array of objects.
    pub event: Value,
}

/// `POST /api/v1/rules/test`: what the rules in force would do with an event, without
/// delivering it: the same JSON as `hookline test --json`. Uses its own dedup memory, so a dry
/// run never suppresses a real delivery.
pub async fn dry_run(State(state): State<AdminState>, Json(req): Json<DryRun>) -> Json<Value> {
    let payloads = dry_run::events_of(req.event);
    let outcomes = dry_run::run(state.router.current(), &req.topic, &payloads);
    Json(dry_run::report(&outcomes))
}
