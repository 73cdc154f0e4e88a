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
//! `docs/delivery.md` describes the behaviour for operators.

pub mod auth;
pub mod batch;
pub mod breaker;
pub mod client;
pub mod config;
pub mod dispatcher;
pub mod events;
mod lane;
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
pub use secret::Secret;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::event::Event;
use crate::source::ack::Ack;

/// One event rendered for one subscription, waiting to be delivered.
#[derive(Debug)]
pub struct Job {
    /// Where it goes.
    pub subscription: Arc<SubscriptionSettings>,
    /// Stable across retries and redeliveries: see [`crate::event::webhook_id`].
    pub webhook_id: String,
    /// The event's category; the Standard Webhooks `type`.
    pub event_type: String,
    /// The rendered request body.
    pub body: serde_json::Value,
    /// The original event, for the dead-letter record.
    pub event: Event,
    /// Settled exactly once when the job is done with.
    pub ack: Ack,
    /// How many rounds of the durable retry schedule this job has been through (0 when it
    /// comes straight from the source topic).
    pub retry_round: u32,
}

/// Why a job is offered to the [`Divert`] hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivertCause {
    /// The subscription's queue is full (its receiver is slow or down).
    QueueFull,
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

/// Where jobs go instead of waiting in memory or being dead-lettered after transient
/// failures: the seam for the durable retry topic. Without a hook, a full queue makes
/// [`Dispatcher::submit`] wait and exhausted retries are dead-lettered.
pub trait Divert: Send + Sync + 'static {
    /// Takes `job` (and settles its ack once it is durable), or gives it back with `Err` to
    /// have the dispatcher proceed as if there were no hook.
    fn divert(&self, job: Job, cause: DivertCause) -> BoxFuture<'static, Result<(), Job>>;
}
