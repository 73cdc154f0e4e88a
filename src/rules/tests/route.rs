//! Routing behaviour of whole rule sets.

use serde_json::{json, Value};

use super::{load, SUBS};
use crate::event::{Event, Origin};
use crate::metrics::Metrics;
use crate::rules::{Router, Routing};

fn router(rules: &str) -> Router {
    Router::with_metrics(
        load(&[("a.yaml", SUBS), ("b.yaml", rules)]).unwrap(),
        Metrics::new(),
    )
}

/// Routes `payload` as the next message of partition 3 (each call its own offset: the same
/// position is never a dedup repeat of itself).
fn send(r: &Router, topic: &str, payload: Value) -> Routing {
    static OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1000);
    send_at(
        r,
        topic,
        OFFSET.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        payload,
    )
}

fn send_at(r: &Router, topic: &str, offset: i64, payload: Value) -> Routing {
    let origin = Origin {
        topic: topic.into(),
        partition: 3,
        offset,
        index: 1,
    };
    r.route_dry(&Event::new(origin, payload))
}

fn subs(r: &Routing) -> Vec<String> {
    r.deliveries
        .iter()
        .map(|d| d.subscription.id.to_string())
        .collect()
}

#[test]
fn every_matching_route_contributes_each_subscription_once() {
    let r = router(
        "routes:
  - id: r1
    match: {category: login}
    to: [b, a]
  - id: r2
    match: {min_severity: medium}
    to: [a, c]
  - id: r3
    match: {category: [other]}
    to: [c]
",
    );
    let out = send(&r, "t", json!({"type": "login", "severity": "high"}));
    assert_eq!(out.routes, vec!["r1", "r2"]);
    assert_eq!(subs(&out), vec!["b", "a", "c"]);
    let out = send(&r, "t", json!({"type": "login", "severity": "low"}));
    assert_eq!(out.routes, vec!["r1"]);
    assert_eq!(subs(&out), vec!["b", "a"]);
    let out = send(&r, "t", json!({"type": "x"}));
    assert!(out.routes.is_empty() && out.deliveries.is_empty());
}

#[test]
fn stop_ends_evaluation() {
    let r = router(
        "routes:
  - id: drop-noise
    match: {expr: \"event.noise == `true`\"}
    stop: true
  - id: first
    match: {category: \"log*\"}
    to: [a]
    stop: true
  - id: second
    to: [b]
",
    );
    let out = send(&r, "t", json!({"type": "login"}));
    assert_eq!(out.routes, vec!["first"]);
    assert_eq!(subs(&out), vec!["a"]);
    let out = send(&r, "t", json!({"type": "login", "noise": true}));
    assert_eq!(out.routes, vec!["drop-noise"]);
    assert!(out.deliveries.is_empty());
    let out = send(&r, "t", json!({"type": "other"}));
    assert_eq!(out.routes, vec!["second"]);
}

#[test]
fn route_topics_and_source_classification() {
    let r = router(
        "sources:
  - id: vendor
    topics: [\"vendor.*\"]
    category: kind.name
    severity: score
    event_id: ref
    bands: cvss
    default_severity: medium
    aliases: {bad: critical}
routes:
  - id: only-vendor
    topics: [\"vendor.*\"]
    match: {severity: [critical, high]}
    to: [a]
",
    );
    let out = send(
        &r,
        "vendor.x",
        json!({"kind": {"name": "scan"}, "score": 7.5, "ref": "r-1"}),
    );
    assert_eq!(
        (out.category.as_str(), out.severity.as_str()),
        ("scan", "high")
    );
    assert_eq!(out.raw_severity.as_deref(), Some("7.5"));
    assert_eq!(out.event_id.as_deref(), Some("r-1"));
    assert_eq!(out.routes, vec!["only-vendor"]);
    let out = send(&r, "vendor.x", json!({"score": "BAD"}));
    assert_eq!(out.severity.as_str(), "critical");
    // Another topic: the defaults apply and the route's topic filter excludes it.
    let out = send(&r, "other", json!({"type": "scan", "severity": "critical"}));
    assert_eq!(out.category, "scan");
    assert!(out.routes.is_empty());
}

#[test]
fn unknown_severities_fall_to_the_default_and_are_counted() {
    let r = router(
        "sources:
  - id: v
    topics: [v]
    default_severity: high
routes:
  - id: r
    match: {min_severity: high}
    to: [a]
",
    );
    let out = send(&r, "v", json!({"severity": "purple"}));
    assert_eq!(out.severity.as_str(), "high");
    assert_eq!(out.raw_severity.as_deref(), Some("purple"));
    assert_eq!(
        subs(&out),
        vec!["a"],
        "an unknown severity is never dropped silently"
    );
    let counted = r.metrics().severity_unknown.with_label_values(&["v"]).get();
    assert_eq!(counted, 1);
    send(&r, "v", json!({"severity": "low"}));
    assert_eq!(
        r.metrics().severity_unknown.with_label_values(&["v"]).get(),
        1
    );
}

#[test]
fn templates_see_event_derived_fields_and_vars() {
    let r = router(
        "templates:
  - id: t
    vars: {team: blue, n: 3}
    expression: >-
      {team: vars.team, n: vars.n, cat: hookline.category, sev: hookline.severity,
       raw: hookline.raw_severity, topic: hookline.topic, partition: hookline.partition,
       offset: hookline.offset, key: hookline.key, id: hookline.event_id, user: event.user,
       at: hookline.received_at}
subscriptions:
  - id: d
    url: ${RECV}/d
    template: t
routes:
  - id: r
    to: [d, a]
",
    );
    let out = send_at(
        &r,
        "t",
        42,
        json!({"type": "login", "level": "ERROR", "id": 7, "user": "eve"}),
    );
    let body = out.deliveries[0].body.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(body["team"], "blue");
    assert_eq!(body["n"], 3);
    assert_eq!(body["cat"], "login");
    assert_eq!(body["sev"], "high");
    assert_eq!(body["raw"], "ERROR");
    assert_eq!(body["topic"], "t");
    assert_eq!(body["partition"], 3);
    assert_eq!(body["offset"], 42);
    assert_eq!(body["key"], "t/3/42/1");
    assert_eq!(body["id"], "7");
    assert_eq!(body["user"], "eve");
    assert!(chrono::DateTime::parse_from_rfc3339(body["at"].as_str().unwrap()).is_ok());
    // `a` has no template: raw.
    assert_eq!(
        out.deliveries[1].body.as_ref().unwrap().as_ref().unwrap(),
        &json!({"type": "login", "level": "ERROR", "id": 7, "user": "eve"})
    );
}

#[test]
fn render_errors_are_per_subscription_and_counted() {
    let r = router(
        "templates:
  - id: strict
    expression: \"{n: length(event.n)}\"
subscriptions:
  - id: d
    url: ${RECV}/d
    template: strict
routes:
  - id: r
    to: [d, a]
",
    );
    let out = send(&r, "t", json!({"n": 5}));
    let err = out.deliveries[0]
        .body
        .as_ref()
        .unwrap()
        .as_ref()
        .unwrap_err();
    assert_eq!(err.template, "strict");
    assert_eq!(
        err.reason,
        "Runtime error: Argument 0 expects type array|object|string, given number (expression line 1, column 11)"
    );
    assert!(
        out.deliveries[1].body.as_ref().unwrap().is_ok(),
        "other subscriptions still render"
    );
    assert_eq!(r.metrics().render_errors.with_label_values(&["d"]).get(), 1);
    let ok = send(&r, "t", json!({"n": "abc"}));
    assert_eq!(
        ok.deliveries[0].body.as_ref().unwrap().as_ref().unwrap(),
        &json!({"n": 3})
    );
}

#[test]
fn disabled_subscriptions_receive_nothing() {
    let r = router(
        "subscriptions:
  - id: off
    url: ${RECV}/off
    status: disabled
    disable_reason: endpoint retired
routes:
  - id: r
    to: [off, a]
",
    );
    assert_eq!(subs(&send(&r, "t", json!({}))), vec!["a"]);
}

const DEDUP: &str = "routes:
  - id: d
    dedup: {key: \"event.id && join('/', [event.id, event.state])\", window: 1h}
    to: [a, b]
  - id: plain
    match: {category: always}
    to: [b]
";

#[test]
fn dedup_suppresses_repeats_per_subscription_and_survives_reloads() {
    let r = router(DEDUP);
    let first = send(&r, "t", json!({"id": "n1", "state": "ongoing"}));
    assert_eq!(subs(&first), vec!["a", "b"]);
    let again = send(&r, "t", json!({"id": "n1", "state": "ongoing"}));
    assert!(again.deliveries.is_empty());
    assert_eq!(
        again.suppressed,
        vec!["a".into(), "b".into()] as Vec<std::sync::Arc<str>>
    );
    assert_eq!(
        r.metrics().dedup_suppressed.with_label_values(&["a"]).get(),
        1
    );
    // Another key is not a repeat.
    assert_eq!(
        subs(&send(&r, "t", json!({"id": "n1", "state": "end"}))),
        vec!["a", "b"]
    );
    // A route without dedup still delivers to b; only a stays suppressed.
    let both = send(
        &r,
        "t",
        json!({"id": "n1", "state": "ongoing", "type": "always"}),
    );
    assert_eq!(subs(&both), vec!["b"]);
    assert_eq!(both.suppressed, vec![std::sync::Arc::from("a")]);
    // Events without a key are never suppressed.
    assert_eq!(subs(&send(&r, "t", json!({"x": 1}))), vec!["a", "b"]);
    assert_eq!(subs(&send(&r, "t", json!({"x": 2}))), vec!["a", "b"]);
    // The memory lives in the router, not the rule set.
    r.replace(load(&[("a.yaml", SUBS), ("b.yaml", DEDUP)]).unwrap());
    assert!(send(&r, "t", json!({"id": "n1", "state": "ongoing"}))
        .deliveries
        .is_empty());
}

#[test]
fn rule_set_aliases_defaults_and_inverted_bands() {
    let r = router(
        "severity:
  default: medium
  aliases: {SEV1: critical, error: low}
sources:
  - id: inverted
    topics: [inv]
    severity: prio
    bands:
      - {max: 1, severity: critical}
      - {min: 2, max: 3, severity: high}
      - {min: 4, severity: info}
    aliases: {error: high}
routes:
  - id: r
    to: [a]
",
    );
    let sev = |topic: &str, v: Value| send(&r, topic, v).severity.as_str();
    assert_eq!(sev("inv", json!({"prio": 1})), "critical");
    assert_eq!(sev("inv", json!({"prio": "3"})), "high");
    assert_eq!(sev("inv", json!({"prio": 9})), "info");
    assert_eq!(
        sev("inv", json!({"prio": "sev1"})),
        "critical",
        "rule-set alias"
    );
    assert_eq!(
        sev("inv", json!({"prio": "ERROR"})),
        "high",
        "source alias wins"
    );
    assert_eq!(
        sev("other", json!({"severity": "error"})),
        "low",
        "rule-set alias wins over built-in"
    );
    assert_eq!(
        sev("other", json!({"severity": "nonsense"})),
        "medium",
        "rule-set default"
    );
    assert_eq!(
        sev("inv", json!({"prio": -3})),
        "critical",
        "max-only band is open below"
    );
    assert_eq!(
        r.metrics()
            .severity_unknown
            .with_label_values(&["default"])
            .get(),
        1
    );
}

const WAZUH: &str = "sources:
  - id: wazuh
    topics: [wazuh]
    category: rule.groups
    primary_category: rule.groups[-1]
    severity: rule.level
    bands: score15
templates:
  - id: cats
    expression: \"{primary: hookline.category, all: hookline.categories, n: length(hookline.categories)}\"
subscriptions:
  - id: d
    url: ${RECV}/d
    template: cats
routes:
  - id: auth
    match: {category: authentication_failures}
    to: [a]
  - id: ssh-glob
    topics: [wazuh]
    match: {category: \"ssh*\", min_severity: medium}
    to: [b]
  - id: not-web
    match: {not: {category: web}}
    to: [d]
  - id: any-web
    match: {any: [{category: web}, {category: [apache, nginx]}]}
    to: [b]
";

#[test]
fn list_categories_route_by_any_element_through_the_index() {
    let r = router(WAZUH);
    let alert =
        json!({"rule": {"level": 10, "groups": ["syslog", "sshd", "authentication_failures"]}});
    let out = send(&r, "wazuh", alert);
    assert_eq!(
        out.category, "authentication_failures",
        "primary: the last group"
    );
    assert_eq!(
        out.categories,
        ["syslog", "sshd", "authentication_failures"]
    );
    assert_eq!(out.routes, vec!["auth", "ssh-glob", "not-web"]);
    assert_eq!(subs(&out), vec!["a", "b", "d"]);
    let body = out.deliveries[2].body.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        body,
        &json!({"primary": "authentication_failures", "all": ["syslog", "sshd", "authentication_failures"], "n": 3})
    );
    // Standard Webhooks' `type` is the primary category, one string.
    let web = send(
        &r,
        "wazuh",
        json!({"rule": {"level": 3, "groups": ["web", "nginx", "attack"]}}),
    );
    assert_eq!(web.routes, vec!["any-web"]);
    assert_eq!(
        web.deliveries[0].body.as_ref().unwrap().as_ref().unwrap()["type"],
        "attack",
        "b renders standard-webhooks"
    );
    // A single string still works as before.
    let one = send(
        &r,
        "wazuh",
        json!({"rule": {"level": 12, "groups": "sshd"}}),
    );
    assert_eq!(one.categories, ["sshd"]);
    assert_eq!(one.routes, vec!["ssh-glob", "not-web"]);
}

#[test]
fn categories_never_become_metric_labels() {
    let r = router(WAZUH);
    let many: Vec<String> = (0..100).map(|i| format!("group-{i}")).collect();
    send(&r, "wazuh", json!({"rule": {"level": 5, "groups": many}}));
    send(
        &r,
        "wazuh",
        json!({"rule": {"level": "loud", "groups": ["sshd", "authentication_failures"]}}),
    );
    assert_eq!(
        r.metrics()
            .categories_truncated
            .with_label_values(&["wazuh"])
            .get(),
        1
    );
    let text = r.metrics().render();
    for category in ["group-", "sshd", "authentication_failures"] {
        assert!(!text.contains(category), "{category} in metrics:\n{text}");
    }
    assert!(text.contains("hookline_categories_truncated_total{source=\"wazuh\"} 1"));
}

#[test]
fn quoted_scalars_stay_strings() {
    let r = router(
        "templates:
  - id: t
    vars: {code: \"007\", on: \"true\", n: 7}
    expression: \"{code: vars.code, on: vars.on, n: vars.n}\"
subscriptions:
  - id: d
    url: ${RECV}/d
    template: t
routes:
  - id: r
    to: [d]
",
    );
    let out = send(&r, "t", json!({}));
    assert_eq!(
        out.deliveries[0].body.as_ref().unwrap().as_ref().unwrap(),
        &json!({"code": "007", "on": "true", "n": 7})
    );
}

#[test]
fn a_file_route_that_stops_does_not_hold_back_api_subscriptions() {
    use crate::rules::inputs::{CatalogueInputs, Inputs, RouteSubscription};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "sources:\n  - id: s\n    topics: [t]\n    category: category\n    severity: severity\nsubscriptions:\n  - id: file\n    url: https://example.com/f\nroutes:\n  - id: drop-all\n    stop: true\n    to: [file]\n",
    )
    .unwrap();
    let api = RouteSubscription {
        config: crate::deliver::SubscriptionConfig::minimal("api-1", "https://example.com/a"),
        template: "raw".into(),
        event_types: vec!["alert*".into()],
        min_severity: Some("high".into()),
        topics: vec!["t".into()],
        filter: Some("event.n > `1`".into()),
    };
    let inputs = Inputs {
        files: std::sync::Arc::new(crate::rules::load::read_dir(dir.path())),
        catalogue: std::sync::Arc::new(CatalogueInputs {
            subscriptions: vec![api],
            ..Default::default()
        }),
    };
    let router = Router::new(crate::rules::RuleSet::from_inputs(inputs).unwrap());
    let routed = |payload: serde_json::Value| {
        let event = crate::event::Event::new(
            crate::event::Origin {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                index: 0,
            },
            payload,
        );
        let mut subs: Vec<String> = router
            .route(&event)
            .deliveries
            .iter()
            .map(|d| d.subscription.id.to_string())
            .collect();
        subs.sort();
        subs
    };
    let both = routed(serde_json::json!({"category": "alert.x", "severity": "critical", "n": 2}));
    assert_eq!(both, ["api-1", "file"]);
    let low = routed(serde_json::json!({"category": "alert.x", "severity": "low", "n": 2}));
    assert_eq!(low, ["file"]);
    let filtered = routed(serde_json::json!({"category": "alert.x", "severity": "high", "n": 1}));
    assert_eq!(filtered, ["file"]);
    let other = routed(serde_json::json!({"category": "vuln", "severity": "high", "n": 5}));
    assert_eq!(other, ["file"]);
}
