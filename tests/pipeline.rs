//! The data path end to end, in-process, on real parts: a Kafka-protocol broker (librdkafka's
//! mock cluster on TCP), the router, and an HTTP receiver on loopback.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{eventually, holds_for, Harness};
use hookline::dev::receiver::Respond;
use serde_json::json;

const TOPIC: &str = "events";

const RULES: &str = concat!(
    events_source!(),
    r#"
# The template reads two fields, so the router parses only those of each event (and the
# fields its source reads); dead letters and retry records still carry the whole event.
templates:
  - id: small
    expression: "{id: event.id, severity: hookline.severity}"
subscriptions:
  - id: auth-team
    url: "{receiver}/auth"
    template: small
  - id: oncall
    url: "{receiver}/oncall"
    template: small
    retry: { attempts: 3, initial_backoff: 10ms, max_backoff: 50ms }
  - id: nobody
    url: "{receiver}/nobody"
    template: small
routes:
  - id: auth-events
    match: { category: [auth, login*] }
    to: [auth-team]
  - id: severe
    match: { min_severity: high }
    to: [oncall]
  - id: never
    match: { category: never-sent }
    to: [nobody]
"#
);

fn ids(requests: &[hookline::dev::receiver::Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Produces `n` events round-robin over `partitions`; returns (id, category, severity, partition, offset).
async fn produce_events(
    h: &Harness,
    n: usize,
    partitions: i32,
) -> Vec<(String, String, String, i32, i64)> {
    let categories = ["auth", "login-failed", "malware", "network"];
    let severities = ["low", "medium", "high", "critical", "info"];
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("ev-{i}");
        let category = categories[i % categories.len()].to_string();
        let severity = severities[(i / 3) % severities.len()].to_string();
        let partition = (i as i32) % partitions;
        let event = json!({"id": id, "category": category, "severity": severity, "n": i});
        let offset = h.produce_json(TOPIC, partition, &event).await;
        out.push((id, category, severity, partition, offset));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_every_subscriber_they_match_and_no_other() {
    let h = Harness::new(TOPIC, 4).await;
    h.write_rules(RULES);
    let running = hookline::app::start(h.settings("g1")).await.expect("start");
    let events = produce_events(&h, 200, 4).await;

    let want_auth: BTreeSet<String> = events
        .iter()
        .filter(|e| e.1 == "auth" || e.1.starts_with("login"))
        .map(|e| e.0.clone())
        .collect();
    let want_oncall: BTreeSet<String> = events
        .iter()
        .filter(|e| e.2 == "high" || e.2 == "critical")
        .map(|e| e.0.clone())
        .collect();
    let total = want_auth.len() + want_oncall.len();
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(30), |r| r.len() >= total)
            .await,
        "only {} of {total} deliveries arrived",
        h.receiver.requests().len()
    );
    // Anything extra would arrive right behind: nothing more may arrive for a while.
    assert!(
        holds_for(Duration::from_millis(300), || h.receiver.requests().len()
            == total)
        .await,
        "more deliveries than matches"
    );

    let auth = ids(&h.receiver.requests_to("/auth"));
    let oncall = ids(&h.receiver.requests_to("/oncall"));
    assert_eq!(auth.len(), want_auth.len(), "each event at most once");
    assert_eq!(oncall.len(), want_oncall.len(), "each event at most once");
    assert_eq!(auth.into_iter().collect::<BTreeSet<_>>(), want_auth);
    assert_eq!(oncall.into_iter().collect::<BTreeSet<_>>(), want_oncall);
    assert!(h.receiver.requests_to("/nobody").is_empty());

    // Every request carries a stable id derived from the event's place in Kafka.
    for r in h.receiver.requests() {
        assert!(r
            .header("webhook-id")
            .is_some_and(|id| id.starts_with("msg_")));
    }

    // Everything settled: each partition commits past its last event.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for e in &events {
        last.insert(e.3, e.4);
    }
    let expected: Vec<i64> = (0..4).map(|p| last[&p] + 1).collect();
    assert!(
        eventually(Duration::from_secs(10), || h.committed("g1", TOPIC, 4)
            == expected)
        .await,
        "committed {:?}, expected {expected:?}",
        h.committed("g1", TOPIC, 4)
    );
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("hookline_events_consumed_total{topic=\"events\"} 200"),
        "{metrics}"
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_ends_with_every_event_delivered_or_dead_lettered() {
    let h = Harness::new(TOPIC, 2).await;
    h.write_rules(RULES);
    // Every third request fails with a retriable 503, every seventh is rejected with 422.
    h.receiver.respond("/oncall", |n| match n {
        n if n % 7 == 6 => Respond::status(422),
        n if n % 3 == 2 => Respond::status(503),
        _ => Respond::ok(),
    });
    let running = hookline::app::start(h.settings("g2")).await.expect("start");
    let events = produce_events(&h, 120, 2).await;
    let want: BTreeSet<String> = events
        .iter()
        .filter(|e| e.2 == "high" || e.2 == "critical")
        .map(|e| e.0.clone())
        .collect();

    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for e in &events {
        last.insert(e.3, e.4);
    }
    let expected: Vec<i64> = (0..2).map(|p| last[&p] + 1).collect();
    assert!(
        eventually(Duration::from_secs(30), || h.committed("g2", TOPIC, 2)
            == expected)
        .await,
        "not everything settled: committed {:?}, expected {expected:?}",
        h.committed("g2", TOPIC, 2)
    );

    // Events whose in-memory retries ran out wait in the durable retry topic (their source
    // offsets are settled already); give them their next round.
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(30), |r| {
                let done: BTreeSet<String> = r
                    .iter()
                    .filter(|r| r.path == "/oncall" && (r.status == 200 || r.status == 422))
                    .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
                    .collect();
                done.is_superset(&want)
            })
            .await,
        "every event was finally answered 200 or 422"
    );
    let delivered: BTreeSet<String> = ids(&h.receiver.accepted("/oncall")).into_iter().collect();
    let rejected = h
        .receiver
        .requests_to("/oncall")
        .iter()
        .filter(|r| r.status == 422)
        .count();
    let letters = h.dead_letters(rejected, Duration::from_secs(10));
    let dead: BTreeSet<String> = letters
        .iter()
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(&l.payload).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(rejected > 0, "the script rejects some requests");
    assert_eq!(
        letters.len(),
        rejected,
        "one dead letter per rejected event"
    );
    for l in &letters {
        let event: serde_json::Value = serde_json::from_slice(&l.payload).unwrap();
        assert!(
            event["n"].is_u64() && event["category"].is_string(),
            "the dead letter carries the whole event, not what the rules read of it: {event}"
        );
        assert_eq!(l.header("hookline-reason"), "rejected");
        assert_eq!(l.header("hookline-status"), "422");
        assert_eq!(l.header("hookline-subscription"), "oncall");
        assert_eq!(l.header("hookline-source-topic"), TOPIC);
    }
    assert!(delivered.is_disjoint(&dead));
    assert_eq!(
        delivered.union(&dead).cloned().collect::<BTreeSet<_>>(),
        want,
        "nothing lost"
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_offset_never_passes_an_unsettled_event() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(RULES);
    // The first request to /oncall hangs for 3 s while everything behind it completes.
    h.receiver.respond("/oncall", |n| {
        if n == 0 {
            Respond::ok().after(Duration::from_secs(3))
        } else {
            Respond::ok()
        }
    });
    let running = hookline::app::start(h.settings("g3")).await.expect("start");

    let mut offsets = Vec::new();
    for i in 0..5 {
        offsets.push(
            h.produce_json(
                TOPIC,
                0,
                &json!({"id": format!("before-{i}"), "category": "auth", "severity": "low"}),
            )
            .await,
        );
    }
    let slow = h
        .produce_json(
            TOPIC,
            0,
            &json!({"id": "slow", "category": "other", "severity": "critical"}),
        )
        .await;
    for i in 0..20 {
        offsets.push(
            h.produce_json(
                TOPIC,
                0,
                &json!({"id": format!("after-{i}"), "category": "auth", "severity": "low"}),
            )
            .await,
        );
    }
    let last = *offsets.last().unwrap();

    // All 25 fast deliveries complete while the slow one is still unanswered...
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(10), |r| r
                .iter()
                .filter(|r| r.path == "/auth")
                .count()
                == 25)
            .await
    );
    assert!(
        h.receiver.requests_to("/oncall").is_empty(),
        "the slow request is still hanging"
    );
    // ...and the commit stays at the slow event, however often the committer runs.
    assert!(
        holds_for(Duration::from_secs(1), || h.committed("g3", TOPIC, 1)[0]
            <= slow)
        .await,
        "the commit passed the unsettled offset {slow}"
    );
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(10), |r| r
                .iter()
                .any(|r| r.path == "/oncall"))
            .await
    );
    assert!(
        eventually(Duration::from_secs(10), || h.committed("g3", TOPIC, 1)[0]
            == last + 1)
        .await,
        "once settled, the commit moves to the end"
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_redelivers_nothing_settled_and_skips_nothing() {
    let h = Harness::new(TOPIC, 3).await;
    h.write_rules(RULES);
    // Slow enough that the first router is stopped mid-stream.
    h.receiver
        .respond("/auth", |_| Respond::ok().after(Duration::from_millis(15)));
    let events = produce_events(&h, 300, 3).await;
    let want: BTreeSet<String> = events
        .iter()
        .filter(|e| e.1 == "auth" || e.1.starts_with("login"))
        .map(|e| e.0.clone())
        .collect();

    let first = hookline::app::start(h.settings("g4")).await.expect("start");
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(30), |r| r
                .iter()
                .filter(|r| r.path == "/auth")
                .count()
                >= 40)
            .await
    );
    first.stop();
    first.wait().await;
    let before = ids(&h.receiver.accepted("/auth"));
    assert!(
        before.len() < want.len(),
        "stopped mid-stream ({} of {})",
        before.len(),
        want.len()
    );
    let committed = h.committed("g4", TOPIC, 3);

    let second = hookline::app::start(h.settings("g4"))
        .await
        .expect("restart");
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| {
                r.iter()
                    .filter(|r| r.path == "/auth" && r.status == 200)
                    .count()
                    >= want.len()
            })
            .await,
        "every event delivered in the end"
    );
    assert!(
        holds_for(Duration::from_millis(300), || h
            .receiver
            .accepted("/auth")
            .len()
            <= want.len())
        .await,
        "duplicates after the restart"
    );
    let all = ids(&h.receiver.accepted("/auth"));
    let after = &all[before.len()..];
    let before: BTreeSet<String> = before.into_iter().collect();
    let after_set: BTreeSet<String> = after.iter().cloned().collect();
    assert!(
        before.is_disjoint(&after_set),
        "the restart re-delivered settled events: {:?}",
        before.intersection(&after_set).collect::<Vec<_>>()
    );
    assert_eq!(
        before.union(&after_set).cloned().collect::<BTreeSet<_>>(),
        want,
        "nothing skipped"
    );
    assert_eq!(all.len(), want.len(), "no duplicates");
    // The second router started exactly at the committed positions.
    for e in events.iter().filter(|e| after_set.contains(&e.0)) {
        assert!(
            e.4 >= committed[e.3 as usize],
            "{} at {} was before the commit {:?}",
            e.0,
            e.4,
            committed
        );
    }
    second.stop();
    second.wait().await;
}
