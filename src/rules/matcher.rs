//! Route conditions: category any-of (globs), severity floor and sets, JMESPath predicates,
//! negation and all/any combinators.

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::source::is_glob;
use super::Severity;
use crate::render::{EventContext, Expr};

/// Names (categories, topics) matched exactly or by glob; case-sensitive.
#[derive(Debug, Clone)]
pub struct NameMatch {
    /// Literal names.
    pub exact: Vec<String>,
    /// Glob patterns, as written.
    pub patterns: Vec<String>,
    globs: GlobSet,
}

impl NameMatch {
    /// Splits `patterns` into literal names and globs.
    pub fn new(patterns: &[String]) -> Result<NameMatch, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        let (mut exact, mut globs) = (Vec::new(), Vec::new());
        for p in patterns {
            if is_glob(p) {
                builder.add(Glob::new(p)?);
                globs.push(p.clone());
            } else {
                exact.push(p.clone());
            }
        }
        Ok(NameMatch {
            exact,
            patterns: globs,
            globs: builder.build()?,
        })
    }

    /// Whether `name` is one of the names or matches one of the globs.
    pub fn is_match(&self, name: &str) -> bool {
        self.exact.iter().any(|e| e == name)
            || (!self.patterns.is_empty() && self.globs.is_match(name))
    }

    /// Whether any of `names` matches (an event's categories).
    pub fn is_match_any(&self, names: &[String]) -> bool {
        names.iter().any(|n| self.is_match(n))
    }
}

impl std::fmt::Display for NameMatch {
    /// The names and globs as a list, `[ATTACK_*, vuln]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<&str> = self
            .exact
            .iter()
            .chain(&self.patterns)
            .map(String::as_str)
            .collect();
        write!(f, "[{}]", all.join(", "))
    }
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Cond {
    /// Always holds (a route without `match`).
    True,
    /// One of the event's categories is one of these.
    Category(NameMatch),
    /// The severity is at least this.
    MinSeverity(Severity),
    /// The severity is in this set (bit `1 << level`).
    SeverityIn(u8),
    /// The predicate is truthy.
    Expr(Expr),
    /// The inner condition does not hold.
    Not(Box<Cond>),
    /// Every inner condition holds (cheapest first).
    All(Vec<Cond>),
    /// At least one holds.
    Any(Vec<Cond>),
}

/// A bit for `severity` in a [`Cond::SeverityIn`] set.
pub fn severity_bit(s: Severity) -> u8 {
    1 << (s as u8)
}

impl Cond {
    /// Builds `All(parts)`, ordered cheapest first so predicates run only when the cheap
    /// checks pass; a single part stands alone, none is `True`.
    pub fn all(mut parts: Vec<Cond>) -> Cond {
        parts.retain(|c| !matches!(c, Cond::True));
        parts.sort_by_key(Cond::cost);
        match parts.len() {
            0 => Cond::True,
            1 => parts.pop().expect("one part"),
            _ => Cond::All(parts),
        }
    }

    fn cost(&self) -> u8 {
        match self {
            Cond::True | Cond::MinSeverity(_) | Cond::SeverityIn(_) => 0,
            Cond::Category(_) => 1,
            Cond::Not(c) => c.cost(),
            Cond::All(_) | Cond::Any(_) => 2,
            Cond::Expr(_) => 3,
        }
    }

    /// Evaluates against one classified event. A predicate that fails at run time does not
    /// hold (the failure is not the event's fault, and matching must not stop).
    pub fn holds(&self, cx: &EventContext<'_>) -> bool {
        match self {
            Cond::True => true,
            Cond::Category(m) => m.is_match_any(&cx.derived.categories),
            Cond::MinSeverity(s) => cx.derived.severity >= *s,
            Cond::SeverityIn(set) => set & severity_bit(cx.derived.severity) != 0,
            Cond::Expr(e) => e
                .eval(&cx.view(e.needs(), None))
                .is_ok_and(|v| v.is_truthy()),
            Cond::Not(c) => !c.holds(cx),
            Cond::All(cs) => cs.iter().all(|c| c.holds(cx)),
            Cond::Any(cs) => cs.iter().any(|c| c.holds(cx)),
        }
    }

    /// Removes the top-level category test, for the index: the route is then only looked at
    /// for events whose category matched it already.
    pub fn take_category(self) -> (Option<NameMatch>, Cond) {
        match self {
            Cond::Category(m) => (Some(m), Cond::True),
            Cond::All(parts) => {
                let mut found = None;
                let mut rest = Vec::new();
                for p in parts {
                    match p {
                        Cond::Category(m) if found.is_none() => found = Some(m),
                        other => rest.push(other),
                    }
                }
                (found, Cond::all(rest))
            }
            other => (None, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Origin};
    use crate::render::Derived;
    use serde_json::json;

    fn check(cond: &Cond, category: &str, severity: Severity, event: serde_json::Value) -> bool {
        check_all(cond, &[category], severity, event)
    }

    fn check_all(
        cond: &Cond,
        categories: &[&str],
        severity: Severity,
        event: serde_json::Value,
    ) -> bool {
        let ev = Event::new(
            Origin {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                index: 0,
            },
            event,
        );
        let d = Derived {
            category: categories[0].into(),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            severity,
            raw_severity: None,
            event_id: None,
            source: None,
            fields: vec![],
        };
        cond.holds(&EventContext::new(&ev, &d))
    }

    fn cat(p: &[&str]) -> Cond {
        Cond::Category(
            NameMatch::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap(),
        )
    }

    #[test]
    fn category_any_of_with_globs() {
        let c = cat(&["ATTACK_*", "vuln"]);
        assert!(check(&c, "ATTACK_ALERT", Severity::Info, json!({})));
        assert!(check(&c, "vuln", Severity::Info, json!({})));
        assert!(
            !check(&c, "attack_alert", Severity::Info, json!({})),
            "case-sensitive"
        );
        assert!(!check(&c, "new_hits", Severity::Info, json!({})));
    }

    #[test]
    fn a_list_of_categories_matches_when_any_element_does() {
        let wazuh = ["syslog", "sshd", "authentication_failures"];
        let c = cat(&["authentication_failures"]);
        assert!(check_all(&c, &wazuh, Severity::Info, json!({})));
        assert!(check_all(
            &cat(&["auth*"]),
            &wazuh,
            Severity::Info,
            json!({})
        ));
        assert!(!check_all(
            &cat(&["authentication_success"]),
            &wazuh,
            Severity::Info,
            json!({})
        ));
        // `not: {category: ...}` holds only when no element matches.
        let not = Cond::Not(Box::new(cat(&["sshd"])));
        assert!(!check_all(&not, &wazuh, Severity::Info, json!({})));
        assert!(check_all(
            &not,
            &["syslog", "pam"],
            Severity::Info,
            json!({})
        ));
    }

    #[test]
    fn severity_floor_and_set() {
        let floor = Cond::MinSeverity(Severity::High);
        assert!(check(&floor, "x", Severity::Critical, json!({})));
        assert!(check(&floor, "x", Severity::High, json!({})));
        assert!(!check(&floor, "x", Severity::Medium, json!({})));
        let set = Cond::SeverityIn(severity_bit(Severity::Low) | severity_bit(Severity::Info));
        assert!(check(&set, "x", Severity::Low, json!({})));
        assert!(!check(&set, "x", Severity::Medium, json!({})));
    }

    #[test]
    fn predicates_see_event_and_hookline() {
        let e = Cond::Expr(
            Expr::compile("event.block_status == 'blocked' && hookline.category == 'hit'").unwrap(),
        );
        assert!(check(
            &e,
            "hit",
            Severity::Info,
            json!({"block_status": "blocked"})
        ));
        assert!(!check(
            &e,
            "hit",
            Severity::Info,
            json!({"block_status": "monitored"})
        ));
        let failing = Cond::Expr(Expr::compile("length(event.n)").unwrap());
        assert!(
            !check(&failing, "x", Severity::Info, json!({"n": 5})),
            "runtime error is no match"
        );
    }

    #[test]
    fn combinators() {
        let c = Cond::all(vec![
            cat(&["a*"]),
            Cond::Not(Box::new(Cond::MinSeverity(Severity::High))),
            Cond::Any(vec![
                cat(&["ab"]),
                Cond::SeverityIn(severity_bit(Severity::Info)),
            ]),
        ]);
        assert!(check(&c, "ab", Severity::Medium, json!({})));
        assert!(check(&c, "ax", Severity::Info, json!({})));
        assert!(!check(&c, "ax", Severity::Low, json!({})));
        assert!(!check(&c, "ab", Severity::High, json!({})));
        assert!(!check(&c, "b", Severity::Info, json!({})));
    }

    #[test]
    fn take_category_keeps_the_rest() {
        let c = Cond::all(vec![cat(&["a"]), Cond::MinSeverity(Severity::High)]);
        let (m, rest) = c.take_category();
        assert_eq!(m.unwrap().exact, vec!["a".to_string()]);
        assert!(matches!(rest, Cond::MinSeverity(Severity::High)));
        let (m, rest) = Cond::Not(Box::new(cat(&["a"]))).take_category();
        assert!(m.is_none());
        assert!(matches!(rest, Cond::Not(_)));
    }
}
