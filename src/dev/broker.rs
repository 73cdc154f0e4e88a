//! An in-process Kafka-protocol broker (librdkafka's mock cluster) listening on real TCP ports,
//! so any client in any process can use its bootstrap address.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// A running mock cluster. Dropping it stops the brokers.
pub struct DevBroker {
    // Declared first so it is dropped first: a client outliving the cluster logs errors.
    producer: FutureProducer,
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl DevBroker {
    /// Starts `brokers` brokers.
    pub fn start(brokers: i32) -> KafkaResult<DevBroker> {
        let cluster = MockCluster::new(brokers)?;
        let producer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("message.timeout.ms", "10000")
            .create()?;
        Ok(DevBroker { cluster, producer })
    }

    /// `host:port,...` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> KafkaResult<()> {
        self.cluster.create_topic(topic, partitions, 1)
    }

    /// Creates the topics a router with `settings` writes to (dead-letter, retry tiers,
    /// subscriptions).
    /// The mock cluster does not answer the admin API's CreateTopics, so routers on it run
    /// with `kafka.create_topics = false` and are given their topics here.
    pub fn create_router_topics(&self, settings: &crate::config::Settings) -> KafkaResult<()> {
        for topic in router_topics(settings) {
            // Already there is fine.
            let _ = self.create_topic(&topic, settings.kafka.topic_partitions);
        }
        // One partition, as hookline creates it (the mock cluster does not compact).
        let _ = self.create_topic(&settings.subscriptions.topic, 1);
        Ok(())
    }

    /// The underlying cluster, for fault injection.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }

    /// A producer connected to this broker.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Produces one message and waits for the acknowledgement.
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&str>,
        payload: &[u8],
    ) -> KafkaResult<(i32, i64)> {
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        let delivery = self
            .producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(e, _)| e)?;
        Ok((delivery.partition, delivery.offset))
    }
}

/// The topics a router with `settings` writes to: the dead-letter topic and the retry tiers.
pub fn router_topics(settings: &crate::config::Settings) -> Vec<String> {
    let mut topics = vec![settings.kafka.dead_letter_topic.clone()];
    if let Some(schedule) = &settings.retry_schedule {
        topics.extend(schedule.topics());
    }
    topics
}
