//! Dry runs: what a rule set would do with some events, without Kafka and without delivering
//! anything. One code path for `hookline test`, `hookline test --cases`, `POST
//! /api/v1/rules/test` and the playground, so they cannot disagree with each other or with
//! routing: events go through [`Router::route`] like the ones read from Kafka.

use std::sync::Arc;

use serde_json::{json, Value};

use super::explain::{self, NotMatched};
use super::{Router, Routing, RuleSet};
use crate::event::{Event, Origin};
use crate::metrics::Metrics;

/// One event's dry run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What routing did with it.
    pub routing: Routing,
    /// The routes that did not match it, and why.
    pub not_matched: Vec<NotMatched>,
}

/// The event at position `i` of a dry run on `topic`: one message per event, offsets 0, 1, ...
pub fn event_at(topic: &str, i: usize, payload: Value) -> Event {
    let origin = Origin {
        topic: topic.into(),
        partition: 0,
        offset: i as i64,
        index: 0,
    };
    Event::new(origin, payload)
}

/// Routes `payloads` in order, as if read from `topic`, through `router` (whose dedup memory
/// they share, so windows apply between them).
pub fn route_all(router: &Router, topic: &str, payloads: &[Value]) -> Vec<Outcome> {
    let rules = router.current();
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let event = event_at(topic, i, p.clone());
            let routing = router.route_dry(&event);
            let not_matched = explain::not_matched(&rules, &event, &routing);
            Outcome {
                routing,
                not_matched,
            }
        })
        .collect()
}

/// Routes `payloads` with `rules` on a router of their own: its own dedup memory and metrics,
/// so a dry run never suppresses, nor counts as, a real delivery.
pub fn run(rules: Arc<RuleSet>, topic: &str, payloads: &[Value]) -> Vec<Outcome> {
    route_all(&Router::shared(rules, Metrics::new()), topic, payloads)
}

/// The events of a request: an array is one event per element, anything else one event.
pub fn events_of(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        one => vec![one],
    }
}

/// `{"events": [...]}`, as `hookline test --json` prints it.
pub fn report(outcomes: &[Outcome]) -> Value {
    json!({"events": outcomes.iter().map(to_json).collect::<Vec<_>>()})
}

/// One event's dry run as JSON (the shape is documented in `docs/rules.md`).
pub fn to_json(o: &Outcome) -> Value {
    let r = &o.routing;
    let deliveries: Vec<Value> = r
        .deliveries
        .iter()
        .map(|d| match &d.body {
            Some(Ok(body)) => json!({"subscription": &*d.subscription.id, "body": body}),
            Some(Err(e)) => {
                json!({"subscription": &*d.subscription.id, "body": null, "error": e.to_string()})
            }
            None => json!({"subscription": &*d.subscription.id, "body": null}),
        })
        .collect();
    let not_matched: Vec<Value> = o
        .not_matched
        .iter()
        .map(|n| json!({"route": &*n.route, "reason": n.reason}))
        .collect();
    json!({
        "category": r.category,
        "categories": r.categories,
        "severity": r.severity,
        "raw_severity": r.raw_severity,
        "event_id": r.event_id,
        "source": r.source.as_deref(),
        "routes": r.routes,
        "not_matched": not_matched,
        "deliveries": deliveries,
        "suppressed": r.suppressed.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    })
}
