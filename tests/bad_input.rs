//! Bad input gets a clear error and loses nothing: it goes to the dead-letter topic with a
//! reason, its offset is settled, and the router keeps routing what follows.

mod common;

use std::time::Duration;

use common::{eventually, Harness};
use serde_json::json;

const TOPIC: &str = "events";

const RULES: &str = concat!(
    events_source!(),
    r#"
templates:
  - id: strict
    expression: "{id: id, n: abs(category)}"
subscriptions:
  - id: sink
    url: "{receiver}/sink"
  - id: picky
    url: "{receiver}/picky"
    template: strict
routes:
  - id: all
    to: [sink]
  - id: picky
    match: { category: render-me }
    to: [picky]
"#
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_are_dead_lettered_with_a_reason_and_routing_goes_on() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(RULES);
    let mut settings = h.settings("bad");
    settings.kafka.max_message_bytes = 2000;
    let running = hookline::app::start(settings).await.expect("start");

    h.produce(TOPIC, 0, b"this is not json").await;
    h.produce(
        TOPIC,
        0,
        br#"[{"id":"in-array","category":"x","severity":"low"}, 42]"#,
    )
    .await;
    h.produce(TOPIC, 0, b"\"just a string\"").await;
    h.produce(TOPIC, 0, &vec![b' '; 2001]).await;
    h.produce_json(
        TOPIC,
        0,
        &json!({"id": "r1", "category": "render-me", "severity": "low"}),
    )
    .await;
    let last = h
        .produce_json(
            TOPIC,
            0,
            &json!({"id": "after", "category": "x", "severity": "low"}),
        )
        .await;

    assert!(
        h.receiver
            .wait_until(Duration::from_secs(20), |r| r
                .iter()
                .any(|r| r.json()["id"] == "after"))
            .await,
        "routing went on"
    );
    let mut letters = h.dead_letters(5, Duration::from_secs(20));
    // Dead letters are written concurrently; their order in the topic is not promised.
    letters.sort_by_key(|l| {
        let n = |h: &str| l.header(h).parse::<i64>().unwrap_or(-1);
        (n("hookline-source-offset"), n("hookline-source-index"))
    });
    let reasons: Vec<(&str, &str)> = letters
        .iter()
        .map(|l| {
            (
                l.header("hookline-reason"),
                l.header("hookline-source-offset"),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("not-json", "0"),
            ("not-an-event", "1"),
            ("not-an-event", "2"),
            ("too-large", "3"),
            ("render-failed", "4")
        ],
        "{letters:#?}"
    );
    assert_eq!(
        letters[0].payload, b"this is not json",
        "the original bytes are kept"
    );
    assert!(letters[0]
        .header("hookline-error")
        .starts_with("message is not JSON"));
    assert_eq!(letters[1].header("hookline-source-index"), "1");
    assert_eq!(
        letters[1].header("hookline-error"),
        "element 1 is a number, not a JSON object"
    );
    assert_eq!(letters[4].header("hookline-subscription"), "picky");
    let delivered: Vec<String> = h
        .receiver
        .accepted("/sink")
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    let mut delivered = delivered;
    delivered.sort();
    assert_eq!(delivered, vec!["after", "in-array", "r1"]);
    assert!(
        eventually(Duration::from_secs(10), || h.committed("bad", TOPIC, 1)[0]
            == last + 1)
        .await
    );
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("hookline_dead_letters_total{reason=\"not-json\"} 1")
            && metrics.contains("hookline_render_errors_total{subscription=\"picky\"} 1"),
        "{metrics}"
    );
    running.stop();
    running.wait().await;
}
