//! The subscriptions topic: a compacted Kafka topic (one partition) holding every API
//! subscription under its id, the status of rule-file subscriptions under `status:<id>`, and
//! delivery health under `health:<id>`; a tombstone (null value) removes one. Kafka is the
//! only database: every instance reads the topic from the beginning to its end before it
//! serves or delivers, then follows it, so all instances converge on each change within
//! moments, and a restart loses nothing.
//!
//! Every record goes to partition 0, whatever the topic's partition count, so one reader sees
//! every change in the order it was written.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::{HealthRecord, StatusRecord, StoredWebhook};
use crate::config::Settings;

/// The partition every record goes to.
pub const PARTITION: i32 = 0;

/// The subscriptions topic could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A Kafka client could not be created, or a request failed.
    #[error("subscriptions topic {topic}: {what}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: KafkaError,
    },
    /// Reading to the end took too long.
    #[error("subscriptions topic {topic}: not read to its end (offset {at} of {end}) within {waited:?}; is Kafka reachable?")]
    Timeout {
        /// The topic.
        topic: String,
        /// Where reading stood.
        at: i64,
        /// The end it had to reach.
        end: i64,
        /// How long it tried.
        waited: Duration,
    },
}

/// One change read from the topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// An API subscription written (`Some`) or deleted.
    Webhook(String, Option<Box<StoredWebhook>>),
    /// A rule-file subscription's status set or cleared.
    Status(String, Option<StatusRecord>),
    /// A subscription's health set or cleared.
    Health(String, Option<HealthRecord>),
}

/// Decodes one record; `Err` names what is wrong with it (it is then skipped).
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Change, String> {
    let key = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .ok_or("a record without a UTF-8 key")?;
    fn parse<T: DeserializeOwned>(key: &str, v: Option<&[u8]>) -> Result<Option<T>, String> {
        v.map(|v| serde_json::from_slice(v).map_err(|e| format!("record {key:?}: {e}")))
            .transpose()
    }
    if let Some(id) = key.strip_prefix("status:") {
        return Ok(Change::Status(id.into(), parse(key, value)?));
    }
    if let Some(id) = key.strip_prefix("health:") {
        return Ok(Change::Health(id.into(), parse(key, value)?));
    }
    let webhook: Option<StoredWebhook> = parse(key, value)?;
    if webhook.as_ref().is_some_and(|w| w.id != key) {
        return Err(format!(
            "record {key:?} holds subscription {:?}",
            webhook.map(|w| w.id)
        ));
    }
    Ok(Change::Webhook(key.into(), webhook.map(Box::new)))
}

/// Writes records. Cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    producer: FutureProducer,
    topic: String,
}

impl StoreWriter {
    /// A writer for `settings`' subscriptions topic.
    pub fn new(settings: &Settings) -> Result<StoreWriter, StoreError> {
        let topic = settings.subscriptions.topic.clone();
        let mut config = settings.kafka.client_config();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "15000");
        let producer = config.create().map_err(|source| StoreError::Kafka {
            topic: topic.clone(),
            what: "cannot create a producer",
            source,
        })?;
        Ok(StoreWriter { producer, topic })
    }

    /// Writes `value` under `key` (`None`: a tombstone); returns its offset once Kafka has
    /// acknowledged it.
    pub async fn write<T: Serialize>(
        &self,
        key: &str,
        value: Option<&T>,
    ) -> Result<i64, StoreError> {
        let payload = value.map(|v| serde_json::to_vec(v).expect("records serialise"));
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
            .key(key)
            .partition(PARTITION);
        if let Some(p) = &payload {
            record = record.payload(p);
        }
        let delivered = self
            .producer
            .send(record, Duration::from_secs(15))
            .await
            .map_err(|(source, _)| StoreError::Kafka {
                topic: self.topic.clone(),
                what: "cannot write",
                source,
            })?;
        Ok(delivered.offset)
    }
}

/// Reads the topic from its beginning.
pub struct StoreReader {
    consumer: std::sync::Arc<StreamConsumer>,
    topic: String,
}

impl StoreReader {
    /// A reader at the beginning of `settings`' subscriptions topic. It joins no consumer
    /// group and commits nothing: every instance reads everything.
    pub fn new(settings: &Settings) -> Result<StoreReader, StoreError> {
        let topic = settings.subscriptions.topic.clone();
        let mut config = crate::source::consumer::consumer_config(&settings.kafka);
        config
            .set("group.id", format!("{}.catalogue", settings.kafka.group_id))
            .set("fetch.wait.max.ms", "100")
            .set("statistics.interval.ms", "0");
        let kafka = |what| {
            let topic = topic.clone();
            move |source| StoreError::Kafka {
                topic,
                what,
                source,
            }
        };
        let consumer: StreamConsumer =
            config.create().map_err(kafka("cannot create a consumer"))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, PARTITION, Offset::Beginning)
            .map_err(kafka("cannot assign"))?;
        consumer.assign(&tpl).map_err(kafka("cannot assign"))?;
        Ok(StoreReader {
            consumer: std::sync::Arc::new(consumer),
            topic,
        })
    }

    /// The offset after the last record now (0 for an empty or missing topic); asks again
    /// until `deadline` while Kafka does not answer.
    async fn end(&self, deadline: tokio::time::Instant) -> Result<i64, StoreError> {
        loop {
            let consumer = self.consumer.clone();
            let topic = self.topic.clone();
            let result = tokio::task::spawn_blocking(move || {
                consumer.fetch_watermarks(&topic, PARTITION, Duration::from_secs(10))
            })
            .await
            .expect("the watermark query does not panic");
            let source = match result {
                Ok((_, high)) => return Ok(high),
                Err(e) => e,
            };
            if source.rdkafka_error_code()
                == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
            {
                tracing::warn!(topic = %self.topic, "the subscriptions topic does not exist yet; no API subscriptions");
                return Ok(0);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Kafka {
                    topic: self.topic.clone(),
                    what: "cannot read the end offset",
                    source,
                });
            }
            tracing::warn!(topic = %self.topic, error = %source, "cannot read the subscriptions topic's end yet; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Reads every record up to the end the topic has now, within `timeout`.
    pub async fn read_to_end(&self, timeout: Duration) -> Result<Vec<(i64, Change)>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let end = self.end(deadline).await?;
        let mut out = Vec::new();
        let mut at = 0;
        while at < end {
            let next = tokio::time::timeout_at(deadline, self.consumer.recv()).await;
            match next {
                Err(_) => {
                    return Err(StoreError::Timeout {
                        topic: self.topic.clone(),
                        at,
                        end,
                        waited: timeout,
                    })
                }
                Ok(Err(e)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "reading the subscriptions topic")
                }
                Ok(Ok(m)) => {
                    at = m.offset() + 1;
                    match decode(m.key(), m.payload()) {
                        Ok(change) => out.push((m.offset(), change)),
                        Err(e) => {
                            tracing::error!(topic = %self.topic, offset = m.offset(), error = %e, "skipping an unreadable subscriptions record")
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The next change, waiting for it; `None` for a record that is skipped (logged).
    pub async fn next(&self) -> (i64, Option<Change>) {
        loop {
            match self.consumer.recv().await {
                Ok(m) => {
                    return match decode(m.key(), m.payload()) {
                        Ok(change) => (m.offset(), Some(change)),
                        Err(e) => {
                            tracing::error!(topic = %self.topic, offset = m.offset(), error = %e, "skipping an unreadable subscriptions record");
                            (m.offset(), None)
                        }
                    };
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "reading the subscriptions topic");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
