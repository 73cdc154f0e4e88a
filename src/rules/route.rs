//! Routing one event with one rule set: classify, look up candidate routes in the index,
//! evaluate them in rule order, collect each subscription at most once with its dedup keys,
//! render.
//!
//! Dedup windows are *applied* where the delivery happens (`deliver`), so they hold for whoever
//! delivers; routing only computes the keys. Dry runs apply them here ([`route_dry`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dedup::{DedupKey, DedupStore, Verdict};
use super::matcher::Cond;
use super::{Rendered, Routing, RuleSet};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::render::{EventContext, Expr};

/// A route's dedup window.
#[derive(Debug, Clone)]
pub struct Dedup {
    /// Key over `{event, hookline}`.
    pub key: Expr,
    /// How long a delivered key suppresses repeats.
    pub window: Duration,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Id.
    pub id: Arc<str>,
    /// The condition, minus the topic and category tests the index already applied.
    pub cond: Cond,
    /// Subscriptions, as positions in the rule set's list.
    pub to: Vec<usize>,
    /// Stop evaluating later routes after this one matched.
    pub stop: bool,
    /// Dedup window.
    pub dedup: Option<Dedup>,
}

thread_local! {
    // Reused per thread: routing runs on many threads and allocates nothing here per event.
    static CANDIDATES: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Which matched subscriptions get a rendered body: the others go to their backlog, where the
/// body is rendered when the event is read back.
pub type WantsBody<'a> = &'a dyn Fn(&crate::deliver::SubscriptionSettings) -> bool;

/// Routes `event` with `rules`, rendering a body for each matched subscription `wants_body`
/// selects. Dedup keys are computed, not applied.
pub fn route(
    rules: &RuleSet,
    event: &Event,
    metrics: &Metrics,
    wants_body: WantsBody<'_>,
) -> Routing {
    let source = rules.sources.for_topic(&event.origin.topic);
    let classified = source.classify(event);
    if classified.unknown_severity {
        metrics
            .severity_unknown
            .with_label_values(&[source.label()])
            .inc();
    }
    if classified.categories_truncated {
        metrics
            .categories_truncated
            .with_label_values(&[source.label()])
            .inc();
    }
    let derived = classified.derived;
    let cx = EventContext::new(event, &derived);
    let mut routes = Vec::new();
    // Each matched subscription once, with its dedup keys; `None` once a route without a
    // dedup window (or without a key for this event) reached it: then it is always delivered.
    let mut picked: Vec<(usize, Option<Vec<DedupKey>>)> = Vec::new();
    CANDIDATES.with_borrow_mut(|candidates| {
        rules
            .index
            .for_topic(&event.origin.topic)
            .candidates(&derived.categories, candidates);
        let mut stopped = false;
        for &i in candidates.iter() {
            // After a file route's `stop`, only API subscriptions' own routes are evaluated.
            if stopped && (i as usize) < rules.first_api_route {
                continue;
            }
            let r = &rules.routes[i as usize];
            if !r.cond.holds(&cx) {
                continue;
            }
            routes.push(r.id.to_string());
            // An event without a key (null, or the key failed) is not deduplicated: it
            // would otherwise share one key with every other such event.
            let key = r.dedup.as_ref().and_then(|d| {
                let k = d.key.eval(&cx.view(d.key.needs(), None)).ok()?;
                (!matches!(*k, jmespath::Variable::Null)).then(|| DedupKey {
                    route: r.id.clone(),
                    key: crate::render::expr::var_to_value(&k).to_string(),
                    window: d.window,
                })
            });
            for &s in &r.to {
                let sub = &rules.subscriptions[s];
                if sub.config.status == crate::deliver::SubscriptionStatus::Disabled {
                    continue;
                }
                match picked.iter_mut().find(|(p, _)| *p == s) {
                    Some((_, keys)) => match (keys.as_mut(), &key) {
                        (Some(keys), Some(k)) => keys.push(k.clone()),
                        _ => *keys = None,
                    },
                    None => picked.push((s, key.clone().map(|k| vec![k]))),
                }
            }
            if r.stop {
                stopped = true;
            }
        }
    });
    let deliveries = picked
        .into_iter()
        .map(|(s, keys)| {
            let sub = &rules.subscriptions[s];
            let body = wants_body(sub).then(|| {
                let body = rules.sub_templates[s].render(&cx);
                if body.is_err() {
                    metrics.render_errors.with_label_values(&[&*sub.id]).inc();
                }
                body
            });
            Rendered {
                subscription: sub.clone(),
                body,
                dedup: keys.unwrap_or_default(),
            }
        })
        .collect();
    Routing {
        category: derived.category,
        categories: derived.categories,
        source: derived.source,
        severity: derived.severity,
        raw_severity: derived.raw_severity,
        event_id: derived.event_id,
        routes,
        deliveries,
        suppressed: Vec::new(),
    }
}

/// [`route`] for a dry run: every body rendered, and dedup windows applied with `dedup` as if
/// each delivery succeeded at once (what `hookline test`, `POST /api/v1/rules/test` and the
/// playground show).
pub fn route_dry(rules: &RuleSet, event: &Event, metrics: &Metrics, dedup: &DedupStore) -> Routing {
    let mut routing = route(rules, event, metrics, &|_| true);
    let now = Instant::now();
    let webhook_id = |sub: &str| crate::event::webhook_id(&event.origin, sub);
    let (kept, suppressed): (Vec<_>, Vec<_>) = routing.deliveries.into_iter().partition(|d| {
        let id = webhook_id(&d.subscription.id);
        match dedup.claim(&d.subscription.id, &d.dedup, &id, now) {
            Verdict::Deliver => {
                dedup.delivered(&d.subscription.id, &d.dedup, &id, now);
                true
            }
            Verdict::Repeat => false,
        }
    });
    for d in &suppressed {
        metrics
            .dedup_suppressed
            .with_label_values(&[&*d.subscription.id])
            .inc();
    }
    routing.deliveries = kept;
    routing.suppressed = suppressed
        .into_iter()
        .map(|d| d.subscription.id.clone())
        .collect();
    routing
}
