//! Delivery: one bounded queue and one tower stack per subscription, so one bad endpoint never
//! slows the others (DESIGN.md invariant 2).
//!
//! CONTRACT (used by the pipeline):
//! - [`Dispatcher::apply`] reconciles the running queues with the subscriptions of a rule set.
//! - [`Dispatcher::submit`] hands one [`Job`] to its subscription's queue. It never loses the
//!   job: every job ends in [`Settler::delivered`](crate::settle::Settler::delivered),
//!   [`Settler::dead_letter`](crate::settle::Settler::dead_letter) or
//!   [`Settler::dropped`](crate::settle::Settler::dropped), is handed to a [`Divert`] hook, or
//!   its `Ack` is dropped on shutdown (then the event is re-delivered after restart).
//!
//! Reading order: [`config`] (what users write, validated into settings), [`dispatcher`]
//! (queues and lanes), [`stack`] (the layer order), then the layers: [`rate_limit`],
//! [`breaker`], [`retry`], [`auth`], [`signing`], [`client`] (with [`ssrf`], [`proxy`] and [`tls`]).
//! Beside them: [`health`] (successes and failures, for auto-disable), [`probe`] (one request
//! sent now, for the API's test) and the [`Gone`] hook (a `410 Gone` disables the subscription).
//! `docs/delivery.md` describes the behaviour for operators.

pub mod auth;
pub mod batch;
pub mod breaker;
pub mod client;
pub mod config;
pub mod dispatcher;
pub mod events;
pub mod health;
pub mod lane;
pub mod probe;
pub mod proxy;
pub mod queue;
pub mod rate_limit;
pub mod request;
pub mod retry;
pub mod secret;
pub mod signing;
pub mod ssrf;
pub mod stack;
pub mod tls;

pub use client::BuildError;
pub use config::{SubscriptionConfig, SubscriptionSettings, SubscriptionStatus};
pub use dispatcher::{DeliverySettings, Dispatcher};
pub use queue::Queue;
pub use secret::Secret;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::event::Event;
use crate::rules::dedup::DedupKey;
use crate::source::ack::Ack;

/// One event for one subscription, on its way to delivery.
#[derive(Debug)]
pub struct Job {
    /// Where it goes.
    pub subscription: Arc<SubscriptionSettings>,
    /// Stable across retries and redeliveries: see [`crate::event::webhook_id`]. Empty for a
    /// job the router left unrendered because it goes to its backlog, where it is derived
    /// again when needed ([`Job::delivery_id`]): beside ten spilling subscriptions, hashing
    /// ids no one reads was a tenth of what spilling cost.
    pub webhook_id: String,
    /// The event's category; the Standard Webhooks `type`.
    pub event_type: String,
    /// The rendered request body. `None` when the router did not render it because the event
    /// goes to the subscription's backlog, where it is rendered when read back. Only jobs
    /// with a body enter a lane's queue.
    pub body: Option<serde_json::Value>,
    /// The original event, for the dead-letter record.
    pub event: Event,
    /// Settled exactly once when the job is done with.
    pub ack: Ack,
    /// How many rounds of the durable retry schedule this job has been through (0 when it
    /// comes straight from the source topic).
    pub retry_round: u32,
    /// Which Kafka position its ack holds back.
    pub from: JobFrom,
    /// Its dedup keys (empty: not deduplicated); applied by the lane.
    pub dedup: Vec<DedupKey>,
}

impl Job {
    /// Its `webhook-id`, derived from its origin if the router left it out.
    pub fn delivery_id(&self) -> std::borrow::Cow<'_, str> {
        if self.webhook_id.is_empty() {
            crate::event::webhook_id(&self.event.origin, &self.subscription.id).into()
        } else {
            self.webhook_id.as_str().into()
        }
    }
}

/// Which Kafka position a job's ack holds back until it settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFrom {
    /// A source topic: it must not wait in memory behind a slow receiver.
    Source,
    /// The subscription's own backlog: waiting there holds up nobody else.
    Backlog,
    /// A retry tier.
    Retry,
}

impl JobFrom {
    pub(crate) fn index(self) -> usize {
        match self {
            JobFrom::Source => 0,
            JobFrom::Backlog => 1,
            JobFrom::Retry => 2,
        }
    }
}

/// Why a job is offered to the [`Divert`] hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivertCause {
    /// Every in-memory attempt failed with a retriable outcome.
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Last HTTP status, if any.
        status: Option<u16>,
        /// The last error (no secrets).
        error: String,
    },
}

/// Where jobs whose in-memory retries ran out go instead of the dead-letter topic: the seam
/// for the durable retry tiers. Without a hook they are dead-lettered.
pub trait Divert: Send + Sync + 'static {
    /// Takes `job` (and settles its ack once it is durable), or gives it back with `Err` to
    /// have the dispatcher proceed as if there were no hook.
    fn divert(&self, job: Job, cause: DivertCause) -> BoxFuture<'static, Result<(), Job>>;
}

/// Told when a receiver answers `410 Gone`: the receiver says the subscription is over, so it
/// is disabled (through the subscription catalogue, so every instance sees it) instead of
/// having each event dead-lettered.
pub trait Gone: Send + Sync + 'static {
    /// `subscription`'s receiver answered 410 to `webhook_id`.
    fn gone(&self, subscription: &str, webhook_id: &str);
}

/// Why a delivery went to its subscription's backlog instead of its in-memory queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpillCause {
    /// The queue (or the share of the source's in-flight budget it may hold) was full.
    QueueFull,
    /// The oldest queued event waited longer than `delivery.spill_after`.
    Slow,
    /// The receiver's last attempt failed (no answer, or a 5xx).
    Unhealthy,
    /// The circuit is open.
    CircuitOpen,
    /// The subscription is paused.
    Paused,
    /// The subscription is disabled.
    Disabled,
    /// Fleet mode (`delivery.mode = "keyed"`): every delivery goes through the backlog.
    Keyed,
}

impl SpillCause {
    /// Every cause, in declaration order (`cause as usize` indexes it).
    pub const ALL: [SpillCause; 7] = [
        SpillCause::QueueFull,
        SpillCause::Slow,
        SpillCause::Unhealthy,
        SpillCause::CircuitOpen,
        SpillCause::Paused,
        SpillCause::Disabled,
        SpillCause::Keyed,
    ];

    /// The `cause` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SpillCause::QueueFull => "queue_full",
            SpillCause::Slow => "slow",
            SpillCause::Unhealthy => "unhealthy",
            SpillCause::CircuitOpen => "circuit_open",
            SpillCause::Paused => "paused",
            SpillCause::Disabled => "disabled",
            SpillCause::Keyed => "keyed",
        }
    }
}

#[cfg(test)]
#[test]
fn spill_causes_are_listed_in_order() {
    for (n, cause) in SpillCause::ALL.iter().enumerate() {
        assert_eq!(*cause as usize, n);
    }
}

/// Where a subscription's deliveries go when it cannot take them now: its durable backlog
/// (`crate::backlog`). Without a hook, a full queue makes [`Dispatcher::submit`] wait.
pub trait Spill: Send + Sync + 'static {
    /// Appends `job` to its subscription's backlog without waiting for Kafka: a
    /// subscription's deliveries of one source partition's events land in the order of these
    /// calls. The job's ack settles once Kafka
    /// acknowledges the record; `lane`, the spilling lane's ledger, hears where the record
    /// landed ([`Written::new`], once per record). `Err` gives the job back when it cannot be
    /// queued for writing now (the producer's buffer is full); try again shortly.
    fn spill(
        &self,
        job: Job,
        cause: SpillCause,
        lane: &Arc<lane::SpillLedger>,
    ) -> Result<(), Box<Job>>;
}

/// Told where a spilled record landed in the backlog, so the lane knows when its reader has
/// caught up past it. Dropped without [`Written::at`] when the write was abandoned.
pub struct Written {
    lane: Arc<lane::SpillLedger>,
}

impl Written {
    /// A record for `lane` is on its way: until it is written or abandoned, the lane has not
    /// caught up.
    pub fn new(lane: &Arc<lane::SpillLedger>) -> Self {
        lane.writing();
        Written { lane: lane.clone() }
    }

    /// Whether this tells `lane`.
    pub fn tells(&self, lane: &Arc<lane::SpillLedger>) -> bool {
        Arc::ptr_eq(&self.lane, lane)
    }

    /// The record is at `offset` of backlog `partition`.
    pub fn at(self, partition: i32, offset: i64) {
        self.lane.written(partition, offset);
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        self.lane.settled_one();
    }
}

#[cfg(test)]
pub(crate) fn test_job(offset: i64, from: JobFrom) -> Job {
    let sub: SubscriptionConfig =
        serde_json::from_str(r#"{"id":"s","url":"http://127.0.0.1:9/"}"#).unwrap();
    let origin = crate::event::Origin {
        topic: "t".into(),
        partition: 0,
        offset,
        index: 0,
    };
    Job {
        subscription: Arc::new(sub.validate().unwrap()),
        webhook_id: crate::event::webhook_id(&origin, "s"),
        event_type: "x".into(),
        body: Some(serde_json::Value::Null),
        event: Event::new(origin, serde_json::json!({})),
        ack: Ack::detached(),
        retry_round: 0,
        from,
        dedup: Vec::new(),
    }
}
