//! The delivery stage alone: a dispatcher with its lanes, delivering to the harness's receiver
//! and dead-lettering to a real Kafka-protocol broker, with helpers to make jobs and read what
//! settled. (Was `tests/deliver_support`.)

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
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub use super::fixtures::fast_retry;
pub use super::wait::eventually;
use super::{init_logging, read_topic, DeadLetterRecord, DLQ};

/// Offsets settled, in order.
#[derive(Default)]
pub struct Settled(pub Mutex<Vec<i64>>);

impl SettleSink for Settled {
    fn settled(&self, _topic: &str, _partition: i32, _generation: u64, offset: i64) {
        self.0.lock().unwrap().push(offset);
    }
}

/// A dispatcher wired to a receiver and a dead-letter topic.
pub struct DeliveryHarness {
    pub broker: DevBroker,
    pub receiver: Receiver,
    pub dispatcher: Dispatcher,
    pub metrics: Metrics,
    pub settled: Arc<Settled>,
    pub shutdown: CancellationToken,
}

impl DeliveryHarness {
    /// Loopback allowed, as every test against the local receiver needs.
    pub async fn start() -> DeliveryHarness {
        Self::with_allow(vec!["127.0.0.0/8".parse().unwrap()]).await
    }

    /// A harness whose destinations may be in `allow_networks`.
    pub async fn with_allow(allow_networks: Vec<ipnet::IpNet>) -> DeliveryHarness {
        Self::with_settings(DeliverySettings {
            allow_networks,
            ..Default::default()
        })
        .await
    }

    /// A harness whose dispatcher runs on `settings` (allowed networks, proxy).
    pub async fn with_settings(settings: DeliverySettings) -> DeliveryHarness {
        init_logging();
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
        DeliveryHarness {
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

    /// Waits until `n` offsets are settled (or `timeout`); returns them.
    pub async fn wait_settled(&self, n: usize, timeout: Duration) -> Vec<i64> {
        eventually(timeout, || self.settled.0.lock().unwrap().len() >= n).await;
        self.settled.0.lock().unwrap().clone()
    }

    /// Reads `n` dead letters (or what arrives within `timeout`).
    pub async fn dead_letters(&self, n: usize, timeout: Duration) -> Vec<DeadLetterRecord> {
        let bootstrap = self.broker.bootstrap_servers();
        tokio::task::spawn_blocking(move || read_topic(&bootstrap, DLQ, n, timeout))
            .await
            .expect("reader")
    }

    /// A counter's value.
    pub fn deliveries(&self, sub: &str, outcome: &str) -> u64 {
        self.metrics
            .deliveries
            .with_label_values(&[sub, outcome])
            .get()
    }

    /// HTTP attempts of `sub` in `class`.
    pub fn attempts(&self, sub: &str, class: &str) -> u64 {
        self.metrics
            .delivery_attempts
            .with_label_values(&[sub, class])
            .get()
    }
}
