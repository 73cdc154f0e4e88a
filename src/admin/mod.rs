//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`, the `/api/v1` routes and the
//! routing playground (`/playground/`, its own sub-router: see [`playground`]).

mod health;
pub mod playground;
mod rules;

use std::path::PathBuf;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router as HttpRouter;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::rules::Router;

/// What the admin handlers read. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    /// Every metric.
    pub metrics: Metrics,
    /// The live rules.
    pub router: Router,
    /// Where rules are reloaded from (and the playground's example cases are read).
    pub rules_dir: PathBuf,
    /// Serve the playground.
    pub playground: bool,
}

/// The admin routes.
pub fn router(state: AdminState) -> HttpRouter {
    let admin = HttpRouter::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/rules", get(rules::summary))
        .route("/api/v1/rules/reload", post(rules::reload))
        .route("/api/v1/rules/test", post(rules::dry_run))
        .with_state(state.clone());
    if state.playground {
        admin.merge(playground::router(state))
    } else {
        admin
    }
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AdminState>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Serves the admin API on a bound `listener` until `stop`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AdminState,
    stop: CancellationToken,
) {
    if let Err(e) = axum::serve(listener, router(state))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "admin API stopped");
    }
}
