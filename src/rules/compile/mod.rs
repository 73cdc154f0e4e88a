//! Compiling parsed rule files into a [`RuleSet`]: ids checked unique, references resolved,
//! every expression compiled. Every problem is collected; any problem rejects the whole set.

pub mod api;
mod outputs;
mod routes;
mod sources;

use std::collections::HashMap;
use std::sync::Arc;

use marked_yaml::{Node, Span, Spanned};
use serde::de::DeserializeOwned;

use super::aliases::Scale;
use super::index::Index;
use super::inputs::CatalogueInputs;
use super::load::{node_to_json, yaml_options, yaml_problem, Parsed};
use super::matcher::NameMatch;
use super::model::SeverityConfig;
use super::problems::{EntrySource, Problems};
use super::route::Route;
use super::source::{is_glob, Source, Sources};
use super::{LoadError, RuleSet, Severity};
use crate::render::Expr;
use outputs::{compile_subscriptions, compile_templates};
use routes::compile_routes;
use sources::compile_sources;

/// Compiles `parsed`, or returns every problem found.
pub fn compile(parsed: Parsed) -> Result<RuleSet, LoadError> {
    compile_with(parsed, &CatalogueInputs::default())
}

/// Compiles `parsed` with what the catalogue adds: its subscriptions each become their own
/// route after the file routes, and its status overrides apply to file subscriptions. Only
/// the files can reject the set: the API checks its entries before storing them, so an entry
/// that fails here (an id a rule file took since, a record from a newer version) is left out
/// and logged, and the rest goes live.
pub fn compile_with(parsed: Parsed, catalogue: &CatalogueInputs) -> Result<RuleSet, LoadError> {
    let Parsed {
        mut problems,
        dirs,
        sources,
        severity,
        subscriptions,
        templates,
        routes,
    } = parsed;
    let p = &mut problems;
    let (global_aliases, default_severity) = severity_settings(p, &severity);
    let templates = compile_templates(p, &templates, &dirs);
    let subs = compile_subscriptions(p, &subscriptions, &templates);
    let source_list = compile_sources(p, &sources, &global_aliases, default_severity);
    let sub_ids: HashMap<&str, usize> = subs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let route_list = compile_routes(p, &routes, &sub_ids);
    let route_nodes = routes;
    if !problems.list.is_empty() {
        // Reported in file order, whatever stage found them.
        problems
            .list
            .sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        return Err(LoadError {
            problems: problems.list,
        });
    }
    let fallback = Source::fallback(Scale::new(global_aliases, vec![], default_severity));
    let mut topic_patterns = Vec::new();
    for s in &source_list {
        for t in &s.topics {
            let pat = if is_glob(t) {
                glob_to_regex(t)
            } else {
                t.clone()
            };
            if !topic_patterns.contains(&pat) {
                topic_patterns.push(pat);
            }
        }
    }
    let mut topics = Vec::new();
    let mut categories = Vec::new();
    let mut routes = Vec::new();
    for (t, c, r) in route_list {
        topics.push(t);
        categories.push(c);
        routes.push(r);
    }
    let sources = Sources::new(source_list, fallback).expect("validated globs");
    // Without problems every route entry compiled, in order.
    let lines = problems.file_lines();
    let route_sources = route_nodes
        .iter()
        .map(|n| route_source(&problems, &lines, n))
        .collect();
    // Without problems every subscription was built.
    let (mut subscriptions, mut sub_templates): (Vec<_>, Vec<_>) = subs
        .into_iter()
        .map(|s| s.built.expect("no problems, so built"))
        .unzip();
    for sub in subscriptions.iter_mut() {
        if let Some(o) = catalogue.overrides.get(&*sub.id) {
            let mut changed = (**sub).clone();
            changed.config.status = o.status;
            changed.config.disable_reason = o.reason.clone();
            *sub = Arc::new(changed);
        }
    }
    let first_api_route = routes.len();
    for entry in &catalogue.subscriptions {
        let id = &entry.config.id;
        if subscriptions.iter().any(|s| &*s.id == id) {
            tracing::error!(subscription = %id, "an API subscription has the id of a rule-file subscription; it is left out");
            continue;
        }
        match api::compile(entry) {
            Ok(c) => {
                routes.push(api::route(id, subscriptions.len(), c.cond));
                topics.push(c.topics);
                categories.push(c.category);
                subscriptions.push(c.settings);
                sub_templates.push(c.template);
            }
            Err(problems) => {
                let problems: Vec<String> = problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect();
                tracing::error!(subscription = %id, ?problems, "an API subscription does not compile; it is left out");
            }
        }
    }
    // Globs were validated one by one, so building the index cannot fail.
    let index = Index::new(topics, categories).expect("validated globs");
    Ok(RuleSet {
        sources: std::sync::Arc::new(sources),
        routes,
        index,
        subscriptions,
        sub_templates,
        topic_patterns,
        first_api_route,
        inputs: None,
        route_sources,
        wanted: Default::default(),
    })
}

/// A compiled route: its topic filter and category test (for the index) and the rest.
pub type CompiledRoute = (Option<NameMatch>, Option<NameMatch>, Route);

/// Compiles one route entry given as YAML text (the playground's editor), naming
/// `subscriptions`. Problems are placed in `text`, under the file name `shown`.
pub fn compile_route(
    shown: &str,
    text: &str,
    subscriptions: &[std::sync::Arc<crate::deliver::SubscriptionSettings>],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CompiledRoute, Vec<super::Problem>> {
    let mut problems = Problems::default();
    problems.files.push(super::problems::SourceFile {
        name: shown.to_string(),
        text: text.to_string(),
    });
    let mut node = match marked_yaml::parse_yaml_with_options(0, text, yaml_options()) {
        Ok(n) => n,
        Err(e) => {
            yaml_problem(
                &mut problems,
                shown,
                e,
                "a route must be a mapping (id, match, to, ...)",
            );
            return Err(problems.list);
        }
    };
    let lookup = |name: &str| Ok(env(name));
    super::env::expand_node(
        &mut node,
        "",
        &lookup,
        super::env::Unset::Error,
        &mut problems,
    );
    let ids: HashMap<&str, usize> = subscriptions
        .iter()
        .enumerate()
        .map(|(i, s)| (&*s.id, i))
        .collect();
    let mut compiled = compile_routes(&mut problems, std::slice::from_ref(&node), &ids);
    match compiled.pop() {
        Some(route) if problems.list.is_empty() => Ok(route),
        _ => Err(problems.list),
    }
}

/// A route's text as written; when its span is unknown, its value as JSON, which YAML reads
/// too.
fn route_source(problems: &Problems, lines: &[Vec<&str>], node: &Node) -> EntrySource {
    problems
        .entry_source(lines, node)
        .unwrap_or_else(|| EntrySource {
            place: problems.place(node.span()),
            text: serde_json::to_string_pretty(&node_to_json(node)).unwrap_or_default() + "\n",
        })
}

/// Deserialises one entry, reporting at the error's position (or the entry's).
fn entry<T: DeserializeOwned>(p: &mut Problems, node: &Node, kind: &str) -> Option<T> {
    match marked_yaml::from_node::<T>(node) {
        Ok(v) => Some(v),
        Err(e) => {
            let what = match node.as_mapping().and_then(|m| m.get_scalar("id")) {
                Some(id) => format!("{kind} {:?}", id.as_str()),
                None => kind.to_string(),
            };
            let msg = format!("{what}: {}", lower_first(&e.to_string()));
            // The library places unknown fields at their mapping; point at the key itself.
            let key = match &*e {
                marked_yaml::Error::UnknownFieldError(field, _, _) => find_key(node, field),
                _ => None,
            };
            match (key, e.start_mark()) {
                (Some(span), _) => p.at(&span, msg),
                (None, Some(m)) => p.at_marker(Some(&m), msg),
                (None, None) => p.at_node(node, msg),
            }
            None
        }
    }
}

/// The first key named `name` under `node`, depth first.
fn find_key(node: &Node, name: &str) -> Option<Span> {
    match node {
        Node::Mapping(m) => m.iter().find_map(|(k, v)| {
            if k.as_str() == name {
                Some(*k.span())
            } else {
                find_key(v, name)
            }
        }),
        Node::Sequence(s) => s.iter().find_map(|n| find_key(n, name)),
        Node::Scalar(_) => None,
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Remembers ids of one kind; a repeat is a problem naming both places.
struct Ids<'a> {
    kind: &'a str,
    seen: HashMap<String, Span>,
}

impl<'a> Ids<'a> {
    fn new(kind: &'a str) -> Self {
        Ids {
            kind,
            seen: HashMap::new(),
        }
    }

    fn fresh(&mut self, p: &mut Problems, id: &Spanned<String>) -> bool {
        if id.trim().is_empty() {
            p.at(id.span(), format!("{} id must not be empty", self.kind));
            return false;
        }
        if let Some(first) = self.seen.get(id.as_str()) {
            let msg = format!(
                "duplicate {} id {:?} (first defined at {})",
                self.kind,
                id.as_str(),
                p.place(first)
            );
            p.at(id.span(), msg);
            return false;
        }
        self.seen.insert(id.to_string(), *id.span());
        true
    }
}

fn level(p: &mut Problems, s: &Spanned<String>) -> Option<Severity> {
    match s.parse::<Severity>() {
        Ok(l) => Some(l),
        Err(e) => {
            p.at(s.span(), e);
            None
        }
    }
}

fn expr(p: &mut Problems, s: &Spanned<String>, what: &str) -> Option<Expr> {
    match Expr::compile(s) {
        Ok(e) => Some(e),
        Err(e) => {
            p.in_expr(s.span(), what, &e);
            None
        }
    }
}

fn severity_settings(p: &mut Problems, sections: &[Node]) -> (Vec<(String, Severity)>, Severity) {
    let mut aliases: Vec<(String, Severity)> = Vec::new();
    let mut alias_at: HashMap<String, Span> = HashMap::new();
    let mut default: Option<(Severity, Span)> = None;
    for node in sections {
        let Some(cfg) = entry::<SeverityConfig>(p, node, "severity") else {
            continue;
        };
        for (word, target) in &cfg.aliases {
            let Some(l) = level(p, target) else { continue };
            let key = word.to_ascii_lowercase();
            if let Some(first) = alias_at.get(&key) {
                let msg = format!(
                    "severity alias {word:?} is defined twice (first at {})",
                    p.place(first)
                );
                p.at(target.span(), msg);
                continue;
            }
            alias_at.insert(key.clone(), *target.span());
            aliases.push((key, l));
        }
        if let Some(d) = &cfg.default {
            if let Some((_, first)) = &default {
                let msg = format!(
                    "severity.default is defined twice (first at {})",
                    p.place(first)
                );
                p.at(d.span(), msg);
            } else if let Some(l) = level(p, d) {
                default = Some((l, *d.span()));
            }
        }
    }
    (aliases, default.map_or(Severity::Info, |(l, _)| l))
}

/// A topic glob as a librdkafka subscription regex (`^` prefix; POSIX-style syntax).
pub fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    let mut in_alt = false;
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    out.push('^');
                }
                for c in chars.by_ref() {
                    out.push(c);
                    if c == ']' {
                        break;
                    }
                }
            }
            '{' => {
                in_alt = true;
                out.push('(');
            }
            '}' if in_alt => {
                in_alt = false;
                out.push(')');
            }
            ',' if in_alt => out.push('|'),
            c if "\\.+()|^$".contains(c) || (c == '}' || c == ']') => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_to_regex("security.*"), "^security\\..*$");
        assert_eq!(glob_to_regex("sec-?.{a,b}"), "^sec-.\\.(a|b)$");
        assert_eq!(glob_to_regex("t[!0-9]x"), "^t[^0-9]x$");
    }
}
