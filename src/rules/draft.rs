//! Drafts: the rule set in force with some templates and routes edited, for the playground.
//!
//! A draft is a new [`RuleSet`] that shares everything unedited with the one it came from
//! (sources, subscriptions, other routes and templates); edits go through the same compiler as
//! rule files, so an edit that would be rejected in a file is rejected here, with its position
//! in the edited text. Nothing puts a draft in force: the playground only dry-runs it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::compile::compile_route;
use super::{Problem, RuleSet};
use crate::render::Expr;

/// Edits to apply: texts by template name and by route id.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edits {
    /// Template name -> its new JMESPath expression (its `vars` stay).
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// Route id -> the route's new YAML entry (`id`, `match`, `to`, ...).
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
}

impl Edits {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.routes.is_empty()
    }
}

/// A problem in one edited text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditProblem {
    /// `template` or `route`.
    pub kind: &'static str,
    /// The template's name or the route's id.
    pub id: String,
    /// 1-based line in the edited text; 0 when the problem is not at one place.
    pub line: usize,
    /// 1-based column in that line; 0 when unknown.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// What the playground offers to edit: every route and every template a subscription uses.
#[derive(Debug, Clone, Serialize)]
pub struct Editable {
    /// Routes in rule order.
    pub routes: Vec<EditableRoute>,
    /// Templates in the order subscriptions first use them.
    pub templates: Vec<EditableTemplate>,
}

/// One route, as written.
#[derive(Debug, Clone, Serialize)]
pub struct EditableRoute {
    /// Its id.
    pub id: String,
    /// `file:line` where it is defined.
    pub place: String,
    /// Its YAML entry, as written (variables not expanded).
    pub text: String,
}

/// One template.
#[derive(Debug, Clone, Serialize)]
pub struct EditableTemplate {
    /// Its name.
    pub id: String,
    /// Its JMESPath expression; `None` for `raw` (the event unchanged).
    pub text: Option<String>,
    /// The subscriptions that use it.
    pub subscriptions: Vec<String>,
}

impl RuleSet {
    /// The routes and templates of this rule set, as the playground shows them for editing.
    /// Template `vars` are not shown: they may hold credentials.
    pub fn editable(&self) -> Editable {
        let routes = self
            .routes
            .iter()
            .zip(&self.route_sources)
            .map(|(r, s)| EditableRoute {
                id: r.id.to_string(),
                place: s.place.clone(),
                text: s.text.clone(),
            })
            .collect();
        let mut templates: Vec<EditableTemplate> = Vec::new();
        for (sub, t) in self.subscriptions.iter().zip(&self.sub_templates) {
            match templates.iter_mut().find(|e| e.id == *t.name) {
                Some(e) => e.subscriptions.push(sub.id.to_string()),
                None => templates.push(EditableTemplate {
                    id: t.name.to_string(),
                    text: t.expression_text().map(str::to_string),
                    subscriptions: vec![sub.id.to_string()],
                }),
            }
        }
        Editable { routes, templates }
    }

    /// This rule set with `edits` applied, or every problem of every edit. `env` expands
    /// `${NAME}` in edited routes, as in rule files.
    pub fn draft(
        &self,
        edits: &Edits,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RuleSet, Vec<EditProblem>> {
        let mut problems = Vec::new();
        let mut sub_templates = self.sub_templates.clone();
        for (name, text) in &edits.templates {
            let problem = |line, col, message: String| EditProblem {
                kind: "template",
                id: name.clone(),
                line,
                col,
                message,
            };
            let uses: Vec<usize> = (0..sub_templates.len())
                .filter(|&i| *sub_templates[i].name == **name)
                .collect();
            let Some(&first) = uses.first() else {
                problems.push(problem(
                    0,
                    0,
                    format!("no subscription uses a template {name:?}"),
                ));
                continue;
            };
            if text.trim().is_empty() {
                problems.push(problem(1, 1, "the expression is empty".into()));
                continue;
            }
            match Expr::compile(text) {
                Ok(expr) => {
                    let edited = Arc::new(sub_templates[first].with_expression(expr));
                    uses.iter().for_each(|&i| sub_templates[i] = edited.clone());
                }
                Err(e) => problems.push(problem(
                    e.line + 1,
                    e.column + 1,
                    format!("invalid JMESPath: {}", e.reason),
                )),
            }
        }
        let mut routes = self.routes.clone();
        let mut index = None;
        for (id, text) in &edits.routes {
            let problem = |p: Problem| EditProblem {
                kind: "route",
                id: id.clone(),
                line: p.line,
                col: p.col,
                message: p.message,
            };
            let Some(i) = routes.iter().position(|r| *r.id == **id) else {
                problems.push(problem(at(
                    0,
                    0,
                    format!("no route {id:?} in the rules in force"),
                )));
                continue;
            };
            match compile_route(id, text, &self.subscriptions, env) {
                Ok((_, _, route)) if *route.id != **id => {
                    let line = id_line(text);
                    problems.push(problem(at(
                        line,
                        usize::from(line > 0),
                        format!("the id must stay {id:?} (edit the rule file to rename a route)"),
                    )));
                }
                Ok((topics, category, route)) => {
                    routes[i] = route;
                    let base = index.as_ref().unwrap_or(&self.index);
                    index = Some(
                        base.with_route(i, topics, category)
                            .expect("globs checked by compile_route"),
                    );
                }
                Err(found) => problems.extend(found.into_iter().map(problem)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(RuleSet {
            sources: self.sources.clone(),
            routes,
            index: match index {
                Some(i) => i,
                None => self.index.clone_filters(),
            },
            subscriptions: self.subscriptions.clone(),
            sub_templates,
            topic_patterns: self.topic_patterns.clone(),
            first_api_route: self.first_api_route,
            inputs: self.inputs.clone(),
            route_sources: self.route_sources.clone(),
            wanted: Default::default(),
        })
    }
}

fn at(line: usize, col: usize, message: String) -> Problem {
    Problem {
        file: String::new(),
        line,
        col,
        message,
    }
}

/// The 1-based line of the top-level `id:` key, 0 when there is none.
fn id_line(text: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with("id:"))
        .map_or(0, |n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::dry_run;
    use crate::rules::tests::{env, load, SUBS};
    use serde_json::json;

    const RULES: &str = "templates:
  - id: short
    vars: {team: blue}
    expression: \"{team: vars.team, cat: hookline.category}\"
subscriptions:
  - id: d
    url: ${RECV}/d
    template: short
  - id: e
    url: ${RECV}/e
    template: short
routes:
  # Pages.
  - id: page
    description: high and above
    match:
      min_severity: high
    to: [d]

  - {id: chat, match: {category: \"log*\"}, to: [a, e]}
  - id: last
    topics: [t]
    to: [b]
";

    fn rules() -> RuleSet {
        load(&[("a.yaml", SUBS), ("b.yaml", RULES)]).unwrap()
    }

    fn edits(templates: &[(&str, &str)], routes: &[(&str, &str)]) -> Edits {
        let own = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Edits {
            templates: own(templates),
            routes: own(routes),
        }
    }

    #[test]
    fn editable_routes_are_the_entries_as_written() {
        let e = rules().editable();
        let texts: Vec<(&str, &str, &str)> = e
            .routes
            .iter()
            .map(|r| (r.id.as_str(), r.place.as_str(), r.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            vec![
                (
                    "page",
                    "rules/b.yaml:14",
                    "id: page\ndescription: high and above\nmatch:\n  min_severity: high\nto: [d]\n"
                ),
                (
                    "chat",
                    "rules/b.yaml:20",
                    "{id: chat, match: {category: \"log*\"}, to: [a, e]}\n"
                ),
                ("last", "rules/b.yaml:21", "id: last\ntopics: [t]\nto: [b]\n"),
            ]
        );
        let t: Vec<(&str, Option<&str>, Vec<&str>)> = e
            .templates
            .iter()
            .map(|t| {
                (
                    t.id.as_str(),
                    t.text.as_deref(),
                    t.subscriptions.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(t[0].0, "raw");
        assert_eq!(t[0].1, None);
        assert_eq!(t[0].2, vec!["a"]);
        assert!(t
            .iter()
            .any(|t| t.0 == "short" && t.1.is_some() && t.2 == vec!["d", "e"]));
    }

    #[test]
    fn unusual_layouts_are_cut_out_as_the_same_route() {
        let layouts = "routes:
  -
    id: lonely-dash
    to: [a]
  - {id: flow,
     to: [b]}
  - id: commented   # the id
    # a comment inside
    match: {category: x}    # trailing
    to: [c]
  # belongs to the next one
  - id: last
    to: [a]";
        let rules = load(&[("a.yaml", SUBS), ("b.yaml", layouts)]).unwrap();
        for r in rules.editable().routes {
            let node =
                marked_yaml::parse_yaml(0, &r.text).unwrap_or_else(|e| panic!("{e}\n{}", r.text));
            let id = node.as_mapping().unwrap().get_scalar("id").unwrap();
            assert_eq!(id.as_str(), r.id, "{}", r.text);
            assert!(!r.text.contains("belongs to the next"), "{}", r.text);
            let edited = rules
                .draft(&edits(&[], &[(&r.id, &r.text)]), &env)
                .map(|_| ());
            assert_eq!(edited, Ok(()), "the text as shown compiles: {}", r.text);
        }
    }

    #[test]
    fn a_draft_routes_with_the_edits_and_leaves_the_original_alone() {
        let original = Arc::new(rules());
        let draft = original
            .draft(
                &edits(
                    &[("short", "{team: vars.team, all: hookline.categories}")],
                    &[(
                        "chat",
                        "id: chat\nmatch: {category: [web, sshd]}\nto: [e]\n",
                    )],
                ),
                &env,
            )
            .unwrap();
        let event = json!({"type": ["syslog", "sshd"], "severity": "high"});
        let out = &dry_run::run(Arc::new(draft), "t", std::slice::from_ref(&event))[0];
        assert_eq!(out.routing.routes, vec!["page", "chat", "last"]);
        let bodies: Vec<_> = out
            .routing
            .deliveries
            .iter()
            .map(|d| {
                (
                    d.subscription.id.to_string(),
                    d.body.clone().unwrap().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            bodies[0],
            (
                "d".into(),
                json!({"team": "blue", "all": ["syslog", "sshd"]})
            )
        );
        assert_eq!(
            bodies[1].0, "e",
            "the edited template serves every subscription using it"
        );
        let before = &dry_run::run(original, "t", &[event])[0];
        assert_eq!(before.routing.routes, vec!["page", "last"]);
        assert_eq!(
            before.routing.deliveries[0]
                .body
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap(),
            &json!({"team": "blue", "cat": "syslog"})
        );
    }

    #[test]
    fn problems_are_placed_in_the_edited_text() {
        let err = rules()
            .draft(
                &edits(
                    &[
                        ("short", "{a: event.x,\n b: upper(event.y"),
                        ("nope", "event"),
                    ],
                    &[
                        (
                            "page",
                            "id: page\nmatch:\n  expr: \"event.a ==\"\nto: [d, zz]\n",
                        ),
                        ("chat", "id: chat\nto: [a\n"),
                        ("last", "id: renamed\nto: [a]\n"),
                    ],
                ),
                &env,
            )
            .unwrap_err();
        let got: Vec<(&str, &str, usize, usize, &str)> = err
            .iter()
            .map(|p| (p.kind, p.id.as_str(), p.line, p.col, p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("template", "nope", 0, 0, "no subscription uses a template \"nope\""),
                (
                    "template",
                    "short",
                    2,
                    18,
                    "invalid JMESPath: Parse error: Unexpected nud token -- found Eof"
                ),
                ("route", "chat", 3, 1, "YAML syntax error: while parsing a flow sequence, expected ',' or ']'"),
                ("route", "last", 1, 1, "the id must stay \"last\" (edit the rule file to rename a route)"),
                (
                    "route",
                    "page",
                    3,
                    20,
                    "invalid JMESPath in route \"page\" match.expr: Parse error: Unexpected nud token -- found Eof"
                ),
                ("route", "page", 4, 9, "route \"page\": unknown subscription \"zz\""),
            ]
        );
    }
}
