//! Why a route did not match an event: for dry runs (`hookline test`, `POST
//! /api/v1/rules/test`, the playground), so a user sees the reason next to the outcome.
//!
//! Routing itself never explains (it must stay cheap); this module re-asks, for the routes a
//! routing left out, the same questions in the same order: was it evaluated at all (an earlier
//! route may `stop`), does its topic filter admit the topic, does one of the event's categories
//! match its category test (the index's two filters), and which part of its condition failed.
//! [`why_not`] mirrors [`Cond::holds`]; a test keeps the two in step.

use std::sync::Arc;

use super::matcher::{severity_bit, Cond, NameMatch};
use super::{Routing, RuleSet, Severity};
use crate::event::Event;
use crate::render::EventContext;

/// A route that did not match one event, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotMatched {
    /// The route's id.
    pub route: Arc<str>,
    /// Why, for people: `severity medium is below min_severity high`.
    pub reason: String,
}

/// Why each route of `rules` that `routing` (the outcome of routing `event` with `rules`) did
/// not list did not match, in rule order.
pub fn not_matched(rules: &RuleSet, event: &Event, routing: &Routing) -> Vec<NotMatched> {
    let topic = &event.origin.topic;
    // Classification is a pure function of the source and the event: the same as routing's.
    let derived = rules.sources.for_topic(topic).classify(event).derived;
    let cx = EventContext::new(event, &derived);
    let mut stopped_by: Option<&str> = None;
    let mut out = Vec::new();
    for (i, route) in rules.routes.iter().enumerate() {
        if routing.routes.iter().any(|m| **m == *route.id) {
            if route.stop && stopped_by.is_none() {
                stopped_by = Some(&route.id);
            }
            continue;
        }
        // A file route's `stop` does not hold back API subscriptions' own routes.
        let reason = match stopped_by.filter(|_| i < rules.first_api_route) {
            Some(s) => format!("not evaluated: route {s:?} matched earlier and stops evaluation"),
            None => {
                let (topics, categories) = rules.index.filters(i);
                topic_or_category(topic, &derived.categories, topics, categories)
                    .or_else(|| why_not(&route.cond, &cx))
                    // Cannot happen with the rule set that routed the event; said plainly
                    // rather than hidden if it ever does.
                    .unwrap_or_else(|| "its condition holds for this event".into())
            }
        };
        out.push(NotMatched {
            route: route.id.clone(),
            reason,
        });
    }
    out
}

/// The index's filters: the route's topics, then its top-level category test.
fn topic_or_category(
    topic: &str,
    categories: &[String],
    topics: Option<&NameMatch>,
    category: Option<&NameMatch>,
) -> Option<String> {
    if let Some(t) = topics.filter(|t| !t.is_match(topic)) {
        return Some(format!("topic {topic} is not one of its topics {t}"));
    }
    category
        .filter(|c| !c.is_match_any(categories))
        .map(|c| category_miss(categories, c))
}

fn category_miss(categories: &[String], test: &NameMatch) -> String {
    match categories {
        [one] => format!("category {one} does not match {test}"),
        many => format!(
            "none of the categories [{}] matches {test}",
            many.join(", ")
        ),
    }
}

/// Why `cond` does not hold for `cx`; `None` when it holds. Mirrors [`Cond::holds`].
pub fn why_not(cond: &Cond, cx: &EventContext<'_>) -> Option<String> {
    let severity = cx.derived.severity;
    match cond {
        Cond::True => None,
        Cond::Category(m) => (!m.is_match_any(&cx.derived.categories))
            .then(|| category_miss(&cx.derived.categories, m)),
        Cond::MinSeverity(min) => {
            (severity < *min).then(|| format!("severity {severity} is below min_severity {min}"))
        }
        Cond::SeverityIn(set) => (set & severity_bit(severity) == 0)
            .then(|| format!("severity {severity} is not one of {}", severities(*set))),
        Cond::Expr(e) => match e.eval(&cx.view(e.needs(), None)) {
            Ok(v) if v.is_truthy() => None,
            Ok(v) => Some(format!(
                "expr \"{}\" gave {}",
                e.as_str(),
                crate::render::expr::var_to_value(&v)
            )),
            Err(err) => Some(format!("expr \"{}\" failed: {}", e.as_str(), err.reason)),
        },
        Cond::Not(inner) => why_not(inner, cx)
            .is_none()
            .then(|| format!("not: {} holds", describe(inner))),
        Cond::All(parts) => parts.iter().find_map(|p| why_not(p, cx)),
        Cond::Any(parts) => {
            let reasons: Option<Vec<String>> = parts.iter().map(|p| why_not(p, cx)).collect();
            reasons.map(|r| format!("none of any: {}", r.join("; ")))
        }
    }
}

/// A condition in a few words, as written in a rule file.
pub fn describe(cond: &Cond) -> String {
    let list = |parts: &[Cond]| parts.iter().map(describe).collect::<Vec<_>>().join("; ");
    match cond {
        Cond::True => "always".into(),
        Cond::Category(m) => format!("category {m}"),
        Cond::MinSeverity(s) => format!("min_severity {s}"),
        Cond::SeverityIn(set) => format!("severity {}", severities(*set)),
        Cond::Expr(e) => format!("expr \"{}\"", e.as_str()),
        Cond::Not(inner) => format!("not ({})", describe(inner)),
        Cond::All(parts) => format!("all ({})", list(parts)),
        Cond::Any(parts) => format!("any ({})", list(parts)),
    }
}

fn severities(set: u8) -> String {
    let names: Vec<&str> = Severity::ALL
        .into_iter()
        .filter(|s| set & severity_bit(*s) != 0)
        .map(Severity::as_str)
        .collect();
    format!("[{}]", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{Derived, Expr};
    use crate::rules::dry_run::event_at;
    use serde_json::json;

    fn names(p: &[&str]) -> NameMatch {
        NameMatch::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn derived(categories: &[&str], severity: Severity) -> Derived {
        Derived {
            category: categories[0].into(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            severity,
            raw_severity: None,
            event_id: None,
            source: None,
            fields: vec![],
        }
    }

    fn conditions() -> Vec<Cond> {
        let cat = |p: &[&str]| Cond::Category(names(p));
        let expr = |t: &str| Cond::Expr(Expr::compile(t).unwrap());
        vec![
            Cond::True,
            cat(&["sshd"]),
            cat(&["auth*", "web"]),
            Cond::MinSeverity(Severity::High),
            Cond::SeverityIn(severity_bit(Severity::Low) | severity_bit(Severity::Medium)),
            expr("event.blocked == `true`"),
            expr("length(event.n)"),
            Cond::Not(Box::new(cat(&["web"]))),
            Cond::all(vec![cat(&["sshd"]), Cond::MinSeverity(Severity::Medium)]),
            Cond::Any(vec![cat(&["web"]), Cond::MinSeverity(Severity::Critical)]),
            Cond::Not(Box::new(Cond::Any(vec![
                expr("event.blocked"),
                Cond::SeverityIn(severity_bit(Severity::Info)),
            ]))),
        ]
    }

    #[test]
    fn explanations_agree_with_matching() {
        let events = [
            json!({}),
            json!({"blocked": true, "n": 5}),
            json!({"blocked": false, "n": "abc"}),
        ];
        let categories: [&[&str]; 4] = [
            &["sshd"],
            &["syslog", "sshd", "authentication_failures"],
            &["web"],
            &["other"],
        ];
        for cond in conditions() {
            for payload in &events {
                for cats in categories {
                    for severity in Severity::ALL {
                        let ev = event_at("t", 0, payload.clone());
                        let d = derived(cats, severity);
                        let cx = EventContext::new(&ev, &d);
                        assert_eq!(
                            cond.holds(&cx),
                            why_not(&cond, &cx).is_none(),
                            "{} on {payload} {cats:?} {severity}: {:?}",
                            describe(&cond),
                            why_not(&cond, &cx)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reasons_read_like_the_rule_file() {
        let ev = event_at("t", 0, json!({"n": 5}));
        let d = derived(&["syslog", "sshd"], Severity::Medium);
        let cx = EventContext::new(&ev, &d);
        let c = conditions();
        assert_eq!(
            why_not(&c[2], &cx).unwrap(),
            "none of the categories [syslog, sshd] matches [web, auth*]"
        );
        assert_eq!(
            why_not(&c[3], &cx).unwrap(),
            "severity medium is below min_severity high"
        );
        assert_eq!(
            why_not(&c[5], &cx).unwrap(),
            "expr \"event.blocked == `true`\" gave false"
        );
        assert_eq!(
            why_not(&c[6], &cx).unwrap(),
            "expr \"length(event.n)\" failed: Runtime error: Argument 0 expects type array|object|string, given number"
        );
        assert_eq!(
            why_not(&c[9], &cx).unwrap(),
            "none of any: none of the categories [syslog, sshd] matches [web]; severity medium is below min_severity critical"
        );
        assert_eq!(
            why_not(&Cond::Not(Box::new(c[1].clone())), &cx).unwrap(),
            "not: category [sshd] holds"
        );
        assert_eq!(
            topic_or_category("x", &d.categories, Some(&names(&["a", "b.*"])), None).unwrap(),
            "topic x is not one of its topics [a, b.*]"
        );
    }
}
