//! Routing test cases (`hookline test --cases FILE`): events with the routes, subscriptions and
//! body fields they must produce, so teams can run their routing tests in CI.
//!
//! ```yaml
//! cases:
//!   - name: contrast attack pages the on-call engineer
//!     topic: security.contrast
//!     event: events/contrast.json      # a file (relative to this one) or an inline event
//!     repeat: 1                         # route the event(s) this many times
//!     expect:                           # one mapping for every event, or a list, one per event
//!       category: ATTACK_ALERT            # the primary category
//!       categories: [ATTACK_ALERT]         # every category, exact set, any order
//!       source: contrast
//!       severity: critical
//!       routes: [contrast-attacks]      # exact set, any order
//!       subscriptions: [pagerduty, slack]
//!       suppressed: []
//!       bodies:
//!         pagerduty: {payload.severity: critical}   # JMESPath over the body -> value
//! ```
//!
//! Each case gets a fresh router (its own dedup memory), shared by all its events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::dry_run::{self, Outcome};
use super::load::{node_to_json, yaml_options};
use super::RuleSet;
use crate::render::expr::{value_to_var, var_to_value};
use crate::render::Expr;

/// Why the cases could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum CasesError {
    /// The cases file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cases file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    cases: Vec<CaseConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseConfig {
    name: String,
    topic: String,
    event: Value,
    #[serde(default = "one")]
    repeat: usize,
    #[serde(default)]
    expect: Option<ExpectSpec>,
}

fn one() -> usize {
    1
}

#[derive(Debug)]
enum ExpectSpec {
    Each(Vec<Expect>),
    All(Expect),
}

/// A list or one mapping. Not `#[serde(untagged)]`: its error ("did not match any variant")
/// would hide which key is wrong.
impl<'de> Deserialize<'de> for ExpectSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::Array(items) => serde_json::from_value(Value::Array(items))
                .map(ExpectSpec::Each)
                .map_err(D::Error::custom),
            one => serde_json::from_value(one)
                .map(ExpectSpec::All)
                .map_err(D::Error::custom),
        }
    }
}

/// What one event must produce; absent keys are not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    category: Option<String>,
    categories: Option<Vec<String>>,
    source: Option<String>,
    severity: Option<String>,
    event_id: Option<String>,
    routes: Option<Vec<String>>,
    subscriptions: Option<Vec<String>>,
    suppressed: Option<Vec<String>>,
    #[serde(default)]
    bodies: BTreeMap<String, BTreeMap<String, Value>>,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Its name.
    pub name: String,
    /// Where it is (`cases.yaml:12`).
    pub place: String,
    /// What did not hold; empty when it passed.
    pub failures: Vec<String>,
}

/// Runs every case of `cases_file` against `rules`.
pub fn run(rules: Arc<RuleSet>, cases_file: &Path) -> Result<Vec<CaseResult>, CasesError> {
    let (file, places) = parse(cases_file)?;
    let base = cases_file.parent().unwrap_or(Path::new("."));
    let mut results = Vec::new();
    for (case, place) in file.cases.into_iter().zip(places) {
        let failures = match run_case(&rules, &case, base) {
            Ok(f) => f,
            Err(reason) => vec![reason],
        };
        results.push(CaseResult {
            name: case.name,
            place,
            failures,
        });
    }
    Ok(results)
}

/// A case's event(s), offered by the playground as an example.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Example {
    /// The case's name.
    pub name: String,
    /// Where the case is (`cases.yaml:12`).
    pub place: String,
    /// Its topic.
    pub topic: String,
    /// Its event, or an array of its events.
    pub event: Value,
}

/// The cases of every routing-test file directly in `dir`, as examples. Files that cannot be
/// read or parsed are left out (`hookline test --cases` reports them).
pub fn examples_in(dir: &Path) -> Vec<Example> {
    let files = super::load::rule_files(dir).unwrap_or_default();
    let mut out = Vec::new();
    for path in files {
        let Ok((file, places)) = parse(&path) else {
            continue;
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for (case, place) in file.cases.into_iter().zip(places) {
            let Ok(events) = case_events(&case, base) else {
                continue;
            };
            out.push(Example {
                name: case.name,
                place,
                topic: case.topic,
                event: match <[Value; 1]>::try_from(events) {
                    Ok([one]) => one,
                    Err(many) => Value::Array(many),
                },
            });
        }
    }
    out
}

/// Reads a cases file: its cases and where each is (`cases.yaml:12`). A YAML file without a
/// top-level `cases:` is not a cases file.
fn parse(cases_file: &Path) -> Result<(CasesFile, Vec<String>), CasesError> {
    let invalid = |reason: String| CasesError::Invalid {
        path: cases_file.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(cases_file).map_err(|source| CasesError::Read {
        path: cases_file.to_path_buf(),
        source,
    })?;
    let node = marked_yaml::parse_yaml_with_options(0, &text, yaml_options())
        .map_err(|e| invalid(e.to_string()))?;
    let lines: Vec<usize> = node
        .as_mapping()
        .and_then(|m| m.get_sequence("cases"))
        .map(|s| {
            s.iter()
                .map(|n| n.span().start().map_or(0, |m| m.line()))
                .collect()
        })
        .unwrap_or_default();
    let file: CasesFile =
        serde_json::from_value(node_to_json(&node)).map_err(|e| invalid(e.to_string()))?;
    let shown = cases_file
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let places = (0..file.cases.len())
        .map(|i| format!("{shown}:{}", lines.get(i).copied().unwrap_or(0)))
        .collect();
    Ok((file, places))
}

/// Reads an event file: a JSON object is one event, an array one event per element.
pub fn read_events(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    Ok(split(v))
}

fn split(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => vec![other],
    }
}

/// A case's events: from its file or inline, repeated.
fn case_events(case: &CaseConfig, base: &Path) -> Result<Vec<Value>, String> {
    let events = match &case.event {
        Value::String(file) => read_events(&base.join(file))?,
        inline => split(inline.clone()),
    };
    Ok(std::iter::repeat_n(events, case.repeat).flatten().collect())
}

fn run_case(rules: &Arc<RuleSet>, case: &CaseConfig, base: &Path) -> Result<Vec<String>, String> {
    let events = case_events(case, base)?;
    let routings = dry_run::run(rules.clone(), &case.topic, &events);
    let none = Expect::default();
    let expects: Vec<&Expect> = match &case.expect {
        None => vec![&none; routings.len()],
        Some(ExpectSpec::All(e)) => vec![e; routings.len()],
        Some(ExpectSpec::Each(list)) => {
            if list.len() != routings.len() {
                return Err(format!(
                    "expect lists {} events but the case routes {}",
                    list.len(),
                    routings.len()
                ));
            }
            list.iter().collect()
        }
    };
    let mut failures = Vec::new();
    for (i, (r, e)) in routings.iter().zip(expects).enumerate() {
        let prefix = if routings.len() > 1 {
            format!("event {}: ", i + 1)
        } else {
            String::new()
        };
        for f in check(r, e) {
            failures.push(format!("{prefix}{f}"));
        }
    }
    Ok(failures)
}

fn check(o: &Outcome, e: &Expect) -> Vec<String> {
    let r = &o.routing;
    let mut out = Vec::new();
    let mut eq = |what: &str, want: &Option<String>, got: Option<&str>| {
        if let Some(w) = want {
            if Some(w.as_str()) != got {
                out.push(format!("{what}: expected {w:?}, got {got:?}"));
            }
        }
    };
    eq("category", &e.category, Some(&r.category));
    eq("severity", &e.severity, Some(r.severity.as_str()));
    eq("event_id", &e.event_id, r.event_id.as_deref());
    eq("source", &e.source, r.source.as_deref());
    let delivered: Vec<String> = r
        .deliveries
        .iter()
        .map(|d| d.subscription.id.to_string())
        .collect();
    let suppressed: Vec<String> = r.suppressed.iter().map(|s| s.to_string()).collect();
    for (what, want, got) in [
        ("categories", &e.categories, &r.categories),
        ("routes", &e.routes, &r.routes),
        ("subscriptions", &e.subscriptions, &delivered),
        ("suppressed", &e.suppressed, &suppressed),
    ] {
        if let Some(want) = want {
            let (mut w, mut g) = (want.clone(), got.clone());
            w.sort();
            g.sort();
            if w != g {
                out.push(format!("{what}: expected {want:?}, got {got:?}"));
                if what == "routes" {
                    // Say why each expected route did not match.
                    out.extend(
                        o.not_matched
                            .iter()
                            .filter(|n| want.iter().any(|w| **w == *n.route))
                            .map(|n| format!("  {}: {}", n.route, n.reason)),
                    );
                }
            }
        }
    }
    for (sub, fields) in &e.bodies {
        let Some(d) = r.deliveries.iter().find(|d| &*d.subscription.id == sub) else {
            out.push(format!(
                "bodies.{sub}: the event was not delivered to {sub:?}"
            ));
            continue;
        };
        let body = match d.body.as_ref().expect("dry runs render every body") {
            Ok(b) => value_to_var(b),
            Err(err) => {
                out.push(format!("bodies.{sub}: {err}"));
                continue;
            }
        };
        for (path, want) in fields {
            let got = Expr::compile(path)
                .map_err(|e| e.reason)
                .and_then(|x| x.eval(&body).map_err(|e| e.reason.to_string()))
                .map(|v| var_to_value(&v));
            match got {
                Ok(g) if &g == want => {}
                Ok(g) => out.push(format!("bodies.{sub}.{path}: expected {want}, got {g}")),
                Err(err) => out.push(format!("bodies.{sub}.{path}: {err}")),
            }
        }
    }
    out
}

/// A `cases:` entry that expects what `outcomes` (the dry run of `events` on `topic`) show: the
/// classification, the routes, the subscriptions delivered to and those suppressed. Indented to
/// be pasted under `cases:`. Values are written as JSON, which YAML reads as the same values
/// (and quoted strings stay strings).
pub fn entry(name: &str, topic: &str, events: &[Value], outcomes: &[Outcome]) -> String {
    let json = |v: &Value| serde_json::to_string(v).expect("JSON values encode");
    let expect = |o: &Outcome| -> Vec<(&'static str, Value)> {
        let r = &o.routing;
        let mut fields = vec![
            ("category", Value::from(r.category.as_str())),
            ("categories", Value::from(r.categories.clone())),
            ("severity", Value::from(r.severity.as_str())),
        ];
        if let Some(id) = &r.event_id {
            fields.push(("event_id", Value::from(id.as_str())));
        }
        if let Some(source) = &r.source {
            fields.push(("source", Value::from(&**source)));
        }
        let delivered: Vec<&str> = r.deliveries.iter().map(|d| &*d.subscription.id).collect();
        let suppressed: Vec<&str> = r.suppressed.iter().map(|s| &**s).collect();
        fields.extend([
            ("routes", Value::from(r.routes.clone())),
            ("subscriptions", Value::from(delivered)),
            ("suppressed", Value::from(suppressed)),
        ]);
        fields
    };
    let mut out = format!(
        "  - name: {}\n    topic: {}\n    event: {}\n    expect:\n",
        json(&Value::from(name)),
        json(&Value::from(topic)),
        json(&match events {
            [one] => one.clone(),
            many => Value::Array(many.to_vec()),
        }),
    );
    match outcomes {
        [one] => {
            for (key, value) in expect(one) {
                out.push_str(&format!("      {key}: {}\n", json(&value)));
            }
        }
        many => {
            for o in many {
                let m: serde_json::Map<String, Value> = expect(o)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                out.push_str(&format!("      - {}\n", json(&Value::Object(m))));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_rules() -> Arc<RuleSet> {
        let env =
            |name: &str| (name == "HOOKLINE_DEV_RECEIVER").then(|| "http://127.0.0.1:9".into());
        Arc::new(RuleSet::load_dir_with_env(Path::new("rules/examples"), &env).unwrap())
    }

    #[test]
    fn the_cases_files_of_a_rules_directory_are_examples() {
        let examples = examples_in(Path::new("rules/examples"));
        assert!(examples.len() >= 13, "{examples:?}");
        let wazuh = examples
            .iter()
            .find(|e| e.topic == "security.wazuh")
            .unwrap();
        assert_eq!(wazuh.event["rule"]["groups"][2], "authentication_failures");
        assert!(wazuh.place.starts_with("cases.yaml:"), "{}", wazuh.place);
        let lifecycle = examples
            .iter()
            .find(|e| e.name.starts_with("Netography lifecycle"))
            .unwrap();
        assert_eq!(lifecycle.event.as_array().map(Vec::len), Some(4));
    }

    #[test]
    fn written_entries_pass_against_the_rules_they_were_written_from() {
        let rules = example_rules();
        let tmp = tempfile::tempdir().unwrap();
        let mut text = String::from("cases:\n");
        let mut written = 0;
        for example in examples_in(Path::new("rules/examples")) {
            let events = dry_run::events_of(example.event.clone());
            let outcomes = dry_run::run(rules.clone(), &example.topic, &events);
            text.push_str(&entry(&example.name, &example.topic, &events, &outcomes));
            written += 1;
        }
        // Strings that YAML would read as something else unless quoted.
        let tricky = serde_json::json!({"id": "007", "level": "true", "n": 1.5, "s": "a: b # c", "u": "\u{e9}\n\t\"'", "category": ["x", "null"]});
        let events = vec![tricky];
        let outcomes = dry_run::run(rules.clone(), "other.topic", &events);
        assert_eq!(outcomes[0].routing.event_id.as_deref(), Some("007"));
        text.push_str(&entry(
            "tricky: \"names\"",
            "other.topic",
            &events,
            &outcomes,
        ));
        let file = tmp.path().join("cases.yaml");
        std::fs::write(&file, &text).unwrap();
        let results = run(rules, &file).unwrap();
        assert_eq!(results.len(), written + 1);
        for r in results {
            assert!(
                r.failures.is_empty(),
                "{}: {:?}\n{text}",
                r.name,
                r.failures
            );
        }
    }
}
