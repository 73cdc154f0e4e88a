//! Every event ends delivered or dead-lettered with the right cause, against a real receiver
//! and a real dead-letter topic.

mod common;

use std::time::Duration;

use common::deliver::{fast_retry, DeliveryHarness};
use hookline::dev::receiver::Respond;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_receiver_behaviour_ends_in_the_right_outcome() {
    let h = DeliveryHarness::start().await;
    let r = &h.receiver;
    r.respond("/flaky", |n| {
        if n < 2 {
            Respond::status(500)
        } else {
            Respond::ok()
        }
    });
    r.respond("/throttled", |n| {
        if n == 0 {
            Respond::status(429).retry_after("1")
        } else {
            Respond::ok()
        }
    });
    r.respond("/gone", |_| Respond::status(410));
    r.respond("/bad", |_| Respond::status(400));
    r.respond("/down", |_| Respond::status(503));
    r.respond("/hang", |_| Respond::ok().after(Duration::from_secs(5)));
    r.respond("/unimplemented", |_| Respond::status(501));

    // A port with nothing listening: bind, note the port, close.
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let retry = json!({"retry": fast_retry(3)});
    let mut subs = Vec::new();
    for (id, path) in [
        ("ok", "/ok"),
        ("flaky", "/flaky"),
        ("throttled", "/throttled"),
        ("gone", "/gone"),
        ("bad", "/bad"),
        ("down", "/down"),
        ("unimplemented", "/unimplemented"),
    ] {
        subs.push(h.subscription(id, path, retry.clone()));
    }
    let mut hang = retry.clone();
    hang["timeout"] = json!("200ms");
    subs.push(h.subscription("hang", "/hang", hang));
    let refused: hookline::deliver::SubscriptionConfig = serde_json::from_value(json!({
        "id": "refused", "url": format!("http://127.0.0.1:{refused_port}/x"), "retry": fast_retry(3)
    }))
    .unwrap();
    subs.push(std::sync::Arc::new(refused.validate().unwrap()));
    h.dispatcher.apply(&subs);

    let started = std::time::Instant::now();
    for (i, sub) in subs.iter().enumerate() {
        h.dispatcher
            .submit(h.job(sub, i as i64, json!({"n": i})))
            .await;
    }
    let settled = h.wait_settled(subs.len(), Duration::from_secs(20)).await;
    assert_eq!(
        settled.len(),
        subs.len(),
        "every event settles: {settled:?}"
    );

    // Delivered, with retries where the receiver asked for them.
    for id in ["ok", "flaky", "throttled"] {
        assert_eq!(h.deliveries(id, "delivered"), 1, "{id}");
    }
    assert_eq!(r.requests_to("/flaky").len(), 3);
    let throttled = r.requests_to("/throttled");
    assert_eq!(throttled.len(), 2);
    let gap = throttled[1].at - throttled[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 honoured, waited {gap:?}"
    );
    // The same webhook-id on every attempt, a fresh signature timestamp is allowed.
    let ids: Vec<_> = r
        .requests_to("/flaky")
        .iter()
        .map(|q| q.header("webhook-id").unwrap().to_string())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]) && ids[0].starts_with("msg_"));

    // Dead letters, each with its cause.
    let letters = h.dead_letters(6, Duration::from_secs(10)).await;
    let by_sub = |id: &str| {
        letters
            .iter()
            .find(|l| l.header_opt("hookline-subscription") == Some(id))
            .unwrap_or_else(|| panic!("no dead letter for {id}: {letters:?}"))
    };
    for (id, reason, status, attempts) in [
        ("gone", "rejected", Some("410"), "1"),
        ("bad", "rejected", Some("400"), "1"),
        ("unimplemented", "rejected", Some("501"), "1"),
        ("down", "retries-exhausted", Some("503"), "3"),
        ("hang", "retries-exhausted", None, "3"),
        ("refused", "retries-exhausted", None, "3"),
    ] {
        let letter = by_sub(id);
        assert_eq!(letter.header_opt("hookline-reason"), Some(reason), "{id}");
        assert_eq!(letter.header_opt("hookline-status"), status, "{id}");
        assert_eq!(
            letter.header_opt("hookline-attempts"),
            Some(attempts),
            "{id}"
        );
        assert!(letter
            .header_opt("hookline-webhook-id")
            .unwrap()
            .starts_with("msg_"));
        // The original event, not the rendered body.
        assert!(
            letter.json().get("original").is_some(),
            "{id}: {:?}",
            letter.json()
        );
    }
    assert!(by_sub("hang")
        .header_opt("hookline-error")
        .unwrap()
        .contains("timeout"));
    assert!(by_sub("refused")
        .header_opt("hookline-error")
        .unwrap()
        .contains("connect"));
    assert_eq!(letters.len(), 6);
    // Never-retried statuses were tried once; attempts are counted by class.
    assert_eq!(r.requests_to("/gone").len(), 1);
    assert_eq!(h.attempts("down", "5xx"), 3);
    assert_eq!(h.attempts("hang", "timeout"), 3);
    assert_eq!(h.attempts("refused", "connect"), 3);
    assert_eq!(h.attempts("gone", "4xx"), 1);
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_recovers_gets_everything() {
    let h = DeliveryHarness::start().await;
    // Down for the first 8 requests, then fine.
    h.receiver.respond("/recovering", |n| {
        if n < 8 {
            Respond::status(502)
        } else {
            Respond::ok()
        }
    });
    let sub = h.subscription(
        "recovering",
        "/recovering",
        json!({"retry": {"attempts": 10, "initial_backoff": "5ms", "max_backoff": "20ms"}, "concurrency": 2}),
    );
    h.dispatcher.apply(std::slice::from_ref(&sub));
    for n in 0..20 {
        h.dispatcher.submit(h.job(&sub, n, json!({"n": n}))).await;
    }
    let settled = h.wait_settled(20, Duration::from_secs(10)).await;
    assert_eq!(settled.len(), 20);
    assert_eq!(h.deliveries("recovering", "delivered"), 20);
    let mut bodies: Vec<i64> = h
        .receiver
        .accepted("/recovering")
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies, (0..20).collect::<Vec<_>>());
}
