//! The holes issue 9's review found in the data path, each shown closed end to end on real
//! parts (a Kafka-protocol broker, routers in this process or as `hookline run` processes, an
//! HTTP receiver on loopback). Each test failed on the code before its fix; the report of
//! issue 9 names the commit that closed each.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::fixtures::{event, rules, TOPIC};
use common::process::RouterCommand;
use common::wait::eventually_async;
use common::{eventually, metric_sum, Harness};
use hookline::dev::receiver::Respond;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;

/// A gate for a receiver path: requests hang until it is opened, then are answered at once.
/// Only requests answered at once count as delivered: a hanging request whose client went
/// away would still be answered (and recorded) by the receiver when its ten minutes are up.
struct Gate {
    open: Arc<AtomicBool>,
    reached: Arc<AtomicBool>,
    delivered: Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    /// `path` hangs (for ten minutes) until [`Gate::open`].
    fn install(h: &Harness, path: &str) -> Gate {
        let gate = Gate {
            open: Arc::default(),
            reached: Arc::default(),
            delivered: Arc::default(),
        };
        let (open, reached, delivered) = (
            gate.open.clone(),
            gate.reached.clone(),
            gate.delivered.clone(),
        );
        h.receiver.respond(path, move |_| {
            reached.store(true, Ordering::SeqCst);
            if open.load(Ordering::SeqCst) {
                delivered.fetch_add(1, Ordering::SeqCst);
                Respond::ok()
            } else {
                Respond::ok().after(Duration::from_secs(600))
            }
        });
        gate
    }

    /// A request arrived.
    fn reached(&self) -> bool {
        self.reached.load(Ordering::SeqCst)
    }

    /// Requests answered after the gate opened.
    fn delivered(&self) -> usize {
        self.delivered.load(Ordering::SeqCst)
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// The mock cluster settles a group's join after about a session timeout (librdkafka's
/// default is 45 s): keep it short where instances come and go.
fn short_sessions(mut config: hookline::config::Config) -> hookline::config::Config {
    for (key, value) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "1000"),
    ] {
        config.kafka.options.insert(key.into(), value.into());
    }
    config
}

fn consumed(running: &hookline::app::Running) -> f64 {
    metric_sum(&running.metrics.render(), "hookline_events_consumed_total{")
}

/// Hole 1: an event whose dedup route's delivery is still in flight is read again after a
/// rebalance; that second reading must not count as a repeat of itself and settle (which let
/// the commit pass it, and a stop then lost it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_1_a_dedup_route_never_suppresses_its_own_redelivery() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: once
    url: "{receiver}/once"
    timeout: 90s
    concurrency: 1
    retry: { attempts: 1 }
    breaker: { enabled: false }
routes:
  - id: once
    to: [once]
    dedup: { key: "event.id", window: 10m }
"#,
        ))
        .build()
        .await;
    let gate = Gate::install(&h, "/once");
    let settings = |h: &Harness| {
        let mut config = h.config("hole1");
        config.delivery.shutdown_grace = Duration::from_millis(500);
        h.finish(short_sessions(config))
    };
    let a = h.start(settings(&h)).await;
    h.produce_json(TOPIC, 0, &event("e", "alert")).await;
    assert!(
        eventually(Duration::from_secs(60), || gate.reached()).await,
        "the delivery is in flight"
    );
    // A second instance joins and leaves: the partition is handed out again, and the first
    // instance reads the event again from the committed offset.
    let b = h.start(settings(&h)).await;
    assert!(
        eventually(Duration::from_secs(60), || consumed(&a) + consumed(&b)
            >= 2.0)
        .await,
        "the join re-assigned the partition"
    );
    b.stop();
    b.wait().await;
    assert!(
        eventually(Duration::from_secs(60), || consumed(&a) >= 2.0).await,
        "the first instance read the event again"
    );
    // It stops before the first delivery finished (the request is abandoned unsettled).
    a.stop();
    a.wait().await;

    gate.open();
    let c = h.start(settings(&h)).await;
    assert!(
        eventually(Duration::from_secs(45), || gate.delivered() >= 1).await,
        "the event was lost: its redelivery was suppressed as a repeat of itself"
    );
    c.stop();
    c.wait().await;
}

/// Hole 2 (a): deliveries handed back from a retry tier wait for room in a full queue; a stop
/// then must leave them unsettled (read again after the restart), never settle them as
/// dropped (which let the final commit pass them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_2a_a_stop_never_settles_a_waiting_delivery_as_dropped() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: hang
    url: "{receiver}/hang"
    timeout: 90s
    concurrency: 1
    queue: 1
    retry: { attempts: 1 }
    breaker: { enabled: false }
routes:
  - id: all
    to: [hang]
"#,
        ))
        .build()
        .await;
    let gate = Gate::install(&h, "/hang");
    let settings = |h: &Harness| {
        let mut config = h.config("hole2a");
        config.delivery.shutdown_grace = Duration::from_millis(500);
        h.finish(short_sessions(config))
    };
    let first = settings(&h);
    let tier = first
        .retry_schedule
        .as_ref()
        .and_then(|s| s.first_topic())
        .expect("a retry tier");
    let running = h.start(first).await;
    const N: i64 = 5;
    for offset in 0..N {
        let origin = hookline::event::Origin {
            topic: TOPIC.into(),
            partition: 0,
            offset,
            index: 0,
        };
        let record = json!({
            "subscription": "hang",
            "webhook_id": hookline::event::webhook_id(&origin, "hang"),
            "event_type": "alert",
            "round": 1,
            "due_ms": 0,
            "event": {"id": format!("r{offset}")},
            "body": {"id": format!("r{offset}")},
            "origin": {"topic": TOPIC, "partition": 0, "offset": offset, "index": 0},
            "received_at": "2026-11-01T00:00:00Z",
            "last_error": "receiver answered 503",
            "last_status": 503
        });
        h.produce_json(&tier, 0, &record).await;
    }
    // One in flight, one queued, the others handed over while the queue is full.
    assert!(eventually(Duration::from_secs(60), || gate.reached()).await);
    let submitted = |running: &hookline::app::Running| {
        metric_sum(
            &running.metrics.render(),
            "hookline_deliveries_submitted_total{subscription=\"hang\"}",
        )
    };
    let _ = eventually(Duration::from_secs(20), || submitted(&running) >= 3.0).await;
    running.stop();
    running.wait().await;

    gate.open();
    let again = h.start(settings(&h)).await;
    assert!(
        eventually(Duration::from_secs(60), || {
            let ids: std::collections::BTreeSet<String> = common::fixtures::ids(
                &h.receiver
                    .requests_to("/hang")
                    .into_iter()
                    .filter(|r| r.status == 200)
                    .collect::<Vec<_>>(),
            )
            .into_iter()
            .collect();
            (0..N).all(|i| ids.contains(&format!("r{i}")))
        })
        .await,
        "deliveries waiting at the stop were settled as dropped: {:?}",
        common::fixtures::ids(&h.receiver.requests_to("/hang"))
    );
    again.stop();
    again.wait().await;
}

/// Hole 2 (c): a retry-tier record hookline could not have written (a `webhook-id` with a
/// line break) is dead-lettered as `invalid-record`; it never reaches a header, and the
/// subscription's lane keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_2c_records_read_back_from_a_retry_tier_are_validated() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: fast
    url: "{receiver}/fast"
routes:
  - id: all
    to: [fast]
"#,
        ))
        .build()
        .await;
    let settings = h.settings("hole2c");
    let tier = settings
        .retry_schedule
        .as_ref()
        .and_then(|s| s.first_topic())
        .expect("a retry tier");
    let running = h.start(settings).await;
    let forged = json!({
        "subscription": "fast",
        "webhook_id": "msg_1\r\nX-Injected: yes",
        "event_type": "alert",
        "round": 1,
        "due_ms": 0,
        "event": {"id": "forged"},
        "body": {"id": "forged"},
        "origin": {"topic": TOPIC, "partition": 0, "offset": 0, "index": 0},
        "received_at": "2026-11-01T00:00:00Z",
        "last_error": null,
        "last_status": null
    });
    h.produce_json(&tier, 0, &forged).await;
    let letters = h.dead_letters(1, Duration::from_secs(60));
    assert_eq!(letters.len(), 1, "the forged record was not dead-lettered");
    assert_eq!(letters[0].header("hookline-reason"), "invalid-record");
    assert!(
        letters[0].header("hookline-error").contains("webhook_id"),
        "{:?}",
        letters[0].headers
    );
    // The lane is alive: a later event arrives, and the forged one never did.
    h.produce_json(TOPIC, 0, &event("after", "alert")).await;
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r
                .iter()
                .any(|r| r.json()["id"] == "after"))
            .await,
        "the subscription stopped delivering"
    );
    assert!(h
        .receiver
        .requests()
        .iter()
        .all(|r| r.json()["id"] != "forged"));
    running.stop();
    running.wait().await;
}

/// Hole 4: a dead letter Kafka refuses for good (too large) is not retried forever: it is
/// written without its payload, keeping its origin, and the source offset moves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_4_a_dead_letter_kafka_refuses_is_written_truncated_with_its_origin() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: fast
    url: "{receiver}/fast"
routes:
  - id: all
    to: [fast]
"#,
        ))
        .build()
        .await;
    let offset = h.produce(TOPIC, 0, b"not json at all").await;
    // The router's first produce (the dead letter) is refused as too large.
    h.broker.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let running = h.start(h.settings("hole4")).await;
    let letters = h.dead_letters(1, Duration::from_secs(60));
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.header("hookline-reason"), "not-json");
    assert_eq!(
        letter.header("hookline-truncated"),
        "15",
        "{:?}",
        letter.headers
    );
    assert!(letter.payload.is_empty());
    assert_eq!(letter.header("hookline-source-topic"), TOPIC);
    assert_eq!(letter.header("hookline-source-offset"), offset.to_string());
    assert!(
        eventually(Duration::from_secs(30), || h.committed("hole4", TOPIC, 1)
            == vec![offset + 1])
        .await,
        "the offset settled"
    );
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("hookline_dead_letters_truncated_total{reason=\"not-json\"} 1"),
        "{metrics}"
    );
    running.stop();
    running.wait().await;
}

/// Hole 4, retry tiers: a retry record Kafka refuses for good is not retried forever; the
/// event is dead-lettered as `retry-write-failed` with the last delivery error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_4_a_retry_record_kafka_refuses_is_dead_lettered_with_the_cause() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: down
    url: "{receiver}/down"
    retry: { attempts: 1 }
    breaker: { enabled: false }
routes:
  - id: all
    to: [down]
"#,
        ))
        .build()
        .await;
    let refuse = Arc::new(AtomicBool::new(false));
    // The receiver fails, slowly enough for the test to arm the refusal before the router
    // writes the retry record.
    let armed = refuse.clone();
    h.receiver.respond("/down", move |_| {
        assert!(armed.load(Ordering::SeqCst), "the refusal was not armed");
        Respond::status(503).after(Duration::from_millis(500))
    });
    let running = h.start(h.settings("hole4r")).await;
    h.produce_json(TOPIC, 0, &event("big", "alert")).await;
    h.broker.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    refuse.store(true, Ordering::SeqCst);
    let letters = h.dead_letters(1, Duration::from_secs(60));
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].header("hookline-reason"), "retry-write-failed");
    assert_eq!(letters[0].header("hookline-subscription"), "down");
    assert_eq!(letters[0].header("hookline-status"), "503");
    assert_eq!(letters[0].json()["id"], "big", "the event is kept");
    running.stop();
    running.wait().await;
}

/// Hole 5: the dead letter of one bad element of an array message carries that element, not
/// the whole message; the other elements are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_5_a_bad_element_is_dead_lettered_alone() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: fast
    url: "{receiver}/fast"
routes:
  - id: all
    to: [fast]
"#,
        ))
        .build()
        .await;
    let running = h.start(h.settings("hole5")).await;
    let message = json!([event("a", "alert"), 7, event("b", "alert")]);
    h.produce_json(TOPIC, 0, &message).await;
    let letters = h.dead_letters(1, Duration::from_secs(60));
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].header("hookline-reason"), "not-an-event");
    assert_eq!(letters[0].header("hookline-source-index"), "1");
    assert_eq!(letters[0].payload, b"7", "the element, not the message");
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(30), |r| r.len() == 2)
            .await
    );
    running.stop();
    running.wait().await;
}

/// Hole 6: with the dead-letter topic refusing every write, SIGTERM still ends `hookline run`
/// within the shutdown grace plus its bound, and what was not dead-lettered stays
/// uncommitted. (It used to wait for the dead letter forever.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_6_sigterm_ends_in_bounded_time_when_the_dead_letter_topic_refuses_writes() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: fast
    url: "{receiver}/fast"
routes:
  - id: all
    to: [fast]
"#,
        ))
        .build()
        .await;
    let settings = h.settings("hole6");
    let tier = settings
        .retry_schedule
        .as_ref()
        .and_then(|s| s.first_topic())
        .expect("a retry tier");
    let router = RouterCommand::new(&h, "hole6")
        .env("HOOKLINE_DELIVERY__SHUTDOWN_GRACE", "2s")
        .spawn();
    assert!(
        eventually_async(Duration::from_secs(60), || router.ready()).await,
        "the router never became ready"
    );
    // The dead-letter topic is unusable from now on: writing to it is not authorised.
    h.broker
        .cluster()
        .topic_error(
            common::DLQ,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        )
        .unwrap();
    // An unreadable retry record: the retry reader dead-letters it before reading on.
    h.produce(&tier, 0, b"{ not a retry record").await;
    assert!(
        eventually_async(Duration::from_secs(60), || async {
            router
                .metric("hookline_dead_letter_write_errors_total")
                .await
                >= 1.0
        })
        .await,
        "the router never tried the dead letter"
    );
    router.terminate();
    let exit = router.wait_exit(Duration::from_secs(60));
    h.broker
        .cluster()
        .topic_error(common::DLQ, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    let (took, status) = exit.expect("hookline run did not stop within 60 s of SIGTERM");
    println!("stopped {took:?} after SIGTERM ({status})");
    assert!(
        took < Duration::from_secs(2 + 15 + 5),
        "stopping took {took:?}, more than the grace (2 s) and its bound (15 s)"
    );
    let committed = h.committed("hole6.retry", &tier, 1)[0];
    assert!(
        committed <= 0,
        "the record that was not dead-lettered was committed ({committed})"
    );
}

/// Hole 2 (b): a reload that adds a subscription starts its lane before the rules naming it go
/// live, so no event is routed to a subscription without a lane (and settled as dropped).
/// On a single-threaded runtime nothing else runs between the swap and the check.
#[tokio::test(flavor = "current_thread")]
async fn hole_2b_a_new_subscriptions_lane_exists_before_its_rules_go_live() {
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(
            r#"
subscriptions:
  - id: first
    url: "{receiver}/first"
routes:
  - id: all
    to: [first]
"#,
        ))
        .build()
        .await;
    let running = h.start(h.settings("hole2b")).await;
    h.write_rules(&rules(
        r#"
subscriptions:
  - id: first
    url: "{receiver}/first"
  - id: late
    url: "{receiver}/late"
routes:
  - id: all
    to: [first, late]
"#,
    ));
    let rules = hookline::rules::RuleSet::load_dir(h.rules.path()).expect("rules");
    running.router.replace(rules);
    // No await since the swap: only what the swap itself did has happened.
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("hookline_queue_depth{subscription=\"late\"}"),
        "the rules went live before the new subscription's lane existed"
    );
    running.stop();
    running.wait().await;
}

/// Hole 7: a reload that leaves a subscription unchanged keeps its circuit open (it used to
/// build a new, closed one, and the dead receiver got requests again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_7_a_reload_keeps_an_unchanged_subscriptions_open_circuit() {
    let down = r#"
subscriptions:
  - id: down
    url: "{receiver}/down"
    retry: { attempts: 1 }
    breaker: { consecutive_failures: 2, open_for: 1h }
"#;
    let h = Harness::builder()
        .topic(TOPIC, 1)
        .rules(&rules(&format!(
            "{down}routes:\n  - id: all\n    to: [down]\n"
        )))
        .build()
        .await;
    h.receiver.respond("/down", |_| Respond::status(503));
    let running = h.start(h.settings("hole7")).await;
    for i in 0..3 {
        h.produce_json(TOPIC, 0, &event(&format!("d{i}"), "alert"))
            .await;
    }
    let open = |running: &hookline::app::Running| {
        running
            .metrics
            .render()
            .contains("hookline_circuit_state{subscription=\"down\"} 2")
    };
    assert!(
        eventually(Duration::from_secs(60), || open(&running)).await,
        "the circuit opened"
    );
    let before = h.receiver.requests_to("/down").len();
    // Reload: `down` unchanged, another subscription added.
    h.write_rules(&rules(&format!(
        "{down}  - id: other\n    url: \"{{receiver}}/other\"\nroutes:\n  - id: all\n    to: [down, other]\n"
    )));
    hookline::rules::reload::reload_now(h.rules.path(), &running.router, &running.metrics)
        .await
        .expect("reload");
    h.produce_json(TOPIC, 0, &event("after", "alert")).await;
    assert!(
        h.receiver
            .wait_until(Duration::from_secs(60), |r| r
                .iter()
                .any(|r| r.path == "/other"))
            .await,
        "the event after the reload was routed"
    );
    assert!(
        common::holds_for(Duration::from_secs(1), || h
            .receiver
            .requests_to("/down")
            .len()
            == before)
        .await,
        "the open circuit was reset by the reload: the dead receiver got requests"
    );
    assert!(open(&running), "the circuit is still open");
    running.stop();
    running.wait().await;
}
