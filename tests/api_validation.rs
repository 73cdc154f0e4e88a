//! The webhooks API's answers to bad input, missing tokens and too much traffic, through the
//! real router: every `authType` rule of the seed's generic webhook API (a table), every
//! problem at once, 401/403/404/409/413/415/429 as problem details; and secrets that appear in
//! no answer but the create and rotate ones, in no log line, metric or dead-letter header.

mod api_support;
mod common;

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use api_support::{produce, settings, webhook, Api, READ, TOPIC, WRITE};
use common::Harness;
use hookline::dev::receiver::Respond;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Every log line of this test binary, at debug level.
static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.get_or_init(Mutex::default)
            .lock()
            .unwrap()
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(|| Capture)
        .with_ansi(false)
        .try_init();
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.get_or_init(Mutex::default).lock().unwrap()).into_owned()
}

async fn start(h: &Harness, group: &str) -> hookline::app::Running {
    h.write_rules(api_support::RULES);
    hookline::app::start(settings(h, group)).await.unwrap()
}

fn problem_fields(a: &api_support::Answer) -> Vec<String> {
    a.json()["errors"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_type_rule_of_the_seed_is_enforced_with_the_field_named() {
    capture_logs();
    let h = Harness::new(TOPIC, 1).await;
    let running = start(&h, "rules").await;
    let api = Api::of(&running);
    let url = h.receiver.url("/x");
    // (what is sent besides name and url, the fields a 400 must name; empty: 201)
    let table: Vec<(Value, Vec<&str>)> = vec![
        // authType none: userName, password and token must not be provided.
        (json!({"authType": "none"}), vec![]),
        (
            json!({"authType": "none", "userName": "u"}),
            vec!["userName"],
        ),
        (
            json!({"authType": "none", "password": "p"}),
            vec!["password"],
        ),
        (json!({"authType": "none", "token": "t"}), vec!["token"]),
        (
            json!({"authType": "none", "userName": "u", "password": "p", "token": "t"}),
            vec!["password", "token", "userName"],
        ),
        // basic: userName and password are mandatory; never with a token.
        (
            json!({"authType": "basic", "userName": "u", "password": "p"}),
            vec![],
        ),
        (
            json!({"authType": "basic", "password": "p"}),
            vec!["userName"],
        ),
        (
            json!({"authType": "basic", "userName": "u"}),
            vec!["password"],
        ),
        (json!({"authType": "basic"}), vec!["password", "userName"]),
        (
            json!({"authType": "basic", "userName": "u", "password": "p", "token": "t"}),
            vec!["token"],
        ),
        (
            json!({"authType": "basic", "userName": "", "password": "p"}),
            vec!["userName"],
        ),
        // The token types need a token, and never with user credentials.
        (json!({"authType": "bearer", "token": "t"}), vec![]),
        (json!({"authType": "bearer"}), vec!["token"]),
        (
            json!({"authType": "bearer", "token": "t", "userName": "u"}),
            vec!["userName"],
        ),
        (
            json!({"authType": "bearer", "token": "t", "password": "p"}),
            vec!["password"],
        ),
        (json!({"authType": "authheader", "token": "t"}), vec![]),
        (json!({"authType": "authheader"}), vec!["token"]),
        (json!({"authType": "querystring", "token": "t"}), vec![]),
        (
            json!({"authType": "querystring", "token": "t", "tokenName": "key"}),
            vec![],
        ),
        (json!({"authType": "querystring"}), vec!["token"]),
        (
            json!({"authType": "querystring", "token": "t", "userName": "u", "password": "p"}),
            vec!["password", "userName"],
        ),
        (
            json!({"authType": "header", "token": "t", "tokenName": "X-Api-Key"}),
            vec![],
        ),
        (
            json!({"authType": "header", "tokenName": "X-Api-Key"}),
            vec!["token"],
        ),
        (
            json!({"authType": "header", "token": "t"}),
            vec!["tokenName"],
        ),
        // authType itself is required, and one of the six.
        (json!({}), vec!["authType"]),
        (json!({"authType": "oauth"}), vec!["authType"]),
    ];
    for (i, (extra, fields)) in table.iter().enumerate() {
        let mut body = json!({"name": format!("auth-{i}"), "url": url});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let a = api.post("/api/v1/webhooks", body).await;
        if fields.is_empty() {
            assert_eq!(
                a.status,
                StatusCode::CREATED,
                "case {i} {extra}: {}",
                a.text
            );
            continue;
        }
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "case {i} {extra}: {}",
            a.text
        );
        assert_eq!(
            a.headers["content-type"], "application/problem+json",
            "case {i}"
        );
        let p = a.json();
        assert_eq!(p["code"], "validation", "case {i}: {p}");
        assert_eq!(p["status"], 400);
        assert!(
            p["requestId"].is_string() && p["timestamp"].is_string(),
            "{p}"
        );
        assert_eq!(problem_fields(&a), *fields, "case {i} {extra}: {p}");
    }
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_every_problem_at_once_and_the_right_status() {
    capture_logs();
    let h = Harness::new(TOPIC, 1).await;
    let running = start(&h, "errors").await;
    let api = Api::of(&running);

    // Every problem at once.
    let a = api
        .post(
            "/api/v1/webhooks",
            json!({"url": "ftp://example.com/", "authType": "basic", "minSeverity": "huge",
                   "filter": "[[", "template": "{{", "eventTypes": ["[a"], "color": "red"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text);
    let fields = problem_fields(&a);
    for f in [
        "name",
        "url",
        "userName",
        "password",
        "minSeverity",
        "filter",
        "template",
        "eventTypes",
        "color",
    ] {
        assert!(
            fields.contains(&f.to_string()),
            "{f} not named in {}",
            a.text
        );
    }
    // A type error names its field too.
    let a = api
        .post(
            "/api/v1/webhooks",
            json!({"name": 3, "url": "http://x/", "authType": "none"}),
        )
        .await;
    assert_eq!(problem_fields(&a), vec!["name"], "{}", a.text);

    // 409 on a duplicate name, 404 for an unknown id.
    let url = h.receiver.url("/x");
    api.create(webhook("taken", &url)).await;
    let a = api.post("/api/v1/webhooks", webhook("Taken", &url)).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text);
    assert_eq!(a.json()["code"], "conflict");
    let a = api
        .get("/api/v1/webhooks/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json()["code"], "not-found");
    assert_eq!(
        a.json()["instance"],
        "/api/v1/webhooks/00000000-0000-0000-0000-000000000000"
    );

    // 413 on an oversized body, 415 on another content type, 400 on broken JSON.
    let big =
        json!({"name": "big", "url": url, "authType": "none", "filter": "x".repeat(300 * 1024)});
    let a = api.post("/api/v1/webhooks", big).await;
    assert_eq!(
        a.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        &a.text[..a.text.len().min(300)]
    );
    assert_eq!(a.json()["code"], "too-large");
    let r = api
        .client
        .post(format!("{}/api/v1/webhooks", api.base))
        .bearer_auth(WRITE)
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = api
        .client
        .post(format!("{}/api/v1/webhooks", api.base))
        .bearer_auth(WRITE)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Tokens: none → 401 (with WWW-Authenticate), the read token reads but cannot change.
    let anonymous = api.with_token(None);
    for (method, path) in [
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/rules/reload"),
        ("GET", "/api/v1/rules"),
        ("GET", "/api/v1/openapi.json"),
    ] {
        let a = anonymous.call(method, path, None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(a.json()["code"], "unauthorized");
        assert!(a.headers.contains_key("www-authenticate"));
    }
    let wrong = api.with_token(Some("not-the-token-at-all"));
    assert_eq!(
        wrong.get("/api/v1/webhooks").await.status,
        StatusCode::UNAUTHORIZED
    );
    let reader = api.with_token(Some(READ));
    assert_eq!(reader.get("/api/v1/webhooks").await.status, StatusCode::OK);
    let a = reader
        .post("/api/v1/webhooks", webhook("by-reader", &url))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    // Metrics and probes stay open.
    assert_eq!(anonymous.get("/metrics").await.status, StatusCode::OK);
    assert_eq!(anonymous.get("/healthz").await.status, StatusCode::OK);

    // The OpenAPI document is 3.1.
    let doc = api.get("/api/v1/openapi.json").await.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_admin_rate_limit_answers_429_with_retry_after() {
    capture_logs();
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(api_support::RULES);
    let mut config = h.config("limit");
    config.admin.rate_limit = 0.5;
    config.admin.rate_limit_burst = 3;
    let running = hookline::app::start(h.finish(config)).await.unwrap();
    let api = Api::of(&running).with_token(None);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let a = api.get("/api/v1/webhooks").await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&wait), "{wait}");
            assert_eq!(a.json()["code"], "rate-limited");
        }
        statuses.push(a.status.as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_only_in_the_create_and_rotate_answers() {
    capture_logs();
    let h = Harness::new(TOPIC, 1).await;
    let running = start(&h, "secrets").await;
    let api = Api::of(&running);
    let password = "Pa55-word-never-shown";
    let token = "Tok3n-never-shown";
    let signing = format!(
        "whsec_{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b"signing-secret-never-shown!!"
        )
    );
    h.receiver.respond("/basic", |_| Respond::status(400));
    let mut basic = webhook("basic", &h.receiver.url("/basic"));
    basic["authType"] = json!("basic");
    basic["userName"] = json!("alice");
    basic["password"] = json!(password);
    basic["signingToken"] = json!(signing);
    let created = api.post("/api/v1/webhooks", basic).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.json()["data"]["secret"],
        json!(signing),
        "the create answer shows the secret"
    );
    assert_eq!(created.json()["data"]["password"], "********");
    let basic_id = created.json()["data"]["id"].as_str().unwrap().to_string();
    let mut query = webhook("query", &h.receiver.url("/query"));
    query["authType"] = json!("querystring");
    query["token"] = json!(token);
    let (query_id, query_secret) = api.create(query).await;
    let rotated = api
        .post(
            &format!("/api/v1/webhooks/{query_id}/secret/rotate"),
            json!({}),
        )
        .await;
    let rotated_secret = rotated.json()["data"]["secret"]
        .as_str()
        .unwrap()
        .to_string();

    // Deliveries happen (the basic one is rejected and dead-lettered).
    produce(&h, 0..2).await;
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r.len() >= 4)
            .await
    );
    assert!(h.receiver.requests_to("/query")[0]
        .query
        .as_deref()
        .unwrap()
        .contains(token));
    let letters = h.dead_letters(2, Duration::from_secs(30));
    assert_eq!(letters.len(), 2);

    let secrets = [
        password,
        token,
        &signing,
        &query_secret,
        &rotated_secret,
        "alice",
    ];
    let mut answers = Vec::new();
    for path in [
        "/api/v1/webhooks".to_string(),
        format!("/api/v1/webhooks/{basic_id}"),
        format!("/api/v1/webhooks/{query_id}"),
        "/api/v1/rules".to_string(),
    ] {
        answers.push(api.get(&path).await.text);
    }
    answers.push(
        api.call(
            "PATCH",
            &format!("/api/v1/webhooks/{query_id}"),
            Some(json!({"filter": "event.n > `0`"})),
        )
        .await
        .text,
    );
    answers.push(api.call("PUT", &format!("/api/v1/webhooks/{basic_id}"), Some(json!({"name": "basic", "url": h.receiver.url("/basic"), "authType": "basic", "eventTypes": ["alert"]}))).await.text);
    answers.push(
        api.post(&format!("/api/v1/webhooks/{basic_id}/pause"), json!({}))
            .await
            .text,
    );
    answers.push(
        api.post(&format!("/api/v1/webhooks/{query_id}/test"), json!({}))
            .await
            .text,
    );
    answers.push(api.post("/api/v1/webhooks", json!({"name": "bad", "url": "http://x/", "authType": "none", "token": token, "password": password})).await.text);
    let metrics = running.metrics.render();
    let headers: String = letters
        .iter()
        .flat_map(|l| l.headers.iter().map(|(k, v)| format!("{k}={v}\n")))
        .collect();
    running.stop();
    running.wait().await;
    let logs = logs();
    assert!(
        logs.contains("subscription created"),
        "logs were not captured"
    );
    for secret in secrets {
        for (i, a) in answers.iter().enumerate() {
            assert!(!a.contains(secret), "answer {i} shows {secret:?}: {a}");
        }
        assert!(!metrics.contains(secret), "a metric shows {secret:?}");
        assert!(
            !headers.contains(secret),
            "a dead-letter header shows {secret:?}: {headers}"
        );
        if secret != "alice" {
            assert!(!logs.contains(secret), "a log line shows {secret:?}");
        }
    }
    // The password was kept by the PUT without it (same authType): the receiver still gets it.
    assert!(
        answers[5].contains("\"password\":\"********\""),
        "{}",
        answers[5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_file_subscriptions_are_listed_read_only_and_can_be_paused() {
    capture_logs();
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(&format!(
        "{}subscriptions:\n  - id: from-file\n    url: \"{}?key=secret-in-query\"\nroutes:\n  - id: all\n    to: [from-file]\n",
        api_support::RULES,
        h.receiver.url("/file")
    ));
    let running = hookline::app::start(settings(&h, "files")).await.unwrap();
    let api = Api::of(&running);
    let list = api.get("/api/v1/webhooks?source=file").await;
    let data = &list.json()["data"];
    assert_eq!(data.as_array().unwrap().len(), 1, "{}", list.text);
    assert_eq!(data[0]["id"], "from-file");
    assert_eq!(data[0]["source"], "file");
    assert!(!list.text.contains("secret-in-query"), "{}", list.text);
    // Its definition changes only in its file.
    for (method, path, body) in [
        (
            "PATCH",
            "/api/v1/webhooks/from-file",
            Some(json!({"name": "x"})),
        ),
        ("DELETE", "/api/v1/webhooks/from-file", None),
        ("POST", "/api/v1/webhooks/from-file/secret/rotate", None),
    ] {
        let a = api.call(method, path, body).await;
        assert_eq!(
            a.status,
            StatusCode::CONFLICT,
            "{method} {path}: {}",
            a.text
        );
        assert_eq!(a.json()["code"], "read-only");
    }
    // Its name is taken.
    let a = api
        .post(
            "/api/v1/webhooks",
            webhook("from-file", &h.receiver.url("/x")),
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    // Its status is operational state: pause and resume work, and every instance would see it.
    let a = api
        .post("/api/v1/webhooks/from-file/pause", json!({}))
        .await;
    assert_eq!(a.json()["data"]["status"], "Paused", "{}", a.text);
    produce(&h, 0..3).await;
    assert!(
        common::eventually(Duration::from_secs(60), || h.committed("files", TOPIC, 1)
            == [3])
        .await
    );
    assert!(
        h.receiver.requests().is_empty(),
        "a paused file subscription received events"
    );
    let a = api
        .post("/api/v1/webhooks/from-file/resume", json!({}))
        .await;
    assert_eq!(a.json()["data"]["status"], "Active", "{}", a.text);
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r.len() >= 3)
            .await
    );
    // The test endpoint reports the receiver's answer.
    let t = api
        .post("/api/v1/webhooks/from-file/test", json!({}))
        .await
        .json();
    assert_eq!(t["data"]["delivered"], true, "{t}");
    assert_eq!(t["data"]["status"], 200, "{t}");
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_sits_behind_the_read_token() {
    capture_logs();
    let h = Harness::new(TOPIC, 1).await;
    let running = start(&h, "playground").await;
    let api = Api::of(&running);
    let anonymous = api.with_token(None);
    let a = anonymous.get("/playground/").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic "),
        "a browser must be asked for the token: {:?}",
        a.headers
    );
    assert_eq!(
        anonymous.get("/playground/api/rules").await.status,
        StatusCode::UNAUTHORIZED
    );
    // A browser logs in with the read token as the password; scripts send it as a bearer.
    let page = api
        .client
        .get(format!("{}/playground/", api.base))
        .basic_auth("me", Some(READ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let reader = api.with_token(Some(READ));
    assert_eq!(
        reader.get("/playground/api/rules").await.status,
        StatusCode::OK
    );
    // Its dry run is a read: the read-only token may run it.
    let run = reader
        .post(
            "/playground/api/run",
            json!({"topic": TOPIC, "event": r#"{"category": "alert", "severity": "high"}"#}),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    let wrong = api.with_token(Some("not-the-read-token-at-all"));
    assert_eq!(
        wrong.get("/playground/").await.status,
        StatusCode::UNAUTHORIZED
    );
    running.stop();
    running.wait().await;
}
