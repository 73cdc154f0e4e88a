//! `hookline check DIR` on broken rule directories: exact `file:line:col: message` lines and
//! exit code 1; the examples pass, also on a fresh checkout where their variables are unset;
//! `--strict-env`, `--json`, and the topics the rules consume.

use std::path::Path;
use std::process::{Command, Output};

const RECEIVER: &str = "http://127.0.0.1:9";

/// `hookline check --strict-env DIR`, with the examples' receiver variable set.
fn check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("check")
        .arg("--strict-env")
        .arg(dir)
        .env("HOOKLINE_DEV_RECEIVER", RECEIVER)
        .env_remove("HOOKLINE_TEST_UNSET")
        .output()
        .expect("run hookline")
}

fn broken(files: &[(&str, &str)]) -> (Vec<String>, Option<i32>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let out = check(&dir);
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (lines, out.status.code())
}

const SUBS: &str = "subscriptions:
  - id: pagerduty
    url: ${HOOKLINE_DEV_RECEIVER}/pagerduty
    template: pagerduty
  - id: slack
    url: ${HOOKLINE_DEV_RECEIVER}/slack
    template: slack
";

#[test]
fn the_examples_pass() {
    let out = check(Path::new("rules/examples"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.trim(),
        "rules/examples: ok (5 sources, 6 subscriptions, 9 routes)\n\
         consumes: security.contrast, security.wallarm, security.netography, ^security\\.netography\\..*$, security.wazuh, security.ecs"
    );
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}

/// `hookline check` with `extra` arguments and HOOKLINE_DEV_RECEIVER unset, as on a fresh
/// checkout or in a CI job without the production environment.
fn check_unset(dir: &Path, extra: &[&str]) -> (String, String, Option<i32>) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("check")
        .arg(dir)
        .args(extra)
        .env_remove("HOOKLINE_DEV_RECEIVER")
        .env_remove("HOOKLINE_DEV_RECEIVER_FILE")
        .output()
        .expect("run hookline");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code(),
    )
}

#[test]
fn unset_variables_warn_in_check_and_fail_with_strict_env() {
    let (stdout, stderr, code) = check_unset(Path::new("rules/examples"), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("rules/examples: ok (5 sources, 6 subscriptions, 9 routes)"));
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 6, "{stderr}");
    assert_eq!(
        warnings[0],
        "warning: examples/subscriptions.yaml:4:10: environment variable HOOKLINE_DEV_RECEIVER is not set (checked with a placeholder)"
    );

    let (stdout, _, code) = check_unset(Path::new("rules/examples"), &["--strict-env"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    assert_eq!(
        stdout.lines().next().unwrap(),
        "examples/subscriptions.yaml:4:10: environment variable HOOKLINE_DEV_RECEIVER is not set"
    );
}

#[test]
fn a_placeholder_that_cannot_pass_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    let subs = "subscriptions:\n  - id: a\n    url: \"ftp://${HOOKLINE_DEV_RECEIVER}/x\"\n";
    std::fs::write(dir.join("subs.yaml"), subs).unwrap();
    let (stdout, _, code) = check_unset(&dir, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout.trim(),
        "rules/subs.yaml:3:10: subscription \"a\": url: scheme \"ftp\" is not http or https (checked with a placeholder for the unset HOOKLINE_DEV_RECEIVER; set it to check this value)"
    );
}

#[test]
fn check_json_reports_counts_topics_and_warnings() {
    let (stdout, _, code) = check_unset(Path::new("rules/examples"), &["--json"]);
    assert_eq!(code, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["subscriptions"], 6);
    assert_eq!(doc["topics"][0], "security.contrast");
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 6);
    assert_eq!(doc["problems"], serde_json::json!([]));

    let (stdout, _, code) = check_unset(Path::new("rules/examples"), &["--json", "--strict-env"]);
    assert_eq!(code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["problems"][0]["line"], 4);
    assert_eq!(doc["problems"][0]["file"], "examples/subscriptions.yaml");
}

#[test]
fn rules_without_sources_warn_that_nothing_is_consumed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("subs.yaml"), SUBS).unwrap();
    let out = check(&dir);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.ends_with("ok (0 sources, 2 subscriptions, 0 routes)\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("no source names a topic, so these rules consume nothing"),
        "{stderr}"
    );
}

#[test]
fn every_problem_of_every_file_is_reported() {
    let routes = "routes:
  - id: page
    match:
      category: ATTACK_*
      expr: \"event.level == 'CRITICAL' &&\"
    to: [pagerduty, pager]
  - id: page
    to: [slack]
";
    let more = "subscriptions:
  - id: teams
    url: ${HOOKLINE_TEST_UNSET}/teams
    template: temas
sources:
  - id: contrast
    topics: [security.contrast]
    severity: upper(level
";
    let syntax = "routes:\n  - id: x\n   to: [slack]\n";
    let (lines, code) = broken(&[
        ("10-subs.yaml", SUBS),
        ("20-routes.yaml", routes),
        ("30-more.yaml", more),
        ("40-syntax.yaml", syntax),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        vec![
            "rules/20-routes.yaml:5:42: invalid JMESPath in route \"page\" match.expr: Parse error: Unexpected nud token -- found Eof",
            "rules/20-routes.yaml:6:21: route \"page\": unknown subscription \"pager\"",
            "rules/20-routes.yaml:7:9: duplicate route id \"page\" (first defined at rules/20-routes.yaml:2:9)",
            "rules/30-more.yaml:3:10: environment variable HOOKLINE_TEST_UNSET is not set",
            "rules/30-more.yaml:4:15: subscription \"teams\": unknown template \"temas\"",
            "rules/30-more.yaml:8:26: invalid JMESPath in source \"contrast\" severity: Parse error: Unexpected nud token -- found Eof",
            "rules/40-syntax.yaml:3:6: YAML syntax error: while parsing a block collection, did not find expected '-' indicator",
        ]
    );
}

#[test]
fn a_directory_without_rules_fails() {
    let (lines, code) = broken(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].ends_with("/rules:0:0: no rule files (*.yaml, *.yml) in the directory"),
        "{lines:?}"
    );
}
