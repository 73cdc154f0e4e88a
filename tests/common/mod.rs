//! The shared integration-test harness: a real Kafka-protocol broker (librdkafka's mock
//! cluster, on real TCP ports), a real HTTP receiver on loopback, a rules directory, and
//! helpers to produce events and read back the dead-letter topic and committed offsets.
#![allow(dead_code)] // each test file uses a different part of the harness

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

/// Dead-letter topic used by every test.
pub const DLQ: &str = "hookline.dlq";

/// Broker, receiver and a rules directory.
pub struct Harness {
    pub broker: DevBroker,
    pub receiver: Receiver,
    pub rules: TempDir,
}

impl Harness {
    /// A broker with `topic` (`partitions` partitions) and the dead-letter topic, and a receiver.
    pub async fn new(topic: &str, partitions: i32) -> Harness {
        init_logging();
        let broker = DevBroker::start(1).expect("mock cluster");
        broker.create_topic(topic, partitions).expect("topic");
        broker.create_topic(DLQ, 1).expect("dlq topic");
        let receiver = Receiver::start().await.expect("receiver");
        let rules = tempfile::tempdir().expect("tempdir");
        Harness {
            broker,
            receiver,
            rules,
        }
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
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
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

    /// Reads the dead-letter topic from the start until `n` records arrived or `timeout`.
    pub fn dead_letters(&self, n: usize, timeout: Duration) -> Vec<DeadLetterRecord> {
        read_topic(&self.broker.bootstrap_servers(), DLQ, n, timeout)
    }
}

/// One record of the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    pub headers: HashMap<String, String>,
    pub payload: Vec<u8>,
}

impl DeadLetterRecord {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Reads `topic` (partition 0) from the beginning until `n` records or `timeout`.
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
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("offset");
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

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOOKLINE_TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}
