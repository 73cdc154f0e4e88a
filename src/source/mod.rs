//! The Kafka source: a consumer group, message splitting, and the offset tracker that commits
//! only up to the contiguous settled watermark (DESIGN.md invariant 1).

pub mod ack;
