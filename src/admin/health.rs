//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AdminState;
use crate::source::Role;

/// Alive whenever the server answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready once rules are loaded (they are before the server starts) and the source consumer
/// holds a partition of the rules' topics: before that, the instance routes nothing new.
/// Partitions of the other consumers (retry tiers) do not count.
pub async fn readyz(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    let partitions = state
        .metrics
        .assigned_partitions
        .with_label_values(&[Role::Source.as_str()])
        .get();
    if partitions > 0 {
        (
            StatusCode::OK,
            Json(json!({"ready": true, "assigned_partitions": partitions})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "no source partitions assigned yet"})),
        )
    }
}
