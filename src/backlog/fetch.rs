//! Reading events back from their source topics, by offset, for backlog records that refer to
//! them (see [`record`](super::record)).
//!
//! One consumer per instance, in no group (it commits nothing and joins nothing), on a thread
//! of its own: librdkafka's calls block. It keeps a cursor per source partition it was asked
//! about: the partition stays assigned, with its own queue, and reads ahead a little, so the
//! next request for that partition (a backlog is read in order, so its records refer to
//! increasing offsets of each source partition) is usually served from what is already
//! fetched. A cursor seeks when asked for an offset behind it or far ahead of it, and is
//! dropped after a while unused.
//!
//! Hand-written because no crate serves "these offsets of this partition" over librdkafka; it
//! is a small state machine over `split_partition_queue` and `seek`.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc as sync_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;

use crate::config::KafkaConfig;
use crate::source::consumer::consumer_config;

/// How long one request may take before it fails (the reader tries the record again later).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How far ahead of a cursor a request may start and still be read up to rather than sought:
/// reading past messages no delivery refers to costs a little each, a seek a round trip.
const MAX_SKIP: i64 = 2_000;

/// A cursor unused for this long is dropped (its partition unassigned), so an idle fetcher
/// fetches nothing.
const IDLE: Duration = Duration::from_secs(10);

/// The most cursors kept; the least recently used goes first.
const MAX_CURSORS: usize = 64;

/// What a fetch found at one offset.
#[derive(Debug)]
pub enum Fetched {
    /// The message there.
    Found {
        /// Its value (`None` for a tombstone).
        payload: Option<Vec<u8>>,
        /// Its Kafka timestamp, if it has one.
        timestamp_ms: Option<i64>,
    },
    /// No message there any more: retention or compaction removed it, or the topic was
    /// deleted and created again.
    Gone,
}

/// A fetch that could not be served now; try again later.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The broker did not give the messages in time.
    #[error(
        "reading {topic}/{partition} from offset {offset} took longer than {REQUEST_TIMEOUT:?}"
    )]
    Timeout {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The first offset still missing.
        offset: i64,
    },
    /// The partition could not be assigned or sought.
    #[error("cannot read {topic}/{partition}")]
    Kafka {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: KafkaError,
    },
    /// The fetcher has stopped.
    #[error("the source fetcher has stopped")]
    Stopped,
}

struct Request {
    topic: String,
    partition: i32,
    /// Sorted, no repeats.
    offsets: Vec<i64>,
    reply: oneshot::Sender<Result<Vec<(i64, Fetched)>, FetchError>>,
}

/// Reads messages of source topics by offset. Cheap to clone; the thread ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct SourceFetcher {
    requests: sync_mpsc::Sender<Request>,
}

impl SourceFetcher {
    /// A fetcher reading with `kafka`'s brokers, security and options.
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let mut config = consumer_config(kafka);
        fetcher_options(&mut config, &kafka.group_id);
        let consumer: BaseConsumer<DefaultConsumerContext> = config.create()?;
        let (requests, incoming) = sync_mpsc::channel();
        std::thread::Builder::new()
            .name("source-fetch".into())
            .spawn(move || Fetcher::new(Arc::new(consumer)).run(incoming))
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        Ok(SourceFetcher { requests })
    }

    /// The messages at `offsets` (any order, repeats allowed) of `topic`/`partition`, sorted by
    /// offset, one per distinct offset.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        mut offsets: Vec<i64>,
    ) -> Result<Vec<(i64, Fetched)>, FetchError> {
        offsets.sort_unstable();
        offsets.dedup();
        let (reply, answer) = oneshot::channel();
        let request = Request {
            topic: topic.to_string(),
            partition,
            offsets,
            reply,
        };
        self.requests
            .send(request)
            .map_err(|_| FetchError::Stopped)?;
        answer.await.map_err(|_| FetchError::Stopped)?
    }
}

/// The fetcher's consumer options over the source consumer's: no group work, no commits, a
/// small read-ahead per partition (each cursor has its own queue, and these bounds apply to
/// each), and an out-of-range offset reported rather than reset.
fn fetcher_options(config: &mut ClientConfig, group_id: &str) {
    config
        // Required by librdkafka's consumer; never joined (only `assign`), never committed.
        // Under the instance's group id, so ACLs granted on its prefix cover it.
        .set("group.id", format!("{group_id}.fetch"))
        .set("auto.offset.reset", "error")
        .set("statistics.interval.ms", "0")
        // A record's worth of messages, at most 512 KiB, per cursor: 32 MiB with every cursor
        // full of large events.
        .set("queued.min.messages", "256")
        .set("queued.max.messages.kbytes", "512")
        .set("max.partition.fetch.bytes", "262144")
        .set("fetch.max.bytes", "1048576")
        // A cursor at the end of its partition waits this long per fetch, and a cursor moved
        // elsewhere waits for that fetch to end before it reads on: at 100 ms a third of the
        // requests that moved a cursor took 100 ms. Idle cursors are dropped soon.
        .set("fetch.wait.max.ms", "10");
}

/// One assigned partition.
struct Cursor {
    queue: rdkafka::consumer::base_consumer::PartitionQueue<DefaultConsumerContext>,
    /// Messages taken from the queue but not asked for yet (past the last request's end).
    pending: VecDeque<OwnedMessage>,
    /// The offset the next message is expected at or after.
    next: i64,
    used: Instant,
}

struct Fetcher {
    consumer: Arc<BaseConsumer<DefaultConsumerContext>>,
    cursors: HashMap<(String, i32), Cursor>,
}

impl Fetcher {
    fn new(consumer: Arc<BaseConsumer<DefaultConsumerContext>>) -> Self {
        Fetcher {
            consumer,
            cursors: HashMap::new(),
        }
    }

    fn run(mut self, incoming: sync_mpsc::Receiver<Request>) {
        loop {
            match incoming.recv_timeout(Duration::from_secs(1)) {
                Ok(request) => {
                    let Request {
                        topic,
                        partition,
                        offsets,
                        reply,
                    } = request;
                    let answer = self.serve(&topic, partition, &offsets);
                    let _ = reply.send(answer);
                }
                Err(sync_mpsc::RecvTimeoutError::Timeout) => {}
                Err(sync_mpsc::RecvTimeoutError::Disconnected) => return,
            }
            self.serve_events();
            self.drop_idle();
        }
    }

    /// Serves the consumer's own queue (errors, logs). With every partition split off, a
    /// message here is one fetched before its split; it goes to its cursor.
    fn serve_events(&mut self) {
        while let Some(result) = self.consumer.poll(Duration::ZERO) {
            match result {
                Ok(message) => {
                    let key = (message.topic().to_string(), message.partition());
                    if let Some(cursor) = self.cursors.get_mut(&key) {
                        cursor.pending.push_back(message.detach());
                    }
                }
                Err(e) => tracing::debug!(error = %e, "source fetcher"),
            }
        }
    }

    fn drop_idle(&mut self) {
        let idle: Vec<(String, i32)> = self
            .cursors
            .iter()
            .filter(|(_, c)| c.used.elapsed() >= IDLE)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            self.unassign(&key);
        }
    }

    fn unassign(&mut self, key: &(String, i32)) {
        if self.cursors.remove(key).is_some() {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&key.0, key.1);
            if let Err(e) = self.consumer.incremental_unassign(&tpl) {
                tracing::warn!(topic = %key.0, partition = key.1, error = %e, "source fetcher cannot unassign");
            }
        }
    }

    /// The cursor of `topic`/`partition`, positioned so that reading on reaches `first`.
    fn cursor(
        &mut self,
        topic: &str,
        partition: i32,
        first: i64,
    ) -> Result<&mut Cursor, KafkaError> {
        let key = (topic.to_string(), partition);
        let reposition = self
            .cursors
            .get(&key)
            .map(|c| first < c.next || first > c.next + MAX_SKIP);
        match reposition {
            Some(false) => {}
            Some(true) => {
                // Assigned again rather than sought: a seek completes only as the partition
                // fetches, and its queue may still hold messages from before it.
                self.unassign(&key);
                self.assign(&key, first)?;
            }
            None => {
                if self.cursors.len() >= MAX_CURSORS {
                    let oldest = self
                        .cursors
                        .iter()
                        .min_by_key(|(_, c)| c.used)
                        .map(|(k, _)| k.clone());
                    if let Some(oldest) = oldest {
                        self.unassign(&oldest);
                    }
                }
                self.assign(&key, first)?;
            }
        }
        let cursor = self.cursors.get_mut(&key).expect("assigned above");
        cursor.used = Instant::now();
        Ok(cursor)
    }

    fn assign(&mut self, key: &(String, i32), offset: i64) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&key.0, key.1, Offset::Offset(offset))?;
        self.consumer.incremental_assign(&tpl)?;
        let queue = self
            .consumer
            .split_partition_queue(&key.0, key.1)
            .ok_or_else(|| KafkaError::Subscription(format!("no queue for {}/{}", key.0, key.1)))?;
        self.cursors.insert(
            key.clone(),
            Cursor {
                queue,
                pending: VecDeque::new(),
                next: offset,
                used: Instant::now(),
            },
        );
        Ok(())
    }

    /// Where `topic`/`partition` starts and ends now, asked of its leader.
    fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), KafkaError> {
        self.consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
    }

    fn serve(
        &mut self,
        topic: &str,
        partition: i32,
        offsets: &[i64],
    ) -> Result<Vec<(i64, Fetched)>, FetchError> {
        let kafka = |source| FetchError::Kafka {
            topic: topic.to_string(),
            partition,
            source,
        };
        let Some(&first) = offsets.first() else {
            return Ok(Vec::new());
        };
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let mut out = Vec::with_capacity(offsets.len());
        let mut wanted = offsets.iter().copied().peekable();
        let mut at = first;
        let mut quiet_since = Instant::now();
        // The offset last passed over (see below).
        let mut passed_over: Option<i64> = None;
        let key = (topic.to_string(), partition);
        while let Some(&want) = wanted.peek() {
            let cursor = self.cursor(topic, partition, at).map_err(kafka)?;
            let message = match cursor.pending.pop_front() {
                Some(message) => Some(Ok(message)),
                None => cursor
                    .queue
                    .poll(Duration::from_millis(100))
                    .map(|r| r.map(|m| m.detach())),
            };
            match message {
                Some(Ok(message)) => {
                    let offset = message.offset();
                    if offset < cursor.next {
                        // From before a reposition: not what was asked.
                        continue;
                    }
                    quiet_since = Instant::now();
                    if want < offset {
                        // Offsets asked for were passed over. Gone only if the broker says so
                        // (below the partition's start), or if a cursor started at them
                        // passes over them again: compaction removed them. A message from
                        // before a reposition is not proof (Kafka hands no generation).
                        let (low, _) = self.watermarks(topic, partition).map_err(kafka)?;
                        while let Some(w) = wanted.next_if(|&w| w < low) {
                            out.push((w, Fetched::Gone));
                        }
                        if let Some(&w) = wanted.peek().filter(|&&w| w < offset) {
                            if passed_over.replace(w) != Some(w) {
                                self.unassign(&(topic.to_string(), partition));
                                at = w;
                                continue;
                            }
                            tracing::debug!(
                                topic,
                                partition,
                                offset = w,
                                "source offset passed over twice: compacted"
                            );
                        }
                    }
                    let cursor = self.cursors.get_mut(&key).expect("read from it above");
                    cursor.next = offset + 1;
                    while let Some(w) = wanted.next_if(|&w| w < offset) {
                        out.push((w, Fetched::Gone));
                    }
                    if wanted.next_if_eq(&offset).is_some() {
                        out.push((
                            offset,
                            Fetched::Found {
                                timestamp_ms: message.timestamp().to_millis(),
                                payload: message.payload().map(<[u8]>::to_vec),
                            },
                        ));
                    } else if wanted.peek().is_none() {
                        // Read ahead of this request: kept for the next.
                        cursor.next = offset;
                        cursor.pending.push_front(message);
                    }
                    at = cursor.next;
                }
                Some(Err(KafkaError::MessageConsumption(code))) if is_out_of_range(code) => {
                    // The next offset asked for is not in the partition: below its start (it
                    // expired) or past its end (the topic was created again). What is there
                    // of the rest is read from the start, or not at all.
                    let (low, high) = self.watermarks(topic, partition).map_err(kafka)?;
                    while let Some(w) = wanted.next_if(|&w| w < low || w >= high) {
                        out.push((w, Fetched::Gone));
                    }
                    // The partition stops fetching after the error: assigned anew when next
                    // asked, at the next offset wanted.
                    self.unassign(&(topic.to_string(), partition));
                    if let Some(&w) = wanted.peek() {
                        at = w;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(topic, partition, error = %e, "source fetcher");
                }
                None => {
                    if Instant::now() >= deadline {
                        return Err(FetchError::Timeout {
                            topic: topic.to_string(),
                            partition,
                            offset: want,
                        });
                    }
                    if quiet_since.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    // An offset past the end never arrives and raises no error while the
                    // cursor reads on from before it: ask where the end is.
                    quiet_since = Instant::now();
                    let (low, high) = self.watermarks(topic, partition).map_err(kafka)?;
                    if want >= high || want < low {
                        while let Some(w) = wanted.next_if(|&w| w >= high || w < low) {
                            out.push((w, Fetched::Gone));
                        }
                    } else {
                        // It is there, and nothing came for a second: start the cursor
                        // again where it is.
                        self.unassign(&(topic.to_string(), partition));
                    }
                    self.serve_events();
                }
            }
        }
        Ok(out)
    }
}

fn is_out_of_range(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::broker::DevBroker;

    async fn broker_with(topic: &str, messages: usize) -> DevBroker {
        let broker = DevBroker::start(1).unwrap();
        broker.create_topic(topic, 2).unwrap();
        for n in 0..messages {
            let body = format!(r#"{{"n":{n}}}"#);
            broker
                .produce(topic, Some(0), None, body.as_bytes())
                .await
                .unwrap();
        }
        broker
    }

    fn fetcher(broker: &DevBroker) -> SourceFetcher {
        let kafka = KafkaConfig {
            brokers: broker.bootstrap_servers(),
            ..KafkaConfig::default()
        };
        SourceFetcher::new(&kafka).unwrap()
    }

    fn bodies(fetched: &[(i64, Fetched)]) -> Vec<(i64, Option<String>)> {
        fetched
            .iter()
            .map(|(o, f)| match f {
                Fetched::Found { payload, .. } => (
                    *o,
                    payload
                        .as_ref()
                        .map(|p| String::from_utf8(p.clone()).unwrap()),
                ),
                Fetched::Gone => (*o, None),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_offsets_forward_backward_and_apart() {
        let broker = broker_with("t", 50).await;
        let fetcher = fetcher(&broker);
        let got = fetcher.fetch("t", 0, vec![3, 1, 3, 7]).await.unwrap();
        assert_eq!(
            bodies(&got),
            [
                (1, Some(r#"{"n":1}"#.into())),
                (3, Some(r#"{"n":3}"#.into())),
                (7, Some(r#"{"n":7}"#.into()))
            ]
        );
        // On from where the cursor is, then behind it (a seek), then the last.
        let got = fetcher.fetch("t", 0, vec![8, 9]).await.unwrap();
        assert_eq!(bodies(&got)[1], (9, Some(r#"{"n":9}"#.into())));
        let got = fetcher.fetch("t", 0, vec![0]).await.unwrap();
        assert_eq!(bodies(&got), [(0, Some(r#"{"n":0}"#.into()))]);
        let got = fetcher.fetch("t", 0, vec![49]).await.unwrap();
        assert_eq!(bodies(&got), [(49, Some(r#"{"n":49}"#.into()))]);
        assert!(matches!(
            got[0].1,
            Fetched::Found {
                timestamp_ms: Some(_),
                ..
            }
        ));
    }

    /// Requests as a backlog makes them (mostly forward, sometimes back, across partitions,
    /// with gaps): every offset asked for is found, with its own message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_requests_always_find_their_messages() {
        use rand::{Rng, SeedableRng};
        let broker = DevBroker::start(1).unwrap();
        broker.create_topic("t", 3).unwrap();
        const N: i64 = 3000;
        for p in 0..3 {
            for n in 0..N {
                let body = format!(r#"{{"p":{p},"n":{n}}}"#);
                broker
                    .produce("t", Some(p), None, body.as_bytes())
                    .await
                    .unwrap();
            }
        }
        let fetcher = fetcher(&broker);
        let seed = rand::random::<u64>();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut at = [0i64; 3];
        for _ in 0..300 {
            let p = rng.random_range(0..3usize);
            let start = match rng.random_range(0..10) {
                0 => rng.random_range(0..N),
                _ => (at[p] + rng.random_range(0..50)).min(N - 1),
            };
            let offsets: Vec<i64> = (0..rng.random_range(1..40))
                .map(|_| (start + rng.random_range(0..300)).min(N - 1))
                .collect();
            at[p] = *offsets.iter().max().unwrap();
            let got = fetcher.fetch("t", p as i32, offsets.clone()).await.unwrap();
            let mut want = offsets.clone();
            want.sort_unstable();
            want.dedup();
            assert_eq!(got.len(), want.len(), "seed {seed}");
            for ((o, f), w) in got.iter().zip(&want) {
                assert_eq!(o, w, "seed {seed}");
                let Fetched::Found { payload, .. } = f else {
                    panic!("seed {seed}: {p}/{o} reported gone");
                };
                let expected = format!(r#"{{"p":{p},"n":{o}}}"#);
                assert_eq!(payload.as_deref(), Some(expected.as_bytes()), "seed {seed}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offset_past_the_end_is_gone_and_the_rest_is_read() {
        let broker = broker_with("t", 5).await;
        let fetcher = fetcher(&broker);
        let got = fetcher.fetch("t", 0, vec![4, 5, 900]).await.unwrap();
        assert_eq!(
            bodies(&got),
            [(4, Some(r#"{"n":4}"#.into())), (5, None), (900, None)]
        );
        // An empty partition.
        let got = fetcher.fetch("t", 1, vec![0]).await.unwrap();
        assert_eq!(bodies(&got), [(0, None)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offsets_the_broker_no_longer_keeps_are_gone() {
        // The mock cluster keeps about 5 MB per partition and drops the oldest beyond.
        let broker = DevBroker::start(1).unwrap();
        broker.create_topic("t", 1).unwrap();
        let big = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            broker.produce("t", Some(0), None, &big).await.unwrap();
        }
        let fetcher = fetcher(&broker);
        let got = fetcher.fetch("t", 0, vec![0, 1]).await.unwrap();
        assert!(matches!(got[0].1, Fetched::Gone), "offset 0 kept");
        assert!(matches!(got[1].1, Fetched::Gone), "offset 1 kept");
        // The partition is read on after an offset out of its range.
        let got = fetcher.fetch("t", 0, vec![159]).await.unwrap();
        assert!(
            matches!(got[0].1, Fetched::Found { .. }),
            "the last is there"
        );
        let got = fetcher.fetch("t", 0, vec![2, 158]).await.unwrap();
        assert!(matches!(got[0].1, Fetched::Gone), "offset 2 kept");
        assert!(
            matches!(got[1].1, Fetched::Found { .. }),
            "offset 158 is there"
        );
    }
}
