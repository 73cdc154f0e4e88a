//! Subscriptions the catalogue adds (created through the API): each is validated into
//! delivery settings and becomes its own route from its event types, severity floor, topics
//! and filter. The API checks an entry with [`check`] before storing it, so the problems are
//! named by the API's own field names.

use std::sync::Arc;

use crate::deliver::SubscriptionSettings;
use crate::render::builtin::instantiate;
use crate::render::{Expr, Template};
use crate::rules::inputs::RouteSubscription;
use crate::rules::matcher::{Cond, NameMatch};
use crate::rules::route::Route;
use crate::rules::Severity;

/// One problem with an API subscription, keyed by the API's field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// `url`, `eventTypes`, `userName`, ...
    pub field: &'static str,
    /// What is wrong (never a secret's value).
    pub message: String,
}

/// A compiled API subscription: its settings, its template, and its route's parts.
pub(crate) struct Compiled {
    pub settings: Arc<SubscriptionSettings>,
    pub template: Arc<Template>,
    pub topics: Option<NameMatch>,
    pub category: Option<NameMatch>,
    pub cond: Cond,
}

/// The API field a [`SubscriptionConfig`](crate::deliver::SubscriptionConfig) field maps to.
pub fn api_field(field: &str) -> &'static str {
    match field {
        "auth.username" => "userName",
        "auth.password" => "password",
        "auth.token" => "token",
        "auth.name" => "tokenName",
        "auth" => "authType",
        "signing.secrets" => "signingToken",
        "headers" => "headers",
        "tls" => "skipTlsVerify",
        "id" => "id",
        "concurrency" => "concurrency",
        _ => "url",
    }
}

/// Every problem of `sub`, empty when it compiles.
pub fn check(sub: &RouteSubscription) -> Vec<FieldProblem> {
    match compile(sub) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

fn names(
    problems: &mut Vec<FieldProblem>,
    field: &'static str,
    pats: &[String],
) -> Option<NameMatch> {
    for pat in pats {
        if pat.trim().is_empty() {
            problems.push(FieldProblem {
                field,
                message: "entries must not be empty".into(),
            });
            return None;
        }
        if let Err(e) = globset::Glob::new(pat) {
            problems.push(FieldProblem {
                field,
                message: format!("invalid glob {pat:?}: {}", e.kind()),
            });
            return None;
        }
    }
    NameMatch::new(pats).ok()
}

/// Compiles `sub`, or every problem found.
pub(crate) fn compile(sub: &RouteSubscription) -> Result<Compiled, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let id = sub.config.id.clone();
    let template = match instantiate(&sub.template, &sub.template, None) {
        Some(t) => Some(t),
        None => match Expr::compile(&sub.template) {
            Ok(e) => Some(Template::expression(&sub.template, e, None)),
            Err(e) => {
                problems.push(FieldProblem {
                    field: "template",
                    message: format!(
                        "neither a built-in template nor a valid JMESPath expression: {} (column {})",
                        e.reason,
                        e.column + 1
                    ),
                });
                None
            }
        },
    };
    // Every category, unless narrowed.
    let category = if sub.event_types.is_empty() {
        problems.push(FieldProblem {
            field: "eventTypes",
            message: "must name at least one category (\"*\" for every one)".into(),
        });
        None
    } else if sub.event_types.iter().any(|t| t == "*") {
        None
    } else {
        names(&mut problems, "eventTypes", &sub.event_types)
    };
    let topics = if sub.topics.is_empty() {
        None
    } else {
        names(&mut problems, "topics", &sub.topics)
    };
    let mut parts = Vec::new();
    if let Some(s) = &sub.min_severity {
        match s.parse::<Severity>() {
            Ok(l) => parts.push(Cond::MinSeverity(l)),
            Err(e) => problems.push(FieldProblem {
                field: "minSeverity",
                message: e,
            }),
        }
    }
    if let Some(f) = &sub.filter {
        match Expr::compile(f) {
            Ok(e) => parts.push(Cond::Expr(e)),
            Err(e) => problems.push(FieldProblem {
                field: "filter",
                message: format!(
                    "invalid JMESPath: {} (line {}, column {})",
                    e.reason,
                    e.line + 1,
                    e.column + 1
                ),
            }),
        }
    }
    let settings = match sub.config.clone().validate() {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(FieldProblem {
                field: api_field(e.field),
                message: e.reason,
            });
            None
        }
    };
    if let Err(e) = crate::backlog::topic::check_id("hookline", &id) {
        problems.push(FieldProblem {
            field: "id",
            message: e,
        });
    }
    match (settings, template) {
        (Some(settings), Some(template)) if problems.is_empty() => Ok(Compiled {
            settings: Arc::new(settings),
            template: Arc::new(template),
            topics,
            category,
            cond: Cond::all(parts),
        }),
        _ => Err(problems),
    }
}

/// The route of an API subscription at position `position` of the rule set's list.
pub(crate) fn route(id: &str, position: usize, cond: Cond) -> Route {
    Route {
        id: Arc::from(format!("webhook:{id}")),
        cond,
        to: vec![position],
        stop: false,
        dedup: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::SubscriptionConfig;

    fn sub(extra: impl FnOnce(&mut RouteSubscription)) -> RouteSubscription {
        let mut s = RouteSubscription {
            config: SubscriptionConfig::minimal("0b7c", "https://example.com/hook"),
            template: "raw".into(),
            event_types: vec!["*".into()],
            min_severity: None,
            topics: Vec::new(),
            filter: None,
        };
        extra(&mut s);
        s
    }

    #[test]
    fn every_problem_is_named_by_its_api_field() {
        assert!(check(&sub(|_| {})).is_empty());
        assert!(check(&sub(|s| s.template = "{a: event.id}".into())).is_empty());
        let problems = check(&sub(|s| {
            s.template = "{{".into();
            s.event_types = vec!["[x".into()];
            s.min_severity = Some("huge".into());
            s.filter = Some("[[".into());
            s.topics = vec!["".into()];
            s.config.url = "ftp://x/".into();
        }));
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "template",
                "eventTypes",
                "topics",
                "minSeverity",
                "filter",
                "url"
            ]
        );
        let empty = check(&sub(|s| s.event_types.clear()));
        assert_eq!(empty[0].field, "eventTypes");
    }
}
