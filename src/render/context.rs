//! What a template, a route predicate or a dedup key sees: one JSON object
//!
//! ```text
//! { "event":   <the raw event>,
//!   "hookline": { category, categories, severity, raw_severity, event_id, source, topic,
//!                 partition, offset, index, key, received_at, kafka_timestamp, fields: {...} },
//!   "vars":    <the template's vars>   (templates only) }
//! ```
//!
//! Each expression gets a view with only the parts it reads (see [`super::needs`]): most
//! predicates read a field or two, and converting the whole event for each would cost more
//! than evaluating them. Whole parts, once built, are kept for the other expressions of the
//! same event.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::SecondsFormat;
use jmespath::Rcvar;
use serde_json::Value;

use super::expr::{object, value_to_var};
use super::needs::{prune, Needs};
use crate::event::Event;
use crate::rules::Severity;

/// The fields classification derives from an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// The primary category (the source's default when the extractor found nothing).
    pub category: String,
    /// Every category of the event, the primary among them; never empty. Routes match when
    /// any of them matches.
    pub categories: Vec<String>,
    /// Normalised severity.
    pub severity: Severity,
    /// Severity as the event spelled it.
    pub raw_severity: Option<String>,
    /// Event id.
    pub event_id: Option<String>,
    /// Id of the source that classified it (none: the built-in defaults did).
    pub source: Option<Arc<str>>,
    /// The source's extra fields, by name.
    pub fields: Vec<(Arc<str>, Value)>,
}

/// The names under `hookline`.
pub const HOOKLINE_FIELDS: &[&str] = &[
    "category",
    "categories",
    "severity",
    "raw_severity",
    "event_id",
    "source",
    "topic",
    "partition",
    "offset",
    "index",
    "key",
    "received_at",
    "kafka_timestamp",
    "fields",
];

/// The position of a `hookline` field in [`HOOKLINE_FIELDS`].
pub fn field_index(name: &str) -> Option<usize> {
    HOOKLINE_FIELDS.iter().position(|f| *f == name)
}

/// One event and its derived fields, with interpreter views built on demand.
pub struct EventContext<'a> {
    /// The event.
    pub event: &'a Event,
    /// Its classification.
    pub derived: &'a Derived,
    event_var: OnceCell<Rcvar>,
    hookline: OnceCell<Rcvar>,
    /// Each `hookline` field as JSON, computed when first read (by position in
    /// [`HOOKLINE_FIELDS`]): templates read the same few fields many times.
    fields: [OnceCell<Value>; HOOKLINE_FIELDS.len()],
}

impl<'a> EventContext<'a> {
    /// A context over `event` classified as `derived`.
    pub fn new(event: &'a Event, derived: &'a Derived) -> Self {
        EventContext {
            event,
            derived,
            event_var: OnceCell::new(),
            hookline: OnceCell::new(),
            fields: Default::default(),
        }
    }

    /// The whole context, `{event, hookline}`.
    pub fn root(&self) -> Rcvar {
        self.view(&Needs::everything(), None)
    }

    /// The context as an expression that reads `needs` sees it, with `vars` when given.
    pub fn view(&self, needs: &Needs, vars: Option<&Rcvar>) -> Rcvar {
        let mut m = BTreeMap::new();
        if let Some(n) = needs.under("event") {
            let v = match self.event_var.get() {
                Some(full) => full.clone(),
                None if n.is_everything() => self
                    .event_var
                    .get_or_init(|| value_to_var(self.event.payload.view()))
                    .clone(),
                None => prune(self.event.payload.view(), &n),
            };
            m.insert("event".to_string(), v);
        }
        if let Some(n) = needs.under("hookline") {
            let v = match self.hookline.get() {
                Some(full) => full.clone(),
                None if n.is_everything() => {
                    self.hookline.get_or_init(|| self.hookline(None)).clone()
                }
                None => self.hookline(Some(&n.keys())),
            };
            m.insert("hookline".to_string(), v);
        }
        if let (Some(vars), Some(_)) = (vars, needs.under("vars")) {
            m.insert("vars".to_string(), vars.clone());
        }
        object(m)
    }

    /// The `hookline` object, with only `names` when given.
    fn hookline(&self, names: Option<&[&str]>) -> Rcvar {
        let names = names.unwrap_or(HOOKLINE_FIELDS);
        let m = names
            .iter()
            .filter_map(|n| Some((n.to_string(), value_to_var(self.hookline_ref(n)?))))
            .collect();
        object(m)
    }

    /// The whole `hookline` object as JSON.
    pub fn hookline_value(&self) -> Value {
        Value::Object(
            HOOKLINE_FIELDS
                .iter()
                .enumerate()
                .map(|(i, n)| (n.to_string(), self.hookline_at(i).clone()))
                .collect(),
        )
    }

    /// One `hookline` field, `None` for a name that is not one.
    pub fn hookline_ref(&self, name: &str) -> Option<&Value> {
        field_index(name).map(|i| self.hookline_at(i))
    }

    /// The field at position `i` of [`HOOKLINE_FIELDS`].
    pub fn hookline_at(&self, i: usize) -> &Value {
        self.fields[i].get_or_init(|| {
            self.hookline_field(HOOKLINE_FIELDS[i])
                .expect("every listed field is computed")
        })
    }

    fn hookline_field(&self, name: &str) -> Option<Value> {
        let d = self.derived;
        let o = &self.event.origin;
        let s = |v: &str| Value::String(v.to_string());
        let opt = |v: Option<&str>| v.map_or(Value::Null, s);
        Some(match name {
            "category" => s(&d.category),
            "categories" => Value::Array(d.categories.iter().map(|c| s(c)).collect()),
            "severity" => s(d.severity.as_str()),
            "raw_severity" => opt(d.raw_severity.as_deref()),
            "event_id" => opt(d.event_id.as_deref()),
            "source" => opt(d.source.as_deref()),
            "topic" => s(&o.topic),
            "partition" => o.partition.into(),
            "offset" => o.offset.into(),
            "index" => o.index.into(),
            "key" => Value::String(o.key()),
            "received_at" => Value::String(
                self.event
                    .received_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            "kafka_timestamp" => self
                .event
                .kafka_timestamp_ms
                .map_or(Value::Null, Value::from),
            "fields" => Value::Object(
                d.fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;
    use crate::render::expr::var_to_value;
    use crate::render::Expr;
    use serde_json::json;

    #[test]
    fn views_hold_what_expressions_read_and_agree_with_the_whole() {
        let ev = Event::new(
            Origin {
                topic: "t".into(),
                partition: 1,
                offset: 2,
                index: 3,
            },
            json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"}),
        );
        let d = Derived {
            category: "cat".into(),
            categories: vec!["cat".into()],
            severity: Severity::Low,
            raw_severity: None,
            event_id: Some("e".into()),
            source: None,
            fields: vec![("f".into(), json!(5))],
        };
        let vars = value_to_var(&json!({"v": 1}));
        let cx = EventContext::new(&ev, &d);
        let e = Expr::compile("event.a.b").unwrap();
        assert_eq!(
            var_to_value(&cx.view(e.needs(), Some(&vars))),
            json!({"event": {"a": {"b": 1}}})
        );
        let e = Expr::compile("{k: hookline.key, f: hookline.fields.f, v: vars.v}").unwrap();
        assert_eq!(
            var_to_value(&cx.view(e.needs(), Some(&vars))),
            json!({"hookline": {"key": "t/1/2/3", "fields": {"f": 5}}, "vars": {"v": 1}})
        );
        let root = var_to_value(&cx.root());
        assert_eq!(root["event"], *ev.payload.whole().unwrap());
        assert_eq!(
            root["hookline"].as_object().unwrap().len(),
            HOOKLINE_FIELDS.len()
        );
        assert_eq!(root["hookline"]["raw_severity"], Value::Null);
        // Once the whole event is built, later views reuse it.
        let e = Expr::compile("event.d").unwrap();
        assert_eq!(
            var_to_value(&cx.view(e.needs(), None))["event"],
            *ev.payload.whole().unwrap()
        );
    }
}
