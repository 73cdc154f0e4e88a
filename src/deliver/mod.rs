//! Delivery: one bounded queue and one stack per subscription, so one bad endpoint never slows
//! the others (DESIGN.md invariant 2).
//!
//! CONTRACT (used by the pipeline; issue 4 deepens the stack behind it):
//! - [`Dispatcher::apply`] reconciles the running queues with the subscriptions of a rule set.
//! - [`Dispatcher::submit`] hands one [`Job`] to its subscription's queue. It never loses the
//!   job: every job ends in [`Settler::delivered`](crate::settle::Settler::delivered) or
//!   [`Settler::dead_letter`](crate::settle::Settler::dead_letter), or its `Ack` is dropped on
//!   shutdown (then the event is re-delivered after restart).

pub mod config;
pub mod dispatcher;
mod worker;

pub use config::{SubscriptionConfig, SubscriptionSettings, SubscriptionStatus};
pub use dispatcher::{DeliverySettings, Dispatcher};

use std::sync::Arc;

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
}
