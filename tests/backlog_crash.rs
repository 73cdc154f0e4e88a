//! A crash while a backlog holds events: the built `hookline run` binary, on a Kafka-protocol
//! broker (librdkafka's mock cluster, on TCP) and a receiver on loopback, is SIGKILLed while a
//! rate-limited subscription's backlog is non-empty, then started again. Every event reaches
//! every subscription (duplicates allowed: at-least-once).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fixtures::{event, ids, rules, TOPIC};
use common::process::RouterProcess;
use common::wait::eventually_async;
use common::{eventually, Harness};

const N: usize = 400;

const SUBSCRIPTIONS: &str = r#"
subscriptions:
  - id: slow
    url: "{receiver}/slow"
    rate_limit: { per_second: 40 }
  - id: fast
    url: "{receiver}/fast"
routes:
  - id: all
    to: [slow, fast]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_a_backlog_holds_events_loses_nothing() {
    let h = Harness::builder()
        .topic(TOPIC, 2)
        .rules(&rules(SUBSCRIPTIONS))
        .build()
        .await;
    // The router's own topics (the mock cluster does not answer CreateTopics).
    h.settings("crash");
    let router = RouterProcess::start(&h, "crash");
    for i in 0..N {
        h.produce_json(TOPIC, (i % 2) as i32, &event(&format!("e{i}"), "alert"))
            .await;
    }
    // Kill it once the slow subscription's overflow is in its backlog and only part of it
    // was delivered.
    let spilled = eventually_async(Duration::from_secs(60), || async {
        router.metric("hookline_backlog_spilled_total{").await >= 100.0
            && h.receiver.accepted("/slow").len() >= 20
    })
    .await;
    assert!(spilled, "nothing spilled to the backlog");
    let slow_before = h.receiver.accepted("/slow").len();
    assert!(slow_before < N, "the backlog was drained before the crash");
    router.kill();

    let _router = RouterProcess::start(&h, "crash");
    let all: BTreeSet<String> = (0..N).map(|i| format!("e{i}")).collect();
    for path in ["/fast", "/slow"] {
        let complete = eventually(Duration::from_secs(180), || {
            ids(&h.receiver.accepted(path))
                .into_iter()
                .collect::<BTreeSet<_>>()
                == all
        })
        .await;
        let got = ids(&h.receiver.accepted(path));
        let unique: BTreeSet<_> = got.iter().cloned().collect();
        assert!(
            complete,
            "{path}: {} of {N} events arrived; missing {:?}",
            unique.len(),
            all.difference(&unique).take(10).collect::<Vec<_>>()
        );
        println!(
            "{path}: {N} events, {} deliveries, {} duplicates",
            got.len(),
            got.len() - unique.len()
        );
    }
}
