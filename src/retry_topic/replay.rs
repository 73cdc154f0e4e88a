//! Replay: put dead-lettered events back on their way. A dead letter that belongs to a
//! subscription goes to the first retry tier, due at once and without a body, so the retry
//! readers of a running router render it with the template in force and deliver it to that
//! subscription only (never again to the others). Input problems (no subscription) can be
//! produced back to their source topic instead, to be routed afresh.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

use super::record::{OriginRecord, RetryRecord};
use super::writer::RetryWriter;
use crate::config::Settings;
use crate::dlq::headers;
use crate::event::{is_webhook_id, webhook_id, Origin};

/// Which dead letters to replay.
#[derive(Clone, Debug, Default)]
pub struct ReplayFilter {
    /// Only this subscription's.
    pub subscription: Option<String>,
    /// Only those that failed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only those that failed before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only these reasons (`rejected`, `retries-exhausted`, ...); all when empty.
    pub reasons: Vec<String>,
    /// Also produce input problems (no subscription) back to their source topic.
    pub to_source: bool,
    /// Count what would be replayed, write nothing.
    pub dry_run: bool,
    /// Give up when no record arrives for this long while some partition has not reached
    /// its end (default 30 s).
    pub idle_timeout: Option<Duration>,
}

/// Without [`ReplayFilter::idle_timeout`].
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A partition a replay did not read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfinished {
    /// The dead-letter topic's partition.
    pub partition: i32,
    /// Where reading stopped (the next offset to read; -1 when nothing was read).
    pub position: i64,
    /// Where the topic ended when the replay started.
    pub end: i64,
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Dead letters read.
    pub scanned: u64,
    /// Of those, matching the filter.
    pub matched: u64,
    /// Written to the retry topic for their subscription.
    pub to_retry_topic: u64,
    /// Produced back to their source topic.
    pub to_source: u64,
    /// Matched, but input problems without `to_source`.
    pub skipped_input: u64,
    /// Matched, but unusable (payload not JSON, headers missing).
    pub unreadable: u64,
}

/// Replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Replays go through the retry topic.
    #[error("replay needs the durable retry topic (delivery.durable_retries = true)")]
    NoRetryTopic,
    /// Kafka refused.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Nothing arrived for the idle timeout before every partition was read to its end;
    /// what was done until then is in `summary`.
    #[error("replay incomplete: no dead letter arrived for {idle:?} with {} partition(s) not read to the end", unfinished.len())]
    Incomplete {
        /// What was replayed before it stopped.
        summary: ReplaySummary,
        /// The partitions left.
        unfinished: Vec<Unfinished>,
        /// The idle timeout.
        idle: Duration,
    },
}

/// Reads the dead-letter topic up to where it ends now and replays what `filter` selects.
/// `progress(scanned, total)` is called as records are read.
pub async fn replay(
    settings: &Settings,
    filter: &ReplayFilter,
    progress: impl Fn(u64, u64),
) -> Result<ReplaySummary, ReplayError> {
    let schedule = settings
        .retry_schedule
        .clone()
        .ok_or(ReplayError::NoRetryTopic)?;
    let first_tier = schedule.first_topic().ok_or(ReplayError::NoRetryTopic)?;
    let client = settings.kafka.client_config();
    let producer: FutureProducer = settings.kafka.producer_config().create()?;
    let writer = RetryWriter::new_for_replay(producer.clone(), schedule);
    let consumer: StreamConsumer = client
        .clone()
        .set("group.id", format!("{}.replay", settings.kafka.group_id))
        .set("enable.auto.commit", "false")
        .create()?;

    let topic = settings.kafka.dead_letter_topic.as_str();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    // Where the topic ends now: records dead-lettered during the replay are not replayed.
    let mut ends = HashMap::new();
    let mut total = 0u64;
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high > low {
            ends.insert(p, high);
            total += (high - low) as u64;
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    if let Some(since) = filter.since {
        let mut times = TopicPartitionList::new();
        for &p in ends.keys() {
            times.add_partition_offset(topic, p, Offset::Offset(since.timestamp_millis()))?;
        }
        assignment = consumer.offsets_for_times(times, Duration::from_secs(10))?;
    }
    let mut summary = ReplaySummary::default();
    if ends.is_empty() {
        return Ok(summary);
    }
    consumer.assign(&assignment)?;
    let idle = filter.idle_timeout.unwrap_or(IDLE_TIMEOUT);
    while !ends.is_empty() {
        let message = match tokio::time::timeout(idle, consumer.recv()).await {
            Ok(m) => m?,
            Err(_) => {
                // Done where the position reached the end although the last offsets held no
                // record (compacted away, transaction markers); otherwise stuck.
                let positions = consumer.position()?;
                let unfinished: Vec<Unfinished> = ends
                    .iter()
                    .map(|(&partition, &end)| Unfinished {
                        partition,
                        position: positions
                            .find_partition(topic, partition)
                            .and_then(|p| p.offset().to_raw())
                            .unwrap_or(-1),
                        end,
                    })
                    .filter(|u| u.position < u.end)
                    .collect();
                if unfinished.is_empty() {
                    break;
                }
                return Err(ReplayError::Incomplete {
                    summary,
                    unfinished,
                    idle,
                });
            }
        };
        let p = message.partition();
        if ends.get(&p).is_some_and(|end| message.offset() + 1 >= *end) {
            ends.remove(&p);
        }
        summary.scanned += 1;
        progress(summary.scanned, total);
        let h: HashMap<&str, String> = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key,
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let header = |name: &str| h.get(name).map(String::as_str);
        let failed_at = header(headers::FAILED_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let selected = filter
            .subscription
            .as_deref()
            .is_none_or(|s| header(headers::SUBSCRIPTION) == Some(s))
            && filter
                .since
                .is_none_or(|s| failed_at.is_some_and(|f| f >= s))
            && filter
                .until
                .is_none_or(|u| failed_at.is_some_and(|f| f < u))
            && (filter.reasons.is_empty()
                || header(headers::REASON).is_some_and(|r| filter.reasons.iter().any(|x| x == r)));
        if !selected {
            continue;
        }
        summary.matched += 1;
        let payload = message.payload().unwrap_or_default();
        let origin = (|| {
            Some(Origin {
                topic: header(headers::TOPIC)?.into(),
                partition: header(headers::PARTITION)?.parse().ok()?,
                offset: header(headers::OFFSET)?.parse().ok()?,
                index: header(headers::INDEX)?.parse().ok()?,
            })
        })();
        let Some(origin) = origin else {
            summary.unreadable += 1;
            continue;
        };
        match header(headers::SUBSCRIPTION) {
            Some(subscription) => {
                let Ok(event) = serde_json::from_slice(payload) else {
                    summary.unreadable += 1;
                    continue;
                };
                let record = RetryRecord {
                    subscription: subscription.to_string(),
                    // A header that is not a hookline id (edited, or not written by
                    // hookline) is replaced by the id the origin gives.
                    webhook_id: header(headers::WEBHOOK_ID)
                        .filter(|id| is_webhook_id(id))
                        .map(str::to_string)
                        .unwrap_or_else(|| webhook_id(&origin, subscription)),
                    event_type: String::new(),
                    round: 0,
                    due_ms: Utc::now().timestamp_millis(),
                    event,
                    body: None,
                    origin: OriginRecord::from(&origin),
                    received_at: failed_at.unwrap_or_else(Utc::now),
                    last_error: header(headers::ERROR).map(str::to_string),
                    last_status: header(headers::STATUS).and_then(|s| s.parse().ok()),
                };
                if !filter.dry_run {
                    writer.write(&first_tier, &record).await?;
                }
                summary.to_retry_topic += 1;
            }
            None if filter.to_source => {
                if !filter.dry_run {
                    producer
                        .send(
                            FutureRecord::<(), [u8]>::to(&origin.topic).payload(payload),
                            Timeout::After(Duration::from_secs(30)),
                        )
                        .await
                        .map_err(|(e, _)| e)?;
                }
                summary.to_source += 1;
            }
            None => summary.skipped_input += 1,
        }
    }
    Ok(summary)
}
