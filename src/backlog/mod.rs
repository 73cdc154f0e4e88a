//! The durable per-subscription backlog: what a subscription cannot take now waits in Kafka,
//! in its own topic, instead of in memory or in front of the consumer that every
//! subscription shares (DESIGN.md invariant 2).
//!
//! - [`topic`]: one topic per subscription, `<prefix>.sub.<id>`.
//! - [`record`]: what a waiting delivery looks like there.
//! - [`writer`]: the dispatcher's [`Spill`](crate::deliver::Spill) hook. Writing a record
//!   settles the event's source offset, so the source's commits follow its reading whatever the
//!   receivers do.
//! - [`reader`]: one consumer (group `<group_id>.backlog`) over every backlog topic. It hands
//!   records to their subscription's lane only when the lane has room and takes deliveries;
//!   otherwise it pauses the backlog topic's partitions until it does, so memory stays bounded
//!   whatever the backlog holds. The body is rendered when a record is read, with the rules
//!   then in force.
//! - [`resolve`]: turns a record's deliveries back into events, copied or referred to.
//! - [`fetch`]: reads events back from their source topics by offset, for records that refer
//!   to them rather than copy them.
//! - [`monitor`]: backlog depth and age gauges, and the committed positions lanes need to know
//!   when they have caught up.
//!
//! In direct mode (the default) a lane spills only when it cannot keep up; in fleet mode
//! (`delivery.mode = "keyed"`) every delivery goes through the backlog, and the consumer group
//! gives each backlog partition to one instance, so a subscription's rate limit, circuit,
//! dedup window and order hold across the fleet. `docs/delivery.md` says what is exact in each
//! mode.

pub mod fetch;
pub mod monitor;
pub mod reader;
pub mod record;
pub mod resolve;
pub mod topic;
pub mod writer;

pub use reader::BacklogReader;
pub use writer::BacklogWriter;

use std::time::Duration;

/// How backlogs are named, sized and read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BacklogSettings {
    /// Backlog topics are `<prefix>.sub.<subscription id>`.
    pub prefix: String,
    /// Partitions of the backlog topics hookline creates.
    pub partitions: i32,
    /// Fleet mode: every delivery goes through the backlog.
    pub keyed: bool,
    /// How long records of a subscription that no rule set has wait (a rolling deploy that
    /// adds it, a reload that removed it by mistake) before they are dead-lettered with
    /// reason `subscription-removed`.
    pub orphan_after: Duration,
    /// Whether records refer to the events of source topics or copy them.
    pub events: BacklogEvents,
}

/// What a backlog record holds of an event read from a source topic (`delivery.backlog_events`).
/// Events read from a retry tier are always copied: their copy there expires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BacklogEvents {
    /// Where the event is in its source topic (a few bytes), read back from there: the
    /// backlog holds as long as the source topic keeps its events.
    #[default]
    Reference,
    /// A copy of the event: the backlog outlives the source topic's retention, for a copy
    /// of every event per spilling subscription.
    Copy,
}

impl Default for BacklogSettings {
    fn default() -> Self {
        BacklogSettings {
            prefix: "hookline".into(),
            partitions: 1,
            keyed: false,
            orphan_after: Duration::from_secs(600),
            events: BacklogEvents::Reference,
        }
    }
}
