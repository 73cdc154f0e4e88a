//! `file:line:col: message` for each kind of problem a rule directory can have.

use super::{load, problems, rules_dir, SUBS};

#[test]
fn a_valid_set_merges_every_file() {
    let rules = load(&[
        ("1-subs.yaml", SUBS),
        (
            "2-sources.yml",
            "sources:\n  - id: s\n    topics: [t1, \"t2.*\"]\n",
        ),
        ("3-routes.yaml", "routes:\n  - id: r\n    to: [a, b]\n"),
        ("notes.txt", "not yaml: ["),
        ("cases.yaml", "cases:\n  - name: ignored\n"),
    ])
    .unwrap();
    assert_eq!(rules.subscriptions().len(), 3);
    assert_eq!(rules.route_ids().collect::<Vec<_>>(), vec!["r"]);
    assert_eq!(
        rules.topic_patterns(),
        vec!["t1".to_string(), "^t2\\..*$".to_string()]
    );
    assert_eq!(
        rules.subscriptions()[0].url.as_str(),
        "http://127.0.0.1:9/a"
    );
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        problems(&[("a.yaml", "routes:\n  - id: r\n    to: [a\n")]),
        vec!["rules/a.yaml:4:1: YAML syntax error: while parsing a flow sequence, expected ',' or ']'"]
    );
}

#[test]
fn unknown_section_and_field() {
    assert_eq!(
        problems(&[
            ("a.yaml", SUBS),
            ("b.yaml", "rotues: []\nroutes:\n  - id: r\n    tpoics: [x]\n    to: [a]\n"),
        ]),
        vec![
            "rules/b.yaml:1:1: unknown section `rotues` (expected one of sources, severity, subscriptions, templates, routes)",
            "rules/b.yaml:4:5: route \"r\": unknown field `tpoics`, expected one of `id`, `description`, `topics`, `match`, `to`, `stop`, or `dedup`",
        ]
    );
}

#[test]
fn bad_jmespath_points_inside_the_expression() {
    let routes = "routes:
  - id: plain
    to: [a]
    match:
      expr: event.a == `1` && (event.b
  - id: quoted
    to: [a]
    match:
      expr: \"lowr(event.a) == 'x'\"
  - id: block
    to: [a]
    match:
      any:
        - expr: |
            event.a &&
              event.b[?]
";
    assert_eq!(
        problems(&[("a.yaml", SUBS), ("r.yaml", routes)]),
        vec![
            "rules/r.yaml:5:39: invalid JMESPath in route \"plain\" match.expr: Parse error: Expected ')' to close '(' -- found Eof",
            "rules/r.yaml:9:14: invalid JMESPath in route \"quoted\" match.expr: unknown function lowr()",
            "rules/r.yaml:16:24: invalid JMESPath in route \"block\" match.any[0].expr: Parse error: Unexpected nud token -- found Rbracket",
        ]
    );
}

#[test]
fn unknown_references() {
    let text = format!(
        "{SUBS}  - id: d\n    url: ${{RECV}}/d\n    template: pagerdutty\nroutes:\n  - id: r\n    to: [a, nobody]\n"
    );
    assert_eq!(
        problems(&[("a.yaml", &text)]),
        vec![
            "rules/a.yaml:12:15: subscription \"d\": unknown template \"pagerdutty\"",
            "rules/a.yaml:15:13: route \"r\": unknown subscription \"nobody\"",
        ]
    );
}

#[test]
fn duplicate_ids_name_both_places() {
    assert_eq!(
        problems(&[
            ("a.yaml", SUBS),
            ("b.yaml", "routes:\n  - id: r\n    to: [a]\n"),
            (
                "c.yaml",
                "\nroutes:\n  - id: r\n    to: [b]\nsubscriptions:\n  - id: c\n    url: http://x\n"
            ),
        ]),
        vec![
            "rules/c.yaml:3:9: duplicate route id \"r\" (first defined at rules/b.yaml:2:9)",
            "rules/c.yaml:6:9: duplicate subscription id \"c\" (first defined at rules/a.yaml:7:9)",
        ]
    );
}

#[test]
fn missing_environment_variable_is_reported_once() {
    assert_eq!(
        problems(&[(
            "a.yaml",
            "subscriptions:\n  - id: a\n    url: ${NOT_SET_ANYWHERE}/a\nroutes:\n  - id: r\n    to: [a]\n"
        )]),
        vec!["rules/a.yaml:3:10: environment variable NOT_SET_ANYWHERE is not set"]
    );
}

#[test]
fn invalid_subscription_points_at_the_field() {
    assert_eq!(
        problems(&[("a.yaml", "subscriptions:\n  - id: a\n    url: ftp://x/y\n  - id: b\n    urll: http://x\n")]),
        vec![
            "rules/a.yaml:3:10: subscription \"a\": url: scheme \"ftp\" is not http or https",
            "rules/a.yaml:5:5: subscription \"b\": unknown field `urll`, expected one of `id`, `url`, `template`, `status`, `disable_reason`, `headers`, `auth`, `signing`, `tls`, `timeout`, `concurrency`, `queue`, `rate_limit`, `retry`, `breaker`, or `batch`",
        ]
    );
}

#[test]
fn severities_bands_and_globs() {
    let text = "severity:
  default: urgent
sources:
  - id: s
    topics: [\"t[\"]
    bands: percent
  - id: s2
    topics: [t2]
    bands:
      - {min: 5, severity: hgh}
routes:
  - id: r
    to: [a]
    match:
      min_severity: hihg
";
    assert_eq!(
        problems(&[("a.yaml", SUBS), ("b.yaml", text)]),
        vec![
            "rules/b.yaml:2:12: unknown severity \"urgent\" (expected one of info, low, medium, high, critical)",
            "rules/b.yaml:5:14: source \"s\" topics: invalid glob \"t[\": unclosed character class; missing ']'",
            "rules/b.yaml:6:12: unknown band preset \"percent\" (expected one of cvss, score15, syslog, priority5)",
            "rules/b.yaml:10:7: band severity \"hgh\" is not one of info, low, medium, high, critical",
            "rules/b.yaml:15:21: unknown severity \"hihg\" (expected one of info, low, medium, high, critical)",
        ]
    );
}

#[test]
fn templates_problems() {
    let text = "templates:
  - id: slack
    expression: a
  - id: t1
    file: missing.jmespath
  - id: t2
    expression: a
    builtin: raw
  - id: t3
    file: bad.jmespath
";
    let d = rules_dir(&[("a.yaml", text), ("bad.jmespath", "{a: b,\n c: }")]);
    let e = crate::rules::RuleSet::load_dir_with_env(&d.path, &super::env).unwrap_err();
    let got: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(
        got[0],
        "rules/a.yaml:2:9: template id \"slack\" is the name of a built-in template"
    );
    assert!(
        got[1].starts_with("rules/a.yaml:5:11: template \"t1\": cannot read \"missing.jmespath\""),
        "{}",
        got[1]
    );
    assert_eq!(
        got[2],
        "rules/a.yaml:6:9: template \"t2\": give exactly one of `expression`, `file` or `builtin`"
    );
    assert_eq!(got[3], "rules/a.yaml:10:11: invalid JMESPath in template \"t3\" (bad.jmespath:2:5): Parse error: Unexpected nud token -- found Rbrace");
}

#[test]
fn an_empty_directory_is_an_error() {
    let got = problems(&[("README.md", "# rules")]);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].ends_with("/rules:0:0: no rule files (*.yaml, *.yml) in the directory"),
        "{got:?}"
    );
}
