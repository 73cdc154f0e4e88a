//! The durable retry topic: where deliveries wait when their receiver is down, so a broken
//! endpoint's backlog lives in Kafka rather than in memory or in front of the consumer.
//!
//! - [`schedule`]: the long schedule (seconds, minutes, then hours) and one topic per delay.
//! - [`record`]: what a waiting delivery looks like in a tier topic.
//! - [`writer`]: the dispatcher's divert hook; writes the next round, or dead-letters the job
//!   when the schedule is exhausted.
//! - [`replay`]: dead letters back to their subscription through the first tier.
//! - [`reader`]: one consumer over every tier (group `<group_id>.retry`) that hands due records
//!   back to their subscription's queue.

pub mod reader;
pub mod record;
pub mod replay;
pub mod schedule;
pub mod writer;

pub use reader::RetryReader;
pub use record::RetryRecord;
pub use schedule::RetrySchedule;
pub use writer::RetryWriter;
