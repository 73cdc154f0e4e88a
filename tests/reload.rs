//! Rules reloaded while events flow: through the admin API, twice, one of them invalid.
//! Nothing is lost or duplicated, and no event is routed with a half-loaded rule set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{eventually, holds_for, Harness};
use serde_json::{json, Value};

const TOPIC: &str = "events";
const PARTITIONS: i32 = 3;
const EVENTS: usize = 600;

fn rules(sub: &str, path: &str) -> String {
    common::fixtures::rules(&format!(
        r#"
subscriptions:
  - id: {sub}
    url: "{{receiver}}{path}"
routes:
  - id: route-{sub}
    to: [{sub}]
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_nothing_duplicate_nothing_and_switch_atomically() {
    let h = Harness::new(TOPIC, PARTITIONS).await;
    h.write_rules(&rules("one", "/v1"));
    let running = hookline::app::start(h.settings("reload"))
        .await
        .expect("start");
    let admin = format!("http://{}", running.admin_addr);
    let http = reqwest::Client::new();

    // Produce steadily in the background while the rules change.
    let producer = h.broker.producer().clone();
    let produce = tokio::spawn(async move {
        let mut placed = Vec::new();
        for i in 0..EVENTS {
            let event =
                json!({"id": format!("e{i}"), "category": "c", "severity": "low"}).to_string();
            let partition = (i as i32) % PARTITIONS;
            let record = rdkafka::producer::FutureRecord::<str, str>::to(TOPIC)
                .payload(&event)
                .partition(partition);
            let (p, offset) = producer
                .send(record, Duration::from_secs(10))
                .await
                .map(|d| (d.partition, d.offset))
                .map_err(|(e, _)| e)
                .unwrap();
            placed.push((format!("e{i}"), p, offset));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        placed
    });

    assert!(
        h.receiver
            .wait_until(Duration::from_secs(20), |r| r.len() >= 100)
            .await
    );
    h.write_rules(&rules("two", "/v2"));
    let ok = http
        .post(format!("{admin}/api/v1/rules/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    assert!(
        h.receiver
            .wait_until(Duration::from_secs(20), |r| r
                .iter()
                .filter(|r| r.path == "/v2")
                .count()
                >= 100)
            .await
    );
    common::write_rules(
        h.rules.path(),
        "routes:\n  - id: broken\n    to: [nobody]\n    match: { expr: 'event.(' }\n",
    );
    let rejected = http
        .post(format!("{admin}/api/v1/rules/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 422);
    let body: Value = rejected.json().await.unwrap();
    assert_eq!(body["status"], "rejected");
    let problems: Vec<String> = serde_json::from_value(body["problems"].clone()).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("rules.yaml:4:") && p.contains("invalid JMESPath")),
        "{problems:?}"
    );

    let placed = produce.await.unwrap();
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(30), |r| r.len() >= EVENTS)
            .await,
        "all events still routed with the last good rules ({} of {EVENTS})",
        h.receiver.requests().len()
    );
    assert!(
        holds_for(Duration::from_millis(300), || h.receiver.requests().len()
            == EVENTS)
        .await,
        "an event was delivered twice"
    );

    // Exactly once each, to one of the two rule sets' subscriptions.
    let requests = h.receiver.requests();
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for r in &requests {
        let id = r.json()["id"].as_str().unwrap().to_string();
        assert!(
            seen.insert(id.clone(), if r.path == "/v1" { "v1" } else { "v2" })
                .is_none(),
            "{id} delivered twice"
        );
    }
    assert_eq!(seen.len(), EVENTS);
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        placed.iter().map(|p| p.0.clone()).collect()
    );

    // Within each partition (read in order), every event routed by the old set comes before
    // every event routed by the new one: the switch happened at one point, whole.
    for p in 0..PARTITIONS {
        let mut in_order: Vec<&(String, i32, i64)> = placed.iter().filter(|e| e.1 == p).collect();
        in_order.sort_by_key(|e| e.2);
        let sets: Vec<&str> = in_order.iter().map(|e| seen[&e.0]).collect();
        let first_v2 = sets.iter().position(|s| *s == "v2").unwrap_or(sets.len());
        assert!(
            sets[first_v2..].iter().all(|s| *s == "v2"),
            "partition {p} went back to the old rules: {sets:?}"
        );
    }

    let summary: Value = http
        .get(format!("{admin}/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["routes"], json!(["route-two"]));
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("hookline_rule_reloads_total{result=\"rejected\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookline_rule_reloads_total{result=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            let last: Vec<i64> = (0..PARTITIONS)
                .map(|p| {
                    placed
                        .iter()
                        .filter(|e| e.1 == p)
                        .map(|e| e.2)
                        .max()
                        .unwrap()
                        + 1
                })
                .collect();
            h.committed("reload", TOPIC, PARTITIONS) == last
        })
        .await
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_dry_runs_an_event_without_delivering_it() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(&rules("one", "/v1"));
    let running = hookline::app::start(h.settings("dry"))
        .await
        .expect("start");
    let resp: Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/rules/test", running.admin_addr))
        .json(&json!({"topic": TOPIC, "event": {"id": "x", "category": "c", "severity": "HIGH"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["events"][0]["severity"], "high");
    assert_eq!(resp["events"][0]["routes"], json!(["route-one"]));
    assert_eq!(resp["events"][0]["deliveries"][0]["subscription"], "one");
    assert_eq!(resp["events"][0]["deliveries"][0]["body"]["id"], "x");
    assert!(
        holds_for(Duration::from_millis(300), || h
            .receiver
            .requests()
            .is_empty())
        .await,
        "a dry run delivers nothing"
    );
    // Ready once the group has assigned the topic's partition.
    let readyz = format!("http://{}/readyz", running.admin_addr);
    let ready = common::wait::eventually_async(Duration::from_secs(30), || async {
        reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "/readyz never became ready");
    running.stop();
    running.wait().await;
}
