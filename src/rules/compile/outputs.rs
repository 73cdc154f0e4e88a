//! Templates and subscriptions: what bodies look like and where they go.

use std::collections::HashMap;
use std::sync::Arc;

use marked_yaml::{Node, Spanned};

use super::{entry, expr, Ids};
use crate::deliver::{SubscriptionConfig, SubscriptionSettings};
use crate::render::builtin::{instantiate, is_builtin};
use crate::render::{Expr, Template};
use crate::rules::load::node_to_json;
use crate::rules::model::TemplateConfig;
use crate::rules::problems::Problems;

/// Templates by id; `None` for one that is defined but broken (already reported), so that
/// references to it are not reported again as unknown.
pub(super) type Templates = HashMap<String, Option<Arc<Template>>>;

pub(super) fn compile_templates(
    p: &mut Problems,
    nodes: &[Node],
    dirs: &[std::path::PathBuf],
) -> Templates {
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
pub(super) struct SubEntry {
    pub(super) id: String,
    pub(super) built: Option<(Arc<SubscriptionSettings>, Arc<Template>)>,
}

pub(super) fn compile_subscriptions(
    p: &mut Problems,
    nodes: &[Node],
    templates: &Templates,
) -> Vec<SubEntry> {
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
                    let note = p.placeholder_note(at.span()).unwrap_or_default();
                    p.at_node(at, format!("{e}{note}"));
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
