//! Creating the topics hookline writes to (dead-letter and retry tiers) when they are missing,
//! so a first start on a cluster without auto-creation does not fail on its first dead letter.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Settings;

/// Creates the dead-letter topic and every retry tier that does not exist yet. Problems are
/// logged, not fatal: the topics may exist already under an ACL that forbids creating them.
pub async fn ensure(settings: &Settings) {
    let config = settings.kafka.client_config();
    let admin: AdminClient<DefaultClientContext> = match config.create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a Kafka admin client; not creating topics");
            return;
        }
    };
    let mut names = vec![settings.kafka.dead_letter_topic.clone()];
    if let Some(schedule) = &settings.retry_schedule {
        names.extend(schedule.topics());
    }
    let max_bytes = crate::produce::record_limit(settings.kafka.max_message_bytes).to_string();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                settings.kafka.topic_partitions,
                TopicReplication::Fixed(-1),
            )
            .set("max.message.bytes", &max_bytes)
        })
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    match admin.create_topics(&topics, &options).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(topic) => tracing::info!(%topic, "created topic"),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        tracing::warn!(%topic, error = %code, "cannot create topic")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot create topics"),
    }
}

/// Creates the subscriptions topic when it is missing: one partition, compacted (a record per
/// key is kept, the latest; tombstones remove). Problems are logged, not fatal.
pub async fn ensure_subscriptions(settings: &Settings) {
    let config = settings.kafka.client_config();
    let admin: AdminClient<DefaultClientContext> = match config.create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a Kafka admin client; not creating the subscriptions topic");
            return;
        }
    };
    let topic = &settings.subscriptions.topic;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("min.compaction.lag.ms", "60000");
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    match admin.create_topics([&new], &options).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(topic) => {
                        tracing::info!(%topic, "created the compacted subscriptions topic")
                    }
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        tracing::warn!(%topic, error = %code, "cannot create the subscriptions topic")
                    }
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot create the subscriptions topic"),
    }
}
