//! The rule file a benchmark routes with: one source over the benchmark topic, a small object
//! template that reads four fields (and copies the produce timestamp the receiver measures
//! latency from), subscriptions, and routes.

use std::fmt::Write;

use super::receiver::server::PRODUCED_FIELD;

/// The template of every benchmark subscription unless a scenario names another: a small
/// object built from four fields.
pub const SMALL_TEMPLATE: &str = "{id: event.id, severity: hookline.severity, title: event.title, produced_us: event.produced_us}";

/// One subscription: an id, a URL, and any other fields as YAML flow values.
#[derive(Clone, Debug)]
pub struct Subscription {
    id: String,
    url: String,
    template: Option<String>,
    fields: Vec<(String, String)>,
}

impl Subscription {
    /// `id` delivering to `url` with the small template.
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> Self {
        Subscription {
            id: id.into(),
            url: url.into(),
            template: Some("bench".into()),
            fields: Vec::new(),
        }
    }

    /// Sets a subscription field to a YAML flow value: `set("concurrency", "64")`,
    /// `set("batch", "{max_events: 500}")`, `set("rate_limit", "{per_second: 100}")`,
    /// `set("status", "paused")`.
    pub fn set(mut self, field: &str, yaml: impl Into<String>) -> Self {
        self.fields.retain(|(f, _)| f != field);
        self.fields.push((field.to_string(), yaml.into()));
        self
    }

    /// Uses template `name` (`raw`, `slack`, ... or one added with [`RuleSet::template`]).
    pub fn template(mut self, name: &str) -> Self {
        self.template = Some(name.to_string());
        self
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A whole rule file.
#[derive(Clone, Debug)]
pub struct RuleSet {
    topic: String,
    templates: Vec<(String, String)>,
    subscriptions: Vec<Subscription>,
    routes: Vec<(String, String, Vec<String>)>,
}

impl RuleSet {
    /// Rules over `topic`, classified by the benchmark events' `category`, `severity` and `id`
    /// fields, with the small template as `bench`.
    pub fn new(topic: impl Into<String>) -> Self {
        RuleSet {
            topic: topic.into(),
            templates: vec![("bench".into(), SMALL_TEMPLATE.into())],
            subscriptions: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Adds (or replaces) template `id` with a JMESPath `expression`.
    pub fn template(mut self, id: &str, expression: &str) -> Self {
        self.templates.retain(|(t, _)| t != id);
        self.templates.push((id.into(), expression.into()));
        self
    }

    /// Adds a subscription.
    pub fn subscription(mut self, subscription: Subscription) -> Self {
        self.subscriptions.push(subscription);
        self
    }

    /// Adds a route: `id`, its `match` as a YAML flow mapping (`{min_severity: high}`), and
    /// the subscriptions it sends to.
    pub fn route(mut self, id: &str, matching: &str, to: &[&str]) -> Self {
        self.routes.push((
            id.into(),
            matching.into(),
            to.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// The issue-10 setup: one route with `min_severity: high` to every subscription so far.
    pub fn high_to_all(self) -> Self {
        let ids: Vec<String> = self.subscriptions.iter().map(|s| s.id.clone()).collect();
        let to: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.route("high", "{min_severity: high}", &to)
    }

    /// The rule file as YAML.
    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let _ = writeln!(
            y,
            "sources:\n  - id: bench\n    topics: [{}]",
            quote(&self.topic)
        );
        y.push_str("    category: category\n    severity: severity\n    event_id: id\n");
        y.push_str("templates:\n");
        for (id, expression) in &self.templates {
            let _ = writeln!(y, "  - id: {id}\n    expression: {}", quote(expression));
        }
        y.push_str("subscriptions:\n");
        for s in &self.subscriptions {
            let _ = writeln!(y, "  - id: {}\n    url: {}", s.id, quote(&s.url));
            if let Some(t) = &s.template {
                let _ = writeln!(y, "    template: {t}");
            }
            for (field, value) in &s.fields {
                let _ = writeln!(y, "    {field}: {value}");
            }
        }
        y.push_str("routes:\n");
        for (id, matching, to) in &self.routes {
            let _ = writeln!(
                y,
                "  - id: {id}\n    match: {matching}\n    to: [{}]",
                to.join(", ")
            );
        }
        y
    }
}

/// A rendered body of the small template, as the router sends it for one event (what `wrk`
/// posts for the ceiling).
pub fn small_body(produced_us: u64) -> String {
    format!(
        r#"{{"id":"e00000001","{PRODUCED_FIELD}":{produced_us},"severity":"high","title":"bench event 00000001"}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_load() {
        let rules = RuleSet::new("bench.events")
            .subscription(
                Subscription::new("s0", "http://127.0.0.1:1/s0")
                    .set("concurrency", "64")
                    .set("batch", "{max_events: 500}"),
            )
            .subscription(Subscription::new("s1", "http://127.0.0.1:1/s1").set("status", "paused"))
            .high_to_all();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bench.yaml"), rules.to_yaml()).unwrap();
        let metrics = crate::metrics::Metrics::new();
        let loaded = crate::rules::reload::load_initial(dir.path(), &metrics)
            .unwrap_or_else(|e| panic!("{e:?}\n{}", rules.to_yaml()));
        assert_eq!(loaded.subscriptions().len(), 2);
    }
}
