//! Templates evaluated straight into JSON.
//!
//! Most templates are an object or list literal whose leaves are paths (`event.id`,
//! `hookline.severity`) and function calls. Run through the interpreter, every leaf would be
//! converted into its values and the result converted back; here the literal's shape is built
//! directly as `serde_json::Value`, paths are read from the event and the derived fields, and
//! functions are called with (small) converted arguments. Anything else (comparisons, filters,
//! pipes, projections) is one sub-expression for the interpreter, over only what it reads.
//! The result is what the interpreter would give.

use std::borrow::Cow;

use jmespath::ast::Ast;
use jmespath::{Context, ErrorReason, JmespathError, RuntimeError};
use serde_json::{Map, Value};

use super::context::{field_index, EventContext};
use super::expr::{value_to_var, var_to_value, Expr};
use super::functions::RUNTIME;
use super::needs::{path_of, walk, Step};

/// A template's expression, compiled to a plan.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A constant.
    Literal(Value),
    /// `{key: plan, ...}`
    Object(Vec<(String, Plan)>),
    /// `[plan, ...]`
    Array(Vec<Plan>),
    /// `event.<path>`
    Event(Vec<Step>),
    /// `hookline.<field>.<path>` (the field by position in `HOOKLINE_FIELDS`), or the whole
    /// object when there is no field.
    Hookline(Option<usize>, Vec<Step>),
    /// `vars.<path>`
    Vars(Vec<Step>),
    /// `name(args)`, without expression references; `offset` of the call for errors.
    Call {
        /// The whole expression, for error positions.
        text: std::sync::Arc<str>,
        /// The function.
        name: String,
        /// Its arguments.
        args: Vec<Plan>,
        /// Where the call is, for errors.
        offset: usize,
    },
    /// Anything else, left to the interpreter.
    Interp(Expr),
}

impl Plan {
    /// Plans `expr`.
    pub fn new(expr: &Expr) -> Plan {
        plan(&std::sync::Arc::from(expr.as_str()), expr.as_ast())
    }

    /// Evaluates against one event's context and the template's `vars`.
    pub fn eval(&self, cx: &EventContext<'_>, vars: &Value) -> Result<Value, JmespathError> {
        self.eval_cow(cx, vars).map(Cow::into_owned)
    }

    /// Like [`Plan::eval`], borrowing what it can (paths into the event, literals, vars) so
    /// function arguments are not copied.
    fn eval_cow<'a>(
        &'a self,
        cx: &'a EventContext<'_>,
        vars: &'a Value,
    ) -> Result<Cow<'a, Value>, JmespathError> {
        static NULL: Value = Value::Null;
        let found = |v: Option<&'a Value>| Cow::Borrowed(v.unwrap_or(&NULL));
        Ok(match self {
            Plan::Literal(v) => Cow::Borrowed(v),
            Plan::Object(entries) => {
                let mut m = Map::new();
                for (k, p) in entries {
                    m.insert(k.clone(), p.eval(cx, vars)?);
                }
                Cow::Owned(Value::Object(m))
            }
            Plan::Array(items) => Cow::Owned(Value::Array(
                items
                    .iter()
                    .map(|p| p.eval(cx, vars))
                    .collect::<Result<_, _>>()?,
            )),
            Plan::Event(path) => found(walk(cx.event.payload.view(), path)),
            Plan::Hookline(None, _) => Cow::Owned(cx.hookline_value()),
            Plan::Hookline(Some(i), path) => found(walk(cx.hookline_at(*i), path)),
            Plan::Vars(path) => found(walk(vars, path)),
            Plan::Call {
                text,
                name,
                args,
                offset,
            } => {
                let args = args
                    .iter()
                    .map(|a| a.eval_cow(cx, vars))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(v) = native(name, &args) {
                    return Ok(Cow::Owned(v));
                }
                let args: Vec<_> = args.iter().map(|v| value_to_var(v)).collect();
                let mut ctx = Context::new(text, &RUNTIME);
                ctx.offset = *offset;
                let f = RUNTIME.get_function(name).ok_or_else(|| {
                    JmespathError::from_ctx(
                        &ctx,
                        ErrorReason::Runtime(RuntimeError::UnknownFunction(name.clone())),
                    )
                })?;
                Cow::Owned(var_to_value(&*f.evaluate(&args, &mut ctx)?))
            }
            Plan::Interp(e) => {
                let vars = e.needs().under("vars").map(|_| value_to_var(vars));
                Cow::Owned(var_to_value(&*e.eval(&cx.view(e.needs(), vars.as_ref()))?))
            }
        })
    }
}

/// The functions templates call most, on JSON directly. `None` (a type the function does not
/// take, or another function) falls back to the runtime, which gives the result or the error.
/// Each must agree with its runtime version (`plans_agree_with_the_interpreter` checks).
fn native(name: &str, args: &[Cow<'_, Value>]) -> Option<Value> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    Some(match (name, args) {
        ("concat", _) => Value::String(args.iter().map(|a| text(a)).collect()),
        ("upper", [a]) => Value::String(a.as_str()?.to_uppercase()),
        ("lower", [a]) => Value::String(a.as_str()?.to_lowercase()),
        ("default", [v, fallback]) => match &**v {
            Value::Null => (**fallback).clone(),
            Value::String(s) if s.is_empty() => (**fallback).clone(),
            other => other.clone(),
        },
        ("not_null", [_, ..]) => args
            .iter()
            .find(|a| !a.is_null())
            .map_or(Value::Null, |a| (**a).clone()),
        ("truncate", [s, n]) => {
            let n = n.as_f64().filter(|n| *n >= 0.0)?;
            Value::String(s.as_str()?.chars().take(n as usize).collect())
        }
        ("lookup", [m, k, rest @ ..]) if rest.len() <= 1 => {
            let found = m.as_object()?.get(&text(k));
            found
                .or(rest.first().map(|d| &**d))
                .cloned()
                .unwrap_or(Value::Null)
        }
        _ => return None,
    })
}

fn plan(text: &std::sync::Arc<str>, ast: &Ast) -> Plan {
    if let Some(path) = path_of(ast) {
        let mut steps = path.into_iter();
        let rest = |s: std::vec::IntoIter<Step>| s.collect::<Vec<_>>();
        return match steps.next() {
            Some(Step::Key(k)) if k == "event" => Plan::Event(rest(steps)),
            Some(Step::Key(k)) if k == "vars" => Plan::Vars(rest(steps)),
            Some(Step::Key(k)) if k == "hookline" => match steps.next() {
                None => Plan::Hookline(None, vec![]),
                Some(Step::Key(f)) => match field_index(&f) {
                    Some(i) => Plan::Hookline(Some(i), rest(steps)),
                    None => Plan::Literal(Value::Null),
                },
                // An index into an object reads null.
                Some(Step::Index(_)) => Plan::Literal(Value::Null),
            },
            // The context has no other keys.
            _ => Plan::Literal(Value::Null),
        };
    }
    match ast {
        Ast::Literal { value, .. } => Plan::Literal(var_to_value(value)),
        Ast::MultiHash { elements, .. } => Plan::Object(
            elements
                .iter()
                .map(|kv| (kv.key.clone(), plan(text, &kv.value)))
                .collect(),
        ),
        Ast::MultiList { elements, .. } => {
            Plan::Array(elements.iter().map(|e| plan(text, e)).collect())
        }
        Ast::Function { name, args, offset }
            if !args.iter().any(|a| matches!(a, Ast::Expref { .. })) =>
        {
            Plan::Call {
                text: text.clone(),
                name: name.clone(),
                args: args.iter().map(|a| plan(text, a)).collect(),
                offset: *offset,
            }
        }
        other => Plan::Interp(Expr::from_ast(text, other.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Origin};
    use crate::render::Derived;
    use crate::rules::Severity;
    use serde_json::json;

    #[test]
    fn plans_agree_with_the_interpreter() {
        let ev = Event::new(
            Origin {
                topic: "t".into(),
                partition: 0,
                offset: 9,
                index: 0,
            },
            json!({"a": {"b": [1, 2, 3]}, "s": "Hi", "n": null, "tags": [{"k": "x"}, {"k": "y"}]}),
        );
        let d = Derived {
            category: "c".into(),
            categories: vec!["c".into()],
            severity: Severity::Medium,
            raw_severity: Some("MEDIUM".into()),
            event_id: None,
            source: None,
            fields: vec![("summary".into(), json!("sum"))],
        };
        let vars = json!({"key": "K", "m": {"medium": "warning"}});
        let cx = EventContext::new(&ev, &d);
        for text in [
            "{a: event.a.b[-1], s: upper(event.s), n: event.n, lit: `[1, {\"x\": 2}]`, raw: 'r'}",
            "[hookline.severity, hookline.fields.summary, hookline.event_id, hookline.offset, vars.key]",
            "{sev: lookup(vars.m, hookline.severity), d: default(event.n, 'dflt'), c: concat(event.s, '!')}",
            "[lookup(vars.m, 'x', event.a), lookup(vars.m, event.a.b), not_null(event.n, event.s), truncate(event.s, `1`)]",
            "[concat(event.a, `1.5`, `true`, event.n), lower(event.s), default('', `[]`), default(event.a.b, 'x')]",
            "{ks: event.tags[*].k, f: event.tags[?k == 'y'] | [0].k, cmp: event.s == 'Hi', o: event.a.b[0] || `5`}",
            "{h: hookline, hn: hookline.nope, hi: hookline[0], nothing: other.path, idx: [0], sorted: sort_by(event.tags, &k)[0].k}",
            "event",
            "hookline.category",
            "{cs: hookline.categories, c0: hookline.categories[0], n: length(hookline.categories), j: join(',', hookline.categories)}",
        ] {
            let e = Expr::compile(text).unwrap();
            let want = var_to_value(&e.eval(&cx.view(e.needs(), Some(&value_to_var(&vars)))).unwrap());
            let got = Plan::new(&e).eval(&cx, &vars).unwrap();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn function_errors_are_reported() {
        let ev = Event::new(
            Origin {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                index: 0,
            },
            json!({"n": 5}),
        );
        let d = Derived {
            category: "c".into(),
            categories: vec!["c".into()],
            severity: Severity::Info,
            raw_severity: None,
            event_id: None,
            source: None,
            fields: vec![],
        };
        let e = Expr::compile("{x: upper(event.n)}").unwrap();
        let err = Plan::new(&e)
            .eval(&EventContext::new(&ev, &d), &Value::Null)
            .unwrap_err();
        assert!(
            err.reason.to_string().contains("expects type string"),
            "{err}"
        );
    }
}
