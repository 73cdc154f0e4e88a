//! The broker process (`hookline broker`: librdkafka's mock cluster in a process of its own)
//! and what the harness asks it.
//!
//! The mock cluster keeps only about 5 MB per partition and silently drops older messages
//! beyond that, while still acknowledging every produce (DESIGN.md). [`BrokerProcess::retained`]
//! says whether a topic still holds everything produced to it, so a benchmark never blames the
//! router for events the broker threw away.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::child::Child;
use super::{Harness, HarnessError};

/// What `hookline broker` prints first: `bootstrap HOST:PORT[,...]`.
pub const ANNOUNCE: &str = "bootstrap ";

/// A topic to create at start: name and partitions.
#[derive(Clone, Debug)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// Its partitions.
    pub partitions: i32,
}

impl TopicSpec {
    /// `name` with `partitions` partitions.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec {
            name: name.into(),
            partitions,
        }
    }
}

/// Low and high watermark of every partition of a topic.
#[derive(Clone, Debug)]
pub struct Retention {
    /// `(low, high)` per partition, in partition order.
    pub partitions: Vec<(i64, i64)>,
}

impl Retention {
    /// Messages ever produced (sum of high watermarks).
    pub fn produced(&self) -> i64 {
        self.partitions.iter().map(|(_, high)| high).sum()
    }
    /// Messages the broker dropped (sum of low watermarks).
    pub fn dropped(&self) -> i64 {
        self.partitions.iter().map(|(low, _)| low).sum()
    }
    /// The fewest and most messages a partition holds.
    pub fn spread(&self) -> (i64, i64) {
        let held = self.partitions.iter().map(|(low, high)| high - low);
        (held.clone().min().unwrap_or(0), held.max().unwrap_or(0))
    }
}

/// A running `hookline broker`.
pub struct BrokerProcess {
    child: Child,
    bootstrap: String,
}

impl BrokerProcess {
    /// Starts a mock cluster of `brokers` brokers with `topics`, plus the dead-letter and
    /// retry-tier topics of a router on the default configuration when `router_topics`.
    pub async fn start(
        harness: &Harness,
        brokers: i32,
        topics: &[TopicSpec],
        router_topics: bool,
    ) -> Result<BrokerProcess, HarnessError> {
        let dir = harness.subdir("broker")?;
        let mut command = tokio::process::Command::new(harness.bin());
        command
            .arg("broker")
            .arg("--brokers")
            .arg(brokers.to_string());
        for topic in topics {
            command
                .arg("--topic")
                .arg(format!("{}:{}", topic.name, topic.partitions));
        }
        if router_topics {
            command.arg("--router-topics");
        }
        let (child, bootstrap) = Child::spawn(
            "the broker",
            &mut command,
            dir.join("broker.log"),
            Some(ANNOUNCE),
        )
        .await?;
        Ok(BrokerProcess { child, bootstrap })
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The process (CPU, memory, stop).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The watermarks of every partition of `topic`.
    pub async fn retained(&self, topic: &str) -> Result<Retention, HarnessError> {
        let bootstrap = self.bootstrap.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || watermarks(&bootstrap, &topic))
            .await
            .expect("the watermark reader does not panic")
    }

    /// Stops the broker.
    pub async fn stop(mut self) {
        self.child.terminate(Duration::from_secs(10)).await;
    }
}

fn watermarks(bootstrap: &str, topic: &str) -> Result<Retention, HarnessError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(HarnessError::kafka("cannot create a client"))?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(HarnessError::kafka(format!(
            "cannot read the metadata of {topic}"
        )))?;
    let count = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    let mut partitions = Vec::with_capacity(count);
    for partition in 0..count as i32 {
        partitions.push(
            consumer
                .fetch_watermarks(topic, partition, timeout)
                .map_err(HarnessError::kafka(format!(
                    "cannot read the watermarks of {topic}"
                )))?,
        );
    }
    Ok(Retention { partitions })
}
