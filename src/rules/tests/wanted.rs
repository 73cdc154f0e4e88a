//! The parse the source does for a rule set ([`RuleSet::wanted`]) keeps everything the rule
//! set reads: routing an event parsed for it gives what routing the whole event gives.

use std::sync::Arc;

use serde_json::Value;

use super::load;
use crate::event::{Event, Origin, Payload, Wanted};
use crate::metrics::Metrics;
use crate::rules::{Router, Routing, RuleSet};

/// Sources, predicates, dedup keys and templates reading many shapes of path; nothing reads
/// the whole event.
const RULES: &str = r#"
sources:
  - id: vendor
    topics: [vendor]
    category: kind.name
    primary_category: kind.groups[-1]
    severity: score.value || level
    event_id: refs[0] || id
    fields:
      summary: details.title
      first_tag: tags[0].name
      who: not_null(actor.user.name, actor.service)
templates:
  - id: small
    expression: >-
      {id: hookline.event_id, sev: hookline.severity, title: event.details.title,
       tags: event.tags[*].name, last: event.items[-1], n: length(event.items),
       nested: event.details.{t: title, l: length(lines)}, count: event.count,
       who: hookline.fields.who, sorted: sort_by(event.items, &w)[0].w}
  - id: constant
    expression: "{hello: 'world', cat: hookline.category}"
subscriptions:
  - id: s1
    url: ${RECV}/s1
    template: small
  - id: s2
    url: ${RECV}/s2
    template: constant
routes:
  - id: by-predicate
    topics: [vendor]
    match: {expr: "event.details.flags.urgent == `true` || contains(event.labels, 'page')"}
    to: [s1]
    dedup: {key: "join('/', [event.id, event.state])", window: 1h}
  - id: by-severity
    match: {min_severity: high}
    to: [s2]
  - id: by-other-topic
    topics: [plain]
    match: {expr: "event.level != 'LOW'"}
    to: [s1, s2]
"#;

/// Events of many shapes, for both topics: fields missing, of other types, repeated.
const EVENTS: &[&str] = &[
    r#"{"id": "e1", "kind": {"name": "attack", "groups": ["a", "b"]}, "score": {"value": 9},
        "details": {"title": "T", "lines": [1, 2], "flags": {"urgent": true, "x": 1}, "big": "skip"},
        "tags": [{"name": "x", "o": 1}, {"name": "y"}], "items": [{"w": 3}, {"w": 1}],
        "count": 2, "state": "open", "labels": ["page"], "noise": {"deep": [1, {"a": 2}]}}"#,
    r#"{"id": 7, "level": "critical", "refs": ["r-1"], "kind": "not-an-object",
        "details": ["not", "an", "object"], "tags": "none", "items": [], "labels": "page"}"#,
    r#"{"level": "LOW", "actor": {"service": "svc"}, "details": {"title": null}, "dup": 1, "dup": 2,
        "items": [1, 2, 3], "kind": {"groups": []}}"#,
    r#"{"id": "e4", "level": "high", "actor": {"user": {"name": "ana", "extra": 1}}, "count": 1.5e2,
        "details": {"flags": {"urgent": false}}, "labels": ["chat"], "state": "closed"}"#,
    r#"{}"#,
];

/// The event whole, and the same event (received at the same time) parsed for `wanted`.
fn both(topic: &str, json: &str, wanted: &Wanted) -> (Event, Event) {
    let whole = Event::new(origin(topic), serde_json::from_str(json).unwrap());
    let mut parsed = whole.clone();
    parsed.payload = Arc::new(Payload::parse(json, wanted).unwrap());
    (whole, parsed)
}

fn origin(topic: &str) -> Origin {
    Origin {
        topic: topic.into(),
        partition: 0,
        offset: 1,
        index: 0,
    }
}

/// What routing decided, comparable.
fn outcome(r: &Routing) -> Value {
    serde_json::json!({
        "category": r.category,
        "categories": r.categories,
        "severity": r.severity.as_str(),
        "raw_severity": r.raw_severity,
        "event_id": r.event_id,
        "routes": r.routes,
        "deliveries": r.deliveries.iter().map(|d| serde_json::json!({
            "to": &*d.subscription.id,
            "body": d.body.as_ref().map(|b| b.as_ref().map_err(|e| e.to_string()).cloned()),
            "dedup": d.dedup.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn same_either_way(rules: RuleSet, events: &[&str], topics: &[&str]) {
    let rules = Arc::new(rules);
    for topic in topics {
        let wanted = rules.wanted(topic);
        for json in events {
            let (whole, parsed) = both(topic, json, &wanted);
            let router = Router::shared(rules.clone(), Metrics::new());
            let want = outcome(&router.route(&whole));
            let router = Router::shared(rules.clone(), Metrics::new());
            let got = outcome(&router.route(&parsed));
            assert_eq!(got, want, "topic {topic}, event {json}");
        }
    }
}

#[test]
fn routing_a_pruned_event_gives_what_routing_the_whole_gives() {
    let rules = load(&[("r.yaml", RULES)]).unwrap();
    let read = |topic: &str| -> Vec<String> {
        let Wanted::Keys(keys) = &*rules.wanted(topic) else {
            panic!("these rules read parts of the event")
        };
        keys.keys().cloned().collect()
    };
    // The source `vendor`, the routes admitting the topic, their subscriptions' templates.
    assert_eq!(
        read("vendor"),
        [
            "actor", "count", "details", "id", "items", "kind", "labels", "level", "refs", "score",
            "state", "tags",
        ]
    );
    // The default extractors, and only the routes that admit `plain`.
    assert_eq!(
        read("plain"),
        [
            "category",
            "count",
            "details",
            "event_id",
            "event_type",
            "id",
            "items",
            "kind",
            "level",
            "priority",
            "severity",
            "tags",
            "type",
            "uuid",
        ]
    );
    same_either_way(rules, EVENTS, &["vendor", "plain"]);
}

#[test]
fn a_template_reading_the_whole_event_wants_all_of_it() {
    for template in ["raw", "standard-webhooks", "pagerduty", "rename"] {
        let rules = load(&[(
            "r.yaml",
            &format!(
                "subscriptions:\n  - id: s\n    url: ${{RECV}}/s\n    template: {template}\nroutes:\n  - id: r\n    to: [s]\n"
            ),
        )])
        .unwrap();
        assert!(rules.wanted("t").is_all(), "{template}");
        same_either_way(rules, EVENTS, &["t"]);
    }
    let rules = load(&[(
        "r.yaml",
        "subscriptions:\n  - id: s\n    url: ${RECV}/s\n    template: slack\nroutes:\n  - id: r\n    match: {expr: \"keys(event) != `[]`\"}\n    to: [s]\n",
    )])
    .unwrap();
    assert!(rules.wanted("t").is_all(), "keys(event) reads all of it");
}

#[test]
fn a_whole_event_template_on_one_topic_leaves_the_others_pruned() {
    let rules = load(&[(
        "r.yaml",
        "templates:
  - id: small
    expression: '{id: event.id}'
subscriptions:
  - id: pd
    url: ${RECV}/pd
    template: pagerduty
  - id: chat
    url: ${RECV}/chat
    template: small
routes:
  - id: paging
    topics: [alerts]
    to: [pd]
  - id: chatting
    topics: [audit]
    to: [chat]
",
    )])
    .unwrap();
    assert!(rules.wanted("alerts").is_all());
    assert!(!rules.wanted("audit").is_all());
    assert!(
        !rules.wanted("other").is_all(),
        "no route admits it: the extractors alone"
    );
    same_either_way(rules, EVENTS, &["alerts", "audit", "other"]);
}

#[test]
fn the_example_rules_route_the_same_either_way() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/examples");
    let rules = RuleSet::load_dir_with_env(&dir, &|n| {
        (!n.ends_with("_FILE")).then(|| "http://127.0.0.1:9".into())
    })
    .unwrap();
    // Each event of each file (some are arrays), as its own JSON.
    let mut events: Vec<String> = Vec::new();
    for file in std::fs::read_dir(dir.join("events")).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        for element in crate::source::split::split(Some(&bytes), usize::MAX, &Wanted::All).unwrap()
        {
            events.push(String::from_utf8(element.unwrap().json().to_vec()).unwrap());
        }
    }
    assert!(events.len() >= 5);
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let topics = rules.topic_patterns();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    same_either_way(rules, &events, &topics);
}
