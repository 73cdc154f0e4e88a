//! `hookline test`: the dry run's JSON shape, and `--cases` passing and failing like a suite.

use std::process::{Command, Output};

use serde_json::Value;

fn hookline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .env("HOOKLINE_DEV_RECEIVER", "http://127.0.0.1:9")
        .output()
        .expect("run hookline")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn the_example_cases_pass() {
    let out = hookline(&[
        "test",
        "--rules",
        "rules/examples",
        "--cases",
        "rules/examples/cases.yaml",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with("ok ") || l.ends_with(" passed, 0 failed")),
        "{text}"
    );
    let passed = text.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(passed >= 9, "{text}");
    assert!(
        text.ends_with(&format!("{passed} passed, 0 failed\n")),
        "{text}"
    );
}

#[test]
fn failing_cases_fail_the_run_and_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("cases.yaml");
    let event = std::fs::canonicalize("rules/examples/events/contrast.json").unwrap();
    std::fs::write(
        &cases,
        format!(
            "cases:
  - name: right
    topic: security.contrast
    event: {}
    expect: {{subscriptions: [pagerduty, slack, soar]}}
  - name: wrong
    topic: security.contrast
    event: {{category: ATTACK_ALERT, level: HIGH, subject: s}}
    expect:
      severity: critical
      subscriptions: [teams]
      bodies:
        slack: {{text: nope}}
        pagerduty: {{payload.severity: error}}
",
            event.display()
        ),
    )
    .unwrap();
    let out = hookline(&[
        "test",
        "--rules",
        "rules/examples",
        "--cases",
        cases.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "ok    right
FAIL  wrong (cases.yaml:6)
        severity: expected \"critical\", got Some(\"high\")
        subscriptions: expected [\"teams\"], got [\"pagerduty\", \"slack\", \"soar\"]
        bodies.slack.text: expected \"nope\", got \"[HIGH] s\"
1 passed, 1 failed
"
    );
}

#[test]
fn json_dry_run_has_the_documented_shape() {
    let out = hookline(&[
        "test",
        "--rules",
        "rules/examples",
        "--topic",
        "security.netography",
        "--event",
        "rules/examples/events/netography-lifecycle.json",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "an array file is one event per element");
    for e in events {
        assert_eq!(e["category"], "iprep");
        assert_eq!(e["severity"], "medium");
        assert!(e["routes"].is_array());
        for d in e["deliveries"].as_array().unwrap() {
            assert!(
                d["subscription"].is_string() && d["body"].is_object(),
                "{d}"
            );
        }
    }
    let subs = |i: usize| -> Vec<&str> {
        events[i]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["subscription"].as_str().unwrap())
            .collect()
    };
    assert_eq!(subs(0), vec!["netography-siem", "slack", "soar"]);
    assert_eq!(
        subs(2),
        vec!["soar"],
        "the repeated ongoing event is deduplicated"
    );
    assert_eq!(
        events[2]["suppressed"],
        serde_json::json!(["netography-siem"])
    );
    assert_eq!(events[0]["deliveries"][0]["body"]["state"], "start");
}

#[test]
fn invalid_rules_make_the_dry_run_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args([
            "test",
            "--rules",
            "rules/examples",
            "--cases",
            "rules/examples/cases.yaml",
        ])
        .env_remove("HOOKLINE_DEV_RECEIVER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("examples/subscriptions.yaml:4:10: environment variable HOOKLINE_DEV_RECEIVER is not set\n"), "{err}");
}

#[test]
fn list_categories_in_json_and_reasons_for_routes_that_did_not_match() {
    let out = hookline(&[
        "test",
        "--rules",
        "rules/examples",
        "--topic",
        "security.wazuh",
        "--event",
        "rules/examples/events/wazuh-sshd.json",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let e = &v["events"][0];
    assert_eq!(e["category"], "authentication_failures");
    assert_eq!(
        e["categories"],
        serde_json::json!(["syslog", "sshd", "authentication_failures"])
    );
    assert_eq!(e["source"], "wazuh");
    assert_eq!(
        e["routes"],
        serde_json::json!(["auth-failures", "soar-catch-all"])
    );
    let reasons: Vec<(&str, &str)> = e["not_matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["route"].as_str().unwrap(), n["reason"].as_str().unwrap()))
        .collect();
    assert!(reasons.contains(&(
        "intrusions",
        "none of the categories [syslog, sshd, authentication_failures] matches [intrusion_detection]"
    )), "{reasons:?}");
    assert!(
        reasons.contains(&(
            "contrast-attacks",
            "topic security.wazuh is not one of its topics [security.contrast]"
        )),
        "{reasons:?}"
    );
    let defined = std::fs::read_to_string("rules/examples/routes.yaml")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  - id: "))
        .count();
    assert_eq!(
        e["routes"].as_array().unwrap().len() + reasons.len(),
        defined,
        "every route either matched or has a reason"
    );
}

#[test]
fn a_failing_routes_expectation_says_why_each_missing_route_did_not_match() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = tmp.path().join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:
  - name: ssh noise is not an authentication failure
    topic: security.wazuh
    event: {id: \"1.2\", rule: {level: 10, groups: [syslog, sshd]}}
    expect:
      id_is_a_string_check: ignored
",
    )
    .unwrap();
    let out = hookline(&[
        "test",
        "--rules",
        "rules/examples",
        "--cases",
        cases.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unknown expect keys are refused"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("id_is_a_string_check"),
        "{out:?}"
    );
    std::fs::write(
        &cases,
        "cases:
  - name: ssh noise is not an authentication failure
    topic: security.wazuh
    event: {id: \"1.2\", rule: {level: 10, groups: [syslog, sshd]}}
    expect:
      event_id: \"1.2\"
      categories: [sshd, syslog]
      routes: [auth-failures, soar-catch-all]
",
    )
    .unwrap();
    let out = hookline(&[
        "test",
        "--rules",
        "rules/examples",
        "--cases",
        cases.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "FAIL  ssh noise is not an authentication failure (cases.yaml:2)
        routes: expected [\"auth-failures\", \"soar-catch-all\"], got [\"soar-catch-all\"]
          auth-failures: none of the categories [syslog, sshd] matches [authentication_fail*]
0 passed, 1 failed
"
    );
}
