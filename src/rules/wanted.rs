//! What a rule set reads of an event, so the source parses only that ([`Wanted`]; the event
//! module explains why): every path its sources' extractors, its routes' predicates and
//! dedup keys, and its subscriptions' templates read below `event`.
//!
//! Worked out per topic: only the topic's source, the routes whose topics admit it and the
//! templates of their subscriptions count, so a `raw` or `pagerduty` template (which read the
//! whole event) on one topic's routes leaves the other topics parsed for what they need.
//!
//! The analysis of each expression is [`Needs`], which is conservative: what it cannot
//! follow asks for the whole event. `rules/tests/wanted.rs` checks that routing a pruned
//! event gives what routing the whole one gives.

use crate::event::Wanted;
use crate::render::needs::{Needs, Step};

use super::matcher::Cond;
use super::RuleSet;

/// What `rules` reads of an event of `topic`.
pub(super) fn for_topic(rules: &RuleSet, topic: &str) -> Wanted {
    let mut wanted = Wanted::nothing();
    for extractor in rules.sources.for_topic(topic).extractors() {
        add(&mut wanted, extractor.needs());
    }
    let mut templates = vec![false; rules.sub_templates.len()];
    for (i, route) in rules.routes.iter().enumerate() {
        if !rules.index.admits_topic(i, topic) {
            continue;
        }
        add_cond(&mut wanted, &route.cond);
        if let Some(dedup) = &route.dedup {
            add_under_event(&mut wanted, dedup.key.needs());
        }
        for &s in &route.to {
            templates[s] = true;
        }
    }
    for (template, _) in rules
        .sub_templates
        .iter()
        .zip(templates)
        .filter(|(_, t)| *t)
    {
        if let Some(needs) = template.reads_event() {
            add(&mut wanted, needs);
        }
    }
    wanted
}

fn add_cond(wanted: &mut Wanted, cond: &Cond) {
    match cond {
        Cond::Expr(e) => add_under_event(wanted, e.needs()),
        Cond::Not(inner) => add_cond(wanted, inner),
        Cond::All(parts) | Cond::Any(parts) => parts.iter().for_each(|c| add_cond(wanted, c)),
        Cond::True | Cond::Category(_) | Cond::MinSeverity(_) | Cond::SeverityIn(_) => {}
    }
}

/// Adds what an expression over the context (`{event, hookline, vars}`) reads of `event`.
fn add_under_event(wanted: &mut Wanted, needs: &Needs) {
    if let Some(below) = needs.under("event") {
        add(wanted, &below);
    }
}

/// Adds each path of `needs`, read from the event itself.
fn add(wanted: &mut Wanted, needs: &Needs) {
    for path in needs.paths() {
        wanted.add(path.iter().map(|step| match step {
            Step::Key(k) => Some(k.as_str()),
            // Indexes count from the end too: the array is kept whole.
            Step::Index(_) => None,
        }));
    }
}
