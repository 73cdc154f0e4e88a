//! Routing one event with one rule set: classify, look up candidate routes in the index,
//! evaluate them in rule order, collect each subscription at most once, apply dedup windows,
//! render.

use std::cell::OnceCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dedup::DedupStore;
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

/// What happened to one subscription while matching.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Deliver,
    Suppressed,
}

thread_local! {
    // Reused per thread: routing runs on many threads and allocates nothing here per event.
    static CANDIDATES: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Routes `event` with `rules`.
pub fn route(rules: &RuleSet, event: &Event, metrics: &Metrics, dedup: &DedupStore) -> Routing {
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
    let now = OnceCell::new();
    let mut routes = Vec::new();
    let mut picked: Vec<(usize, Outcome)> = Vec::new();
    CANDIDATES.with_borrow_mut(|candidates| {
        rules
            .index
            .for_topic(&event.origin.topic)
            .candidates(&derived.categories, candidates);
        for &i in candidates.iter() {
            let r = &rules.routes[i as usize];
            if !r.cond.holds(&cx) {
                continue;
            }
            routes.push(r.id.to_string());
            // An event without a key (null, or the key failed) is not deduplicated: it
            // would otherwise share one key with every other such event.
            let key = r.dedup.as_ref().and_then(|d| {
                let k = d.key.eval(&cx.view(d.key.needs(), None)).ok()?;
                (!matches!(*k, jmespath::Variable::Null))
                    .then(|| crate::render::expr::var_to_value(&k).to_string())
            });
            for &s in &r.to {
                let sub = &rules.subscriptions[s];
                if sub.config.status == crate::deliver::SubscriptionStatus::Disabled {
                    continue;
                }
                let outcome = match (&r.dedup, &key) {
                    // Suppressed when this route already delivered the key to this
                    // subscription within the window (and no earlier route delivers it now).
                    (Some(d), Some(k))
                        if picked
                            .iter()
                            .all(|(p, o)| *p != s || *o != Outcome::Deliver) =>
                    {
                        let now = *now.get_or_init(Instant::now);
                        if dedup.is_repeat(&sub.id, &r.id, k.clone(), d.window, now) {
                            Outcome::Suppressed
                        } else {
                            Outcome::Deliver
                        }
                    }
                    _ => Outcome::Deliver,
                };
                match picked.iter_mut().find(|(p, _)| *p == s) {
                    Some((_, o)) => {
                        if outcome == Outcome::Deliver {
                            *o = Outcome::Deliver;
                        }
                    }
                    None => picked.push((s, outcome)),
                }
            }
            if r.stop {
                break;
            }
        }
    });
    let mut deliveries = Vec::new();
    let mut suppressed = Vec::new();
    for (s, outcome) in picked {
        let sub = &rules.subscriptions[s];
        match outcome {
            Outcome::Suppressed => {
                metrics
                    .dedup_suppressed
                    .with_label_values(&[&*sub.id])
                    .inc();
                suppressed.push(sub.id.clone());
            }
            Outcome::Deliver => {
                let body = rules.sub_templates[s].render(&cx);
                if body.is_err() {
                    metrics.render_errors.with_label_values(&[&*sub.id]).inc();
                }
                deliveries.push(Rendered {
                    subscription: sub.clone(),
                    body,
                });
            }
        }
    }
    // Rendering is done: the classification moves into the outcome, uncopied.
    drop(cx);
    Routing {
        category: derived.category,
        categories: derived.categories,
        source: derived.source,
        severity: derived.severity,
        raw_severity: derived.raw_severity,
        event_id: derived.event_id,
        routes,
        deliveries,
        suppressed,
    }
}
