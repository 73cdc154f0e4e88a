//! The benchmark harness counts right: its receiver process answers as scripted and counts
//! per path, its broker process keeps what is produced, and a whole scenario (broker,
//! receiver and `hookline run` as separate processes) delivers and reports every expected
//! event. Counts only; speed is never asserted in a test.

use std::time::Duration;

use hookline::bench::broker::TopicSpec;
use hookline::bench::producer::{EventShape, Pace, Producer};
use hookline::bench::rules::{RuleSet, Subscription};
use hookline::bench::scenarios::throughput::{self, ThroughputSpec};
use hookline::bench::scenarios::{Options, Variant};
use hookline::bench::{
    closed_port_url, now_micros, Behaviour, BrokerProcess, Harness, ReceiverProcess, RouterProcess,
    RouterSpec,
};

const DEADLINE: Duration = Duration::from_secs(120);

fn harness() -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        Harness::new(env!("CARGO_BIN_EXE_hookline"), dir.path()),
        dir,
    )
}

fn body(events: usize, produced_us: u64) -> String {
    let one = format!(r#"{{"id":"x","produced_us":{produced_us}}}"#);
    format!("[{}]", vec![one; events].join(","))
}

#[tokio::test]
async fn the_receiver_answers_as_scripted_and_counts_per_path() {
    let (harness, _dir) = harness();
    let receiver = ReceiverProcess::start(
        &harness,
        &[
            ("/down", Behaviour::status(503).retry_after(7)),
            ("/slow", Behaviour::ok().after(Duration::from_millis(200))),
            ("/hole", Behaviour::hang()),
        ],
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: String| http.post(receiver.url(path)).body(body).send();

    let sent = now_micros() - 5_000;
    let ok = post("/ok", body(3, sent)).await.unwrap();
    assert_eq!(ok.status(), 200);
    let down = post("/down", body(1, sent)).await.unwrap();
    assert_eq!(down.status(), 503);
    assert_eq!(down.headers()["retry-after"], "7");
    let slow = post("/slow", "no timestamps".into()).await.unwrap();
    assert_eq!(slow.status(), 200);
    let hole = tokio::spawn(http.post(receiver.url("/hole")).body(body(1, sent)).send());
    let (stats, _) = receiver
        .wait_for(DEADLINE, |s| s.path("/hole").hung == 1)
        .await
        .unwrap();
    assert!(!hole.is_finished(), "a hanging path never answers");
    hole.abort();

    let ok = stats.path("/ok");
    assert_eq!((ok.requests, ok.events, ok.accepted), (1, 3, 1));
    assert_eq!(ok.latency.count, 3);
    // Sent 5 ms before: at least that, and not absurdly more (a loaded machine may be slow).
    assert!(ok.latency.p50_us >= 5_000, "{:?}", ok.latency);
    assert!(ok.latency.p50_us < 60_000_000, "{:?}", ok.latency);
    let down = stats.path("/down");
    assert_eq!((down.requests, down.accepted, down.refused), (1, 0, 1));
    let slow = stats.path("/slow");
    assert_eq!((slow.requests, slow.events, slow.accepted), (1, 0, 1));
    assert_eq!(stats.path("/hole").hung, 1);
    assert!(stats.connections >= 1);

    // Behaviour changes at run time; a reset forgets the counts.
    receiver.respond("/down", &Behaviour::ok()).await.unwrap();
    assert_eq!(post("/down", String::new()).await.unwrap().status(), 200);
    receiver.reset().await.unwrap();
    let stats = receiver.stats().await.unwrap();
    assert_eq!(stats.path("/ok").requests, 0);
    assert!(stats.paths.is_empty(), "{:?}", stats.paths);
    receiver.stop().await;
}

#[tokio::test]
async fn a_router_process_delivers_what_the_broker_process_holds() {
    let (harness, _dir) = harness();
    let topic = "harness.events";
    let broker = BrokerProcess::start(&harness, 1, &[TopicSpec::new(topic, 4)], true)
        .await
        .unwrap();
    let receiver = ReceiverProcess::start(&harness, &[]).await.unwrap();
    let producer = Producer::new(broker.bootstrap(), topic, 5).unwrap();
    let produced = tokio::task::spawn_blocking(move || {
        let p = producer.produce(0, 200, EventShape::SMALL, Pace::Max);
        producer.flush().unwrap();
        p
    })
    .await
    .unwrap();
    assert_eq!(produced.high, 100);
    let retained = broker.retained(topic).await.unwrap();
    assert_eq!((retained.produced(), retained.dropped()), (200, 0));
    assert!(
        retained.spread().0 > 0,
        "keyed events reach every partition"
    );

    let rules = RuleSet::new(topic)
        .subscription(Subscription::new("ok", receiver.url("/ok")).set("concurrency", "4"))
        .subscription(Subscription::new("paused", receiver.url("/paused")).set("status", "paused"))
        .subscription(
            Subscription::new("closed", closed_port_url("/closed").unwrap())
                .set("retry", "{attempts: 1}"),
        )
        .high_to_all()
        .to_yaml();
    let mut router = RouterProcess::start(
        &harness,
        &RouterSpec::new("r1", broker.bootstrap(), "harness", rules),
    )
    .await
    .unwrap();
    router.wait_ready(DEADLINE).await.unwrap();
    let (stats, done) = receiver
        .wait_for(DEADLINE, |s| s.path("/ok").events >= 100)
        .await
        .unwrap();
    assert!(done, "{:?}", stats.paths);
    assert_eq!(stats.path("/ok").events, 100);
    assert_eq!(stats.path("/paused").requests, 0);
    let metrics = router.metrics().await.unwrap();
    assert_eq!(metrics.sum("hookline_events_consumed_total", &[]), 200.0);
    assert_eq!(
        metrics.sum(
            "hookline_deliveries_total",
            &[("subscription", "ok"), ("outcome", "delivered")]
        ),
        100.0
    );
    assert!(router.cpu_seconds().unwrap() > 0.0);
    assert!(router.memory().unwrap().peak_rss_bytes > 0);
    router.terminate().await;
    receiver.stop().await;
    broker.stop().await;
}

#[tokio::test]
async fn a_throughput_scenario_reports_every_delivery() {
    let (harness, _dir) = harness();
    let spec = ThroughputSpec {
        events: 2_000,
        partitions: 4,
        concurrency: 8,
        ..ThroughputSpec::batched()
    };
    let options = Options {
        rounds: 1,
        variants: vec![Variant::this("this")],
        wrk: None,
        timeout: DEADLINE,
    };
    let runs = throughput::run(&harness, &spec, &options).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert!(run.complete);
    assert_eq!(run.events_read, 2_000);
    assert_eq!(run.delivered, 1_000);
    assert!(run.requests < 1_000, "batched: {} requests", run.requests);
    assert!(run.cpu_seconds > 0.0 && run.peak_rss_mib > 0.0);
    assert_eq!(run.consumer.unwrap().messages, 2_000);
}
