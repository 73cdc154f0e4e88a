//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`, the `/api/v1` routes and the
//! routing playground (`/playground/`, its own sub-router: see [`playground`]).
//!
//! - [`guard`]: bearer tokens (constant-time) and the rate limit, over every `/api/v1` route;
//!   the playground behind the read token; `/metrics` and the probes too when
//!   `admin.protect_metrics` / `protect_probes` say so.
//! - [`problem`]: RFC 7807 errors and request ids.
//! - `rules`: the rule set in force, reload, dry run.
//! - [`webhooks`]: subscriptions through the API; [`openapi`] describes them.

pub mod guard;
mod health;
pub mod openapi;
pub mod playground;
pub mod problem;
mod rules;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router as HttpRouter;
use tokio_util::sync::CancellationToken;

use crate::config::AdminSettings;
use crate::metrics::Metrics;
use crate::rules::Router;
use guard::{Access, Limit};
use webhooks::WebhooksApi;

/// What the admin handlers read. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    /// Every metric.
    pub metrics: Metrics,
    /// The live rules.
    pub router: Router,
    /// Where rules are reloaded from (and the playground's example cases are read).
    pub rules_dir: PathBuf,
    /// Tokens, limits, the playground switch.
    pub settings: AdminSettings,
    /// The webhooks API (`None`: an admin server without it, as in tests of the playground).
    pub webhooks: Option<WebhooksApi>,
}

fn webhook_routes(api: WebhooksApi) -> HttpRouter {
    use webhooks::{actions, create, delete, get_one, list, patch, replace};
    HttpRouter::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route(
            "/api/v1/webhooks/{id}",
            get(get_one).put(replace).patch(patch).delete(delete),
        )
        .route("/api/v1/webhooks/{id}/pause", post(actions::pause))
        .route("/api/v1/webhooks/{id}/resume", post(actions::resume))
        .route("/api/v1/webhooks/{id}/test", post(actions::test))
        .route("/api/v1/webhooks/{id}/secret/rotate", post(actions::rotate))
        .with_state(api)
}

/// The admin routes.
pub fn router(state: AdminState) -> HttpRouter {
    let access = Arc::new(Access::new(&state.settings, state.metrics.clone()));
    let limit = Arc::new(Limit::new(
        state.settings.rate_limit,
        state.settings.rate_limit_burst,
        state.metrics.clone(),
    ));
    // Everything under /api/v1: tokens, rate limit, body limit, problem details.
    let api = HttpRouter::new()
        .route("/api/v1/rules", get(rules::summary))
        .route("/api/v1/rules/reload", post(rules::reload))
        .route("/api/v1/rules/test", post(rules::dry_run))
        .route("/api/v1/openapi.json", get(openapi::document))
        .with_state(state.clone())
        .merge(
            state
                .webhooks
                .clone()
                .map(webhook_routes)
                .unwrap_or_default(),
        )
        .fallback(no_such_endpoint)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(from_fn(problem::fill_problems))
        .layer(from_fn_with_state(access.clone(), guard::require_token))
        .layer(from_fn_with_state(limit, guard::rate_limit));
    // The playground shows rule texts and rendered bodies: behind the read token (a browser
    // logs in with it as the password of HTTP Basic), whatever the method, since its POST is
    // a dry run that changes nothing.
    let playground = if state.settings.playground {
        playground::router(state.clone()).layer(from_fn_with_state(
            access.clone(),
            guard::require_read_token_browser,
        ))
    } else {
        HttpRouter::new()
    };
    let mut metrics = HttpRouter::new()
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    if state.settings.protect_metrics {
        metrics = metrics.layer(from_fn_with_state(
            access.clone(),
            guard::require_read_token,
        ));
    }
    let mut probes = HttpRouter::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state.clone());
    if state.settings.protect_probes {
        probes = probes.layer(from_fn_with_state(access, guard::require_read_token));
    }
    HttpRouter::new()
        .merge(api)
        .merge(playground)
        .merge(metrics)
        .merge(probes)
        .layer(from_fn(problem::request_id))
}

/// Unknown paths get a problem too (behind the token: they reveal nothing else).
async fn no_such_endpoint() -> problem::ApiError {
    problem::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint; see /api/v1/openapi.json",
    )
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
