//! Helpers for the webhooks API tests: a router with admin tokens and a secret key on the
//! shared harness (`tests/common`), and a small HTTP client for `/api/v1`.
#![allow(dead_code)] // each test file uses a different part

use std::time::Duration;

use base64::Engine;
use hookline::app::Running;
use hookline::config::Settings;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::Harness;

/// The write token of every test router.
pub const WRITE: &str = "test-write-token-0123456789";
/// The read-only token.
pub const READ: &str = "test-read-token-0123456789";
/// The source topic.
pub const TOPIC: &str = "events";

/// Rules with a source and nothing else: API subscriptions route themselves.
pub const RULES: &str = crate::events_source!();

/// Settings for `group` with tokens and a secret key (the same key for every instance).
pub fn settings(h: &Harness, group: &str) -> Settings {
    h.finish(config(h, group))
}

/// The configuration behind [`settings`], to adjust before `Harness::finish`.
pub fn config(h: &Harness, group: &str) -> hookline::config::Config {
    let mut config = h.config(group);
    config.admin.write_token = Some(WRITE.into());
    config.admin.read_token = Some(READ.into());
    config.subscriptions.secret_key =
        Some(base64::engine::general_purpose::STANDARD.encode([42u8; 32]));
    config
}

/// An HTTP client for one router's admin API.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Api {
    pub fn of(running: &Running) -> Api {
        Api {
            base: format!("http://{}", running.admin_addr),
            client: reqwest::Client::new(),
            token: Some(WRITE.into()),
        }
    }

    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            base: self.base.clone(),
            client: self.client.clone(),
            token: token.map(str::to_string),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("admin API answers");
        Answer {
            status: r.status(),
            headers: r.headers().clone(),
            text: r.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(body)).await
    }

    /// Creates a subscription; returns its id and signing secret.
    pub async fn create(&self, body: Value) -> (String, String) {
        let a = self.post("/api/v1/webhooks", body).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let v = a.json();
        (
            v["data"]["id"].as_str().unwrap().to_string(),
            v["data"]["secret"].as_str().unwrap().to_string(),
        )
    }

    /// The subscription's `status`, or `None` when it is not found.
    pub async fn status_of(&self, id: &str) -> Option<String> {
        let a = self.get(&format!("/api/v1/webhooks/{id}")).await;
        (a.status == StatusCode::OK)
            .then(|| a.json()["data"]["status"].as_str().unwrap().to_string())
    }
}

/// A webhook body for `url`, wanting category `alert`.
pub fn webhook(name: &str, url: &str) -> Value {
    json!({"name": name, "url": url, "eventTypes": ["alert"], "authType": "none"})
}

/// Produces events `n` for `range` (category `alert`, severity `high`).
pub async fn produce(h: &Harness, range: std::ops::Range<i64>) {
    for n in range {
        let event = json!({"id": format!("e{n}"), "category": "alert", "severity": "high", "n": n});
        h.produce_json(TOPIC, 0, &event).await;
    }
}

/// The `n` of each request's body.
pub fn numbers(requests: &[hookline::dev::receiver::Recorded]) -> Vec<i64> {
    requests
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap_or(-1))
        .collect()
}

/// Waits until `running` holds a source partition (its consumer joined the group). Stopping
/// an instance before that leaves a member the group waits out (the session timeout) before
/// the next instance gets the partitions.
pub async fn ready(running: &Running) {
    let assigned = || {
        running
            .metrics
            .assigned_partitions
            .with_label_values(&["source"])
            .get()
            > 0
    };
    assert!(
        crate::common::eventually(Duration::from_secs(60), assigned).await,
        "no source partition assigned"
    );
}

/// Polls an async check every 100 ms until it holds or `timeout` passes.
pub async fn eventually_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check().await
}
