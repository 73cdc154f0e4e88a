//! `hookline replay`: dead letters go back to their own subscription only, with the same
//! delivery id, rendered with the template in force.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{holds_for, Harness};
use hookline::dev::receiver::Respond;
use hookline::retry_topic::replay::{replay, ReplayFilter};
use serde_json::json;

const TOPIC: &str = "events";

const RULES: &str = concat!(
    events_source!(),
    r#"
subscriptions:
  - id: picky
    url: "{receiver}/picky"
  - id: other
    url: "{receiver}/other"
routes:
  - id: picky
    match: { category: p }
    to: [picky]
  - id: other
    match: { category: o }
    to: [other]
"#
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_sends_dead_letters_back_to_their_subscription_only() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(RULES);
    // Both receivers reject at first; picky is fixed before the replay.
    h.receiver.respond("/picky", |n| {
        if n < 3 {
            Respond::status(422)
        } else {
            Respond::ok()
        }
    });
    h.receiver.respond("/other", |_| Respond::status(400));
    let settings = h.settings("replay");
    let running = hookline::app::start(settings.clone()).await.unwrap();
    for i in 0..3 {
        h.produce_json(
            TOPIC,
            0,
            &json!({"id": format!("p{i}"), "category": "p", "severity": "low"}),
        )
        .await;
    }
    for i in 0..2 {
        h.produce_json(
            TOPIC,
            0,
            &json!({"id": format!("o{i}"), "category": "o", "severity": "low"}),
        )
        .await;
    }
    assert_eq!(h.dead_letters(5, Duration::from_secs(20)).len(), 5);
    let first_ids: BTreeSet<String> = h
        .receiver
        .requests_to("/picky")
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();

    let only_picky = ReplayFilter {
        subscription: Some("picky".into()),
        ..Default::default()
    };
    let tier = settings
        .retry_schedule
        .as_ref()
        .and_then(|s| s.first_topic())
        .expect("a first retry tier");
    let waiting = h.records_in(&tier);
    let dry = replay(
        &settings,
        &ReplayFilter {
            dry_run: true,
            ..only_picky.clone()
        },
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!((dry.scanned, dry.matched, dry.to_retry_topic), (5, 3, 3));
    assert_eq!(h.records_in(&tier), waiting, "a dry run writes nothing");

    let done = replay(&settings, &only_picky, |_, _| {}).await.unwrap();
    assert_eq!((done.scanned, done.matched, done.to_retry_topic), (5, 3, 3));
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(20), |r| r
                .iter()
                .filter(|r| r.path == "/picky" && r.status == 200)
                .count()
                == 3)
            .await,
        "the replayed events were delivered"
    );
    let replayed: BTreeSet<String> = h
        .receiver
        .accepted("/picky")
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(
        replayed, first_ids,
        "same delivery ids, so the receiver can dedupe"
    );
    let bodies: BTreeSet<String> = h
        .receiver
        .accepted("/picky")
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies, ["p0", "p1", "p2"].map(String::from).into());
    assert_eq!(
        h.records_in(&tier),
        waiting + 3,
        "only the selected dead letters were written"
    );
    assert!(
        holds_for(Duration::from_millis(500), || h
            .receiver
            .requests_to("/other")
            .len()
            == 2)
        .await,
        "other subscriptions are not replayed"
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_cannot_read_to_the_end_says_so() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(RULES);
    let settings = h.settings("replay-stuck");
    for i in 0..3 {
        h.produce(common::DLQ, 0, format!("{{\"i\": {i}}}").as_bytes())
            .await;
    }
    // Every fetch fails from now on: the end of the topic is known, its records never come.
    h.broker.cluster().request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 1000],
    );
    let filter = ReplayFilter {
        idle_timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let err = replay(&settings, &filter, |_, _| {}).await.unwrap_err();
    let hookline::retry_topic::replay::ReplayError::Incomplete {
        summary,
        unfinished,
        ..
    } = err
    else {
        panic!("expected an incomplete replay, got {err}");
    };
    assert_eq!(summary.scanned, 0);
    assert_eq!(unfinished.len(), 1);
    assert_eq!((unfinished[0].partition, unfinished[0].end), (0, 3));
    h.broker
        .cluster()
        .clear_request_errors(RDKafkaApiKey::Fetch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_json_summarises_a_dry_run() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(RULES);
    let _settings = h.settings("replay-json"); // creates the retry tiers on the broker
    for i in 0..2 {
        h.produce(common::DLQ, 0, format!("{{\"i\": {i}}}").as_bytes())
            .await;
    }
    let bootstrap = h.broker.bootstrap_servers();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .args(["replay", "--dry-run", "--json"])
            .env_remove("HOOKLINE_CONFIG")
            .env("HOOKLINE_KAFKA__BROKERS", bootstrap)
            .env("HOOKLINE_KAFKA__DEAD_LETTER_TOPIC", common::DLQ)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["scanned"], 2);
    assert_eq!(summary["unfinished"], json!([]));
}
