//! Compiling parsed rule files into a [`RuleSet`]: ids checked unique, references resolved,
//! every expression compiled. Every problem is collected; any problem rejects the whole set.

use std::collections::HashMap;
use std::sync::Arc;

use marked_yaml::{Node, Span, Spanned};
use serde::de::DeserializeOwned;

use super::aliases::{self, Band, Scale};
use super::index::Index;
use super::load::{node_to_json, Parsed};
use super::matcher::{severity_bit, Cond, NameMatch};
use super::model::*;
use super::problems::Problems;
use super::route::{Dedup, Route};
use super::source::{
    is_glob, Source, Sources, DEFAULT_CATEGORY, DEFAULT_EVENT_ID, DEFAULT_SEVERITY,
    UNKNOWN_CATEGORY,
};
use super::{LoadError, RuleSet, Severity};
use crate::deliver::{SubscriptionConfig, SubscriptionSettings};
use crate::render::builtin::{instantiate, is_builtin};
use crate::render::{Expr, Template};

/// Compiles `parsed`, or returns every problem found.
pub fn compile(parsed: Parsed) -> Result<RuleSet, LoadError> {
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
    // Globs were validated one by one above, so building the sets cannot fail.
    let index = Index::new(topics, categories).expect("validated globs");
    let sources = Sources::new(source_list, fallback).expect("validated globs");
    // Without problems every subscription was built.
    let (subscriptions, sub_templates) = subs
        .into_iter()
        .map(|s| s.built.expect("no problems, so built"))
        .unzip();
    Ok(RuleSet {
        sources,
        routes,
        index,
        subscriptions,
        sub_templates,
        topic_patterns,
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

/// Templates by id; `None` for one that is defined but broken (already reported), so that
/// references to it are not reported again as unknown.
type Templates = HashMap<String, Option<Arc<Template>>>;

fn compile_templates(p: &mut Problems, nodes: &[Node], dirs: &[std::path::PathBuf]) -> Templates {
    let mut ids = Ids::new("template");
    let mut out = HashMap::new();
    for node in nodes {
        let Some(cfg) = entry::<TemplateConfig>(p, node, "template") else {
            continue;
        };
        if !ids.fresh(p, &cfg.id) {
            continue;
        }
        out.insert(cfg.id.to_string(), None);
        if is_builtin(&cfg.id) {
            p.at(
                cfg.id.span(),
                format!(
                    "template id {:?} is the name of a built-in template",
                    cfg.id.as_str()
                ),
            );
            continue;
        }
        let vars = node
            .as_mapping()
            .and_then(|m| m.get_node("vars"))
            .map(node_to_json);
        let what = format!("template {:?}", cfg.id.as_str());
        let given = [
            cfg.expression.is_some(),
            cfg.file.is_some(),
            cfg.builtin.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            p.at(
                cfg.id.span(),
                format!("{what}: give exactly one of `expression`, `file` or `builtin`"),
            );
            continue;
        }
        let template = if let Some(b) = &cfg.builtin {
            match instantiate(b, &cfg.id, vars.as_ref()) {
                Some(t) => t,
                None => {
                    p.at(
                        b.span(),
                        format!("{what}: unknown built-in template {:?}", b.as_str()),
                    );
                    continue;
                }
            }
        } else if let Some(e) = &cfg.expression {
            let Some(e) = expr(p, e, &what) else { continue };
            Template::expression(&cfg.id, e, vars.as_ref())
        } else {
            let file = cfg.file.as_ref().expect("one of three");
            let dir = file
                .span()
                .start()
                .and_then(|m| dirs.get(m.source()))
                .cloned()
                .unwrap_or_default();
            let text = match std::fs::read_to_string(dir.join(file.as_str())) {
                Ok(t) => t,
                Err(e) => {
                    p.at(
                        file.span(),
                        format!("{what}: cannot read {:?}: {e}", file.as_str()),
                    );
                    continue;
                }
            };
            match Expr::compile(&text) {
                Ok(e) => Template::expression(&cfg.id, e, vars.as_ref()),
                Err(e) => {
                    p.at(
                        file.span(),
                        format!(
                            "invalid JMESPath in {what} ({}:{}:{}): {}",
                            file.as_str(),
                            e.line + 1,
                            e.column + 1,
                            e.reason
                        ),
                    );
                    continue;
                }
            }
        };
        out.insert(cfg.id.to_string(), Some(Arc::new(template)));
    }
    out
}

/// One subscription entry; `built` is `None` when it has problems (already reported), so
/// routes naming it are not reported again.
struct SubEntry {
    id: String,
    built: Option<(Arc<SubscriptionSettings>, Arc<Template>)>,
}

fn compile_subscriptions(p: &mut Problems, nodes: &[Node], templates: &Templates) -> Vec<SubEntry> {
    let mut ids = Ids::new("subscription");
    let mut out = Vec::new();
    for node in nodes {
        let Some(cfg) = entry::<SubscriptionConfig>(p, node, "subscription") else {
            // Still known by id, when it has one, so routes naming it are not reported too.
            if let Some(id) = node.as_mapping().and_then(|m| m.get_scalar("id")) {
                out.push(SubEntry {
                    id: id.as_str().to_string(),
                    built: None,
                });
            }
            continue;
        };
        let id_node = node.as_mapping().and_then(|m| m.get_scalar("id"));
        let id_span = id_node.map_or(*node.span(), |s| *s.span());
        if !ids.fresh(p, &Spanned::new(id_span, cfg.id.clone())) {
            continue;
        }
        let mut entry = SubEntry {
            id: cfg.id.clone(),
            built: None,
        };
        let name = cfg.template.clone().unwrap_or_else(|| "raw".into());
        let template = match templates.get(&name) {
            Some(t) => t.clone(),
            None => match instantiate(&name, &name, None) {
                Some(t) => Some(Arc::new(t)),
                None => {
                    let at = field_node(node, "template").unwrap_or(node);
                    p.at_node(
                        at,
                        format!("subscription {:?}: unknown template {name:?}", cfg.id),
                    );
                    None
                }
            },
        };
        match cfg.validate() {
            Ok(s) => entry.built = template.map(|t| (Arc::new(s), t)),
            Err(e) => {
                let at = field_node(node, e.field).unwrap_or(node);
                if !p.is_unexpanded(at.span()) {
                    p.at_node(at, e.to_string());
                }
            }
        }
        out.push(entry);
    }
    out
}

/// The node at a dotted path (`auth.token`) inside an entry.
fn field_node<'n>(node: &'n Node, path: &str) -> Option<&'n Node> {
    path.split('.')
        .try_fold(node, |n, key| n.as_mapping()?.get_node(key))
}

fn compile_sources(
    p: &mut Problems,
    nodes: &[Node],
    global_aliases: &[(String, Severity)],
    default_severity: Severity,
) -> Vec<Source> {
    let mut ids = Ids::new("source");
    let mut topics: HashMap<String, Span> = HashMap::new();
    let mut out = Vec::new();
    for node in nodes {
        let Some(cfg) = entry::<SourceConfig>(p, node, "source") else {
            continue;
        };
        if !ids.fresh(p, &cfg.id) {
            continue;
        }
        let what = |field: &str| format!("source {:?} {field}", cfg.id.as_str());
        let before = p.list.len();
        if cfg.topics.is_empty() {
            p.at(
                cfg.id.span(),
                format!("source {:?}: `topics` must not be empty", cfg.id.as_str()),
            );
        }
        for t in &cfg.topics {
            if is_glob(t) {
                if let Err(e) = globset::Glob::new(t) {
                    p.at(
                        t.span(),
                        format!(
                            "{}: invalid glob {:?}: {}",
                            what("topics"),
                            t.as_str(),
                            e.kind()
                        ),
                    );
                }
            } else if let Some(first) = topics.get(t.as_str()) {
                let msg = format!(
                    "topic {:?} already belongs to a source (at {})",
                    t.as_str(),
                    p.place(first)
                );
                p.at(t.span(), msg);
            } else {
                topics.insert(t.to_string(), *t.span());
            }
        }
        let mut extractor =
            |field: &str, given: &Option<Spanned<String>>, default: &str| match given {
                Some(s) => expr(p, s, &what(field)),
                None => Some(Expr::compile(default).expect("default extractor")),
            };
        let category = extractor("category", &cfg.category, DEFAULT_CATEGORY);
        let severity = extractor("severity", &cfg.severity, DEFAULT_SEVERITY);
        let event_id = extractor("event_id", &cfg.event_id, DEFAULT_EVENT_ID);
        let mut fields = Vec::new();
        for (name, e) in &cfg.fields {
            if let Some(e) = expr(p, e, &what(&format!("fields.{name}"))) {
                fields.push((Arc::from(name.as_str()), e));
            }
        }
        let mut aliases = global_aliases.to_vec();
        for (word, target) in &cfg.aliases {
            if let Some(l) = level(p, target) {
                // Source aliases are consulted first: later entries win in the map.
                aliases.push((word.to_ascii_lowercase(), l));
            }
        }
        let bands = match &cfg.bands {
            None => vec![],
            Some(b) => bands(p, b),
        };
        let default = match &cfg.default_severity {
            Some(d) => level(p, d).unwrap_or(default_severity),
            None => default_severity,
        };
        if p.list.len() > before {
            continue;
        }
        out.push(Source {
            id: Some(Arc::from(cfg.id.as_str())),
            topics: cfg.topics.iter().map(|t| t.to_string()).collect(),
            category: category.expect("no problem"),
            severity: severity.expect("no problem"),
            event_id: event_id.expect("no problem"),
            fields,
            default_category: cfg
                .default_category
                .clone()
                .unwrap_or_else(|| UNKNOWN_CATEGORY.into()),
            scale: Scale::new(aliases, bands, default),
        });
    }
    out
}

fn bands(p: &mut Problems, cfg: &Spanned<BandsConfig>) -> Vec<Band> {
    match &**cfg {
        BandsConfig::Preset(name) => aliases::preset(name).unwrap_or_else(|| {
            p.at(
                cfg.span(),
                format!(
                    "unknown band preset {name:?} (expected one of {})",
                    aliases::PRESETS.join(", ")
                ),
            );
            vec![]
        }),
        BandsConfig::List(list) => {
            let mut out = Vec::new();
            for b in list {
                let Ok(severity) = b.severity.parse::<Severity>() else {
                    p.at(
                        cfg.span(),
                        format!(
                            "band severity {:?} is not one of info, low, medium, high, critical",
                            b.severity
                        ),
                    );
                    continue;
                };
                let (min, max) = (
                    b.min.unwrap_or(f64::NEG_INFINITY),
                    b.max.unwrap_or(f64::INFINITY),
                );
                if b.min.is_none() && b.max.is_none() || min > max {
                    p.at(
                        cfg.span(),
                        format!("band for {severity} needs min <= max (at least one of them)"),
                    );
                    continue;
                }
                out.push(Band { min, max, severity });
            }
            out
        }
    }
}

fn compile_routes(
    p: &mut Problems,
    nodes: &[Node],
    subs: &HashMap<&str, usize>,
) -> Vec<(Option<NameMatch>, Option<NameMatch>, Route)> {
    let mut ids = Ids::new("route");
    let mut out = Vec::new();
    for node in nodes {
        let Some(cfg) = entry::<RouteConfig>(p, node, "route") else {
            continue;
        };
        if !ids.fresh(p, &cfg.id) {
            continue;
        }
        let before = p.list.len();
        let what = format!("route {:?}", cfg.id.as_str());
        let at = *cfg.id.span();
        let cond = match &cfg.when {
            Some(c) => condition(p, c, &format!("{what} match"), &at),
            None => Cond::True,
        };
        let mut to = Vec::new();
        // An empty `to` only makes sense as a drop rule that stops evaluation.
        if cfg.to.is_empty() && !cfg.stop {
            p.at(
                &at,
                format!(
                    "{what}: `to` must name at least one subscription (or the route must `stop`)"
                ),
            );
        }
        for s in &cfg.to {
            match subs.get(s.as_str()) {
                Some(&i) if !to.contains(&i) => to.push(i),
                Some(_) => {}
                None => p.at(
                    s.span(),
                    format!("{what}: unknown subscription {:?}", s.as_str()),
                ),
            }
        }
        let topics = if cfg.topics.is_empty() {
            None
        } else {
            names(p, &cfg.topics, &at, &format!("{what} topics"))
        };
        let dedup = cfg.dedup.as_ref().and_then(|d| {
            if d.window.is_zero() {
                p.at(
                    d.key.span(),
                    format!("{what} dedup: window must be longer than 0"),
                );
            }
            expr(p, &d.key, &format!("{what} dedup.key")).map(|key| Dedup {
                key,
                window: d.window,
            })
        });
        if p.list.len() > before {
            continue;
        }
        let (category, cond) = cond.take_category();
        out.push((
            topics,
            category,
            Route {
                id: Arc::from(cfg.id.as_str()),
                cond,
                to,
                stop: cfg.stop,
                dedup,
            },
        ));
    }
    out
}

fn names(p: &mut Problems, pats: &[String], at: &Span, what: &str) -> Option<NameMatch> {
    for pat in pats {
        if let Err(e) = globset::Glob::new(pat) {
            p.at(at, format!("{what}: invalid glob {pat:?}: {}", e.kind()));
            return None;
        }
    }
    NameMatch::new(pats).ok()
}

fn condition(p: &mut Problems, c: &ConditionConfig, what: &str, at: &Span) -> Cond {
    let mut parts = Vec::new();
    if !c.category.is_empty() {
        if let Some(m) = names(p, &c.category, at, &format!("{what}.category")) {
            parts.push(Cond::Category(m));
        }
    }
    if let Some(s) = &c.min_severity {
        if let Some(l) = level(p, s) {
            parts.push(Cond::MinSeverity(l));
        }
    }
    if !c.severity.is_empty() {
        let mut set = 0;
        for s in &c.severity {
            match s.parse::<Severity>() {
                Ok(l) => set |= severity_bit(l),
                Err(e) => p.at(at, format!("{what}.severity: {e}")),
            }
        }
        parts.push(Cond::SeverityIn(set));
    }
    if let Some(e) = &c.expr {
        if let Some(e) = expr(p, e, &format!("{what}.expr")) {
            parts.push(Cond::Expr(e));
        }
    }
    if let Some(n) = &c.not {
        parts.push(Cond::Not(Box::new(condition(
            p,
            n,
            &format!("{what}.not"),
            at,
        ))));
    }
    if !c.all.is_empty() {
        let all = c
            .all
            .iter()
            .enumerate()
            .map(|(i, c)| condition(p, c, &format!("{what}.all[{i}]"), at))
            .collect();
        parts.push(Cond::all(all));
    }
    if !c.any.is_empty() {
        let any = c
            .any
            .iter()
            .enumerate()
            .map(|(i, c)| condition(p, c, &format!("{what}.any[{i}]"), at))
            .collect();
        parts.push(Cond::Any(any));
    }
    Cond::all(parts)
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
