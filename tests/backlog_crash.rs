//! A crash while a backlog holds events: the built `hookline run` binary, on a Kafka-protocol
//! broker (librdkafka's mock cluster, on TCP) and a receiver on loopback, is SIGKILLed while a
//! rate-limited subscription's backlog is non-empty, then started again. Every event reaches
//! every subscription (duplicates allowed: at-least-once).

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, Harness};
use serde_json::json;

const TOPIC: &str = "events";
const N: usize = 400;

const RULES: &str = r#"
sources:
  - id: test
    topics: [events]
    category: category
    severity: severity
    event_id: id
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

struct Router(Child);

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(h: &Harness, admin_port: u16) -> Router {
    let child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("run")
        .env("HOOKLINE_KAFKA__BROKERS", h.broker.bootstrap_servers())
        .env("HOOKLINE_KAFKA__GROUP_ID", "crash")
        .env("HOOKLINE_KAFKA__DEAD_LETTER_TOPIC", common::DLQ)
        .env("HOOKLINE_KAFKA__CREATE_TOPICS", "false")
        .env("HOOKLINE_KAFKA__COMMIT_INTERVAL", "200ms")
        .env("HOOKLINE_RULES__DIR", h.rules.path())
        .env("HOOKLINE_RULES__WATCH", "false")
        .env("HOOKLINE_ADMIN__LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("HOOKLINE_DELIVERY__ALLOW_NETWORKS", "[\"127.0.0.0/8\"]")
        .env("HOOKLINE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hookline");
    Router(child)
}

fn ids(h: &Harness, path: &str) -> Vec<String> {
    h.receiver
        .accepted(path)
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn metric(admin_port: u16, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{admin_port}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_a_backlog_holds_events_loses_nothing() {
    let h = Harness::new(TOPIC, 2).await;
    h.write_rules(RULES);
    // The router's own topics (the mock cluster does not answer CreateTopics).
    h.settings("crash");
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let router = start(&h, admin_port);
    for i in 0..N {
        let event = json!({"id": format!("e{i}"), "category": "alert", "severity": "high"});
        h.produce_json(TOPIC, (i % 2) as i32, &event).await;
    }
    // Kill it once the slow subscription's overflow is in its backlog and only part of it
    // was delivered.
    let mut spilled = 0.0;
    for _ in 0..600 {
        spilled = metric(admin_port, "hookline_backlog_spilled_total{").await;
        if spilled >= 100.0 && ids(&h, "/slow").len() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        spilled >= 100.0,
        "nothing spilled to the backlog: {spilled}"
    );
    let slow_before = ids(&h, "/slow").len();
    assert!(slow_before < N, "the backlog was drained before the crash");
    drop(router); // SIGKILL

    let _router = start(&h, admin_port);
    let all: BTreeSet<String> = (0..N).map(|i| format!("e{i}")).collect();
    for path in ["/fast", "/slow"] {
        let complete = eventually(Duration::from_secs(180), || {
            ids(&h, path).into_iter().collect::<BTreeSet<_>>() == all
        })
        .await;
        let got = ids(&h, path);
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
