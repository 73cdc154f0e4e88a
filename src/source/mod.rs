//! The Kafka source: a consumer group, message splitting, and the offset tracker that commits
//! only up to the contiguous settled watermark (DESIGN.md invariant 1).
//!
//! - [`consumer`]: the read loop and the committer.
//! - [`context`]: rebalance callbacks (commit on revoke), commit results, lag statistics.
//! - [`split`]: one message into events.
//! - [`ack`], [`offsets`], [`watermark`]: how settled deliveries become committable offsets.

pub mod ack;
pub mod consumer;
pub mod context;
pub mod offsets;
pub mod split;
pub mod watermark;

pub use consumer::{Source, SourceError};

/// Which job a consumer does; the `role` label of its partition, lag and offset series, so
/// readiness and dashboards can tell the source consumer from the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The consumer group reading the rules' topics (`kafka.group_id`); `/readyz` counts its
    /// partitions only.
    Source,
    /// A retry-tier reader (`<group_id>.retry`); its lag is deliberate, records wait there
    /// until they are due.
    Retry,
    /// The backlog reader (`<group_id>.backlog`); its lag is what subscriptions that cannot
    /// keep up have waiting (see `hookline_backlog_depth`).
    Backlog,
}

impl Role {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Retry => "retry",
            Role::Backlog => "backlog",
        }
    }
}
