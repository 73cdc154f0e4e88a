//! What receivers see: auth of every type, static headers, Standard Webhooks headers.

mod common;

use std::time::Duration;

use base64::Engine;
use common::deliver::{fast_retry, DeliveryHarness};
use hookline::deliver::signing::Signer;
use hookline::dev::receiver::Respond;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_type_reaches_the_receiver() {
    let h = DeliveryHarness::start().await;
    let subs = vec![
        h.subscription("none", "/none", json!({})),
        h.subscription(
            "basic",
            "/basic",
            json!({"auth": {"type": "basic", "username": "alice", "password": "pw"}}),
        ),
        h.subscription(
            "bearer",
            "/bearer",
            json!({"auth": {"type": "bearer", "token": "b-tok"}}),
        ),
        h.subscription(
            "header",
            "/header",
            json!({"auth": {"type": "header", "name": "X-Api-Key", "token": "h-tok"}}),
        ),
        h.subscription(
            "authheader",
            "/authheader",
            json!({"auth": {"type": "authheader", "token": "SSWS raw"}}),
        ),
        h.subscription(
            "querystring",
            "/qs",
            json!({"auth": {"type": "querystring", "name": "key", "token": "q tok"}}),
        ),
        h.subscription(
            "headers",
            "/headers",
            json!({"headers": {"X-Team": "secops", "X-Env": "test"}}),
        ),
    ];
    h.dispatcher.apply(&subs);
    for (i, sub) in subs.iter().enumerate() {
        h.dispatcher
            .submit(h.job(sub, i as i64, json!({"i": i})))
            .await;
    }
    assert_eq!(
        h.wait_settled(subs.len(), Duration::from_secs(10))
            .await
            .len(),
        subs.len()
    );
    let one = |path: &str| h.receiver.requests_to(path).pop().unwrap();
    assert_eq!(one("/none").header("authorization"), None);
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:pw");
    assert_eq!(
        one("/basic").header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(one("/bearer").header("authorization"), Some("Bearer b-tok"));
    assert_eq!(one("/header").header("x-api-key"), Some("h-tok"));
    assert_eq!(one("/authheader").header("authorization"), Some("SSWS raw"));
    assert_eq!(one("/qs").query.as_deref(), Some("key=q+tok"));
    let headers = one("/headers");
    assert_eq!(headers.header("x-team"), Some("secops"));
    assert_eq!(headers.header("x-env"), Some("test"));
    assert_eq!(headers.header("content-type"), Some("application/json"));
    assert!(headers
        .header("user-agent")
        .unwrap()
        .starts_with("hookline/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_and_ids_are_stable_across_retries() {
    let h = DeliveryHarness::start().await;
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([42u8; 32])
    );
    h.receiver.respond("/signed", |n| {
        if n == 0 {
            Respond::status(500)
        } else {
            Respond::ok()
        }
    });
    let sub = h.subscription(
        "signed",
        "/signed",
        json!({"signing": {"secrets": [secret.clone()]}, "retry": fast_retry(3)}),
    );
    h.dispatcher.apply(std::slice::from_ref(&sub));
    h.dispatcher
        .submit(h.job(&sub, 0, json!({"alert": "x"})))
        .await;
    h.wait_settled(1, Duration::from_secs(10)).await;
    let requests = h.receiver.requests_to("/signed");
    assert_eq!(requests.len(), 2);
    let signer = Signer::from_secrets(&[secret.as_str().into()]).unwrap();
    for r in &requests {
        let id = r.header("webhook-id").unwrap();
        let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(ts) < 60);
        assert_eq!(
            r.header("webhook-signature").unwrap(),
            signer.sign(id, ts, &r.body)
        );
    }
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    // The id is the event's stable id, the same one a redelivery after a crash would get.
    let origin = hookline::event::Origin {
        topic: "events".into(),
        partition: 0,
        offset: 0,
        index: 0,
    };
    assert_eq!(
        requests[0].header("webhook-id").unwrap(),
        hookline::event::webhook_id(&origin, "signed")
    );
    // Without secrets: id and timestamp, no signature.
    let plain = h.subscription("plain", "/plain", json!({}));
    h.dispatcher.apply(&[sub, plain.clone()]);
    h.dispatcher.submit(h.job(&plain, 1, json!({}))).await;
    h.wait_settled(2, Duration::from_secs(10)).await;
    let r = h.receiver.requests_to("/plain").pop().unwrap();
    assert!(r.header("webhook-id").is_some() && r.header("webhook-timestamp").is_some());
    assert_eq!(r.header("webhook-signature"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_tokens_never_reach_dead_letters() {
    let h = DeliveryHarness::start().await;
    // A closed port: connection errors are the ones that could carry the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config: hookline::deliver::SubscriptionConfig = serde_json::from_value(json!({
        "id": "qs", "url": format!("http://127.0.0.1:{port}/hook"),
        "auth": {"type": "querystring", "token": "TOPSECRET"},
        "retry": fast_retry(1)
    }))
    .unwrap();
    let sub = std::sync::Arc::new(config.validate().unwrap());
    assert!(!format!("{sub:?}").contains("TOPSECRET"));
    h.dispatcher.apply(std::slice::from_ref(&sub));
    h.dispatcher.submit(h.job(&sub, 0, json!({}))).await;
    let letters = h.dead_letters(1, Duration::from_secs(10)).await;
    assert_eq!(letters.len(), 1);
    for (k, v) in &letters[0].headers {
        assert!(!v.contains("TOPSECRET"), "{k}: {v}");
    }
}
