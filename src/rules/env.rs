//! `${NAME}` in rule-file values, read from the environment so secrets stay out of the files.
//!
//! `${NAME:-fallback}` uses `fallback` when `NAME` is unset; `$${` writes a literal `${`.
//! `NAME_FILE` stands for `NAME` set to that file's contents ([`crate::env_file`]). Only
//! values are expanded, never keys.
//!
//! An unset `NAME` without a fallback is an error when the rules are put in force. `hookline
//! check` (without `--strict-env`) makes it a warning instead, so a CI job without production
//! secrets can still validate the rules: the value is then checked with a placeholder in the
//! variable's place ([`placeholder`]), and a problem that only the placeholder could cause
//! says so.

use marked_yaml::types::MarkedScalarNode;
use marked_yaml::Node;

use super::problems::Problems;
use crate::env_file::EnvFileError;

/// Why a value could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `${NAME}` with `NAME` unset and no fallback.
    #[error("environment variable {0} is not set")]
    Missing(String),
    /// `${` without its `}`, or an empty or invalid name.
    #[error("malformed variable reference {0:?} (expected ${{NAME}} or ${{NAME:-default}})")]
    Malformed(String),
    /// `NAME_FILE` could not be used.
    #[error(transparent)]
    File(#[from] EnvFileError),
}

/// What an unset variable without a fallback is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unset {
    /// A problem: the rule set is rejected (`hookline run`, reloads, `check --strict-env`).
    #[default]
    Error,
    /// A warning; the value is checked with a [`placeholder`] (`hookline check`).
    Warn,
}

/// Reads a variable: its value, `None` when unset, or why it cannot be read.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Result<Option<String>, EnvFileError>;

/// What stands in for an unset variable when only checking: a signing secret where the key
/// says it is one, a URL where the reference starts the value (`${BASE}/hook`), a word
/// elsewhere (`Bearer ${TOKEN}`, `https://${HOST}/x`). `.invalid` never resolves.
pub fn placeholder(key: &str, at_start: bool) -> String {
    if key == "secrets" {
        "whsec_aG9va2xpbmUtcGxhY2Vob2xkZXItc2VjcmV0".into()
    } else if at_start {
        "https://placeholder.invalid".into()
    } else {
        "placeholder".into()
    }
}

/// Expands the variables of one string; the offset in the error is where the reference starts.
pub fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (usize, EnvError)> {
    expand_with(s, &|name| Ok(lookup(name)), &mut |_, _| None)
}

/// [`expand`] reading through `lookup`; `unset(name, offset)` may supply a value for an unset
/// variable without a fallback (else it is [`EnvError::Missing`]).
pub fn expand_with(
    s: &str,
    lookup: Lookup<'_>,
    unset: &mut dyn FnMut(&str, usize) -> Option<String>,
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
        let value = lookup(name).map_err(|e| (pos + i, e.into()))?;
        match (value, fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) => match unset(name, pos + i) {
                Some(v) => out.push_str(&v),
                None => return Err((pos + i, EnvError::Missing(name.to_string()))),
            },
        }
        rest = &after[end + 1..];
        pos += i + end + 1;
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands every scalar value under `node`, reporting each failure at its scalar. `key` is the
/// mapping key the node is the value of (for [`placeholder`]).
pub fn expand_node(
    node: &mut Node,
    key: &str,
    lookup: Lookup<'_>,
    mode: Unset,
    problems: &mut Problems,
) {
    match node {
        Node::Scalar(s) => {
            if !s.as_str().contains('$') {
                return;
            }
            let mut unset = Vec::new();
            let mut stand_in = |name: &str, offset: usize| {
                (mode == Unset::Warn).then(|| {
                    unset.push(name.to_string());
                    placeholder(key, offset == 0)
                })
            };
            match expand_with(s.as_str(), lookup, &mut stand_in) {
                Ok(v) => {
                    for name in &unset {
                        problems.warn_at(
                            s.span(),
                            format!("environment variable {name} is not set (checked with a placeholder)"),
                        );
                    }
                    if !unset.is_empty() {
                        problems.mark_placeholder(s.span(), unset);
                    }
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
                expand_node(n, key, lookup, mode, problems);
            }
        }
        Node::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                expand_node(v, k.as_str(), lookup, mode, problems);
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

    #[test]
    fn file_variants_and_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.display().to_string();
        let env = move |n: &str| (n == "TOKEN_FILE").then(|| path.clone());
        let lookup = |n: &str| crate::env_file::lookup(n, &env);
        let mut none = |_: &str, _: usize| None;
        assert_eq!(
            expand_with("Bearer ${TOKEN}", &lookup, &mut none).unwrap(),
            "Bearer from-file"
        );
        let mut unset = Vec::new();
        let mut stand_in = |n: &str, at: usize| {
            unset.push(n.to_string());
            Some(placeholder("url", at == 0))
        };
        assert_eq!(
            expand_with("${BASE}/x?k=${KEY}", &lookup, &mut stand_in).unwrap(),
            "https://placeholder.invalid/x?k=placeholder"
        );
        assert_eq!(unset, ["BASE", "KEY"]);
        assert!(placeholder("secrets", true).starts_with("whsec_"));
    }
}
