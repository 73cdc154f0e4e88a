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
