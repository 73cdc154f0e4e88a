//! `hookline check DIR` on broken rule directories: exact `file:line:col: message` lines and
//! exit code 1; the examples pass.

use std::path::Path;
use std::process::{Command, Output};

const RECEIVER: &str = "http://127.0.0.1:9";

fn check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("check")
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
        "rules/examples: ok (5 sources, 6 subscriptions, 9 routes)"
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
