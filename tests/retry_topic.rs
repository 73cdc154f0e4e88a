//! The durable retry topic: a receiver that is down does not hold up the source or the other
//! subscriptions; its events wait in Kafka, come back when due, and are dead-lettered when the
//! schedule runs out.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::wait::scaled;
use common::{eventually, Harness};
use hookline::dev::receiver::Respond;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const TOPIC: &str = "events";

fn rules() -> &'static str {
    concat!(
        events_source!(),
        r#"
subscriptions:
  - id: flaky
    url: "{receiver}/flaky"
    retry: { attempts: 2, initial_backoff: 10ms, max_backoff: 20ms }
    breaker: { enabled: false }
  - id: down
    url: "{receiver}/down"
    timeout: 200ms
    queue: 8
    retry: { attempts: 1 }
    breaker: { enabled: false }
  - id: up
    url: "{receiver}/up"
routes:
  - id: flaky
    match: { category: flaky }
    to: [flaky]
  - id: both
    match: { category: both }
    to: [down, up]
"#
    )
}

fn settings(h: &Harness, group: &str, schedule: &[&str]) -> hookline::config::Settings {
    let mut config = hookline::config::Config::default();
    let base = h.settings(group);
    config.kafka = base.kafka.clone();
    config.rules.dir = base.rules.dir.clone();
    config.rules.watch = false;
    config.admin.listen = "127.0.0.1:0".into();
    config.delivery.allow_networks = vec!["127.0.0.0/8".into()];
    config.delivery.shutdown_grace = Duration::from_secs(2);
    config.delivery.retry_schedule = schedule.iter().map(|s| s.to_string()).collect();
    h.finish(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_wait_in_the_retry_topic_and_arrive_when_due() {
    let h = Harness::new(TOPIC, 2).await;
    h.write_rules(rules());
    // Down until the test has seen the source offsets commit, then up: so the events can
    // only arrive from the retry tiers, however slow the machine is.
    let up = Arc::new(AtomicBool::new(false));
    let receiver_up = up.clone();
    h.receiver.respond("/flaky", move |_| {
        if receiver_up.load(Ordering::SeqCst) {
            Respond::ok()
        } else {
            Respond::status(503)
        }
    });
    // Rounds enough to wait about a minute in all: the schedule must not run out while a
    // loaded machine is slow to see the commit.
    let schedule = ["1s", "1s", "2s", "2s", "5s", "5s", "10s", "30s"];
    let running = hookline::app::start(settings(&h, "retry", &schedule))
        .await
        .unwrap();
    let mut last = [0i64; 2];
    for i in 0..3 {
        let p = i % 2;
        last[p as usize] = h
            .produce_json(
                TOPIC,
                p,
                &json!({"id": format!("f{i}"), "category": "flaky", "severity": "low"}),
            )
            .await;
    }
    // The source offsets settle as soon as the events are safe in the retry topic, long
    // before they are delivered.
    assert!(
        eventually(Duration::from_secs(60), || h.committed("retry", TOPIC, 2)
            == vec![last[0] + 1, last[1] + 1])
        .await
    );
    assert!(
        h.receiver.accepted("/flaky").is_empty(),
        "committed before delivery"
    );
    up.store(true, Ordering::SeqCst);

    assert!(
        h.receiver
            .wait_until(scaled(Duration::from_secs(120)), |r| r
                .iter()
                .filter(|r| r.status == 200)
                .count()
                >= 3)
            .await,
        "every event delivered once its receiver recovered"
    );
    let delivered: BTreeSet<String> = h
        .receiver
        .accepted("/flaky")
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered, ["f0", "f1", "f2"].map(String::from).into());
    // The same delivery id on every attempt, across rounds.
    for id in ["f0", "f1", "f2"] {
        let ids: BTreeSet<String> = h
            .receiver
            .requests_to("/flaky")
            .iter()
            .filter(|r| r.json()["id"] == id)
            .map(|r| r.header("webhook-id").unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1, "{id} was sent with {ids:?}");
    }
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("hookline_retry_topic_writes_total{subscription=\"flaky\"}"),
        "{metrics}"
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_schedule_dead_letters_with_the_cause() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(rules());
    h.receiver.respond("/flaky", |_| Respond::status(503));
    let running = hookline::app::start(settings(&h, "exhaust", &["1s"]))
        .await
        .unwrap();
    h.produce_json(
        TOPIC,
        0,
        &json!({"id": "x", "category": "flaky", "severity": "low"}),
    )
    .await;
    let letters = h.dead_letters(1, Duration::from_secs(20));
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].header("hookline-reason"),
        "retry-schedule-exhausted"
    );
    assert_eq!(letters[0].header("hookline-subscription"), "flaky");
    assert_eq!(letters[0].header("hookline-status"), "503");
    assert!(
        letters[0]
            .header("hookline-error")
            .starts_with("still failing after 1 durable retry rounds"),
        "{:?}",
        letters[0].headers
    );
    // Two rounds of two attempts: the first pass and the one retry round.
    assert_eq!(h.receiver.requests_to("/flaky").len(), 4);
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_does_not_hold_up_the_others() {
    let h = Harness::new(TOPIC, 2).await;
    h.write_rules(rules());
    h.receiver
        .respond("/down", |_| Respond::ok().after(Duration::from_secs(30)));
    let running = hookline::app::start(settings(&h, "isolation", &["1h"]))
        .await
        .unwrap();
    for i in 0..200 {
        h.produce_json(
            TOPIC,
            i % 2,
            &json!({"id": format!("b{i}"), "category": "both", "severity": "low"}),
        )
        .await;
    }
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(20), |r| r
                .iter()
                .filter(|r| r.path == "/up" && r.status == 200)
                .count()
                == 200)
            .await,
        "the healthy subscription got everything: {}",
        h.receiver.accepted("/up").len()
    );
    // The hung receiver's overflow waits in its backlog, not in memory.
    let metrics = running.metrics.render();
    assert!(
        metrics
            .contains("hookline_backlog_spilled_total{cause=\"queue_full\",subscription=\"down\"}")
            || metrics
                .contains("hookline_backlog_spilled_total{cause=\"slow\",subscription=\"down\"}"),
        "{metrics}"
    );
    running.stop();
    running.wait().await;
}
