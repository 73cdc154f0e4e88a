//! Reading a rules directory: every `*.yaml`/`*.yml` file, parsed with positions, `${NAME}`
//! expanded, and split into the entries of each section for `compile.rs`.
//!
//! A file whose top level has `cases:` is a routing-test file (`hookline test --cases`), kept
//! next to the rules it tests; it is not part of the rule set.

use std::path::{Path, PathBuf};

use marked_yaml::{LoaderOptions, Node};

use super::inputs::{FileInputs, RuleFile};
use super::model::SECTIONS;
use super::problems::{Problems, SourceFile};

/// Everything read from a directory, before compilation.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Problems so far, and the files (for positions).
    pub problems: Problems,
    /// The directory of each file, by source number (template `file:` paths are relative to it).
    pub dirs: Vec<PathBuf>,
    /// `sources:` entries, in file order.
    pub sources: Vec<Node>,
    /// `severity:` sections, one per file that has one.
    pub severity: Vec<Node>,
    /// `subscriptions:` entries.
    pub subscriptions: Vec<Node>,
    /// `templates:` entries.
    pub templates: Vec<Node>,
    /// `routes:` entries.
    pub routes: Vec<Node>,
}

/// The rule files of `dir`, sorted by name so merges are deterministic.
pub fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// How a file is named in problems: relative to the rules directory's parent, so
/// `rules/examples/a.yaml` shows as `examples/a.yaml`.
pub fn display_name(dir: &Path, file: &Path) -> String {
    let base = dir.file_name().map(PathBuf::from).unwrap_or_default();
    let name = file.file_name().map(PathBuf::from).unwrap_or_default();
    base.join(name).display().to_string()
}

/// Reads every rule file of `dir` into memory: the file half of a rule set's
/// [`Inputs`](super::inputs::Inputs). A directory that cannot be read is kept as its error,
/// reported as a problem when the inputs are compiled.
pub fn read_dir(dir: &Path) -> FileInputs {
    let files = rule_files(dir)
        .map_err(|e| format!("cannot read the rules directory: {e}"))
        .map(|paths| {
            paths
                .into_iter()
                .map(|path| RuleFile {
                    name: display_name(dir, &path),
                    text: std::fs::read_to_string(&path).map_err(|e| format!("cannot read: {e}")),
                    path,
                })
                .collect()
        });
    FileInputs {
        dir: dir.to_path_buf(),
        files,
    }
}

/// Reads and parses every rule file of `dir`, expanding `${NAME}` through `env`; `unset` says
/// what an unset variable is.
pub fn parse_dir(dir: &Path, env: super::env::Lookup<'_>, unset: super::env::Unset) -> Parsed {
    parse_files(&read_dir(dir), env, unset)
}

/// Parses rule files read by [`read_dir`].
pub fn parse_files(
    inputs: &FileInputs,
    env: super::env::Lookup<'_>,
    unset: super::env::Unset,
) -> Parsed {
    let mut parsed = Parsed::default();
    let shown = inputs.dir.display().to_string();
    let files = match &inputs.files {
        Ok(f) => f,
        Err(e) => {
            parsed.problems.in_file(&shown, e.clone());
            return parsed;
        }
    };
    let mut rule_files = 0;
    for file in files {
        let name = file.name.clone();
        let text = match &file.text {
            Ok(t) => t.clone(),
            Err(e) => {
                parsed.problems.in_file(&name, e.clone());
                continue;
            }
        };
        let path = &file.path;
        let source = parsed.problems.files.len();
        parsed.problems.files.push(SourceFile {
            name: name.clone(),
            text: text.clone(),
        });
        parsed
            .dirs
            .push(path.parent().map(Path::to_path_buf).unwrap_or_default());
        if text.trim().is_empty()
            || text
                .lines()
                .all(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        {
            rule_files += 1;
            continue;
        }
        let mut node = match marked_yaml::parse_yaml_with_options(source, &text, yaml_options()) {
            Ok(n) => n,
            Err(e) => {
                yaml_problem(
                    &mut parsed.problems,
                    &name,
                    e,
                    "a rule file must be a mapping of sections",
                );
                continue;
            }
        };
        let Some(map) = node.as_mapping() else {
            parsed
                .problems
                .at_node(&node, "a rule file must be a mapping of sections");
            continue;
        };
        if map.get_node("cases").is_some() {
            continue;
        }
        rule_files += 1;
        super::env::expand_node(&mut node, "", env, unset, &mut parsed.problems);
        split_sections(&node, &mut parsed);
    }
    if rule_files == 0 && parsed.problems.list.is_empty() {
        parsed
            .problems
            .in_file(&shown, "no rule files (*.yaml, *.yml) in the directory");
    }
    parsed
}

/// How rule and case files are parsed: a repeated key is an error, and a quoted scalar is a
/// string (`"007"` stays `"007"`, as YAML means it), never coerced to a number or a boolean.
pub fn yaml_options() -> LoaderOptions {
    LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true)
}

/// A YAML problem, placed where the parser saw it. `not_mapping` says what the top level
/// should have been.
pub fn yaml_problem(
    problems: &mut Problems,
    name: &str,
    e: marked_yaml::LoadError,
    not_mapping: &str,
) {
    use marked_yaml::LoadError as E;
    let (marker, message) = match &e {
        E::TopLevelMustBeMapping(m) => (Some(*m), not_mapping.to_string()),
        E::TopLevelMustBeSequence(m) => (Some(*m), "top level must be a sequence".to_string()),
        E::UnexpectedAnchor(m) => (Some(*m), "YAML anchors are not supported".to_string()),
        E::MappingKeyMustBeScalar(m) => (Some(*m), "mapping keys must be scalars".to_string()),
        E::UnexpectedTag(m) => (Some(*m), "YAML tags are not supported".to_string()),
        E::ScanError(m, err) => (Some(*m), format!("YAML syntax error: {}", err.info())),
        E::DuplicateKey(inner) => (
            inner.key.span().start().copied(),
            format!(
                "duplicate key {:?} (first at line {})",
                inner.key.as_str(),
                inner.prev_key.span().start().map_or(0, |m| m.line())
            ),
        ),
    };
    match marker {
        Some(m) => problems.at_marker(Some(&m), message),
        None => problems.in_file(name, message),
    }
}

fn split_sections(node: &Node, parsed: &mut Parsed) {
    let Some(map) = node.as_mapping() else { return };
    for (key, value) in map.iter() {
        let list = match key.as_str() {
            "sources" => &mut parsed.sources,
            "subscriptions" => &mut parsed.subscriptions,
            "templates" => &mut parsed.templates,
            "routes" => &mut parsed.routes,
            "severity" => {
                parsed.severity.push(value.clone());
                continue;
            }
            other => {
                parsed.problems.at(
                    key.span(),
                    format!(
                        "unknown section `{other}` (expected one of {})",
                        SECTIONS.join(", ")
                    ),
                );
                continue;
            }
        };
        match value {
            Node::Sequence(seq) => list.extend(seq.iter().cloned()),
            Node::Scalar(s) if s.as_str().is_empty() => {}
            other => parsed
                .problems
                .at_node(other, format!("section `{}` must be a list", key.as_str())),
        }
    }
}

/// A YAML node as JSON, with YAML's plain-scalar typing (`true`, `12`, `null`); quoted
/// scalars stay strings.
pub fn node_to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Scalar(s) => {
            if !s.may_coerce() {
                return Value::String(s.as_str().to_string());
            }
            if matches!(s.as_str(), "null" | "~" | "") {
                return Value::Null;
            }
            if let Some(b) = s.as_bool() {
                return Value::Bool(b);
            }
            if let Some(i) = s.as_i64() {
                return i.into();
            }
            if let Some(f) = s.as_f64().and_then(serde_json::Number::from_f64) {
                return Value::Number(f);
            }
            Value::String(s.as_str().to_string())
        }
        Node::Sequence(seq) => Value::Array(seq.iter().map(node_to_json).collect()),
        Node::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().to_string(), node_to_json(v)))
                .collect(),
        ),
    }
}
