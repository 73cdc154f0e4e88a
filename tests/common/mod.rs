//! The one integration-test harness. Every test runs on real parts: a Kafka-protocol broker
//! (librdkafka's mock cluster, on real TCP ports), a real HTTP receiver on loopback, and a
//! rules directory.
//!
//! - [`Harness`] (this file): broker, receiver and rules; settings for an in-process router;
//!   producing events, reading committed offsets and the dead-letter topic. Built with
//!   [`Harness::builder`] (or [`Harness::new`] for one topic).
//! - [`fixtures`]: the rule blocks, events and settings tests share.
//! - [`deliver`]: the delivery stage alone (a dispatcher, its lanes and the dead-letter topic).
//! - [`process`]: `hookline run` as a separate process, for crash, rebalance and fault tests.
//! - [`wait`]: waiting for conditions; no test sleeps and then asserts.
#![allow(dead_code, unused_imports)] // each test file uses a different part of the harness

pub mod deliver;
pub mod fixtures;
pub mod process;
pub mod signatures;
pub mod wait;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hookline::config::{Config, Settings};
use hookline::dev::broker::DevBroker;
use hookline::dev::receiver::Receiver;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tempfile::TempDir;

pub use wait::{eventually, holds_for};

/// Dead-letter topic used by every test.
pub const DLQ: &str = "hookline.dlq";

/// Broker, receiver and a rules directory.
pub struct Harness {
    pub broker: DevBroker,
    pub receiver: Receiver,
    pub rules: TempDir,
}

/// Builds a [`Harness`]: which topics, how many brokers, which rules.
pub struct HarnessBuilder {
    brokers: i32,
    topics: Vec<(String, i32)>,
    rules: Option<String>,
}

impl HarnessBuilder {
    /// A source topic with `partitions` partitions (any number of them).
    pub fn topic(mut self, topic: &str, partitions: i32) -> Self {
        self.topics.push((topic.into(), partitions));
        self
    }

    /// Brokers in the mock cluster (1 by default; more to take one down).
    pub fn brokers(mut self, brokers: i32) -> Self {
        self.brokers = brokers;
        self
    }

    /// The rule file to write (see [`Harness::write_rules`]).
    pub fn rules(mut self, yaml: &str) -> Self {
        self.rules = Some(yaml.into());
        self
    }

    /// Starts the broker and the receiver, creates the topics and writes the rules.
    pub async fn build(self) -> Harness {
        init_logging();
        let broker = DevBroker::start(self.brokers).expect("mock cluster");
        for (topic, partitions) in &self.topics {
            broker.create_topic(topic, *partitions).expect("topic");
        }
        broker.create_topic(DLQ, 1).expect("dlq topic");
        let receiver = Receiver::start().await.expect("receiver");
        let rules = tempfile::tempdir().expect("tempdir");
        let h = Harness {
            broker,
            receiver,
            rules,
        };
        if let Some(yaml) = &self.rules {
            h.write_rules(yaml);
        }
        h
    }
}

impl Harness {
    /// A builder: one broker, the dead-letter topic, no source topic yet.
    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            brokers: 1,
            topics: Vec::new(),
            rules: None,
        }
    }

    /// A broker with `topic` (`partitions` partitions) and the dead-letter topic, and a receiver.
    pub async fn new(topic: &str, partitions: i32) -> Harness {
        Harness::builder().topic(topic, partitions).build().await
    }

    /// Writes `yaml` as the only rule file; `{receiver}` is replaced by the receiver's URL.
    pub fn write_rules(&self, yaml: &str) {
        write_rules(
            self.rules.path(),
            &yaml.replace("{receiver}", &self.receiver.url("")),
        );
    }

    /// Router settings for consumer group `group`, loopback allowed as a destination.
    pub fn settings(&self, group: &str) -> Settings {
        self.finish(self.config(group))
    }

    /// The configuration behind [`Harness::settings`], to adjust before [`Harness::finish`].
    pub fn config(&self, group: &str) -> Config {
        let mut config = Config::default();
        config.kafka.brokers = self.broker.bootstrap_servers();
        config.kafka.group_id = group.into();
        config.kafka.dead_letter_topic = DLQ.into();
        config.kafka.commit_interval = Duration::from_millis(100);
        config.rules.dir = self.rules.path().to_path_buf();
        config.rules.watch = false;
        config.admin.listen = "127.0.0.1:0".into();
        config.delivery.allow_networks = vec!["127.0.0.0/8".into()];
        config.delivery.shutdown_grace = Duration::from_secs(5);
        config
    }

    /// Validates `config` for this harness's broker and creates the topics it writes to.
    pub fn finish(&self, mut config: Config) -> Settings {
        config.kafka.create_topics = false;
        let settings = config.validate().expect("valid settings");
        self.broker
            .create_router_topics(&settings)
            .expect("router topics");
        settings
    }

    /// Starts an in-process router on `settings`.
    pub async fn start(&self, settings: Settings) -> hookline::app::Running {
        hookline::app::start(settings).await.expect("router starts")
    }

    /// Produces `payload` to `partition` of `topic`; returns its offset.
    pub async fn produce(&self, topic: &str, partition: i32, payload: &[u8]) -> i64 {
        self.broker
            .produce(topic, Some(partition), None, payload)
            .await
            .expect("produce")
            .1
    }

    /// Produces a JSON value.
    pub async fn produce_json(&self, topic: &str, partition: i32, value: &Value) -> i64 {
        self.produce(topic, partition, value.to_string().as_bytes())
            .await
    }

    /// Committed offsets of `group` for partitions `0..partitions` of `topic` (-1 for none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        committed(&self.broker.bootstrap_servers(), group, topic, partitions)
    }

    /// Reads the dead-letter topic from the start until `n` records arrived or `timeout`.
    pub fn dead_letters(&self, n: usize, timeout: Duration) -> Vec<DeadLetterRecord> {
        read_topic(&self.broker.bootstrap_servers(), DLQ, n, timeout)
    }

    /// Records in `topic` (every partition): end offsets minus start offsets.
    pub fn records_in(&self, topic: &str) -> i64 {
        records_in(&self.broker.bootstrap_servers(), topic)
    }
}

/// Committed offsets of `group` for partitions `0..partitions` of `topic` (-1 for none).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

/// Records in `topic` (every partition): end offsets minus start offsets.
pub fn records_in(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}

/// Records in `topic` that consumer group `group` has not committed yet (every partition).
pub fn waiting(bootstrap: &str, topic: &str, group: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
        return 0;
    };
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let Ok(committed) = consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) else {
        return 0;
    };
    tpl.elements()
        .iter()
        .map(|e| {
            let (low, high) = consumer
                .fetch_watermarks(topic, e.partition(), Duration::from_secs(10))
                .unwrap_or((0, 0));
            let done = match committed
                .find_partition(topic, e.partition())
                .map(|c| c.offset())
            {
                Some(Offset::Offset(o)) => o.max(low),
                _ => low,
            };
            (high - done).max(0)
        })
        .sum()
}

/// One record of the dead-letter topic (or any topic read with [`read_topic`]).
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    pub headers: HashMap<String, String>,
    pub payload: Vec<u8>,
}

/// The name the delivery tests used for it.
pub type Letter = DeadLetterRecord;

impl DeadLetterRecord {
    /// A header's value, or "" when it is absent.
    pub fn header(&self, name: &str) -> &str {
        self.header_opt(name).unwrap_or("")
    }

    /// A header's value, if present.
    pub fn header_opt(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The payload as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// Reads `topic` (every partition) from the beginning until `n` records or `timeout`.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<DeadLetterRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("offset");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (h.key.to_string(), value.unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(DeadLetterRecord {
                headers,
                payload: m.payload().unwrap_or_default().to_vec(),
            });
        }
    }
    out
}

/// Writes `yaml` as `rules.yaml` in `dir`, replacing any other rule file.
pub fn write_rules(dir: &Path, yaml: &str) {
    for entry in std::fs::read_dir(dir).expect("rules dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::remove_file(path).expect("remove");
        }
    }
    std::fs::write(dir.join("rules.yaml"), yaml).expect("write rules");
}

/// Logs of the code under test, at `HOOKLINE_TEST_LOG` (default `warn`).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOOKLINE_TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The value of the first metric line of `text` starting with `line_start` (name and labels).
pub fn metric_value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of every metric line of `text` starting with `line_start`.
pub fn metric_sum(text: &str, line_start: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(line_start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
