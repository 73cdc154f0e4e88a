//! Shared harness for the delivery integration tests: a real scripted receiver, a real
//! Kafka-protocol broker (librdkafka's mock cluster) for the dead-letter topic, a dispatcher
//! wired to both, and helpers to make jobs and read dead letters back.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookline::deliver::{
    DeliverySettings, Dispatcher, Job, JobFrom, SubscriptionConfig, SubscriptionSettings,
};
use hookline::dev::broker::DevBroker;
use hookline::dev::receiver::Receiver;
use hookline::dlq::DeadLetterProducer;
use hookline::event::{webhook_id, Event, Origin};
use hookline::metrics::Metrics;
use hookline::settle::Settler;
use hookline::source::ack::{MessageAck, SettleSink};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const DLQ: &str = "dlq";

/// Offsets settled, in order.
#[derive(Default)]
pub struct Settled(pub Mutex<Vec<i64>>);

impl SettleSink for Settled {
    fn settled(&self, _topic: &str, _partition: i32, _generation: u64, offset: i64) {
        self.0.lock().unwrap().push(offset);
    }
}

pub struct Harness {
    pub broker: DevBroker,
    pub receiver: Receiver,
    pub dispatcher: Dispatcher,
    pub metrics: Metrics,
    pub settled: Arc<Settled>,
    pub shutdown: CancellationToken,
}

/// One dead-letter record as read back from Kafka.
#[derive(Debug, Clone)]
pub struct Letter {
    pub headers: HashMap<String, String>,
    pub payload: Value,
}

impl Letter {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

impl Harness {
    /// Loopback allowed, as every test against the local receiver needs.
    pub async fn start() -> Harness {
        Self::with_allow(vec!["127.0.0.0/8".parse().unwrap()]).await
    }

    pub async fn with_allow(allow_networks: Vec<ipnet::IpNet>) -> Harness {
        Self::with_settings(DeliverySettings {
            allow_networks,
            ..Default::default()
        })
        .await
    }

    /// A harness whose dispatcher runs on `settings` (allowed networks, proxy).
    pub async fn with_settings(settings: DeliverySettings) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let broker = DevBroker::start(1).expect("mock cluster");
        broker.create_topic(DLQ, 1).expect("dlq topic");
        let receiver = Receiver::start().await.expect("receiver");
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let settler = Settler::new(
            DeadLetterProducer::new(broker.producer().clone(), DLQ),
            metrics.clone(),
            shutdown.clone(),
        );
        let dispatcher = Dispatcher::new(settler, settings).expect("dispatcher");
        Harness {
            broker,
            receiver,
            dispatcher,
            metrics,
            settled: Arc::default(),
            shutdown,
        }
    }

    /// A subscription from YAML-like JSON, `url` pointing at the receiver's `path`.
    pub fn subscription(&self, id: &str, path: &str, extra: Value) -> Arc<SubscriptionSettings> {
        let mut config = json!({"id": id, "url": self.receiver.url(path)});
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let config: SubscriptionConfig = serde_json::from_value(config).expect("config");
        Arc::new(config.validate().expect("valid subscription"))
    }

    /// A job for `sub` at `offset`, whose settlement is recorded in `settled`.
    pub fn job(&self, sub: &Arc<SubscriptionSettings>, offset: i64, body: Value) -> Job {
        let origin = Origin {
            topic: "events".into(),
            partition: 0,
            offset,
            index: 0,
        };
        let message = MessageAck::new("events".into(), 0, 1, offset, self.settled.clone());
        let ack = message.part();
        message.finish();
        Job {
            subscription: sub.clone(),
            webhook_id: webhook_id(&origin, &sub.id),
            event_type: "test".into(),
            body: Some(body.clone()),
            event: Event::new(origin, json!({"original": offset, "body": body})),
            ack,
            retry_round: 0,
            from: JobFrom::Source,
            dedup: Vec::new(),
        }
    }

    /// Waits until `n` offsets are settled.
    pub async fn wait_settled(&self, n: usize, timeout: Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let settled = self.settled.0.lock().unwrap().clone();
            if settled.len() >= n || tokio::time::Instant::now() > deadline {
                return settled;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads `n` dead letters (or what arrives within `timeout`).
    pub async fn dead_letters(&self, n: usize, timeout: Duration) -> Vec<Letter> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .set("group.id", format!("test-{}", rand::random::<u64>()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[DLQ]).expect("subscribe");
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while out.len() < n {
            let Ok(Ok(message)) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
                break;
            };
            let mut headers = HashMap::new();
            if let Some(h) = message.headers() {
                for header in h.iter() {
                    let value = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    headers.insert(header.key.to_string(), value);
                }
            }
            let payload = serde_json::from_slice(message.payload().unwrap_or_default())
                .unwrap_or(Value::Null);
            out.push(Letter { headers, payload });
        }
        out
    }

    /// A counter's value.
    pub fn deliveries(&self, sub: &str, outcome: &str) -> u64 {
        self.metrics
            .deliveries
            .with_label_values(&[sub, outcome])
            .get()
    }

    pub fn attempts(&self, sub: &str, class: &str) -> u64 {
        self.metrics
            .delivery_attempts
            .with_label_values(&[sub, class])
            .get()
    }
}

/// Fast retries so tests finish quickly.
pub fn fast_retry(attempts: u32) -> Value {
    json!({"attempts": attempts, "initial_backoff": "10ms", "max_backoff": "50ms", "max_retry_after": "5s"})
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}
