//! Docs move with the code: every metric hookline exports is in docs/metrics.md, and every
//! configuration key is in docs/configuration.md (and nothing there that no longer exists).

use std::collections::BTreeSet;

fn read(relative: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative))
        .unwrap()
}

#[test]
fn every_metric_is_documented() {
    let metrics = hookline::metrics::Metrics::new();
    let names = metrics.family_names();
    assert!(names.len() >= 30, "found only {names:?}");
    let docs = read("docs/metrics.md");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !docs.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics missing from docs/metrics.md: {missing:?}"
    );
}

/// `(section, key)` of every row of the `## \`[section]\`` tables.
fn documented_keys(docs: &str) -> BTreeSet<(String, String)> {
    let mut section = None;
    let mut keys = BTreeSet::new();
    for line in docs.lines() {
        if line.starts_with("### ") {
            // A sub-section (librdkafka defaults, ...) is not a table of hookline's keys.
            section = None;
        } else if let Some(rest) = line.strip_prefix("## ") {
            section = rest
                .strip_prefix("`[")
                .and_then(|r| r.strip_suffix("]`"))
                .map(str::to_string);
        } else if let (Some(section), Some(rest)) = (&section, line.strip_prefix("| `")) {
            let key = &rest[..rest.find('`').unwrap()];
            keys.insert((section.clone(), key.to_string()));
        }
    }
    keys
}

#[test]
fn every_config_key_is_documented() {
    let config = serde_json::to_value(hookline::config::Config::default()).unwrap();
    let mut keys = BTreeSet::new();
    for (section, table) in config.as_object().unwrap() {
        for key in table.as_object().unwrap().keys() {
            keys.insert((section.clone(), key.clone()));
        }
    }
    assert!(keys.len() >= 15, "{keys:?}");
    let documented = documented_keys(&read("docs/configuration.md"));
    let missing: Vec<_> = keys.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&keys).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/configuration.md lacks {missing:?} and describes keys that do not exist: {stale:?}"
    );
    // The parser finds what it should.
    assert!(documented.contains(&("kafka".into(), "create_topics".into())));
}
