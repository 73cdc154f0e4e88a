//! A named template: how one subscription's request body is made from an event.

use std::sync::Arc;

use serde_json::Value;

use super::context::EventContext;
use super::expr::Expr;
use super::needs::Needs;
use super::plan::Plan;
use crate::rules::RenderError;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Its name, as subscriptions refer to it.
    pub name: Arc<str>,
    body: Body,
    /// What rendering reads of the event (`None`: nothing).
    reads: Option<Needs>,
}

#[derive(Debug, Clone)]
enum Body {
    /// The event unchanged.
    Raw,
    /// A JMESPath expression over the context, planned; `vars` as the template gives them.
    Expr {
        plan: Plan,
        vars: Value,
        text: Arc<str>,
    },
}

impl Template {
    /// The `raw` template: the event as it came.
    pub fn raw(name: &str) -> Template {
        Template {
            name: name.into(),
            body: Body::Raw,
            reads: Some(Needs::everything()),
        }
    }

    /// A template rendering `expr`; `vars` become `vars` in the context.
    pub fn expression(name: &str, expr: Expr, vars: Option<&Value>) -> Template {
        Template {
            name: name.into(),
            body: Body::Expr {
                plan: Plan::new(&expr),
                vars: vars.cloned().unwrap_or(Value::Null),
                text: expr.as_str().into(),
            },
            reads: expr.needs().under("event"),
        }
    }

    /// What rendering reads of the event, relative to it: all of it for `raw`; `None` when
    /// the template reads nothing of it.
    pub fn reads_event(&self) -> Option<&Needs> {
        self.reads.as_ref()
    }

    /// The expression's text; `None` for `raw`.
    pub fn expression_text(&self) -> Option<&str> {
        match &self.body {
            Body::Raw => None,
            Body::Expr { text, .. } => Some(text),
        }
    }

    /// This template with another expression and the same `vars` (a draft in the playground).
    pub fn with_expression(&self, expr: Expr) -> Template {
        let vars = match &self.body {
            Body::Raw => None,
            Body::Expr { vars, .. } => Some(vars),
        };
        Template::expression(&self.name, expr, vars)
    }

    /// Renders the body for one event. A template that yields null is an error: it almost
    /// always means a misspelt field, and an empty request would hide it.
    pub fn render(&self, cx: &EventContext<'_>) -> Result<Value, RenderError> {
        match &self.body {
            Body::Raw => cx.event.payload.whole().cloned().map_err(|e| RenderError {
                template: self.name.to_string(),
                reason: format!("the event cannot be read whole: {e}"),
            }),
            Body::Expr { plan, vars, .. } => {
                let out = plan.eval(cx, vars).map_err(|e| RenderError {
                    template: self.name.to_string(),
                    reason: format!(
                        "{} (expression line {}, column {})",
                        e.reason,
                        e.line + 1,
                        e.column + 1
                    ),
                })?;
                if out.is_null() {
                    return Err(RenderError {
                        template: self.name.to_string(),
                        reason: "the template produced null".into(),
                    });
                }
                Ok(out)
            }
        }
    }
}
