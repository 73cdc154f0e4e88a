//! One compiled JMESPath expression, plus the conversions between `serde_json::Value` and the
//! interpreter's `Variable`.
//!
//! Every expression in a rule file is compiled once, at load. Plain field paths
//! (`details.hit.type`, `not_null(level, severity)`, `a || b`) are additionally recognised so
//! that classification reads them straight from the `serde_json::Value`, without converting the
//! whole event into the interpreter's representation.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jmespath::ast::Ast;
use jmespath::{Context, Expression, Rcvar, Variable};
use serde_json::Value;

use super::functions::{is_known, RUNTIME};
use super::needs::{path_of, prune, walk, Needs, Step};

/// An expression that does not compile: the reason and its 0-based position in the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ExprError {
    /// Why, without the multi-line caret rendering of the library.
    pub reason: String,
    /// 0-based line inside the expression text.
    pub line: usize,
    /// 0-based column inside that line.
    pub column: usize,
}

/// A compiled expression.
#[derive(Clone)]
pub struct Expr {
    compiled: Expression<'static>,
    fast: Option<FastPath>,
    needs: Needs,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({:?})", self.compiled.as_str())
    }
}

/// Expressions that classification can evaluate without the interpreter.
#[derive(Clone, Debug)]
enum FastPath {
    /// `a.b[0].c`
    Path(Vec<Step>),
    /// `not_null(p1, p2, ...)`: the first non-null.
    FirstNonNull(Vec<Vec<Step>>),
    /// `p1 || p2 || ...`: the first truthy, else the last.
    FirstTruthy(Vec<Vec<Step>>),
}

impl Expr {
    /// Compiles `text`, refusing calls to functions the runtime does not have (the library
    /// would only notice at evaluation time).
    pub fn compile(text: &str) -> Result<Expr, ExprError> {
        let compiled = RUNTIME.compile(text).map_err(|e| ExprError {
            reason: e.reason.to_string(),
            line: e.line,
            column: e.column,
        })?;
        if let Some((name, offset)) = unknown_function(compiled.as_ast()) {
            // The parser records the offset of the `(`; point at the name instead.
            let before: Vec<char> = text.chars().take(offset).collect();
            let n = name.chars().count();
            let start = if before.len() >= n
                && before[before.len() - n..].iter().copied().eq(name.chars())
            {
                offset - n
            } else {
                offset
            };
            let (line, column) = line_col(text, start);
            return Err(ExprError {
                reason: format!("unknown function {name}()"),
                line,
                column,
            });
        }
        let fast = fast_path(compiled.as_ast());
        let needs = Needs::of(compiled.as_ast());
        Ok(Expr {
            compiled,
            fast,
            needs,
        })
    }

    /// A part of a compiled expression as an expression of its own. `text` is the whole
    /// expression's: offsets in the part refer to it.
    pub fn from_ast(text: &str, ast: Ast) -> Expr {
        let fast = fast_path(&ast);
        let needs = Needs::of(&ast);
        Expr {
            compiled: Expression::new(text, ast, &RUNTIME),
            fast,
            needs,
        }
    }

    /// The syntax tree.
    pub fn as_ast(&self) -> &Ast {
        self.compiled.as_ast()
    }

    /// What the expression reads of its input.
    pub fn needs(&self) -> &Needs {
        &self.needs
    }

    /// The source text.
    pub fn as_str(&self) -> &str {
        self.compiled.as_str()
    }

    /// Evaluates against an interpreter value.
    pub fn eval(&self, data: &Rcvar) -> Result<Rcvar, jmespath::JmespathError> {
        let mut ctx = Context::new(self.compiled.as_str(), &RUNTIME);
        jmespath::interpret(data, self.compiled.as_ast(), &mut ctx)
    }

    /// Evaluates against a raw event: through the fast path when there is one, else on the
    /// parts of the event the expression reads.
    pub fn eval_value<'v>(
        &self,
        data: &'v Value,
    ) -> Result<Extracted<'v>, jmespath::JmespathError> {
        static NULL: Value = Value::Null;
        match &self.fast {
            Some(FastPath::Path(p)) => Ok(Extracted::Value(walk(data, p).unwrap_or(&NULL))),
            Some(FastPath::FirstNonNull(ps)) => Ok(Extracted::Value(
                ps.iter()
                    .filter_map(|p| walk(data, p))
                    .find(|v| !v.is_null())
                    .unwrap_or(&NULL),
            )),
            Some(FastPath::FirstTruthy(ps)) => {
                let mut last = &NULL;
                for p in ps {
                    last = walk(data, p).unwrap_or(&NULL);
                    if truthy(last) {
                        break;
                    }
                }
                Ok(Extracted::Value(last))
            }
            None => self.eval(&prune(data, &self.needs)).map(Extracted::Var),
        }
    }
}

/// A result read from a raw event: borrowed when the fast path found it.
#[derive(Debug)]
pub enum Extracted<'v> {
    /// Read directly.
    Value(&'v Value),
    /// Computed by the interpreter.
    Var(Rcvar),
}

impl Extracted<'_> {
    /// As a string: strings as they are, numbers and booleans as JSON text, null as `None`,
    /// arrays and objects as JSON text.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Extracted::Value(Value::Null) => None,
            Extracted::Value(Value::String(s)) => Some(s.clone()),
            Extracted::Value(v) => Some(v.to_string()),
            Extracted::Var(v) => match &**v {
                Variable::Null => None,
                Variable::String(s) => Some(s.clone()),
                other => Some(var_to_value(other).to_string()),
            },
        }
    }

    /// As a list of names (categories): a string is one name, a list one per element, other
    /// scalars their JSON text. Nulls and blank strings are skipped, names are trimmed, each
    /// is kept once, in order. At most `limit` are kept; the flag says whether more were left
    /// out.
    pub fn to_names(&self, limit: usize) -> (Vec<String>, bool) {
        let mut names = Names {
            out: Vec::new(),
            limit,
            truncated: false,
        };
        match self {
            Extracted::Value(Value::Array(items)) => items.iter().for_each(|v| names.value(v)),
            Extracted::Value(v) => names.value(v),
            Extracted::Var(v) => match &**v {
                Variable::Array(items) => items.iter().for_each(|v| names.var(v)),
                other => names.var(other),
            },
        }
        (names.out, names.truncated)
    }

    /// As an owned JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Extracted::Value(v) => (*v).clone(),
            Extracted::Var(v) => var_to_value(v),
        }
    }

    /// As a number, when it is one or a string holding one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Extracted::Value(Value::Number(n)) => n.as_f64(),
            Extracted::Value(Value::String(s)) => s.trim().parse().ok(),
            Extracted::Var(v) => match &**v {
                Variable::Number(n) => n.as_f64(),
                Variable::String(s) => s.trim().parse().ok(),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Collects names for [`Extracted::to_names`].
struct Names {
    out: Vec<String>,
    limit: usize,
    truncated: bool,
}

impl Names {
    fn push(&mut self, name: &str) {
        let name = name.trim();
        // A linear search: lists are short, and bounded by `limit`.
        if name.is_empty() || self.out.iter().any(|n| n == name) {
            return;
        }
        if self.out.len() == self.limit {
            self.truncated = true;
        } else {
            self.out.push(name.to_string());
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => {}
            Value::String(s) => self.push(s),
            other => self.push(&other.to_string()),
        }
    }

    fn var(&mut self, v: &Variable) {
        match v {
            Variable::Null => {}
            Variable::String(s) => self.push(s),
            other => self.push(&var_to_value(other).to_string()),
        }
    }
}

/// JMESPath truthiness of a raw value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

fn or_chain(ast: &Ast, out: &mut Vec<Vec<Step>>) -> Option<()> {
    match ast {
        Ast::Or { lhs, rhs, .. } => {
            or_chain(lhs, out)?;
            or_chain(rhs, out)
        }
        other => {
            out.push(path_of(other)?);
            Some(())
        }
    }
}

fn fast_path(ast: &Ast) -> Option<FastPath> {
    match ast {
        Ast::Function { name, args, .. } if name == "not_null" && !args.is_empty() => args
            .iter()
            .map(path_of)
            .collect::<Option<Vec<_>>>()
            .map(FastPath::FirstNonNull),
        Ast::Or { .. } => {
            let mut paths = Vec::new();
            or_chain(ast, &mut paths)?;
            Some(FastPath::FirstTruthy(paths))
        }
        other => path_of(other).map(FastPath::Path),
    }
}

fn unknown_function(ast: &Ast) -> Option<(String, usize)> {
    let children: Vec<&Ast> = match ast {
        Ast::Function { name, args, offset } => {
            if !is_known(name) {
                return Some((name.clone(), *offset));
            }
            args.iter().collect()
        }
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => vec![lhs, rhs],
        Ast::Condition {
            predicate, then, ..
        } => vec![predicate, then],
        Ast::Expref { ast, .. } => vec![ast],
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
            vec![node]
        }
        Ast::MultiList { elements, .. } => elements.iter().collect(),
        Ast::MultiHash { elements, .. } => elements.iter().map(|kv| &kv.value).collect(),
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => vec![],
    };
    children.into_iter().find_map(unknown_function)
}

/// 0-based line and column of a character offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let (mut line, mut col) = (0, 0);
    for c in text.chars().take(offset) {
        if c == '\n' {
            line += 1;
            col = 0;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Converts a JSON value for the interpreter, directly (the library's own conversion goes
/// through serde's serializer for nested values, several times slower).
pub fn value_to_var(v: &Value) -> Rcvar {
    Arc::new(match v {
        Value::Null => Variable::Null,
        Value::Bool(b) => Variable::Bool(*b),
        Value::Number(n) => Variable::Number(n.clone()),
        Value::String(s) => Variable::String(s.clone()),
        Value::Array(a) => Variable::Array(a.iter().map(value_to_var).collect()),
        Value::Object(o) => Variable::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), value_to_var(v)))
                .collect(),
        ),
    })
}

/// Converts an interpreter value back to JSON. An expression reference (only possible from
/// `&expr` in a template) becomes null.
pub fn var_to_value(v: &Variable) -> Value {
    match v {
        Variable::Null | Variable::Expref(_) => Value::Null,
        Variable::Bool(b) => Value::Bool(*b),
        Variable::Number(n) => Value::Number(n.clone()),
        Variable::String(s) => Value::String(s.clone()),
        Variable::Array(a) => Value::Array(a.iter().map(|v| var_to_value(v)).collect()),
        Variable::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), var_to_value(v)))
                .collect(),
        ),
    }
}

/// An object variable from its entries.
pub fn object(entries: BTreeMap<String, Rcvar>) -> Rcvar {
    Arc::new(Variable::Object(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extract(expr: &str, data: &Value) -> Option<String> {
        let e = Expr::compile(expr).unwrap();
        e.eval_value(data).unwrap().to_text()
    }

    #[test]
    fn parse_errors_carry_position() {
        let err = Expr::compile("foo.[").unwrap_err();
        assert_eq!((err.line, err.column), (0, 5), "{err:?}");
        assert!(err.reason.starts_with("Parse error"), "{err:?}");
    }

    #[test]
    fn unknown_functions_are_refused_at_compile_time() {
        let err = Expr::compile("a || upper(lowr(b))").unwrap_err();
        assert_eq!(err.reason, "unknown function lowr()");
        assert_eq!((err.line, err.column), (0, 11));
        assert!(Expr::compile("upper(lower(b))").is_ok());
    }

    #[test]
    fn fast_paths_agree_with_the_interpreter() {
        let data = json!({"a": {"b": [1, {"c": "x"}]}, "e": "", "n": null, "s": "sev"});
        for expr in [
            "a.b[1].c",
            "a.b[-1].c",
            "a.b[0]",
            "missing.path",
            "not_null(n, missing, s)",
            "e || n || s",
            "e || n",
            "a.b",
        ] {
            let e = Expr::compile(expr).unwrap();
            assert!(e.fast.is_some(), "{expr} should take the fast path");
            let fast = e.eval_value(&data).unwrap().to_value();
            let slow = var_to_value(&e.eval(&value_to_var(&data)).unwrap());
            assert_eq!(fast, slow, "{expr}");
        }
        assert!(Expr::compile("upper(s)").unwrap().fast.is_none());
        assert_eq!(extract("upper(s)", &data).as_deref(), Some("SEV"));
        assert_eq!(extract("a.b[0]", &data).as_deref(), Some("1"));
        assert_eq!(extract("n", &data), None);
    }

    #[test]
    fn conversions_round_trip() {
        let data = json!({"a": [1, 2.5, "x", true, null, {"b": {}}]});
        assert_eq!(var_to_value(&value_to_var(&data)), data);
    }
}
