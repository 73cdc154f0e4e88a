//! # hookline
//!
//! Routes security events from Kafka topics to webhooks.
//!
//! # Layout
//!
//! The modules follow the path an event takes; open them in this order:
//!
//! - [`source`]: the Kafka consumer group, splitting messages into [`event::Event`]s, and the
//!   offset tracker that commits only up to what is settled.
//! - [`rules`]: rule files, classification (category, normalised severity), route matching.
//! - [`render`]: JMESPath templates that shape each subscription's request body.
//! - [`deliver`]: one small queue and stack per subscription.
//! - [`backlog`]: each subscription's durable backlog in Kafka, where what it cannot take now
//!   waits, read back at its own pace; fleet mode runs every delivery through it.
//! - [`retry_topic`]: the delayed retry tiers, for deliveries whose attempts failed.
//! - [`settle`]: delivered, dead-lettered ([`dlq`]) or dropped by rule; releases offsets.
//!   [`produce`] says which Kafka errors are permanent for hookline's own topics.
//! - [`pipeline`]: the routing stages between reading a message and queueing its deliveries.
//! - [`subscription`]: where subscriptions come from (rule files, the API), their statuses,
//!   the compacted topic that keeps API subscriptions, and auto-disable.
//! - [`app`]: builds every stage from settings, starts them, and stops them in order.
//!
//! Around it: [`config`] (figment settings; [`env_file`] reads `*_FILE` variables), [`admin`]
//! (metrics, health, API, the routing playground page), [`metrics`]
//! (every metric, defined once), [`dev`] (an in-process broker and a webhook receiver for
//! `hookline dev`, tests and benchmarks), [`bench`] (the benchmark harness: broker, receiver
//! and router as separate processes, measured from outside) and [`cli`] (the `hookline`
//! commands).

pub mod admin;
pub mod app;
pub mod backlog;
pub mod bench;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod dev;
pub mod dlq;
pub mod env_file;
pub mod event;
pub mod metrics;
pub mod pipeline;
pub mod produce;
pub mod render;
pub mod retry_topic;
pub mod rules;
pub mod settle;
pub mod source;
pub mod subscription;
