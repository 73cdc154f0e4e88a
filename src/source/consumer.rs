//! The Kafka consumer-group loop: read, hand each message to the pipeline with its ack, and
//! commit settled positions on an interval, on revoke (see [`super::context`]) and on shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::ack::MessageAck;
use super::context::{commit_list, SourceContext};
use super::offsets::Offsets;
use super::Role;
use crate::config::KafkaConfig;
use crate::metrics::Metrics;
use crate::pipeline::Record;

/// What the read loop hands each message to, with the ack that settles it.
pub trait Handler: Sync {
    /// Takes one message. [`Flow::Next`] means its parts are handed on (each holding an
    /// [`Ack`](super::ack::Ack)); it need not be settled yet.
    fn handle(
        &self,
        record: Record<'_>,
        ack: MessageAck,
    ) -> impl std::future::Future<Output = Flow> + Send;
}

/// What the read loop does after a message.
pub enum Flow {
    /// Read on.
    Next,
    /// The message is not due yet: hand it back, pause its partition until `until`, and read
    /// it again then. Other partitions, heartbeats and rebalances go on meanwhile.
    Later {
        /// When to read it again.
        until: std::time::SystemTime,
        /// Its untouched ack.
        ack: MessageAck,
    },
    /// Not now, nor anything else of its topic: hand the message back, pause every partition
    /// of its topic held here until `ready` resolves, and read them again then. Nothing about
    /// them is held in memory meanwhile. (One backlog topic is one subscription's: when its
    /// lane takes nothing, fetching the topic's other partitions only to hand each first
    /// message back kept the consumer busy fetching, seeking and dropping, beside ten dead
    /// subscriptions of 32 partitions each.)
    WhenReady {
        /// Resolves when the message may be taken.
        ready: futures::future::BoxFuture<'static, ()>,
        /// Its untouched ack.
        ack: MessageAck,
    },
}

/// What [`Source::postpone`] pauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// The message's partition.
    Partition,
    /// Every partition of the message's topic held here.
    Topic,
}

/// The source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// librdkafka refused the configuration.
    #[error("cannot create the Kafka consumer")]
    Create(#[source] KafkaError),
    /// Subscribing failed.
    #[error("cannot subscribe to {topics:?}")]
    Subscribe {
        /// The patterns.
        topics: Vec<String>,
        /// Why.
        #[source]
        source: KafkaError,
    },
}

/// Options hookline sets itself because the delivery guarantee depends on them; a user value
/// for one of these is overridden (and logged).
const OWNED_OPTIONS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "false"),
];

/// Source-consumer settings hookline chooses unless `kafka.options` sets them (measured in
/// docs/performance.md; documented in docs/configuration.md).
pub const SOURCE_DEFAULTS: &[(&str, &str)] = &[
    // A broker that answers a waiting fetch only when the wait is over (librdkafka's mock
    // cluster, tansu) adds up to this much latency; Apache Kafka answers as soon as data
    // arrives, so there it only sets how often an idle consumer asks (librdkafka: 500).
    ("fetch.wait.max.ms", "5"),
    // The prefetch queue: what librdkafka reads ahead of the router. Its defaults (100,000
    // messages, 64 MiB) held most of the router's memory and bought no speed.
    ("queued.min.messages", "5000"),
    ("queued.max.messages.kbytes", "8192"),
    // Past those bounds librdkafka stops fetching a partition for this long (1 s by default,
    // which stalled a router that drains the queue in milliseconds: batched delivery ran at
    // 40% of the speed it reaches with 10 ms).
    ("fetch.queue.backoff.ms", "10"),
    // One fetch response at most (50 MiB by default): what the first fetch of a backlog reads
    // at once, on top of the queue.
    ("fetch.max.bytes", "2097152"),
];

/// Settings of the retry-tier readers, whatever `kafka.options` says. Their records are due
/// seconds to hours after they were written, so waiting for data costs nothing, and each
/// reader keeps only a small prefetch queue: a tier's backlog waits in Kafka, not in memory.
const TIER_READER_OPTIONS: &[(&str, &str)] = &[
    ("fetch.wait.max.ms", "500"),
    ("queued.min.messages", "1000"),
    ("queued.max.messages.kbytes", "1024"),
    // Past those bounds librdkafka pauses fetching a partition this long (1 s by default):
    // short enough that a tier full of due records is still read quickly.
    ("fetch.queue.backoff.ms", "100"),
];

/// The librdkafka configuration for the source consumer.
pub fn consumer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &kafka.group_id)
        // A new group starts at the beginning: a router must not skip events that were
        // already waiting when it was first deployed.
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000");
    for (key, value) in SOURCE_DEFAULTS {
        config.set(*key, *value);
    }
    for (key, value) in &kafka.options {
        config.set(key, value);
    }
    for (key, value) in OWNED_OPTIONS {
        if kafka.options.get(*key).is_some_and(|v| v != value) {
            tracing::warn!(
                option = key,
                "kafka option is managed by hookline; ignoring the configured value"
            );
        }
        config.set(*key, *value);
    }
    config
}

/// A consumer that is closed on a thread of its own when the last reference goes. Closing
/// leaves the group, which waits for the group's answer, and indefinitely when a rebalance is
/// in progress (seen with librdkafka 2.12): that must never block an async worker, nor hold
/// up a shutdown, which has committed everything settled before it drops the consumer.
pub struct ClosingConsumer {
    consumer: Option<StreamConsumer<SourceContext>>,
    /// Cancelled once the consumer is closed.
    closed: CancellationToken,
}

impl std::ops::Deref for ClosingConsumer {
    type Target = StreamConsumer<SourceContext>;
    fn deref(&self) -> &Self::Target {
        self.consumer.as_ref().expect("only taken on drop")
    }
}

impl Drop for ClosingConsumer {
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let closed = self.closed.clone();
            let closing = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || {
                    drop(consumer);
                    closed.cancel();
                });
            if let Err(e) = closing {
                tracing::warn!(error = %e, "cannot start a thread to close a Kafka consumer");
            }
        }
    }
}

/// The librdkafka configuration for a retry-tier reader in consumer group `group`: the
/// source consumer's, with [`TIER_READER_OPTIONS`] on top.
pub fn tier_reader_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut config = consumer_config(kafka);
    config.set("group.id", group);
    for (key, value) in TIER_READER_OPTIONS {
        config.set(*key, *value);
    }
    config
}

/// The consumer and its offset state.
pub struct Source {
    consumer: Arc<ClosingConsumer>,
    /// Cancelled when [`Source::run`] returns: partitions waiting to resume stop waiting.
    done: CancellationToken,
    offsets: Offsets,
    commit_interval: Duration,
    /// Partitions paused until their handler is ready, with the assignment's generation: a
    /// rewind asked meanwhile waits until they resume.
    paused: Paused,
}

/// A partition: topic and number.
type PartitionKey = (Arc<str>, i32);

/// Paused partitions and the generation of their assignment.
type Paused = Arc<std::sync::Mutex<HashMap<PartitionKey, u64>>>;

impl Source {
    /// Creates the source consumer (it connects lazily).
    pub fn new(kafka: &KafkaConfig, metrics: Metrics) -> Result<Self, SourceError> {
        Self::with_config(consumer_config(kafka), kafka, metrics, Role::Source)
    }

    /// Creates a consumer from an explicit librdkafka configuration (the retry-topic readers
    /// use their own group), reporting its partitions under `role`.
    pub fn with_config(
        config: ClientConfig,
        kafka: &KafkaConfig,
        metrics: Metrics,
        role: Role,
    ) -> Result<Self, SourceError> {
        let offsets = Offsets::new(kafka.max_inflight_messages, metrics.clone(), role);
        let context = SourceContext {
            offsets: offsets.clone(),
            metrics,
            on_revoke: std::sync::RwLock::new(None),
            role,
        };
        let consumer = config
            .create_with_context(context)
            .map_err(SourceError::Create)?;
        Ok(Source {
            consumer: Arc::new(ClosingConsumer {
                consumer: Some(consumer),
                closed: CancellationToken::new(),
            }),
            done: CancellationToken::new(),
            offsets,
            paused: Arc::default(),
            commit_interval: kafka.commit_interval,
        })
    }

    /// Subscribes to `topics` (names, or `^regex` patterns), replacing any earlier set.
    pub fn subscribe(&self, topics: &[String]) -> Result<(), SourceError> {
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&refs)
            .map_err(|source| SourceError::Subscribe {
                topics: topics.to_vec(),
                source,
            })
    }

    /// The offset state.
    pub fn offsets(&self) -> &Offsets {
        &self.offsets
    }

    /// The consumer, for queries (committed offsets, end offsets).
    pub fn consumer(&self) -> &Arc<ClosingConsumer> {
        &self.consumer
    }

    /// Cancelled once the consumer has left its group and closed, after the last reference
    /// to it went: wait on it (bounded) before stopping what it talks to.
    pub fn closed(&self) -> CancellationToken {
        self.consumer.closed.clone()
    }

    /// Calls `hook` with the partitions each rebalance takes away (after their commit).
    pub fn on_revoke(&self, hook: super::context::OnRevoke) {
        *self
            .consumer
            .context()
            .on_revoke
            .write()
            .expect("revoke hook lock") = Some(hook);
    }

    /// Reads until `stop`, handing every message to `handler`. Commits settled positions every
    /// `commit_interval` meanwhile. Returns with messages possibly still in flight: stop the
    /// delivery stage, then call [`Source::commit`] once more.
    pub async fn run(&self, handler: &impl Handler, stop: CancellationToken) {
        let committer = {
            let consumer = self.consumer.clone();
            let offsets = self.offsets.clone();
            let interval = self.commit_interval;
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => commit(&consumer, &offsets).await,
                        _ = stop.cancelled() => return,
                    }
                }
            })
        };
        // The topic of the last message: consecutive messages share its name, not a copy each.
        let mut last_topic: Option<Arc<str>> = None;
        loop {
            let received = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = self.offsets.rewound() => {
                    for ((topic, partition), rewind) in self.offsets.take_rewinds() {
                        self.rewind(&topic, partition, rewind).await;
                    }
                    continue;
                }
                m = self.consumer.recv() => m,
            };
            let message = match received {
                Ok(m) => m,
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                    // A subscribed topic (or pattern) has nothing yet: the context has said
                    // so at the right level; it is picked up once it exists.
                    tracing::debug!("subscribed topic not available yet");
                    continue;
                }
                Err(e) => {
                    // Transient broker and network errors surface here; librdkafka recovers
                    // by itself, so report and keep reading.
                    tracing::warn!(error = %e, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let topic = match &last_topic {
                Some(t) if **t == *message.topic() => t.clone(),
                _ => last_topic.insert(message.topic().into()).clone(),
            };
            if let Some(rewind) = self.offsets.take_rewind(&topic, message.partition()) {
                // Something before this message was given back: read from there first, in
                // order, before anything after it.
                if rewind.offset <= message.offset() {
                    self.rewind(&topic, message.partition(), rewind).await;
                    continue;
                }
            }
            let ack = self
                .offsets
                .read(topic.clone(), message.partition(), message.offset())
                .await;
            let (partition, offset) = (message.partition(), message.offset());
            let record = Record {
                topic: topic.clone(),
                partition,
                offset,
                timestamp_ms: message.timestamp().to_millis(),
                payload: message.payload(),
            };
            match handler.handle(record, ack).await {
                Flow::Next => {}
                Flow::Later { until, ack } => {
                    ack.unread();
                    let wait = until
                        .duration_since(std::time::SystemTime::now())
                        .unwrap_or_default();
                    self.postpone(
                        &topic,
                        partition,
                        offset,
                        Box::pin(tokio::time::sleep(wait)),
                        Scope::Partition,
                    )
                    .await;
                }
                Flow::WhenReady { ready, ack } => {
                    ack.unread();
                    self.postpone(&topic, partition, offset, ready, Scope::Topic)
                        .await;
                }
            }
        }
        self.done.cancel();
        let _ = committer.await;
    }

    /// Rewinds `partition` to `offset` and pauses it (with [`Scope::Topic`], every other
    /// partition of `topic` held here and not paused already too), to be resumed when `ready`
    /// resolves.
    ///
    /// The seek comes first, while the partition still fetches: librdkafka completes a seek of
    /// a paused partition only once it fetches again, and a seek left in flight across a
    /// pause and a resume was seen to leave the partition never fetching again. The other
    /// partitions need no seek: librdkafka resumes a paused partition after the last message
    /// handed to us, and drops what it had fetched beyond.
    async fn postpone(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        ready: futures::future::BoxFuture<'static, ()>,
        scope: Scope,
    ) {
        self.seek(topic, partition, offset).await;
        let topic_key: Arc<str> = topic.into();
        let mut keys: Vec<(PartitionKey, Option<u64>)> = vec![(
            (topic_key.clone(), partition),
            self.offsets.generation(topic, partition),
        )];
        let tpl = {
            let mut paused = self.paused_lock();
            if scope == Scope::Topic {
                for (p, generation) in self.offsets.partitions_of(topic) {
                    let key = (topic_key.clone(), p);
                    if p != partition && !paused.contains_key(&key) {
                        keys.push((key, Some(generation)));
                    }
                }
            }
            let mut tpl = TopicPartitionList::new();
            for (key, generation) in &keys {
                tpl.add_partition(topic, key.1);
                if let Some(generation) = generation {
                    paused.insert(key.clone(), *generation);
                }
            }
            tpl
        };
        if let Err(e) = self.consumer.pause(&tpl) {
            tracing::warn!(topic, partition, error = %e, "cannot pause partition");
        }
        let consumer = self.consumer.clone();
        let done = self.done.clone();
        let paused = self.paused.clone();
        let offsets = self.offsets.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = ready => {
                    // After a rebalance a partition may belong to someone else: nothing to
                    // resume then.
                    let _ = consumer.resume(&tpl);
                    let mut paused = paused.lock().expect("paused lock");
                    for (key, _) in &keys {
                        paused.remove(key);
                    }
                    drop(paused);
                    // A rewind asked while they were paused is done now.
                    offsets.wake_rewinds();
                }
                // Stopped reading: do not keep the consumer (and its group membership).
                _ = done.cancelled() => {}
            }
        });
    }

    fn paused_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Arc<str>, i32), u64>> {
        self.paused.lock().expect("paused lock")
    }

    /// Reads `partition` again from where messages were given back, if it is still ours. A
    /// paused partition is rewound once it resumes (see [`Source::postpone`]).
    async fn rewind(&self, topic: &str, partition: i32, rewind: super::offsets::Rewind) {
        if !self.offsets.is_current(topic, partition, rewind.generation) {
            return;
        }
        let paused = self
            .paused_lock()
            .get(&(Arc::from(topic), partition))
            .copied();
        if paused == Some(rewind.generation) {
            self.offsets.defer_rewind(topic, partition, rewind);
            return;
        }
        tracing::debug!(
            topic,
            partition,
            offset = rewind.offset,
            "reading given-back messages again"
        );
        self.seek(topic, partition, rewind.offset).await;
    }

    /// Moves `partition`'s position to `offset` (never called on a paused partition);
    /// whatever librdkafka already fetched past it is dropped. A blocking call, so it runs off
    /// the async workers; it takes well under a millisecond. If it fails, the offsets handed
    /// back stay pending: nothing is committed past them, and they are read again after a
    /// restart or rebalance at the latest.
    async fn seek(&self, topic: &str, partition: i32, offset: i64) {
        let consumer = self.consumer.clone();
        let owned = topic.to_string();
        let result = tokio::task::spawn_blocking(move || {
            consumer.seek(
                &owned,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            )
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(topic, partition, offset, error = %e, "cannot rewind partition; its commits stay behind the message until it is read again")
            }
            Err(e) => tracing::warn!(topic, partition, offset, error = %e, "seek task failed"),
        }
    }

    /// Commits every position that moved, and waits for the broker's answer.
    pub async fn commit(&self) {
        commit(&self.consumer, &self.offsets).await;
    }
}

async fn commit(consumer: &Arc<ClosingConsumer>, offsets: &Offsets) {
    let commits = offsets.take_commits();
    if commits.is_empty() {
        return;
    }
    let consumer = consumer.clone();
    // A synchronous commit blocks for a broker round trip: keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || {
        let result = consumer.commit(&commit_list(&commits), CommitMode::Sync);
        consumer.context().record_commit(&result, &commits);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(config: &ClientConfig, key: &str) -> Option<String> {
        config.get(key).map(str::to_string)
    }

    #[test]
    fn source_defaults_yield_to_configured_options() {
        let mut kafka = KafkaConfig::default();
        let config = consumer_config(&kafka);
        assert_eq!(get(&config, "fetch.wait.max.ms").as_deref(), Some("5"));
        assert_eq!(
            get(&config, "queued.max.messages.kbytes").as_deref(),
            Some("8192")
        );
        kafka
            .options
            .insert("fetch.wait.max.ms".into(), "500".into());
        kafka
            .options
            .insert("enable.auto.commit".into(), "true".into());
        let config = consumer_config(&kafka);
        assert_eq!(get(&config, "fetch.wait.max.ms").as_deref(), Some("500"));
        // Owned options are not the user's to change.
        assert_eq!(get(&config, "enable.auto.commit").as_deref(), Some("false"));
    }

    #[test]
    fn tier_readers_wait_and_keep_little_whatever_the_options() {
        let mut kafka = KafkaConfig::default();
        kafka.options.insert("fetch.wait.max.ms".into(), "1".into());
        kafka
            .options
            .insert("security.protocol".into(), "SSL".into());
        let config = tier_reader_config(&kafka, "hookline.retry");
        assert_eq!(get(&config, "group.id").as_deref(), Some("hookline.retry"));
        assert_eq!(get(&config, "fetch.wait.max.ms").as_deref(), Some("500"));
        assert_eq!(
            get(&config, "queued.max.messages.kbytes").as_deref(),
            Some("1024")
        );
        assert_eq!(get(&config, "security.protocol").as_deref(), Some("SSL"));
    }
}
