//! Routes and their conditions.

use std::collections::HashMap;
use std::sync::Arc;

use marked_yaml::{Node, Span};

use super::{entry, expr, level, Ids};
use crate::rules::matcher::{severity_bit, Cond, NameMatch};
use crate::rules::model::{ConditionConfig, RouteConfig};
use crate::rules::problems::Problems;
use crate::rules::route::{Dedup, Route};
use crate::rules::Severity;

pub(super) fn compile_routes(
    p: &mut Problems,
    nodes: &[Node],
    subs: &HashMap<&str, usize>,
) -> Vec<(Option<NameMatch>, Option<NameMatch>, Route)> {
    let mut ids = Ids::new("route");
    let mut out = Vec::new();
    for node in nodes {
        let Some(cfg) = entry::<RouteConfig>(p, node, "route") else {
            continue;
        };
        if !ids.fresh(p, &cfg.id) {
            continue;
        }
        let before = p.list.len();
        let what = format!("route {:?}", cfg.id.as_str());
        let at = *cfg.id.span();
        let cond = match &cfg.when {
            Some(c) => condition(p, c, &format!("{what} match"), &at),
            None => Cond::True,
        };
        let mut to = Vec::new();
        // An empty `to` only makes sense as a drop rule that stops evaluation.
        if cfg.to.is_empty() && !cfg.stop {
            p.at(
                &at,
                format!(
                    "{what}: `to` must name at least one subscription (or the route must `stop`)"
                ),
            );
        }
        for s in &cfg.to {
            match subs.get(s.as_str()) {
                Some(&i) if !to.contains(&i) => to.push(i),
                Some(_) => {}
                None => p.at(
                    s.span(),
                    format!("{what}: unknown subscription {:?}", s.as_str()),
                ),
            }
        }
        let topics = if cfg.topics.is_empty() {
            None
        } else {
            names(p, &cfg.topics, &at, &format!("{what} topics"))
        };
        let dedup = cfg.dedup.as_ref().and_then(|d| {
            if d.window.is_zero() {
                p.at(
                    d.key.span(),
                    format!("{what} dedup: window must be longer than 0"),
                );
            }
            expr(p, &d.key, &format!("{what} dedup.key")).map(|key| Dedup {
                key,
                window: d.window,
            })
        });
        if p.list.len() > before {
            continue;
        }
        let (category, cond) = cond.take_category();
        out.push((
            topics,
            category,
            Route {
                id: Arc::from(cfg.id.as_str()),
                cond,
                to,
                stop: cfg.stop,
                dedup,
            },
        ));
    }
    out
}

fn names(p: &mut Problems, pats: &[String], at: &Span, what: &str) -> Option<NameMatch> {
    for pat in pats {
        if let Err(e) = globset::Glob::new(pat) {
            p.at(at, format!("{what}: invalid glob {pat:?}: {}", e.kind()));
            return None;
        }
    }
    NameMatch::new(pats).ok()
}

fn condition(p: &mut Problems, c: &ConditionConfig, what: &str, at: &Span) -> Cond {
    let mut parts = Vec::new();
    if !c.category.is_empty() {
        if let Some(m) = names(p, &c.category, at, &format!("{what}.category")) {
            parts.push(Cond::Category(m));
        }
    }
    if let Some(s) = &c.min_severity {
        if let Some(l) = level(p, s) {
            parts.push(Cond::MinSeverity(l));
        }
    }
    if !c.severity.is_empty() {
        let mut set = 0;
        for s in &c.severity {
            match s.parse::<Severity>() {
                Ok(l) => set |= severity_bit(l),
                Err(e) => p.at(at, format!("{what}.severity: {e}")),
            }
        }
        parts.push(Cond::SeverityIn(set));
    }
    if let Some(e) = &c.expr {
        if let Some(e) = expr(p, e, &format!("{what}.expr")) {
            parts.push(Cond::Expr(e));
        }
    }
    if let Some(n) = &c.not {
        parts.push(Cond::Not(Box::new(condition(
            p,
            n,
            &format!("{what}.not"),
            at,
        ))));
    }
    if !c.all.is_empty() {
        let all = c
            .all
            .iter()
            .enumerate()
            .map(|(i, c)| condition(p, c, &format!("{what}.all[{i}]"), at))
            .collect();
        parts.push(Cond::all(all));
    }
    if !c.any.is_empty() {
        let any = c
            .any
            .iter()
            .enumerate()
            .map(|(i, c)| condition(p, c, &format!("{what}.any[{i}]"), at))
            .collect();
        parts.push(Cond::Any(any));
    }
    Cond::all(parts)
}
