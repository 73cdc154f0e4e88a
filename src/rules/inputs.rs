//! What a rule set is compiled from, held as values: the rule files as read from disk, and
//! what the subscription catalogue adds (subscriptions created through the API, status
//! overrides of file subscriptions). A reload replaces one half and keeps the other, so a
//! file change and an API change go through the same compile-and-replace path
//! ([`reload`](super::reload)), and lanes, queues and backlogs follow either the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::deliver::{SubscriptionConfig, SubscriptionStatus};

/// One rule file as read from disk.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// Where it is.
    pub path: PathBuf,
    /// As shown in problems (`rules/routes.yaml`).
    pub name: String,
    /// Its text, or why it could not be read.
    pub text: Result<String, String>,
}

/// A rules directory as read from disk.
#[derive(Debug, Clone)]
pub struct FileInputs {
    /// The directory.
    pub dir: PathBuf,
    /// Its rule files, sorted by name, or why the directory could not be read.
    pub files: Result<Vec<RuleFile>, String>,
}

/// A subscription that is its own route: created through the API, it receives what its
/// event types, severity floor, topics and filter match, whatever the file routes say.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSubscription {
    /// Where and how it is delivered, secrets included (in memory only).
    pub config: SubscriptionConfig,
    /// A built-in template's name, or a JMESPath expression.
    pub template: String,
    /// Categories it wants (globs allowed); every category when it holds `*`.
    pub event_types: Vec<String>,
    /// The lowest severity it wants.
    pub min_severity: Option<String>,
    /// Only events read from these topics (names or globs); every topic when empty.
    pub topics: Vec<String>,
    /// A JMESPath predicate over `{event, hookline}`, as a route's `match.expr`.
    pub filter: Option<String>,
}

/// A status set from outside the rule files on a subscription they define (a `410 Gone`, the
/// auto-disable, pause and resume through the API).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusOverride {
    /// The status in force.
    pub status: SubscriptionStatus,
    /// Why it is disabled.
    pub reason: Option<String>,
}

/// What the subscription catalogue adds to the rule files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogueInputs {
    /// Subscriptions created through the API, each its own route, in a stable order.
    pub subscriptions: Vec<RouteSubscription>,
    /// Status overrides of file subscriptions, by id.
    pub overrides: BTreeMap<String, StatusOverride>,
}

/// Everything a rule set is compiled from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The rule files.
    pub files: Arc<FileInputs>,
    /// The catalogue's part.
    pub catalogue: Arc<CatalogueInputs>,
}

impl Inputs {
    /// Rule files only.
    pub fn files(files: FileInputs) -> Inputs {
        Inputs {
            files: Arc::new(files),
            catalogue: Arc::default(),
        }
    }
}
