//! `${NAME}` in rule-file values, read from the environment so secrets stay out of the files.
//!
//! `${NAME:-fallback}` uses `fallback` when `NAME` is unset; `$${` writes a literal `${`.
//! Only values are expanded, never keys.

use marked_yaml::types::MarkedScalarNode;
use marked_yaml::Node;

use super::problems::Problems;

/// Why a value could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `${NAME}` with `NAME` unset and no fallback.
    #[error("environment variable {0} is not set")]
    Missing(String),
    /// `${` without its `}`, or an empty or invalid name.
    #[error("malformed variable reference {0:?} (expected ${{NAME}} or ${{NAME:-default}})")]
    Malformed(String),
}

/// Expands the variables of one string; the offset in the error is where the reference starts.
pub fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (usize, EnvError)> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut pos = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            pos += i + 3;
            continue;
        }
        if !after.starts_with("${") {
            out.push('$');
            rest = &after[1..];
            pos += i + 1;
            continue;
        }
        let Some(end) = after.find('}') else {
            return Err((pos + i, EnvError::Malformed(after.to_string())));
        };
        let inner = &after[2..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err((pos + i, EnvError::Malformed(after[..=end].to_string())));
        }
        match (lookup(name), fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) => return Err((pos + i, EnvError::Missing(name.to_string()))),
        }
        rest = &after[end + 1..];
        pos += i + end + 1;
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands every scalar value under `node`, reporting each failure at its scalar.
pub fn expand_node(
    node: &mut Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    match node {
        Node::Scalar(s) => {
            if !s.as_str().contains('$') {
                return;
            }
            match expand(s.as_str(), lookup) {
                Ok(v) => {
                    let coerce = s.may_coerce();
                    let mut n = MarkedScalarNode::new(*s.span(), v);
                    n.set_coerce(coerce);
                    *s = n;
                }
                Err((_, e)) => {
                    problems.at(s.span(), e.to_string());
                    problems.mark_unexpanded(s.span());
                }
            }
        }
        Node::Sequence(seq) => {
            for n in seq.iter_mut() {
                expand_node(n, lookup, problems);
            }
        }
        Node::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                expand_node(v, lookup, problems);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("http://127.0.0.1:9".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_references() {
        assert_eq!(expand("${HOST}/pd", &env).unwrap(), "http://127.0.0.1:9/pd");
        assert_eq!(expand("a${EMPTY}b", &env).unwrap(), "ab");
        assert_eq!(expand("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(
            expand("cost $5 and $${HOST}", &env).unwrap(),
            "cost $5 and ${HOST}"
        );
        assert_eq!(expand("no refs", &env).unwrap(), "no refs");
    }

    #[test]
    fn reports_missing_and_malformed() {
        assert_eq!(
            expand("x ${NOPE}", &env).unwrap_err(),
            (2, EnvError::Missing("NOPE".into()))
        );
        assert!(matches!(
            expand("${HOST", &env).unwrap_err().1,
            EnvError::Malformed(_)
        ));
        assert!(matches!(
            expand("${1X}", &env).unwrap_err().1,
            EnvError::Malformed(_)
        ));
        assert_eq!(
            EnvError::Missing("PD_KEY".into()).to_string(),
            "environment variable PD_KEY is not set"
        );
    }
}
