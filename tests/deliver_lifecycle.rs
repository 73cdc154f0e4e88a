//! Circuit breaking, SSRF refusal, batching failures, pause/disable and reloads, end to end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::deliver::{fast_retry, DeliveryHarness};
use common::{eventually, holds_for};
use hookline::dev::receiver::Respond;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_holds_events_and_closes_when_the_receiver_recovers() {
    let h = DeliveryHarness::start().await;
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = healthy.clone();
    h.receiver.respond("/down", move |_| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Respond::ok()
        } else {
            Respond::status(503)
        }
    });
    let sub = h.subscription(
        "down",
        "/down",
        json!({
            "concurrency": 1,
            "retry": {"attempts": 2, "initial_backoff": "5ms", "max_backoff": "5ms"},
            "breaker": {"consecutive_failures": 2, "open_for": "500ms"}
        }),
    );
    h.dispatcher.apply(std::slice::from_ref(&sub));
    for n in 0..2 {
        h.dispatcher.submit(h.job(&sub, n, json!({"n": n}))).await;
    }
    // Two failed deliveries (2 attempts each) open the circuit.
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(5), |r| r.len() >= 4)
            .await
    );
    assert!(
        eventually(Duration::from_secs(10), || h
            .metrics
            .circuit_state
            .with_label_values(&["down"])
            .get()
            == 2)
        .await,
        "circuit open"
    );
    // While open, new events wait in the queue: no request reaches the receiver.
    for n in 2..6 {
        h.dispatcher.submit(h.job(&sub, n, json!({"n": n}))).await;
    }
    assert!(
        eventually(Duration::from_secs(10), || h
            .metrics
            .queue_depth
            .with_label_values(&["down"])
            .get()
            == 3)
        .await
    );
    assert!(
        holds_for(Duration::from_millis(300), || h
            .receiver
            .requests_to("/down")
            .len()
            == 4)
        .await,
        "a request reached the receiver while the circuit was open"
    );
    // The receiver recovers: the half-open probe succeeds, the circuit closes, all delivered.
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let settled = h.wait_settled(6, Duration::from_secs(10)).await;
    assert_eq!(settled.len(), 6);
    assert_eq!(h.deliveries("down", "delivered"), 4);
    assert_eq!(h.deliveries("down", "dead_lettered"), 2);
    assert_eq!(
        h.metrics.circuit_state.with_label_values(&["down"]).get(),
        0
    );
    let transitions = |s: &str| {
        h.metrics
            .circuit_transitions
            .with_label_values(&["down", s])
            .get()
    };
    assert_eq!(
        (
            transitions("open"),
            transitions("half_open"),
            transitions("closed")
        ),
        (1, 1, 1)
    );
    assert_eq!(h.metrics.queue_depth.with_label_values(&["down"]).get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_unless_allowed() {
    // No allow-list: loopback is refused, whether written as an IP or a name.
    let h = DeliveryHarness::with_allow(vec![]).await;
    let by_ip = h.subscription("by-ip", "/x", json!({"retry": fast_retry(3)}));
    let by_name_url = h.receiver.url("/y").replace("127.0.0.1", "localhost");
    let by_name: hookline::deliver::SubscriptionConfig = serde_json::from_value(
        json!({"id": "by-name", "url": by_name_url, "retry": fast_retry(3)}),
    )
    .unwrap();
    let by_name = Arc::new(by_name.validate().unwrap());
    h.dispatcher.apply(&[by_ip.clone(), by_name.clone()]);
    h.dispatcher.submit(h.job(&by_ip, 0, json!({}))).await;
    h.dispatcher.submit(h.job(&by_name, 1, json!({}))).await;
    let letters = h.dead_letters(2, Duration::from_secs(10)).await;
    assert_eq!(letters.len(), 2);
    for l in &letters {
        assert_eq!(l.header_opt("hookline-reason"), Some("refused"), "{l:?}");
        assert_eq!(l.header_opt("hookline-attempts"), Some("1"), "not retried");
        let error = l.header_opt("hookline-error").unwrap();
        assert!(
            error.contains("loopback") && error.contains("allow_networks"),
            "{error}"
        );
    }
    assert!(
        h.receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
    assert_eq!(h.attempts("by-ip", "refused"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_json_arrays_and_failures_dead_letter_each_event() {
    let h = DeliveryHarness::start().await;
    h.receiver.respond("/gone", |_| Respond::status(410));
    let batch = json!({"batch": {"max_events": 4, "max_wait": "100ms"}});
    let ok = h.subscription("batched", "/batched", batch.clone());
    let gone = h.subscription("gone", "/gone", batch);
    h.dispatcher.apply(&[ok.clone(), gone.clone()]);
    for n in 0..10 {
        h.dispatcher.submit(h.job(&ok, n, json!({"n": n}))).await;
    }
    for n in 10..13 {
        h.dispatcher.submit(h.job(&gone, n, json!({"n": n}))).await;
    }
    assert_eq!(h.wait_settled(13, Duration::from_secs(10)).await.len(), 13);
    let requests = h.receiver.requests_to("/batched");
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 10);
    assert!(
        sizes.iter().all(|s| *s <= 4) && sizes.len() >= 3,
        "{sizes:?}"
    );
    // Within a batch, queue order; batches themselves may overlap (concurrency 8).
    let mut all = Vec::new();
    for r in &requests {
        let ns: Vec<i64> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["n"].as_i64().unwrap())
            .collect();
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "{ns:?}");
        all.extend(ns);
    }
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert_eq!(h.deliveries("batched", "delivered"), 10);
    // One rejected request, three dead letters, each with its own origin and id.
    assert_eq!(h.receiver.requests_to("/gone").len(), 1);
    let letters = h.dead_letters(3, Duration::from_secs(10)).await;
    let mut offsets: Vec<&str> = letters
        .iter()
        .map(|l| l.header_opt("hookline-source-offset").unwrap())
        .collect();
    offsets.sort();
    assert_eq!(offsets, ["10", "11", "12"]);
    let ids: std::collections::HashSet<_> = letters
        .iter()
        .map(|l| l.header_opt("hookline-webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(letters
        .iter()
        .all(|l| l.header_opt("hookline-status") == Some("410")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_and_disabled_hold_and_reloads_keep_the_queue() {
    let h = DeliveryHarness::start().await;
    let paused = h.subscription("s", "/old", json!({"status": "paused"}));
    h.dispatcher.apply(std::slice::from_ref(&paused));
    for n in 0..5 {
        h.dispatcher
            .submit(h.job(&paused, n, json!({"n": n})))
            .await;
    }
    assert!(
        eventually(Duration::from_secs(10), || h
            .metrics
            .queue_depth
            .with_label_values(&["s"])
            .get()
            == 5)
        .await
    );
    assert!(
        holds_for(Duration::from_millis(200), || h
            .receiver
            .requests()
            .is_empty())
        .await,
        "paused: events wait"
    );
    // Reload: same id, active, new URL. The queued events go to the new URL, in order.
    let active = h.subscription("s", "/new", json!({}));
    h.dispatcher.apply(std::slice::from_ref(&active));
    assert_eq!(h.wait_settled(5, Duration::from_secs(10)).await.len(), 5);
    let order: Vec<i64> = h
        .receiver
        .requests_to("/new")
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order.len(), 5);
    // Disabled: what arrives waits (without a backlog, here), never sent, never dropped.
    let disabled = h.subscription(
        "s",
        "/new",
        json!({"status": "disabled", "disable_reason": "vendor offboarded"}),
    );
    h.dispatcher.apply(std::slice::from_ref(&disabled));
    for n in 5..8 {
        h.dispatcher
            .submit(h.job(&disabled, n, json!({"n": n})))
            .await;
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            h.metrics.queue_depth.with_label_values(&["s"]).get() == 3
        })
        .await
    );
    assert_eq!(h.wait_settled(5, Duration::from_secs(1)).await.len(), 5);
    assert_eq!(h.deliveries("s", "dropped"), 0);
    assert_eq!(h.receiver.requests().len(), 5);
    // Removed: what it held, and submissions for it, are dropped by rule.
    h.dispatcher.apply(&[]);
    h.dispatcher.submit(h.job(&disabled, 8, json!({}))).await;
    assert_eq!(h.wait_settled(9, Duration::from_secs(10)).await.len(), 9);
    assert_eq!(h.deliveries("s", "dropped"), 4);
    h.dispatcher.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_what_cannot_finish_unsettled() {
    let h = DeliveryHarness::start().await;
    let arrived = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = arrived.clone();
    h.receiver.respond("/slow", move |_| {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        Respond::ok().after(Duration::from_secs(30))
    });
    let sub = h.subscription("slow", "/slow", json!({"timeout": "60s"}));
    h.dispatcher.apply(std::slice::from_ref(&sub));
    h.dispatcher.submit(h.job(&sub, 0, json!({}))).await;
    // The request is in flight once the receiver has it (it answers 30 s later).
    assert!(
        eventually(Duration::from_secs(10), || arrived
            .load(std::sync::atomic::Ordering::SeqCst))
        .await
    );
    let started = std::time::Instant::now();
    h.dispatcher.shutdown(Duration::from_millis(200)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    // Not delivered, not dead-lettered: left for redelivery.
    assert!(h.settled.0.lock().unwrap().is_empty());
    assert_eq!(h.deliveries("slow", "delivered"), 0);
}
