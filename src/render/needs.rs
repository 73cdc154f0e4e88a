//! What parts of its input an expression reads, found once from its syntax tree, so that only
//! those parts are converted for the interpreter.
//!
//! Converting a whole event (every key and string copied into the interpreter's own values)
//! costs more than evaluating most route predicates and templates; `event.level != 'LOW'`
//! needs one field of it. The analysis is conservative: anything it cannot follow (`@`, root
//! projections, slices) asks for everything.

use std::sync::Arc;

use jmespath::ast::Ast;
use jmespath::{Rcvar, Variable};
use serde_json::Value;

use super::expr::value_to_var;

/// One step of a plain path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `.name`
    Key(String),
    /// `[i]`
    Index(i32),
}

/// The subtrees an expression reads: each path is read whole. An empty path means the whole
/// input; no paths means nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    paths: Vec<Vec<Step>>,
}

/// A pure `a.b[0].c` chain, as steps.
pub fn path_of(ast: &Ast) -> Option<Vec<Step>> {
    match ast {
        Ast::Field { name, .. } => Some(vec![Step::Key(name.clone())]),
        Ast::Index { idx, .. } => Some(vec![Step::Index(*idx)]),
        Ast::Subexpr { lhs, rhs, .. } => {
            let mut p = path_of(lhs)?;
            p.extend(path_of(rhs)?);
            Some(p)
        }
        _ => None,
    }
}

/// The value at `path` below `v`, as JMESPath reads a plain path (a negative index counts
/// from the end); `None` where it reads null.
pub fn walk<'v>(mut v: &'v Value, path: &[Step]) -> Option<&'v Value> {
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Object(o)) => o.get(k)?,
            (Step::Index(i), Value::Array(a)) => {
                let i = if *i < 0 {
                    a.len() as i64 + *i as i64
                } else {
                    *i as i64
                };
                a.get(usize::try_from(i).ok()?)?
            }
            _ => return None,
        };
    }
    Some(v)
}

impl Needs {
    /// Everything.
    pub fn everything() -> Needs {
        Needs {
            paths: vec![vec![]],
        }
    }

    /// What `ast` reads of the input it is evaluated against.
    pub fn of(ast: &Ast) -> Needs {
        let mut paths = Vec::new();
        collect(ast, &mut paths);
        Needs { paths }
    }

    /// Each path read, as steps from the input (an empty path: all of it).
    pub fn paths(&self) -> &[Vec<Step>] {
        &self.paths
    }

    /// Whether the whole input is needed.
    pub fn is_everything(&self) -> bool {
        self.paths.iter().any(Vec::is_empty)
    }

    /// What is needed below the key `key`, if anything.
    pub fn under(&self, key: &str) -> Option<Needs> {
        if self.is_everything() {
            return Some(Needs::everything());
        }
        let paths: Vec<Vec<Step>> = self
            .paths
            .iter()
            .filter(|p| matches!(p.first(), Some(Step::Key(k)) if k == key))
            .map(|p| p[1..].to_vec())
            .collect();
        (!paths.is_empty()).then_some(Needs { paths })
    }

    /// The keys needed directly below the top, each once.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for p in &self.paths {
            if let Some(Step::Key(k)) = p.first() {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// Whether any path starts with an index (the input is read as an array).
    fn indexes(&self) -> bool {
        self.paths
            .iter()
            .any(|p| matches!(p.first(), Some(Step::Index(_))))
    }
}

/// Adds what `ast` reads of its input (the node it is evaluated against) to `out`.
fn collect(ast: &Ast, out: &mut Vec<Vec<Step>>) {
    if let Some(p) = path_of(ast) {
        out.push(p);
        return;
    }
    match ast {
        // After a plain path, the right side reads below it.
        Ast::Subexpr { lhs, rhs, .. } if path_of(lhs).is_some() => {
            let base = path_of(lhs).expect("checked");
            let mut below = Vec::new();
            collect(rhs, &mut below);
            if below.is_empty() {
                // The right side reads nothing but still runs only when the left side is
                // not null (`event.x.{a: `1`}`), so the left side must be there.
                out.push(base);
            } else {
                out.extend(below.into_iter().map(|p| [base.clone(), p].concat()));
            }
        }
        // Otherwise the right side only sees what the left side produced (for a projection,
        // each element of it), so what the left side reads is all.
        Ast::Subexpr { lhs, .. } | Ast::Projection { lhs, .. } => collect(lhs, out),
        Ast::Flatten { node, .. } | Ast::ObjectValues { node, .. } | Ast::Not { node, .. } => {
            collect(node, out)
        }
        Ast::Comparison { lhs, rhs, .. } | Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            collect(lhs, out);
            collect(rhs, out);
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            collect(predicate, out);
            collect(then, out);
        }
        // An expression reference runs on elements the other arguments provide.
        Ast::Function { args, .. } => args.iter().for_each(|a| collect(a, out)),
        Ast::MultiList { elements, .. } => elements.iter().for_each(|e| collect(e, out)),
        Ast::MultiHash { elements, .. } => elements.iter().for_each(|kv| collect(&kv.value, out)),
        Ast::Literal { .. } | Ast::Expref { .. } => {}
        Ast::Identity { .. } | Ast::Slice { .. } | Ast::Field { .. } | Ast::Index { .. } => {
            out.push(vec![])
        }
    }
}

/// `value` converted for the interpreter, with only what `needs` reads: other keys of objects
/// on the way are left out (they would read as null, and nothing reads them).
pub fn prune(value: &Value, needs: &Needs) -> Rcvar {
    if needs.is_everything() || needs.indexes() {
        return value_to_var(value);
    }
    match value {
        Value::Object(o) => {
            let entries = needs
                .keys()
                .into_iter()
                .filter_map(|k| {
                    let child = o.get(k)?;
                    let sub = needs.under(k).expect("a listed key is needed");
                    Some((k.to_string(), prune(child, &sub)))
                })
                .collect();
            Arc::new(Variable::Object(entries))
        }
        other => value_to_var(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::expr::var_to_value;
    use crate::render::functions::RUNTIME;
    use serde_json::json;

    fn needs(expr: &str) -> Needs {
        Needs::of(RUNTIME.compile(expr).unwrap().as_ast())
    }

    fn key(k: &str) -> Step {
        Step::Key(k.into())
    }

    #[test]
    fn finds_the_paths_read() {
        assert_eq!(
            needs("event.level != 'LOW' && hookline.severity == 'high'").paths,
            vec![
                vec![key("event"), key("level")],
                vec![key("hookline"), key("severity")]
            ]
        );
        assert_eq!(
            needs("{a: upper(event.x.y), b: `1`, c: length(event.tags[*].n)}").paths,
            vec![
                vec![key("event"), key("x"), key("y")],
                vec![key("event"), key("tags")]
            ]
        );
        assert_eq!(
            needs("sort_by(event.items, &weight)[0]").paths,
            vec![vec![key("event"), key("items")]]
        );
        assert!(needs("keys(@)").is_everything());
        assert!(needs("[*].a").is_everything());
        assert!(!needs("event").is_everything());
        assert!(needs("event").under("event").unwrap().is_everything());
        assert!(needs("event.a").under("hookline").is_none());
    }

    #[test]
    fn pruned_input_gives_the_same_results() {
        let data = json!({
            "event": {"level": "HIGH", "x": {"y": "z", "w": 1}, "tags": [{"n": 1}, {"n": 2}], "big": [1, 2, 3]},
            "hookline": {"severity": "high", "topic": "t"}
        });
        for expr in [
            "event.level != 'LOW' && hookline.severity == 'high'",
            "{a: upper(event.x.y), c: length(event.tags[*].n)}",
            "event.tags[?n > `1`].n",
            "event.x",
            "not_null(event.missing, event.x.w)",
            "keys(@)",
            "event.big[1]",
            "event.x.{a: `1`}",
            "event.nothing.{a: `1`}",
            "event.tags[*].n",
        ] {
            let e = RUNTIME.compile(expr).unwrap();
            let pruned = prune(&data, &Needs::of(e.as_ast()));
            let full = value_to_var(&data);
            let got = e
                .search(pruned.clone())
                .unwrap_or_else(|_| Arc::new(Variable::Null));
            let want = e.search(full).unwrap();
            assert_eq!(var_to_value(&got), var_to_value(&want), "{expr}");
        }
        let p = prune(&data, &needs("event.x.y"));
        assert_eq!(var_to_value(&p), json!({"event": {"x": {"y": "z"}}}));
    }
}
