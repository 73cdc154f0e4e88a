//! What a template, a route predicate or a dedup key sees: one JSON object
//!
//! ```text
//! { "event":   <the raw event>,
//!   "hookline": { category, severity, raw_severity, event_id, source, topic, partition,
//!                 offset, index, key, received_at, kafka_timestamp, fields: {...} },
//!   "vars":    <the template's vars>   (templates only) }
//! ```
//!
//! built lazily: an event that no predicate, dedup key or expression template looks at is never
//! converted for the interpreter.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::SecondsFormat;
use jmespath::{Rcvar, Variable};
use serde_json::Value;

use super::expr::{object, value_to_var};
use crate::event::Event;
use crate::rules::Severity;

/// The fields classification derives from an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// Category (`unknown`-like default when the extractor found nothing).
    pub category: String,
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

/// One event and its derived fields, with the interpreter views built on first use.
pub struct EventContext<'a> {
    /// The event.
    pub event: &'a Event,
    /// Its classification.
    pub derived: &'a Derived,
    event_var: OnceCell<Rcvar>,
    base: OnceCell<BTreeMap<String, Rcvar>>,
    root: OnceCell<Rcvar>,
}

impl<'a> EventContext<'a> {
    /// A context over `event` classified as `derived`.
    pub fn new(event: &'a Event, derived: &'a Derived) -> Self {
        EventContext {
            event,
            derived,
            event_var: OnceCell::new(),
            base: OnceCell::new(),
            root: OnceCell::new(),
        }
    }

    /// Hands over a conversion classification already made, so it is not made twice.
    pub fn seed_event_var(&self, var: Rcvar) {
        let _ = self.event_var.set(var);
    }

    /// The raw event as an interpreter value (converted once).
    pub fn event_var(&self) -> Rcvar {
        self.event_var
            .get_or_init(|| value_to_var(&self.event.payload))
            .clone()
    }

    fn base(&self) -> &BTreeMap<String, Rcvar> {
        self.base.get_or_init(|| {
            let mut m = BTreeMap::new();
            m.insert("event".to_string(), self.event_var());
            m.insert("hookline".to_string(), self.hookline());
            m
        })
    }

    /// `{event, hookline}`: what predicates and dedup keys are evaluated against.
    pub fn root(&self) -> Rcvar {
        self.root
            .get_or_init(|| object(self.base().clone()))
            .clone()
    }

    /// `{event, hookline, vars}`: what a template with `vars` is evaluated against.
    pub fn with_vars(&self, vars: &Rcvar) -> Rcvar {
        let mut m = self.base().clone();
        m.insert("vars".to_string(), vars.clone());
        object(m)
    }

    fn hookline(&self) -> Rcvar {
        let d = self.derived;
        let o = &self.event.origin;
        let s = |v: &str| Arc::new(Variable::String(v.to_string()));
        let opt = |v: &Option<String>| v.as_deref().map_or_else(|| Arc::new(Variable::Null), s);
        let n = |v: i64| Arc::new(Variable::Number(v.into()));
        let fields = d
            .fields
            .iter()
            .map(|(k, v)| (k.to_string(), value_to_var(v)))
            .collect();
        let mut m = BTreeMap::new();
        m.insert("category".into(), s(&d.category));
        m.insert("severity".into(), s(d.severity.as_str()));
        m.insert("raw_severity".into(), opt(&d.raw_severity));
        m.insert("event_id".into(), opt(&d.event_id));
        m.insert(
            "source".into(),
            d.source
                .as_deref()
                .map_or_else(|| Arc::new(Variable::Null), s),
        );
        m.insert("topic".into(), s(&o.topic));
        m.insert("partition".into(), n(o.partition.into()));
        m.insert("offset".into(), n(o.offset));
        m.insert("index".into(), n(o.index.into()));
        m.insert("key".into(), s(&o.key()));
        m.insert(
            "received_at".into(),
            s(&self
                .event
                .received_at
                .to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        m.insert(
            "kafka_timestamp".into(),
            self.event
                .kafka_timestamp_ms
                .map_or_else(|| Arc::new(Variable::Null), n),
        );
        m.insert("fields".into(), object(fields));
        object(m)
    }
}
