//! A named template: how one subscription's request body is made from an event.

use std::sync::Arc;

use jmespath::{Rcvar, Variable};
use serde_json::Value;

use super::context::EventContext;
use super::expr::{value_to_var, var_to_value, Expr};
use crate::rules::RenderError;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Its name, as subscriptions refer to it.
    pub name: Arc<str>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// The event unchanged.
    Raw,
    /// A JMESPath expression over the context, with the template's `vars` when it has some.
    Expr { expr: Expr, vars: Option<Rcvar> },
}

impl Template {
    /// The `raw` template: the event as it came.
    pub fn raw(name: &str) -> Template {
        Template {
            name: name.into(),
            body: Body::Raw,
        }
    }

    /// A template rendering `expr`; `vars` become `vars` in the context.
    pub fn expression(name: &str, expr: Expr, vars: Option<&Value>) -> Template {
        Template {
            name: name.into(),
            body: Body::Expr {
                expr,
                vars: vars.map(value_to_var),
            },
        }
    }

    /// Renders the body for one event. A template that yields null is an error: it almost
    /// always means a misspelt field, and an empty request would hide it.
    pub fn render(&self, cx: &EventContext<'_>) -> Result<Value, RenderError> {
        match &self.body {
            Body::Raw => Ok((*cx.event.payload).clone()),
            Body::Expr { expr, vars } => {
                let data = match vars {
                    Some(v) => cx.with_vars(v),
                    None => cx.root(),
                };
                let out = expr.eval(&data).map_err(|e| RenderError {
                    template: self.name.to_string(),
                    reason: format!(
                        "{} (expression line {}, column {})",
                        e.reason,
                        e.line + 1,
                        e.column + 1
                    ),
                })?;
                if matches!(*out, Variable::Null) {
                    return Err(RenderError {
                        template: self.name.to_string(),
                        reason: "the template produced null".into(),
                    });
                }
                Ok(var_to_value(&out))
            }
        }
    }
}
