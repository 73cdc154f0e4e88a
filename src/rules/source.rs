//! Classification: which source a topic belongs to, and the categories, severity, event id and
//! extra fields its extractors find in an event.
//!
//! Many security formats carry their category as a list (Wazuh `rule.groups`, ECS
//! `event.category`, Sentinel tactics), so a category extractor may give a string or a list.
//! Every element is a category; one of them is the primary (the first, or what the source's
//! `primary_category` extractor finds), which templates see as `hookline.category`.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::aliases::{Normalised, Scale};
use crate::event::Event;
use crate::render::expr::Extracted;
use crate::render::{Derived, Expr};

/// Extractors used when a source leaves one out; they fit common flat events.
pub const DEFAULT_CATEGORY: &str = "not_null(category, type, event_type, kind)";
/// See [`DEFAULT_CATEGORY`].
pub const DEFAULT_SEVERITY: &str = "not_null(severity, level, priority)";
/// See [`DEFAULT_CATEGORY`].
pub const DEFAULT_EVENT_ID: &str = "not_null(id, event_id, uuid)";
/// Category of events whose extractor found none.
pub const UNKNOWN_CATEGORY: &str = "unknown";
/// Categories kept per event at most; the rest are ignored (and counted). Real formats carry a
/// handful; the bound keeps a hostile event from making route lookup arbitrarily expensive.
pub const MAX_CATEGORIES: usize = 64;

/// One compiled source.
#[derive(Debug, Clone)]
pub struct Source {
    /// Id; `None` for the built-in fallback used for topics no source names.
    pub id: Option<Arc<str>>,
    /// Topic names and globs, as written.
    pub topics: Vec<String>,
    /// Category extractor: a string or a list of them.
    pub category: Expr,
    /// Which of the categories is the primary one; the first when absent or null.
    pub primary_category: Option<Expr>,
    /// Severity extractor.
    pub severity: Expr,
    /// Event id extractor.
    pub event_id: Expr,
    /// Extra fields.
    pub fields: Vec<(Arc<str>, Expr)>,
    /// Category when none is found.
    pub default_category: String,
    /// Severity normalisation.
    pub scale: Scale,
}

/// A classified event, and whether its severity was not understood.
#[derive(Debug)]
pub struct Classified {
    /// The derived fields.
    pub derived: Derived,
    /// The severity was present but not understood (it fell to the default).
    pub unknown_severity: bool,
    /// The event had more than [`MAX_CATEGORIES`] categories; the rest were ignored.
    pub categories_truncated: bool,
}

impl Source {
    /// The fallback: default extractors, the rule set's scale.
    pub fn fallback(scale: Scale) -> Source {
        Source {
            id: None,
            topics: vec![],
            category: Expr::compile(DEFAULT_CATEGORY).expect("default extractor"),
            primary_category: None,
            severity: Expr::compile(DEFAULT_SEVERITY).expect("default extractor"),
            event_id: Expr::compile(DEFAULT_EVENT_ID).expect("default extractor"),
            fields: vec![],
            default_category: UNKNOWN_CATEGORY.into(),
            scale,
        }
    }

    /// Every extractor, each evaluated against the event itself.
    pub fn extractors(&self) -> impl Iterator<Item = &Expr> {
        [&self.category, &self.severity, &self.event_id]
            .into_iter()
            .chain(&self.primary_category)
            .chain(self.fields.iter().map(|(_, e)| e))
    }

    /// The `source` label of the unknown-severity metric.
    pub fn label(&self) -> &str {
        self.id.as_deref().unwrap_or("default")
    }

    /// Classifies one event. Extractor failures count as "not found": the event still gets a
    /// category and a severity, never an error, so it is never dropped here.
    pub fn classify(&self, event: &Event) -> Classified {
        let payload = event.payload.view();
        let (categories, primary, categories_truncated) = self.categories(payload);
        let (severity, raw_severity) = match self.severity.eval_value(payload) {
            Ok(v) => {
                let n = match &v {
                    Extracted::Value(serde_json::Value::Number(_)) => {
                        v.as_f64().map(|n| self.scale.number(n))
                    }
                    _ => v.to_text().map(|t| self.scale.text(&t)),
                };
                (
                    n.unwrap_or(Normalised::Absent(self.scale.default)),
                    v.to_text(),
                )
            }
            Err(_) => (Normalised::Unknown(self.scale.default), None),
        };
        let event_id = self
            .event_id
            .eval_value(payload)
            .ok()
            .and_then(|v| v.to_text());
        let fields = self
            .fields
            .iter()
            .map(|(name, e)| {
                let v = e
                    .eval_value(payload)
                    .map(|v| v.to_value())
                    .unwrap_or(serde_json::Value::Null);
                (name.clone(), v)
            })
            .collect();
        Classified {
            derived: Derived {
                category: primary,
                categories,
                severity: severity.severity(),
                raw_severity,
                event_id,
                source: self.id.clone(),
                fields,
            },
            unknown_severity: matches!(severity, Normalised::Unknown(_)),
            categories_truncated,
        }
    }

    /// Every category (never empty: the default when none is found), the primary one, and
    /// whether some were left out. The primary is always among the categories, so a route on
    /// it matches.
    fn categories(&self, payload: &serde_json::Value) -> (Vec<String>, String, bool) {
        let (mut names, truncated) = self
            .category
            .eval_value(payload)
            .map(|v| v.to_names(MAX_CATEGORIES))
            .unwrap_or_default();
        let primary = self
            .primary_category
            .as_ref()
            .and_then(|e| e.eval_value(payload).ok())
            .and_then(|v| v.to_names(1).0.pop());
        match primary {
            Some(p) => {
                if !names.contains(&p) {
                    names.insert(0, p.clone());
                    names.truncate(MAX_CATEGORIES);
                }
                (names, p, truncated)
            }
            None if names.is_empty() => (
                vec![self.default_category.clone()],
                self.default_category.clone(),
                truncated,
            ),
            None => {
                let first = names[0].clone();
                (names, first, truncated)
            }
        }
    }
}

/// Every source, looked up by topic: exact names first, then globs in definition order, then
/// the fallback.
#[derive(Debug)]
pub struct Sources {
    list: Vec<Source>,
    exact: HashMap<String, usize>,
    globs: GlobSet,
    glob_owner: Vec<usize>,
    fallback: Source,
}

/// Whether a topic or category pattern is a glob rather than a literal name.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

impl Sources {
    /// Indexes `list`. Patterns must already be valid globs (checked at load).
    pub fn new(list: Vec<Source>, fallback: Source) -> Result<Sources, globset::Error> {
        let mut exact = HashMap::new();
        let mut builder = GlobSetBuilder::new();
        let mut glob_owner = Vec::new();
        for (i, s) in list.iter().enumerate() {
            for t in &s.topics {
                if is_glob(t) {
                    builder.add(Glob::new(t)?);
                    glob_owner.push(i);
                } else {
                    exact.entry(t.clone()).or_insert(i);
                }
            }
        }
        Ok(Sources {
            list,
            exact,
            globs: builder.build()?,
            glob_owner,
            fallback,
        })
    }

    /// The source for `topic`.
    pub fn for_topic(&self, topic: &str) -> &Source {
        if let Some(&i) = self.exact.get(topic) {
            return &self.list[i];
        }
        if !self.glob_owner.is_empty() {
            if let Some(first) = self.globs.matches(topic).into_iter().min() {
                return &self.list[self.glob_owner[first]];
            }
        }
        &self.fallback
    }

    /// Every defined source, then the fallback.
    pub fn with_fallback(&self) -> impl Iterator<Item = &Source> {
        self.list.iter().chain(std::iter::once(&self.fallback))
    }

    /// Every defined source.
    pub fn list(&self) -> &[Source] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;
    use crate::rules::Severity;
    use serde_json::json;

    fn event(v: serde_json::Value) -> Event {
        Event::new(
            Origin {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                index: 0,
            },
            v,
        )
    }

    fn source(id: &str, topics: &[&str]) -> Source {
        let mut s = Source::fallback(Scale::new([], vec![], Severity::Low));
        s.id = Some(id.into());
        s.topics = topics.iter().map(|t| t.to_string()).collect();
        s
    }

    #[test]
    fn defaults_fit_flat_events() {
        let s = Source::fallback(Scale::new([], vec![], Severity::Info));
        let c = s.classify(&event(json!({"type": "login", "level": "WARN", "id": 42})));
        assert_eq!(c.derived.category, "login");
        assert_eq!(c.derived.severity, Severity::Medium);
        assert_eq!(c.derived.raw_severity.as_deref(), Some("WARN"));
        assert_eq!(c.derived.event_id.as_deref(), Some("42"));
        assert!(!c.unknown_severity);
    }

    #[test]
    fn missing_and_unknown_severities_fall_to_the_default() {
        let s = Source::fallback(Scale::new([], vec![], Severity::Low));
        let c = s.classify(&event(json!({})));
        assert_eq!(c.derived.category, UNKNOWN_CATEGORY);
        assert_eq!(c.derived.severity, Severity::Low);
        assert!(!c.unknown_severity, "absent is not unknown");
        let c = s.classify(&event(json!({"severity": "purple"})));
        assert_eq!(c.derived.severity, Severity::Low);
        assert!(c.unknown_severity);
    }

    #[test]
    fn numeric_severities_use_bands() {
        let mut s = source("n", &["t"]);
        s.scale = Scale::new(
            [],
            super::super::aliases::preset("cvss").unwrap(),
            Severity::Info,
        );
        let c = s.classify(&event(json!({"severity": 9.1})));
        assert_eq!(c.derived.severity, Severity::Critical);
        assert_eq!(c.derived.raw_severity.as_deref(), Some("9.1"));
    }

    #[test]
    fn extractors_and_fields() {
        let mut s = source("w", &["t"]);
        s.category = Expr::compile("details.notification_type").unwrap();
        s.severity = Expr::compile("details.vuln.threat || 'high'").unwrap();
        s.fields = vec![("summary".into(), Expr::compile("upper(summary)").unwrap())];
        let c = s.classify(&event(
            json!({"summary": "hit", "details": {"notification_type": "new_hits"}}),
        ));
        assert_eq!(c.derived.category, "new_hits");
        assert_eq!(c.derived.severity, Severity::High);
        assert_eq!(c.derived.fields, vec![("summary".into(), json!("HIT"))]);
    }

    #[test]
    fn list_categories_are_all_kept_and_the_first_is_primary() {
        let mut s = source("wazuh", &["t"]);
        s.category = Expr::compile("rule.groups").unwrap();
        let c = s.classify(&event(
            json!({"rule": {"groups": ["syslog", "sshd", "authentication_failures"]}}),
        ));
        assert_eq!(
            c.derived.categories,
            ["syslog", "sshd", "authentication_failures"]
        );
        assert_eq!(c.derived.category, "syslog");
        assert!(!c.categories_truncated);
    }

    #[test]
    fn a_primary_category_extractor_picks_another_one() {
        let mut s = source("wazuh", &["t"]);
        s.category = Expr::compile("rule.groups").unwrap();
        s.primary_category = Some(Expr::compile("rule.groups[-1]").unwrap());
        let c = s.classify(&event(json!({"rule": {"groups": ["syslog", "sshd"]}})));
        assert_eq!(c.derived.category, "sshd");
        assert_eq!(c.derived.categories, ["syslog", "sshd"]);
        // A primary that is not in the list joins it, first, so routes on it match.
        s.primary_category = Some(Expr::compile("rule.id").unwrap());
        let c = s.classify(&event(json!({"rule": {"id": 5710, "groups": ["sshd"]}})));
        assert_eq!(c.derived.category, "5710");
        assert_eq!(c.derived.categories, ["5710", "sshd"]);
        // A null primary falls back to the first category.
        let c = s.classify(&event(json!({"rule": {"groups": ["sshd"]}})));
        assert_eq!(c.derived.category, "sshd");
    }

    #[test]
    fn split_strings_blanks_repeats_and_empty_lists() {
        let mut s = source("ossec", &["t"]);
        s.category = Expr::compile("split(rule.group, ',')").unwrap();
        let c = s.classify(&event(
            json!({"rule": {"group": "syslog,sshd, authentication_failed,sshd,"}}),
        ));
        assert_eq!(
            c.derived.categories,
            ["syslog", "sshd", "authentication_failed"],
            "trimmed, blanks and repeats left out"
        );
        s.category = Expr::compile("tags").unwrap();
        s.default_category = "ossec".into();
        for empty in [json!({"tags": []}), json!({"tags": [null, " "]}), json!({})] {
            let c = s.classify(&event(empty));
            assert_eq!(c.derived.category, "ossec");
            assert_eq!(c.derived.categories, ["ossec"]);
        }
        let c = s.classify(&event(json!({"tags": [7, true, "x"]})));
        assert_eq!(c.derived.categories, ["7", "true", "x"]);
    }

    #[test]
    fn category_lists_are_bounded() {
        let mut s = source("many", &["t"]);
        s.category = Expr::compile("c").unwrap();
        let many: Vec<String> = (0..MAX_CATEGORIES + 10).map(|i| format!("c{i}")).collect();
        let c = s.classify(&event(json!({ "c": many })));
        assert_eq!(c.derived.categories.len(), MAX_CATEGORIES);
        assert_eq!(c.derived.categories[..], many[..MAX_CATEGORIES]);
        assert!(c.categories_truncated);
        // Through the interpreter (not a plain path) the same holds.
        s.category = Expr::compile("c[*]").unwrap();
        let c = s.classify(&event(json!({ "c": many })));
        assert_eq!(c.derived.categories.len(), MAX_CATEGORIES);
        assert!(c.categories_truncated);
    }

    #[test]
    fn topic_lookup_prefers_exact_then_first_glob() {
        let srcs = Sources::new(
            vec![
                source("glob", &["security.*"]),
                source("exact", &["security.contrast"]),
                source("later-glob", &["security.w*"]),
            ],
            Source::fallback(Scale::new([], vec![], Severity::Info)),
        )
        .unwrap();
        assert_eq!(srcs.for_topic("security.contrast").label(), "exact");
        assert_eq!(srcs.for_topic("security.wallarm").label(), "glob");
        assert_eq!(srcs.for_topic("other").label(), "default");
    }
}
