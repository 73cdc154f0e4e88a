//! Built-in templates, usable by name from any subscription (`template: slack`) or as the base
//! of a named template with its own `vars` (`builtin: pagerduty`, `vars: {routing_key: ...}`).

use serde_json::Value;

use super::expr::Expr;
use super::template::Template;

/// The summary line every chat template shows: the source's `summary` field when it has one.
const SUMMARY: &str =
    "default(hookline.fields.summary, concat(hookline.category, ' on ', hookline.topic))";

/// Names and JMESPath texts of the built-in templates; `raw` has no expression.
pub const BUILTINS: &[(&str, &str)] = &[
    ("raw", ""),
    // https://www.standardwebhooks.com/ payload structure.
    (
        "standard-webhooks",
        "{type: hookline.category, timestamp: hookline.received_at, data: event}",
    ),
    // PagerDuty Events API v2 (`routing_key` from vars; severities mapped to PD's four).
    (
        "pagerduty",
        "{routing_key: vars.routing_key, event_action: default(vars.event_action, 'trigger'), \
         dedup_key: default(hookline.event_id, hookline.key), \
         payload: {summary: truncate(SUMMARY, `1024`), source: default(vars.source, hookline.topic), \
         severity: lookup(`{\"critical\":\"critical\",\"high\":\"error\",\"medium\":\"warning\",\"low\":\"info\",\"info\":\"info\"}`, hookline.severity), \
         timestamp: hookline.received_at, class: hookline.category, custom_details: event}}",
    ),
    // Slack incoming webhook: fallback text plus blocks.
    (
        "slack",
        "{text: concat('[', upper(hookline.severity), '] ', SUMMARY), \
         blocks: [{type: 'section', text: {type: 'mrkdwn', text: concat('*', upper(hookline.severity), '* ', hookline.category, `\"\\n\"`, SUMMARY)}}, \
         {type: 'context', elements: [{type: 'mrkdwn', text: concat('topic `', hookline.topic, '` | id `', default(hookline.event_id, hookline.key), '` | ', hookline.received_at)}]}]}",
    ),
    // Microsoft Teams (Workflows webhook): one Adaptive Card.
    (
        "teams",
        "{type: 'message', attachments: [{contentType: 'application/vnd.microsoft.card.adaptive', contentUrl: null, \
         content: {type: 'AdaptiveCard', version: '1.4', body: [\
         {type: 'TextBlock', size: 'Medium', weight: 'Bolder', wrap: `true`, text: concat(upper(hookline.severity), ': ', hookline.category)}, \
         {type: 'TextBlock', wrap: `true`, text: SUMMARY}, \
         {type: 'FactSet', facts: [{title: 'Severity', value: hookline.severity}, {title: 'Category', value: hookline.category}, \
         {title: 'Topic', value: hookline.topic}, {title: 'Event id', value: default(hookline.event_id, hookline.key)}, \
         {title: 'Received', value: hookline.received_at}]}]}}]}",
    ),
    // Field renaming in the spirit of Netography's webhook customisation: the event with
    // `vars.rename` ({old: new}) applied and `vars.drop` ([names]) removed.
    (
        "rename",
        "rename_keys(omit(event, default(vars.drop, `[]`)), default(vars.rename, `{}`))",
    ),
];

/// Whether `name` is a built-in template.
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.iter().any(|(n, _)| *n == name)
}

/// The built-in `builtin` under the name `name`, with `vars`.
pub fn instantiate(builtin: &str, name: &str, vars: Option<&Value>) -> Option<Template> {
    let (_, text) = BUILTINS.iter().find(|(n, _)| *n == builtin)?;
    if text.is_empty() {
        return Some(Template::raw(name));
    }
    let text = text.replace("SUMMARY", SUMMARY);
    let expr = Expr::compile(&text).unwrap_or_else(|e| panic!("built-in {builtin}: {e:?}"));
    Some(Template::expression(name, expr, vars))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Origin};
    use crate::render::context::{Derived, EventContext};
    use crate::rules::Severity;
    use serde_json::json;
    use std::sync::Arc;

    fn render(name: &str, vars: Option<Value>, event: Value, fields: Vec<(&str, Value)>) -> Value {
        let t = instantiate(name, name, vars.as_ref()).unwrap();
        let ev = Event::new(
            Origin {
                topic: "security.test".into(),
                partition: 2,
                offset: 7,
                index: 0,
            },
            event,
        );
        let d = Derived {
            category: "ATTACK_ALERT".into(),
            categories: vec!["ATTACK_ALERT".into()],
            severity: Severity::High,
            raw_severity: Some("HIGH".into()),
            event_id: Some("e-1".into()),
            source: None,
            fields: fields.into_iter().map(|(k, v)| (Arc::from(k), v)).collect(),
        };
        t.render(&EventContext::new(&ev, &d)).unwrap()
    }

    #[test]
    fn every_builtin_compiles() {
        for (name, _) in BUILTINS {
            assert!(instantiate(name, name, None).is_some());
        }
        assert!(instantiate("nope", "nope", None).is_none());
    }

    #[test]
    fn raw_is_the_event_unchanged() {
        let ev = json!({"a": [1, {"b": null}]});
        assert_eq!(render("raw", None, ev.clone(), vec![]), ev);
    }

    #[test]
    fn standard_webhooks_envelope() {
        let out = render("standard-webhooks", None, json!({"x": 1}), vec![]);
        assert_eq!(out["type"], "ATTACK_ALERT");
        assert_eq!(out["data"], json!({"x": 1}));
        assert!(chrono::DateTime::parse_from_rfc3339(out["timestamp"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn pagerduty_event() {
        let out = render(
            "pagerduty",
            Some(json!({"routing_key": "R0UT1NG"})),
            json!({"x": 1}),
            vec![("summary", json!("New attack"))],
        );
        assert_eq!(out["routing_key"], "R0UT1NG");
        assert_eq!(out["event_action"], "trigger");
        assert_eq!(out["dedup_key"], "e-1");
        assert_eq!(out["payload"]["summary"], "New attack");
        assert_eq!(out["payload"]["severity"], "error");
        assert_eq!(out["payload"]["source"], "security.test");
        assert_eq!(out["payload"]["custom_details"], json!({"x": 1}));
    }

    #[test]
    fn slack_and_teams_mention_severity_and_summary() {
        let slack = render("slack", None, json!({}), vec![]);
        assert_eq!(slack["text"], "[HIGH] ATTACK_ALERT on security.test");
        assert_eq!(
            slack["blocks"][0]["text"]["text"],
            "*HIGH* ATTACK_ALERT\nATTACK_ALERT on security.test"
        );
        let teams = render("teams", None, json!({}), vec![("summary", json!("S"))]);
        let body = &teams["attachments"][0]["content"]["body"];
        assert_eq!(body[0]["text"], "HIGH: ATTACK_ALERT");
        assert_eq!(body[1]["text"], "S");
        assert_eq!(body[2]["facts"][3]["value"], "e-1");
    }

    #[test]
    fn rename_renames_and_drops() {
        let out = render(
            "rename",
            Some(json!({"rename": {"srcip": "source_ip"}, "drop": ["metrics"]})),
            json!({"srcip": ["1.2.3.4"], "metrics": {}, "id": "n"}),
            vec![],
        );
        assert_eq!(out, json!({"source_ip": ["1.2.3.4"], "id": "n"}));
    }
}
