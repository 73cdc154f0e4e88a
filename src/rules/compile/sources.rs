//! Sources: topics, extractors and severity scales.

use std::collections::HashMap;
use std::sync::Arc;

use marked_yaml::{Node, Span, Spanned};

use super::{entry, expr, level, Ids};
use crate::render::Expr;
use crate::rules::aliases::{self, Band, Scale};
use crate::rules::model::{BandsConfig, SourceConfig};
use crate::rules::problems::Problems;
use crate::rules::source::{
    is_glob, Source, DEFAULT_CATEGORY, DEFAULT_EVENT_ID, DEFAULT_SEVERITY, UNKNOWN_CATEGORY,
};
use crate::rules::Severity;

pub(super) fn compile_sources(
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
        let primary_category = cfg
            .primary_category
            .as_ref()
            .map(|e| expr(p, e, &what("primary_category")));
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
            primary_category: primary_category.map(|e| e.expect("no problem")),
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
