//! The per-subscription backlog, in-process on real parts (a Kafka-protocol broker, the router,
//! an HTTP receiver on loopback): a subscription that cannot keep up never holds up the source
//! or the others; its events wait in Kafka, are delivered in order at its own pace, survive a
//! restart, and wait while it is paused.

mod common;

use std::time::Duration;

use common::{eventually, Harness};
use hookline::dev::receiver::{Recorded, Respond};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;

const TOPIC: &str = "events";

/// Waits (a minute) until group `group` committed the one-partition source topic up to `at`.
async fn source_commits_reach(h: &Harness, group: &str, at: i64) {
    assert!(
        eventually(Duration::from_secs(60), || h.committed(group, TOPIC, 1)
            == [at])
        .await,
        "source commits stuck at {:?}",
        h.committed(group, TOPIC, 1)
    );
}

fn numbers(requests: &[Recorded]) -> Vec<i64> {
    requests
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap_or(-1))
        .collect()
}

async fn produce(h: &Harness, range: std::ops::Range<i64>) {
    for n in range {
        let event = json!({"id": format!("e{n}"), "category": "alert", "severity": "high", "n": n});
        h.produce_json(TOPIC, 0, &event).await;
    }
}

fn metric(running: &hookline::app::Running, line_start: &str) -> Option<f64> {
    running
        .metrics
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

const ORDERED: &str = concat!(
    events_source!(),
    r#"
subscriptions:
  - id: ordered
    url: "{receiver}/ordered"
    concurrency: 1
    queue: 4
  - id: fast
    url: "{receiver}/fast"
routes:
  - id: all
    to: [ordered, fast]
"#
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscription_spills_keeps_kafka_order_and_never_holds_up_the_source() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(ORDERED);
    h.receiver.respond("/ordered", |_| {
        Respond::ok().after(Duration::from_millis(40))
    });
    let running = hookline::app::start(h.settings("ordered")).await.unwrap();
    const N: i64 = 300;
    produce(&h, 0..N).await;

    // The source is committed to the end long before the slow subscription is done.
    source_commits_reach(&h, "ordered", N).await;
    let slow_so_far = h.receiver.accepted("/ordered").len() as i64;
    assert!(
        slow_so_far < N,
        "the slow subscription had {slow_so_far} when the source was committed: nothing waited"
    );
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r
                .iter()
                .filter(|r| r.path == "/fast")
                .count()
                == N as usize)
            .await
    );
    // Every event reaches the slow one too, through its backlog, in Kafka order.
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(120), |r| r
                .iter()
                .filter(|r| r.path == "/ordered" && r.status == 200)
                .count()
                >= N as usize)
            .await,
        "ordered got {}",
        h.receiver.accepted("/ordered").len()
    );
    assert_eq!(
        numbers(&h.receiver.accepted("/ordered")),
        (0..N).collect::<Vec<_>>(),
        "delivered out of order"
    );
    let spilled = metric(
        &running,
        "hookline_backlog_spilled_total{cause=\"queue_full\",subscription=\"ordered\"}",
    )
    .or_else(|| {
        metric(
            &running,
            "hookline_backlog_spilled_total{cause=\"slow\",subscription=\"ordered\"}",
        )
    })
    .unwrap_or(0.0);
    assert!(spilled > 0.0, "{}", running.metrics.render());
    assert!(
        metric(
            &running,
            "hookline_backlog_deliveries_total{subscription=\"ordered\"}"
        )
        .unwrap_or(0.0)
            > 0.0
    );
    running.stop();
    running.wait().await;
}

const PAUSED: &str = concat!(
    events_source!(),
    r#"
subscriptions:
  - id: later
    url: "{receiver}/later"
    concurrency: 1
    status: STATUS
routes:
  - id: all
    to: [later]
"#
);

/// A backlog record Kafka refuses for good (larger than the broker takes) is not retried
/// forever: each of its deliveries is dead-lettered with its own event and delivery id, and the
/// source moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_record_kafka_refuses_is_dead_lettered_delivery_by_delivery() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(&PAUSED.replace("STATUS", "paused"));
    // One message of three events, produced before the router starts: the router's first
    // produce request is the record its three deliveries share, and the broker refuses it.
    let events: Vec<_> = (0..3)
        .map(|n| json!({"id": format!("e{n}"), "category": "alert", "severity": "high", "n": n}))
        .collect();
    h.produce_json(TOPIC, 0, &json!(events)).await;
    h.broker.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let running = hookline::app::start(h.settings("refused")).await.unwrap();
    let mut letters = h.dead_letters(3, Duration::from_secs(60));
    assert_eq!(letters.len(), 3, "one dead letter per delivery");
    // Written concurrently: in any order.
    letters.sort_by_key(|l| l.json()["n"].as_i64());
    let mut ids = std::collections::HashSet::new();
    for (n, letter) in letters.iter().enumerate() {
        assert_eq!(letter.header("hookline-reason"), "backlog-write-failed");
        assert_eq!(letter.header("hookline-subscription"), "later");
        assert_eq!(letter.header("hookline-source-index"), n.to_string());
        assert_eq!(letter.json()["n"], n, "each letter carries its own event");
        assert!(ids.insert(letter.header("hookline-webhook-id").to_string()));
    }
    source_commits_reach(&h, "refused", 1).await;
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_subscription_keeps_its_events_in_its_backlog_across_a_restart() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(&PAUSED.replace("STATUS", "paused"));
    // Produced before the router starts, so it reads them in a burst.
    produce(&h, 0..50).await;
    let running = hookline::app::start(h.settings("paused")).await.unwrap();
    // Settled by being written to the backlog: the source moves on.
    source_commits_reach(&h, "paused", 50).await;
    assert_eq!(
        metric(&running, "hookline_queue_depth{subscription=\"later\"}"),
        Some(0.0),
        "a paused subscription holds nothing in memory"
    );
    running.stop();
    running.wait().await;

    // Deliveries spilled together share records; each says how many it holds, and together
    // they hold every event once, in order.
    let records = common::read_topic(
        &h.broker.bootstrap_servers(),
        "hookline.sub.later",
        50,
        Duration::from_secs(5),
    );
    let mut spilled = Vec::new();
    for record in &records {
        let deliveries = record.json()["deliveries"].as_array().cloned().unwrap();
        assert_eq!(
            record.header("hookline-deliveries"),
            deliveries.len().to_string()
        );
        assert_eq!(record.header("hookline-subscription"), "later");
        // Each refers to its event in the source topic: [offset, index, age_ms, lag_ms].
        spilled.extend(deliveries.iter().map(|d| {
            assert_eq!(d[1], 0, "{d}");
            d[0].as_i64().unwrap()
        }));
    }
    assert_eq!(spilled, (0..50).collect::<Vec<_>>(), "the events' offsets");
    assert!(
        records.len() < 50,
        "a burst of 50 spilled deliveries took {} records",
        records.len()
    );

    // A new instance sees the backlog, and still sends nothing while paused.
    let running = hookline::app::start(h.settings("paused")).await.unwrap();
    let depth = || metric(&running, "hookline_backlog_depth{subscription=\"later\"}");
    // Depth counts records; a record holds up to 256 deliveries of one source partition.
    assert!(
        eventually(Duration::from_secs(60), || depth()
            .is_some_and(|d| (1.0..=50.0).contains(&d)))
        .await,
        "backlog depth {:?}",
        depth()
    );
    assert!(h.receiver.requests_to("/later").is_empty());

    // Resumed: everything arrives, in order.
    h.write_rules(&PAUSED.replace("STATUS", "active"));
    hookline::rules::reload::reload_now(h.rules.path(), &running.router, &running.metrics)
        .await
        .unwrap();
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r.len() >= 50)
            .await,
        "got {}",
        h.receiver.requests().len()
    );
    assert_eq!(
        numbers(&h.receiver.accepted("/later")),
        (0..50).collect::<Vec<_>>()
    );
    assert!(
        eventually(Duration::from_secs(30), || depth() == Some(0.0)).await,
        "backlog depth after draining {:?}",
        depth()
    );
    running.stop();
    running.wait().await;
}

const PAUSED_HIGH: &str = concat!(
    events_source!(),
    r#"
subscriptions:
  - id: later
    url: "{receiver}/later"
    status: STATUS
routes:
  - id: high
    match: {min_severity: high}
    to: [later]
"#
);

/// A backlog refers to its events in their source topic. When the topic no longer has one
/// (here the broker dropped the oldest messages of the partition; in production, retention)
/// before its subscription takes it, that delivery is dead-lettered as `source-gone`, saying
/// where the event was, and the rest of the backlog is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_its_source_topic_no_longer_has_is_dead_lettered_as_source_gone() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(&PAUSED_HIGH.replace("STATUS", "paused"));
    let running = hookline::app::start(h.settings("gone")).await.unwrap();
    produce(&h, 0..3).await;
    // In the backlog (by reference) before the broker drops them.
    source_commits_reach(&h, "gone", 3).await;
    // About 6.4 MB of events no route takes: the mock broker keeps about 5 MB per partition
    // and drops the oldest messages beyond.
    let filler = "x".repeat(64 * 1024);
    for n in 0..100 {
        let event =
            json!({"id": format!("f{n}"), "category": "alert", "severity": "low", "pad": filler});
        h.produce_json(TOPIC, 0, &event).await;
    }
    for n in 3..5 {
        let event = json!({"id": format!("e{n}"), "category": "alert", "severity": "high", "n": n});
        h.produce_json(TOPIC, 0, &event).await;
    }
    source_commits_reach(&h, "gone", 105).await;
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", h.broker.bootstrap_servers())
        .create()
        .unwrap();
    let (low, _) =
        rdkafka::consumer::Consumer::fetch_watermarks(&consumer, TOPIC, 0, Duration::from_secs(10))
            .unwrap();
    assert!(
        low >= 3,
        "the broker still has offset {low}: nothing to test"
    );

    h.write_rules(&PAUSED_HIGH.replace("STATUS", "active"));
    hookline::rules::reload::reload_now(h.rules.path(), &running.router, &running.metrics)
        .await
        .unwrap();
    let letters = h.dead_letters(3, Duration::from_secs(60));
    assert_eq!(letters.len(), 3);
    for (n, letter) in letters.iter().enumerate() {
        assert_eq!(letter.header("hookline-reason"), "source-gone");
        assert_eq!(letter.header("hookline-subscription"), "later");
        assert_eq!(letter.header("hookline-source-offset"), n.to_string());
        assert!(letter
            .header("hookline-error")
            .contains("no longer in its source topic"));
        assert!(letter.payload.is_empty(), "the event is gone: no payload");
    }
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r.len() >= 2)
            .await,
        "got {}",
        h.receiver.requests().len()
    );
    // Its default concurrency delivers them side by side: any order.
    let mut got = numbers(&h.receiver.accepted("/later"));
    got.sort_unstable();
    assert_eq!(got, [3, 4]);
    assert!(
        eventually(Duration::from_secs(30), || metric(
            &running,
            "hookline_dead_letters_total{reason=\"source-gone\"}"
        ) == Some(3.0))
        .await,
        "{}",
        running.metrics.render()
    );
    running.stop();
    running.wait().await;
}

const DEAD: &str = concat!(
    events_source!(),
    r#"
subscriptions:
  - id: dead
    url: "http://127.0.0.1:PORT/dead"
    retry: { attempts: 2, initial_backoff: 10ms, max_backoff: 20ms }
  - id: alive
    url: "{receiver}/alive"
routes:
  - id: all
    to: [dead, alive]
"#
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_refusing_connections_never_holds_up_the_source() {
    let h = Harness::new(TOPIC, 1).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    h.write_rules(&DEAD.replace("PORT", &port.to_string()));
    let running = hookline::app::start(h.settings("dead")).await.unwrap();
    const N: i64 = 2_000;
    produce(&h, 0..N).await;
    source_commits_reach(&h, "dead", N).await;
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r.len() >= N as usize)
            .await
    );
    assert_eq!(
        metric(&running, "hookline_queue_depth{subscription=\"dead\"}"),
        Some(0.0),
        "nothing waits in memory behind a dead receiver"
    );
    running.stop();
    running.wait().await;
}

const FLEET: &str = concat!(
    events_source!(),
    r#"
subscriptions:
  - id: one
    url: "{receiver}/one"
    concurrency: 1
routes:
  - id: all
    to: [one]
"#
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_fleet_mode_one_instance_delivers_each_subscription_in_order() {
    let h = Harness::new(TOPIC, 2).await;
    h.write_rules(FLEET);
    let keyed = || {
        let mut config = h.config("fleet");
        config.delivery.mode = hookline::config::DeliveryMode::Keyed;
        h.finish(config)
    };
    let a = hookline::app::start(keyed()).await.unwrap();
    let b = hookline::app::start(keyed()).await.unwrap();
    const N: i64 = 200;
    for n in 0..N {
        let event = json!({"id": format!("e{n}"), "category": "alert", "severity": "high", "n": n});
        h.produce_json(TOPIC, (n % 2) as i32, &event).await;
    }
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(120), |r| {
                let mut seen: Vec<i64> = numbers(r);
                seen.sort_unstable();
                seen.dedup();
                seen.len() == N as usize
            })
            .await,
        "delivered {}",
        h.receiver.requests().len()
    );
    // Every delivery went through the backlog, and each source partition's events arrived
    // in order (a rebalance may repeat one; the first arrivals are in order).
    let mut first_seen = Vec::new();
    for n in numbers(&h.receiver.accepted("/one")) {
        if !first_seen.contains(&n) {
            first_seen.push(n);
        }
    }
    for parity in 0..2 {
        let part: Vec<i64> = first_seen
            .iter()
            .copied()
            .filter(|n| n % 2 == parity)
            .collect();
        let mut sorted = part.clone();
        sorted.sort_unstable();
        assert_eq!(part, sorted, "partition {parity} out of order");
    }
    let delivered_by = |r: &hookline::app::Running| {
        metric(r, "hookline_backlog_deliveries_total{subscription=\"one\"}").unwrap_or(0.0)
    };
    assert!(delivered_by(&a) + delivered_by(&b) >= N as f64);
    let spilled: f64 = [&a, &b]
        .iter()
        .map(|r| {
            metric(
                r,
                "hookline_backlog_spilled_total{cause=\"keyed\",subscription=\"one\"}",
            )
            .unwrap_or(0.0)
        })
        .sum();
    // At least once each: the second instance joining moves source partitions, and what was
    // read but not yet committed is read (and spilled) again.
    assert!(
        spilled >= N as f64,
        "in fleet mode every delivery goes through the backlog: {spilled} of {N}"
    );
    a.stop();
    b.stop();
    a.wait().await;
    b.wait().await;
}

const SPILLED_FAST: &str = concat!(
    events_source!(),
    r#"
subscriptions:
  - id: fast
    url: "{receiver}/fast"
    concurrency: 16
    queue: 8
routes:
  - id: all
    to: [fast]
"#
);

/// A healthy receiver behind a tiny queue spills at once, while the source is read far faster
/// than it delivers; its backlog, over several partitions, is read back at full speed with
/// give-backs and rewinds all the while. Every event must arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_read_at_full_speed_over_several_partitions_loses_nothing() {
    const PARTITIONS: i32 = 8;
    const N: i64 = 8_000;
    let h = Harness::new(TOPIC, PARTITIONS).await;
    h.write_rules(SPILLED_FAST);
    for n in 0..N {
        let event = json!({"id": format!("e{n}"), "category": "alert", "severity": "high", "n": n});
        h.produce_json(TOPIC, (n % PARTITIONS as i64) as i32, &event)
            .await;
    }
    let mut config = h.config("full-speed");
    config.kafka.backlog_partitions = 4;
    let running = hookline::app::start(h.finish(config)).await.unwrap();
    let distinct = || {
        numbers(&h.receiver.accepted("/fast"))
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
    };
    let all = eventually(Duration::from_secs(180), || distinct().len() == N as usize).await;
    let got = distinct();
    let missing: Vec<_> = (0..N).filter(|n| !got.contains(n)).take(20).collect();
    assert!(
        all,
        "{} of {N} distinct events arrived; first missing {missing:?}\n{}",
        got.len(),
        running.metrics.render()
    );
    running.stop();
    running.wait().await;
}
