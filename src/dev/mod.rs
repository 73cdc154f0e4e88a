//! The embedded development kit: an in-process Kafka broker and a local webhook receiver.
//! `hookline dev` runs on them, and so do the integration tests and the benchmark harness.

pub mod broker;
pub mod receiver;
