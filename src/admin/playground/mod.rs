//! The routing playground: a page on the admin server where a user picks a topic, pastes or
//! loads an event, and sees at once what the rules in force do with it (classification, the
//! routes that matched and why the others did not, dedup suppressions, every rendered body),
//! edits a template or a route in place, and copies a ready `cases:` entry.
//!
//! Nothing here delivers or changes the rules in force. Every run is a dry run through
//! [`rules::dry_run`](crate::rules::dry_run), the code behind `hookline test` and `POST
//! /api/v1/rules/test`, on the rule set in force or on a [draft](crate::rules::draft) of it
//! with the user's edits, with a router of its own (its own dedup memory and metrics).
//!
//! The page is plain HTML, CSS and JavaScript embedded in the binary: no build step, no
//! front-end dependency, and a release stays one file. Routes, all under `/playground/`:
//!
//! | route | what |
//! |---|---|
//! | `GET /playground` | redirects to `/playground/` (the page's relative links need the slash) |
//! | `GET /playground/`, `app.js`, `style.css` | the page ([`pages`]) |
//! | `GET /playground/api/rules` | what can be picked and edited ([`api`]) |
//! | `POST /playground/api/run` | a dry run ([`api`]) |
//!
//! [`router`] is one sub-router, merged into the admin server when `admin.playground` is on,
//! so that an authentication layer can wrap it as a whole (or wrap [`api`] only: the pages
//! hold no data).

mod examples;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::AdminState;
use crate::rules::cases;
use crate::rules::draft::{EditProblem, Edits};
use crate::rules::dry_run;

/// Events one run may route at most (an array event is one per element).
pub const MAX_EVENTS: usize = 1000;

/// The whole playground: pages and API.
pub fn router(state: AdminState) -> Router {
    pages().merge(api(state))
}

/// The page and its assets: static, the same for everyone.
pub fn pages() -> Router {
    Router::new()
        .route("/playground", get(|| async { Redirect::to("playground/") }))
        .route(
            "/playground/",
            get(|| asset("text/html; charset=utf-8", INDEX)),
        )
        .route(
            "/playground/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP)),
        )
        .route(
            "/playground/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE)),
        )
}

/// The data the page reads: the rules in force, examples, dry runs.
pub fn api(state: AdminState) -> Router {
    Router::new()
        .route("/playground/api/rules", get(rules))
        .route("/playground/api/run", post(run))
        .with_state(state)
}

const INDEX: &str = include_str!("page/index.html");
const APP: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page changes with the binary; never serve a stale one after an upgrade.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /playground/api/rules`: topics to pick from, example events, and the routes and
/// templates of the rules in force as they can be edited.
async fn rules(State(state): State<AdminState>) -> Json<Value> {
    let rules = state.router.current();
    let dir = state.rules_dir.clone();
    let examples = tokio::task::spawn_blocking(move || examples::all(&dir))
        .await
        .unwrap_or_default();
    let mut topics = rules.source_topics();
    for e in &examples {
        if !topics.contains(&e.topic) {
            topics.push(e.topic.clone());
        }
    }
    let editable = rules.editable();
    Json(json!({
        "loaded_at": state.metrics.rules_loaded_timestamp.get(),
        "topics": topics,
        "examples": examples,
        "routes": editable.routes,
        "templates": editable.templates,
    }))
}

/// Body of `POST /playground/api/run`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    /// The topic the event would be read from.
    topic: String,
    /// The event as the user typed it: a JSON object, or an array of them.
    event: String,
    /// Templates and routes edited on the page.
    #[serde(default)]
    edits: Edits,
}

/// `POST /playground/api/run`: the dry run of the event, with the edits when there are any.
/// Problems (the event's JSON, the edits) come back with their positions and no events; the
/// answer is 200 either way, as the page shows both.
async fn run(State(state): State<AdminState>, Json(req): Json<RunRequest>) -> Response {
    let loaded_at = state.metrics.rules_loaded_timestamp.get();
    let rules = state.router.current();
    let answer = tokio::task::spawn_blocking(move || {
        let mut problems = Vec::new();
        if req.topic.trim().is_empty() {
            problems.push(problem("topic", 0, 0, "pick or type a topic"));
        }
        let events = match serde_json::from_str::<Value>(&req.event) {
            Ok(v) => dry_run::events_of(v),
            Err(e) => {
                problems.push(json_problem(&e));
                vec![]
            }
        };
        if events.len() > MAX_EVENTS {
            let msg = format!("{} events; a run takes at most {MAX_EVENTS}", events.len());
            problems.push(problem("event", 0, 0, &msg));
        }
        let draft = if req.edits.is_empty() {
            Ok(rules)
        } else {
            rules
                .draft(&req.edits, &|name| std::env::var(name).ok())
                .map(std::sync::Arc::new)
        };
        let rules = match draft {
            Ok(r) => Some(r),
            Err(found) => {
                problems.extend(found);
                None
            }
        };
        match rules {
            Some(rules) if problems.is_empty() => {
                let outcomes = dry_run::run(rules, &req.topic, &events);
                let name = outcomes.first().map_or_else(String::new, |o| {
                    format!("{}: {}", req.topic, o.routing.category)
                });
                json!({
                    "problems": [],
                    "events": outcomes.iter().map(dry_run::to_json).collect::<Vec<_>>(),
                    "case": cases::entry(&name, &req.topic, &events, &outcomes),
                    "draft": !req.edits.is_empty(),
                })
            }
            _ => json!({"problems": problems, "events": [], "case": null, "draft": !req.edits.is_empty()}),
        }
    })
    .await;
    match answer {
        Ok(mut body) => {
            body["loaded_at"] = json!(loaded_at);
            Json(body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "playground run failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the dry run failed").into_response()
        }
    }
}

fn problem(kind: &'static str, line: usize, col: usize, message: &str) -> EditProblem {
    EditProblem {
        kind,
        id: String::new(),
        line,
        col,
        message: message.to_string(),
    }
}

/// A JSON syntax error at its position, without serde's own " at line L column C".
fn json_problem(e: &serde_json::Error) -> EditProblem {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    problem(
        "event",
        e.line(),
        e.column(),
        &format!("invalid JSON: {message}"),
    )
}
