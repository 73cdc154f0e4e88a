//! The broker's ceiling: how fast a bare consumer (librdkafka defaults, no group join: every
//! partition assigned from the beginning) reads a topic from the same broker process. The
//! batched benchmark compares the router's read rate with it.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::HarnessError;

/// What the bare consumer read.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ConsumerCeiling {
    /// Messages read.
    pub messages: u64,
    /// From the first message to the last.
    pub seconds: f64,
}

impl ConsumerCeiling {
    /// Messages per second.
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.messages as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Reads `expected` messages of `topic` from the beginning (or until `timeout`). Blocks: run
/// it on a blocking thread.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    expected: u64,
    timeout: Duration,
) -> Result<ConsumerCeiling, HarnessError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "hookline-bench-ceiling")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(HarnessError::kafka("cannot create the ceiling consumer"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(HarnessError::kafka("cannot read the topic's metadata"))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(HarnessError::kafka("cannot build the assignment"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(HarnessError::kafka("cannot assign the partitions"))?;
    let deadline = Instant::now() + timeout;
    let mut first = None;
    let mut messages = 0;
    while messages < expected && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            messages += 1;
        }
    }
    Ok(ConsumerCeiling {
        messages,
        seconds: first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(0.0),
    })
}
