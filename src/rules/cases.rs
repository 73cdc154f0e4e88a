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
    let base = cases_file.parent().unwrap_or(Path::new("."));
    let shown = cases_file
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let mut results = Vec::new();
    for (i, case) in file.cases.into_iter().enumerate() {
        let place = format!("{shown}:{}", lines.get(i).copied().unwrap_or(0));
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

fn run_case(rules: &Arc<RuleSet>, case: &CaseConfig, base: &Path) -> Result<Vec<String>, String> {
    let events = match &case.event {
        Value::String(file) => read_events(&base.join(file))?,
        inline => split(inline.clone()),
    };
    let events: Vec<Value> = std::iter::repeat_n(events, case.repeat).flatten().collect();
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
        let body = match &d.body {
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
