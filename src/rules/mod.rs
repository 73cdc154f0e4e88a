//! Routing rules: the rule-file model, loading and hot reload, classification, matching.
//!
//! CONTRACT (used by source/pipeline, admin and the CLI; issue 3 fills in the engine):
//! - [`RuleSet::load_dir`] reads every YAML file of a directory into one compiled, immutable set.
//! - [`Router`] is the cheap `Clone` handle the pipeline routes through; a reload swaps its
//!   `Arc<RuleSet>` atomically and announces it on [`Router::watch`].
//! - [`Router::route`] classifies one event, matches routes, and renders one body per
//!   subscription (each subscription at most once).
//!
//! Layout, in the order a rule set is built and then used (reference: `docs/rules.md`):
//! - [`load`] reads the files ([`env`](mod@env) expands `${NAME}`), [`model`] is what they may say,
//!   [`compile`] turns them into a [`RuleSet`], reporting [`problems`] as `file:line:col`.
//! - [`source`] classifies an event: its categories (one or a list, and a primary one),
//!   severity ([`severity`], [`aliases`]: the canonical scale and how vendor words and numbers
//!   map onto it), event id and extra fields.
//! - [`index`] narrows the routes by topic and category, [`matcher`] evaluates conditions,
//!   [`route`] ties it together with [`dedup`] windows and rendering (`crate::render`).
//! - [`inputs`] is what a set is compiled from, held as values: the files as read, and what the
//!   subscription catalogue adds (API subscriptions, each its own route, compiled by
//!   [`compile::api`]; statuses set on file subscriptions).
//! - [`reload`] swaps rule sets on file changes, SIGHUP, the admin API and catalogue changes.
//! - [`dry_run`] routes events without delivering them, with [`explain`]ing why routes did
//!   not match (`hookline test`, the admin API, the playground); [`cases`] runs routing tests
//!   (`hookline test --cases`); [`draft`] is the rule set in force with some templates and
//!   routes edited, for the playground's dry runs.

pub mod aliases;
pub mod cases;
pub mod compile;
pub mod dedup;
pub mod draft;
pub mod dry_run;
pub mod env;
pub mod explain;
pub mod index;
pub mod inputs;
pub mod load;
pub mod matcher;
pub mod model;
pub mod problems;
pub mod reload;
mod render_one;
pub mod route;
pub mod severity;
pub mod source;
#[cfg(test)]
mod tests;
mod wanted;

pub use severity::Severity;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::deliver::SubscriptionSettings;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::render::Template;

/// One problem in a rule file, reported as `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given (relative to the rules directory's parent when loaded from one).
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every problem found while loading a rule set; the set is rejected as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in rule files:\n{}", problems.len(), problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LoadError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

/// A template could not render an event for a subscription.
#[derive(Debug, Clone, thiserror::Error)]
#[error("template {template:?} failed: {reason}")]
pub struct RenderError {
    /// The template's name.
    pub template: String,
    /// Why it failed.
    pub reason: String,
}

/// One rendered body for one subscription.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The subscription to deliver to.
    pub subscription: Arc<SubscriptionSettings>,
    /// The request body, or why it could not be rendered (the event is then dead-lettered).
    /// `None` when it was not asked for: the event goes to the subscription's backlog, and is
    /// rendered when it is read back from there.
    pub body: Option<Result<Value, RenderError>>,
    /// Its dedup keys (empty: not deduplicated), applied where it is delivered.
    pub dedup: Vec<dedup::DedupKey>,
}

/// The outcome of routing one event.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The event's primary category.
    pub category: String,
    /// Every category of the event, the primary among them.
    pub categories: Vec<String>,
    /// The id of the source that classified it (none: the built-in defaults did).
    pub source: Option<Arc<str>>,
    /// Normalised severity.
    pub severity: Severity,
    /// The severity as the event spelled it, if it had one.
    pub raw_severity: Option<String>,
    /// The event id the source's extractor found.
    pub event_id: Option<String>,
    /// Ids of the routes that matched, in rule order.
    pub routes: Vec<String>,
    /// One entry per matched subscription.
    pub deliveries: Vec<Rendered>,
    /// Subscriptions that matched but whose dedup window suppressed this event (dry runs
    /// only: live deliveries are deduplicated where they are delivered).
    pub suppressed: Vec<Arc<str>>,
}

/// A compiled, immutable rule set.
#[derive(Debug)]
pub struct RuleSet {
    sources: Arc<source::Sources>,
    routes: Vec<route::Route>,
    index: index::Index,
    subscriptions: Vec<Arc<SubscriptionSettings>>,
    /// The template of each subscription, by position.
    sub_templates: Vec<Arc<Template>>,
    topic_patterns: Vec<String>,
    /// Routes from this position on are API subscriptions' own: a file route's `stop` does
    /// not hold them back.
    first_api_route: usize,
    /// What the set was compiled from, so a reload can replace one half and keep the other.
    inputs: Option<inputs::Inputs>,
    /// Each file route's text as written, by position (for the playground's editor); API
    /// subscriptions' routes, after them, have none.
    route_sources: Vec<problems::EntrySource>,
    /// What the set reads of an event, by topic, worked out when first asked.
    wanted: std::sync::RwLock<HashMap<String, Arc<crate::event::Wanted>>>,
}

impl RuleSet {
    /// Loads and compiles every `*.yaml` / `*.yml` file under `dir`, `${NAME}` (and
    /// `NAME_FILE`) read from the process environment.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, LoadError> {
        RuleSet::from_inputs(inputs::Inputs::files(load::read_dir(dir)))
    }

    /// Compiles `inputs` (rule files already read, and what the catalogue adds), `${NAME}`
    /// (and `NAME_FILE`) read from the process environment.
    pub fn from_inputs(inputs: inputs::Inputs) -> Result<RuleSet, LoadError> {
        let parsed = load::parse_files(&inputs.files, &crate::env_file::var, env::Unset::Error);
        let mut rules = compile::compile_with(parsed, &inputs.catalogue)?;
        rules.inputs = Some(inputs);
        Ok(rules)
    }

    /// What this set reads of an event of `topic`: the source parses only that of each event
    /// it routes with this set.
    pub fn wanted(&self, topic: &str) -> Arc<crate::event::Wanted> {
        if let Some(w) = self.wanted.read().expect("wanted lock").get(topic) {
            return w.clone();
        }
        let w = Arc::new(wanted::for_topic(self, topic));
        let mut by_topic = self.wanted.write().expect("wanted lock");
        // As many topics as the route index keeps; past that (glob topics can be many) it is
        // worked out per message, which costs about what routing one event does.
        if by_topic.len() < index::MAX_TOPICS {
            by_topic.insert(topic.to_string(), w.clone());
        }
        w
    }

    /// What the set was compiled from (`None` for sets compiled from parsed files directly).
    pub fn inputs(&self) -> Option<&inputs::Inputs> {
        self.inputs.as_ref()
    }

    /// Whether subscription `id` comes from the catalogue (the API) rather than a rule file.
    pub fn is_catalogue_subscription(&self, id: &str) -> bool {
        self.inputs
            .as_ref()
            .is_some_and(|i| i.catalogue.subscriptions.iter().any(|s| s.config.id == id))
    }

    /// [`RuleSet::load_dir`] with `${NAME}` read through `env` instead of the process
    /// environment (tests, and callers that layer variables).
    pub fn load_dir_with_env(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RuleSet, LoadError> {
        let lookup = |name: &str| crate::env_file::lookup(name, env);
        let files = load::read_dir(dir);
        let mut rules = compile::compile(load::parse_files(&files, &lookup, env::Unset::Error))?;
        rules.inputs = Some(inputs::Inputs::files(files));
        Ok(rules)
    }

    /// What `hookline check` reports: [`RuleSet::load_dir`], but with `unset` deciding
    /// whether an unset variable rejects the set or only warns; the warnings beside.
    pub fn check_dir(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        unset: env::Unset,
    ) -> (Result<RuleSet, LoadError>, Vec<Problem>) {
        let lookup = |name: &str| crate::env_file::lookup(name, env);
        let mut parsed = load::parse_dir(dir, &lookup, unset);
        let warnings = std::mem::take(&mut parsed.problems.warnings);
        (compile::compile(parsed), warnings)
    }

    /// Every subscription the rules define.
    pub fn subscriptions(&self) -> &[Arc<SubscriptionSettings>] {
        &self.subscriptions
    }

    /// Topics to subscribe to: literal names, or `^regex` patterns for globs (librdkafka syntax).
    pub fn topic_patterns(&self) -> Vec<String> {
        self.topic_patterns.clone()
    }

    /// The topic names and globs the sources name, as written, each once.
    pub fn source_topics(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in self.sources.list().iter().flat_map(|s| &s.topics) {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }

    /// Ids of the routes, in rule order.
    pub fn route_ids(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &*r.id)
    }

    /// Ids of the sources, in rule order.
    pub fn source_ids(&self) -> impl Iterator<Item = &str> {
        self.sources.list().iter().filter_map(|s| s.id.as_deref())
    }
}

/// Called with a rule set just before it goes live.
pub type Prepare = Arc<dyn Fn(&RuleSet) + Send + Sync>;

/// The live rules, shared by every stage. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    current: Arc<std::sync::RwLock<Arc<RuleSet>>>,
    prepare: Arc<std::sync::RwLock<Option<Prepare>>>,
    changes: tokio::sync::watch::Sender<Arc<RuleSet>>,
    metrics: Metrics,
    /// The dedup memory of dry runs ([`Router::route_dry`]); live deliveries are deduplicated
    /// by the subscription's lane.
    dedup: Arc<dedup::DedupStore>,
    /// Held while a reload reads the inputs in force, compiles and replaces, so that a file
    /// reload and an API change never compile from the same old inputs and lose each other.
    reloading: Arc<tokio::sync::Mutex<()>>,
}

impl Router {
    /// A router over `rules`, counting into a private metrics registry.
    pub fn new(rules: RuleSet) -> Self {
        Self::with_metrics(rules, Metrics::new())
    }

    /// A router over `rules` that counts unknown severities, dedup suppressions and render
    /// errors into `metrics`.
    pub fn with_metrics(rules: RuleSet, metrics: Metrics) -> Self {
        Self::shared(Arc::new(rules), metrics)
    }

    /// A router over an already shared rule set (several routers, e.g. one per test case,
    /// each with its own dedup memory).
    pub fn shared(rules: Arc<RuleSet>, metrics: Metrics) -> Self {
        let (changes, _) = tokio::sync::watch::channel(rules.clone());
        Router {
            current: Arc::new(std::sync::RwLock::new(rules)),
            prepare: Arc::new(std::sync::RwLock::new(None)),
            changes,
            metrics,
            dedup: Arc::new(dedup::DedupStore::new()),
            reloading: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Held by a reload from reading the inputs in force until its set is live.
    pub async fn reload_lock(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.reloading.clone().lock_owned().await
    }

    /// The rule set in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current.read().expect("rules lock").clone()
    }

    /// Has `prepare` called with every rule set before it goes live (the dispatcher starts
    /// the lanes of new subscriptions there, so no event is routed to a subscription that
    /// has none).
    pub fn set_prepare(&self, prepare: Prepare) {
        *self.prepare.write().expect("prepare lock") = Some(prepare);
    }

    /// Stops calling the prepare hook (and lets go of what it holds).
    pub fn clear_prepare(&self) {
        *self.prepare.write().expect("prepare lock") = None;
    }

    /// Puts `rules` in force atomically and announces it.
    pub fn replace(&self, rules: RuleSet) {
        if let Some(prepare) = self.prepare.read().expect("prepare lock").clone() {
            prepare(&rules);
        }
        let rules = Arc::new(rules);
        *self.current.write().expect("rules lock") = rules.clone();
        self.changes.send_replace(rules);
    }

    /// Hears every replacement.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Arc<RuleSet>> {
        self.changes.subscribe()
    }

    /// Classifies, matches and renders one event with the rules in force. The whole event is
    /// routed with one rule set, even if a reload happens meanwhile. Dedup keys are computed,
    /// not applied.
    pub fn route(&self, event: &Event) -> Routing {
        self.route_with(event, &|_| true)
    }

    /// [`Router::route`], rendering bodies only for the subscriptions `wants_body` selects.
    pub fn route_with(&self, event: &Event, wants_body: route::WantsBody<'_>) -> Routing {
        self.route_in(&self.current(), event, wants_body)
    }

    /// [`Router::route_with`] with `rules`, a set this router had in force: the one `event`
    /// was parsed for ([`RuleSet::wanted`]), even if another is in force by now.
    pub fn route_in(
        &self,
        rules: &RuleSet,
        event: &Event,
        wants_body: route::WantsBody<'_>,
    ) -> Routing {
        route::route(rules, event, &self.metrics, wants_body)
    }

    /// A dry run: [`Router::route`] with this router's own dedup memory applied, as if every
    /// delivery succeeded at once.
    pub fn route_dry(&self, event: &Event) -> Routing {
        let rules = self.current();
        route::route_dry(&rules, event, &self.metrics, &self.dedup)
    }

    /// The metrics this router counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
