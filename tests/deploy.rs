//! `deploy/` stays true to the code: the dashboard and the alert rules name only metrics
//! hookline exports, every alert has a runbook and a `promtool test rules` case, the example
//! configurations load, and a live `/metrics` page passes `promtool check metrics`.
//! (scripts/check-deploy runs the external linters: hadolint, docker-compose, kubernetes-validate,
//! promtool check/test rules.)

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, Harness};
use hookline::metrics::Metrics;
use serde_json::{json, Value};

fn path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Every `hookline_*` or `process_*` word in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = (i == 0 || !word(bytes[i - 1]))
            && (text[i..].starts_with("hookline_") || text[i..].starts_with("process_"));
        if starts {
            let end = (i..bytes.len())
                .find(|&j| !word(bytes[j]))
                .unwrap_or(bytes.len());
            names.insert(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// Names a query may use: every family, and a histogram's `_bucket`, `_sum` and `_count`.
fn exported() -> BTreeSet<String> {
    let metrics = Metrics::new();
    let mut names = BTreeSet::new();
    for family in metrics.family_names() {
        names.insert(family.clone());
        for suffix in ["_bucket", "_sum", "_count"] {
            if family.ends_with("_seconds") {
                names.insert(format!("{family}{suffix}"));
            }
        }
    }
    names
}

fn unknown(file: &str, text: &str) -> Vec<String> {
    let exported = exported();
    metric_names(text)
        .into_iter()
        .filter(|n| !exported.contains(n))
        .map(|n| format!("{file}: {n}"))
        .collect()
}

#[test]
fn dashboard_and_alerts_name_only_exported_metrics() {
    let dashboard = read("deploy/grafana/hookline.json");
    let doc: Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let queries: Vec<&str> = doc["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(queries.len() >= 30, "only {} queries", queries.len());
    let alerts = read("deploy/prometheus/alerts.yaml");
    let mut problems = unknown("deploy/grafana/hookline.json", &dashboard);
    problems.extend(unknown("deploy/prometheus/alerts.yaml", &alerts));
    assert!(
        problems.is_empty(),
        "names hookline does not export: {problems:?}"
    );
    // The scan itself works: a made-up name is caught, real ones are found.
    assert_eq!(
        unknown(
            "x",
            "rate(hookline_made_up_total[5m]) + hookline_queue_depth"
        ),
        ["x: hookline_made_up_total"]
    );
    assert!(metric_names(&alerts).len() >= 10);
}

#[test]
fn the_dashboard_covers_what_operators_watch() {
    let dashboard = read("deploy/grafana/hookline.json");
    for family in [
        "hookline_events_consumed_total",
        "hookline_deliveries_total",
        "hookline_delivery_latency_seconds_bucket",
        "hookline_consumer_lag",
        "hookline_queue_depth",
        "hookline_circuit_state",
        "hookline_dead_letters_total",
        "hookline_retry_topic_writes_total",
        "process_resident_memory_bytes",
    ] {
        assert!(dashboard.contains(family), "no panel shows {family}");
    }
}

/// `(name, runbook annotation)` of every alert in alerts.yaml.
fn alerts() -> Vec<(String, String)> {
    let text = read("deploy/prometheus/alerts.yaml");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            out.push((name.to_string(), String::new()));
        } else if let Some(runbook) = line.strip_prefix("runbook: ") {
            out.last_mut().expect("an alert").1 = runbook.trim_matches('"').to_string();
        }
    }
    out
}

#[test]
fn every_alert_has_a_runbook_and_a_unit_test() {
    let alerts = alerts();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let runbook = read("docs/runbook.md");
    let tests = read("deploy/prometheus/alerts.test.yaml");
    let mut problems = Vec::new();
    for (name, link) in &alerts {
        if !runbook.contains(&format!("\n## {name}\n")) {
            problems.push(format!("{name}: no `## {name}` section in docs/runbook.md"));
        }
        if *link != format!("docs/runbook.md#{}", name.to_lowercase()) {
            problems.push(format!("{name}: runbook annotation {link:?}"));
        }
        if !tests.contains(&format!("alertname: {name}\n")) {
            problems.push(format!("{name}: no case in alerts.test.yaml"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_example_configurations_load() {
    hookline::config::Config::load(Some(&path("deploy/hookline.toml")))
        .expect("deploy/hookline.toml");
    // The Kubernetes ConfigMaps: the configuration file and the rules.
    let manifests = read("deploy/kubernetes/hookline.yaml");
    let block = |key: &str| -> String {
        let start = manifests
            .find(&format!("  {key}: |\n"))
            .unwrap_or_else(|| panic!("no {key} in the manifests"));
        manifests[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.is_empty())
            .map(|l| l.strip_prefix("    ").unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookline.toml");
    std::fs::write(&config, block("hookline.toml")).unwrap();
    hookline::config::Config::load(Some(&config)).expect("the ConfigMap's hookline.toml");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("routes.yaml"), block("routes.yaml")).unwrap();
    let secret = "whsec_Q0hBTkdFLU1FLUNIQU5HRS1NRQ==".to_string();
    let loaded = hookline::rules::RuleSet::load_dir_with_env(&rules, &|name| {
        (name == "SOAR_SIGNING_SECRET").then(|| secret.clone())
    })
    .expect("the ConfigMap's rules");
    assert_eq!(loaded.subscriptions().len(), 1);
}

/// promtool, when installed (scripts/test installs it and sets HOOKLINE_REQUIRE_PROMTOOL).
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var_os("HOOKLINE_REQUIRE_PROMTOOL").is_some() {
        panic!("promtool is required (HOOKLINE_REQUIRE_PROMTOOL) but not on PATH");
    }
    found.then_some("promtool")
}

const RULES: &str = r#"
sources:
  - id: test
    topics: [events]
    category: category
    severity: severity
subscriptions:
  - id: ok
    url: "{receiver}/ok"
  - id: rejecting
    url: "{receiver}/rejecting"
    retry: { attempts: 1 }
routes:
  - id: all
    to: [ok, rejecting]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_metrics_page_passes_promtool() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool not installed; skipping");
        return;
    };
    let h = Harness::new("events", 2).await;
    h.receiver.respond("/rejecting", |_| {
        hookline::dev::receiver::Respond::status(400)
    });
    h.write_rules(RULES);
    let running = hookline::app::start(h.settings("metrics")).await.unwrap();
    for i in 0..4 {
        h.produce_json(
            "events",
            i % 2,
            &json!({"id": i, "category": "c", "severity": "high"}),
        )
        .await;
    }
    h.produce("events", 0, b"not json").await;
    let metrics = running.metrics.clone();
    assert!(
        eventually(Duration::from_secs(60), || {
            let page = metrics.render();
            page.contains("hookline_dead_letters_total{reason=\"rejected\"}")
                && page.contains("hookline_consumer_lag{")
                && page.contains("hookline_committed_offset{")
        })
        .await,
        "the page never showed deliveries, dead letters and lag"
    );
    let page = reqwest::get(format!("http://{}/metrics", running.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("process_resident_memory_bytes"), "{page}");
    running.stop();
    running.wait().await;

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n--- page ---\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
