//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AdminState;

/// Alive whenever the server answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready once rules are loaded (they are before the server starts) and partitions are
/// assigned: before that, the instance routes nothing.
pub async fn readyz(State(state): State<AdminState>) -> (StatusCode, Json<Value>) {
    let partitions = state.metrics.assigned_partitions.get();
    if partitions > 0 {
        (
            StatusCode::OK,
            Json(json!({"ready": true, "assigned_partitions": partitions})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "no partitions assigned yet"})),
        )
    }
}
