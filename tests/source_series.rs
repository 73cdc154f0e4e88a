//! What probes and dashboards read about partitions: `/readyz` counts source partitions only
//! (not retry-tier ones), and the lag and committed-offset series of a partition exist on the
//! one instance that holds it, so `sum()` across instances counts each partition once.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, Harness};
use hookline::metrics::Metrics;
use serde_json::json;

const TOPIC: &str = "events";

const RULES: &str = r#"
sources:
  - id: test
    topics: [events]
subscriptions:
  - id: sink
    url: "{receiver}/sink"
routes:
  - id: all
    to: [sink]
"#;

/// `(role, topic, partition)` of every series of `family` in `metrics`' exposition.
fn series(metrics: &Metrics, family: &str) -> BTreeSet<(String, String, String)> {
    let prefix = format!("{family}{{");
    metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let labels = &rest[..rest.find('}').unwrap()];
            let get = |name: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            (get("role"), get("topic"), get("partition"))
        })
        .collect()
}

fn partitions(metrics: &Metrics, role: &str) -> i64 {
    metrics.assigned_partitions.with_label_values(&[role]).get()
}

async fn readyz(addr: std::net::SocketAddr) -> u16 {
    reqwest::get(format!("http://{addr}/readyz"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_counts_source_partitions_only() {
    // One source partition for two instances: the second holds retry-tier partitions only.
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(RULES);
    let a = hookline::app::start(h.settings("ready")).await.unwrap();
    assert!(
        eventually(Duration::from_secs(60), || partitions(&a.metrics, "source")
            == 1)
        .await
    );
    let b = hookline::app::start(h.settings("ready")).await.unwrap();
    // Two rebalances (the source group and the retry tiers' group) on a loaded machine: one
    // CI run saw them take longer than 60 s, so the deadline is generous and the failure says
    // what each instance held.
    let joined = eventually(Duration::from_secs(180), || {
        partitions(&b.metrics, "retry") > 0
            && partitions(&a.metrics, "source") + partitions(&b.metrics, "source") == 1
    })
    .await;
    assert!(
        joined,
        "both instances joined both groups (a: {} source, {} retry; b: {} source, {} retry)",
        partitions(&a.metrics, "source"),
        partitions(&a.metrics, "retry"),
        partitions(&b.metrics, "source"),
        partitions(&b.metrics, "retry"),
    );
    let (ready, idle) = if partitions(&a.metrics, "source") == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(readyz(ready.admin_addr).await, 200);
    assert_eq!(
        readyz(idle.admin_addr).await,
        503,
        "retry-tier partitions alone are not readiness"
    );
    for r in [a, b] {
        r.stop();
        r.wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_partition_leaves_no_series_behind() {
    let h = Harness::new(TOPIC, 2).await;
    h.write_rules(RULES);
    let a = hookline::app::start(h.settings("series")).await.unwrap();
    for p in 0..2 {
        h.produce_json(TOPIC, p, &json!({"id": format!("a{p}")}))
            .await;
    }
    let both: BTreeSet<_> = (0..2)
        .map(|p| ("source".to_string(), TOPIC.to_string(), p.to_string()))
        .collect();
    assert!(
        eventually(Duration::from_secs(60), || series(
            &a.metrics,
            "hookline_committed_offset"
        )
        .is_superset(&both)
            && series(&a.metrics, "hookline_consumer_lag").is_superset(&both))
        .await,
        "the first instance reports both partitions"
    );

    let b = hookline::app::start(h.settings("series")).await.unwrap();
    assert!(
        eventually(Duration::from_secs(60), || partitions(&a.metrics, "source")
            == 1
            && partitions(&b.metrics, "source") == 1)
        .await,
        "the partitions were shared out"
    );
    for p in 0..2 {
        h.produce_json(TOPIC, p, &json!({"id": format!("b{p}")}))
            .await;
    }
    let source_series = |m: &Metrics, family: &str| -> BTreeSet<_> {
        series(m, family)
            .into_iter()
            .filter(|(role, _, _)| role == "source")
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(60), || {
            ["hookline_committed_offset", "hookline_consumer_lag"]
                .iter()
                .all(|f| {
                    let (sa, sb) = (source_series(&a.metrics, f), source_series(&b.metrics, f));
                    sa.len() == 1 && sb.len() == 1 && sa.union(&sb).count() == 2
                })
        })
        .await,
        "each partition's series on exactly one instance: a={:?} b={:?}",
        source_series(&a.metrics, "hookline_committed_offset"),
        source_series(&b.metrics, "hookline_committed_offset"),
    );
    for r in [a, b] {
        r.stop();
        r.wait().await;
    }
}
