//! The embedded development kit: an in-process Kafka broker, a local webhook receiver and the
//! seed vendors' sample events. `hookline dev` runs on them, and so do the integration tests
//! and the benchmark harness; the playground offers the samples.

pub mod broker;
pub mod receiver;
pub mod samples;
