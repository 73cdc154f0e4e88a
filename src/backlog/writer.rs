//! Writing to backlogs: the dispatcher's [`Spill`] hook.
//!
//! A spill only appends the delivery to an open record and returns, so the consumer never
//! waits a Kafka round trip per event of a slow subscription. A subscription's deliveries of
//! one source partition's events share a record until it holds [`record::MAX_DELIVERIES`],
//! reaches [`record::TARGET_BYTES`], or has been open for its linger ([`linger_of`]); then it
//! goes to librdkafka. The producer is idempotent, so records of one subscription land in the order
//! they were sent even when librdkafka retries. Its delivery callback settles the acks of the
//! record's events (their source offsets may then be committed) and tells the lanes where the
//! record landed. A failed write is retried after a pause (its order
//! relative to later records is then lost, and the log says so); a write Kafka can never
//! accept (too large, not authorised) has its events dead-lettered with the cause.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::produce::{is_permanent, record_limit};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::{mpsc, Notify};

use super::record::{self, RecordBuilder};
use super::{topic, BacklogEvents, BacklogSettings};
use crate::deliver::lane::SpillLedger;
use crate::deliver::{Job, JobFrom, Spill, SpillCause, Written};
use crate::dlq::{DeadLetter, Reason};
use crate::event::Payload;
use crate::metrics::Metrics;
use crate::settle::Settler;
use crate::source::ack::Ack;

/// Records being filled, per subscription and source partition. Looked up for every spilled
/// delivery: foldhash rather than SipHash (the keys are hookline's own, not an attacker's).
#[derive(Default)]
struct Open {
    records: HashMap<RecordKey, Filling, foldhash::fast::RandomState>,
}

/// Deliveries of one subscription's events from one source partition share a record: one
/// source partition's events stay in order in one backlog partition.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct RecordKey {
    subscription: Arc<str>,
    topic: Arc<str>,
    partition: i32,
}

/// A record being filled.
struct Filling {
    record: RecordBuilder,
    spilled: Vec<Spilled>,
    /// The lanes to tell where the record landed (one, unless a lane was replaced while the
    /// record was open): once per record, not per delivery.
    written: Vec<Written>,
    cause: SpillCause,
    opened: tokio::time::Instant,
}

impl Filling {
    fn new(job: &Job, cause: SpillCause) -> Self {
        let origin = &job.event.origin;
        Filling {
            record: RecordBuilder::new(
                &job.subscription.id,
                cause,
                &origin.topic,
                origin.partition,
            ),
            spilled: Vec::with_capacity(record::MAX_DELIVERIES),
            written: Vec::with_capacity(1),
            cause,
            opened: tokio::time::Instant::now(),
        }
    }
}

/// A delivery in a record: its ack settles when Kafka acknowledges the record. The rest of its
/// job is dropped once it is in the record's bytes: keeping every job until the record is
/// acknowledged held (and moved) a few hundred bytes per delivery, ten times over beside ten
/// spilling subscriptions. Should Kafka
/// refuse the record for good, its deliveries are read back from its bytes, and their events
/// from `event`, to dead-letter them.
struct Spilled {
    ack: Ack,
    /// The event (shared with every other delivery of it).
    event: Arc<Payload>,
}

/// One record on its way: what its delivery report settles.
pub struct Ticket {
    spilled: Vec<Spilled>,
    written: Vec<Written>,
    subscription: Arc<str>,
    cause: SpillCause,
    topic: String,
    key: String,
}

/// A write that failed, for the retry task.
struct Failed {
    ticket: Box<Ticket>,
    payload: Vec<u8>,
    error: KafkaError,
}

/// The producer's context: settles each record's deliveries when Kafka answers.
pub struct SpillContext {
    metrics: Metrics,
    failed: mpsc::UnboundedSender<Failed>,
}

impl ClientContext for SpillContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, reason, "backlog producer error");
    }
}

impl ProducerContext for SpillContext {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        match result {
            Ok(message) => {
                for written in ticket.written {
                    written.at(message.partition(), message.offset());
                }
                for Spilled { ack, .. } in ticket.spilled {
                    ack.settle();
                }
            }
            Err((error, message)) => {
                self.metrics
                    .backlog_write_errors
                    .with_label_values(&[&ticket.subscription])
                    .inc_by(ticket.spilled.len() as u64);
                let payload = message.payload().unwrap_or_default().to_vec();
                // Nothing to do if the retry task is gone (shutdown): the acks drop unsettled
                // and the events are read again after a restart.
                let _ = self.failed.send(Failed {
                    ticket,
                    payload,
                    error: error.clone(),
                });
            }
        }
    }
}

struct Inner {
    producer: Arc<BaseProducer<SpillContext>>,
    /// Tells the polling thread to end.
    stop_polling: Arc<AtomicBool>,
    /// For dead-lettering what Kafka can never accept.
    settler: Settler,
    settings: BacklogSettings,
    admin: Option<AdminClient<DefaultClientContext>>,
    /// Topics known to exist (created, or found).
    created: Mutex<HashSet<String>>,
    max_record_bytes: usize,
    /// A record is closed before it grows past this.
    close_at: usize,
    /// Records being filled.
    open: Mutex<Open>,
    /// Wakes the task that sends records open for their linger.
    opened: Arc<Notify>,
    /// How long a record stays open ([`linger_of`]).
    linger: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The linger task holds only a weak reference: wake it so that it sees the writer
        // gone and ends.
        self.opened.notify_one();
        self.stop_polling.store(true, Ordering::Relaxed);
    }
}

/// Serves the producer's delivery reports on a thread of its own, as rdkafka's
/// `ThreadedProducer` does, but asking for up to a second at a time: `BaseProducer::poll`
/// spins through the last sub-millisecond of every wait (its timeout is passed to librdkafka in
/// whole milliseconds), which at `ThreadedProducer`'s 100 ms cost an idle router about 10 ms of
/// CPU a second. A report is handled as soon as it arrives either way.
fn spawn_polling(
    producer: Arc<BaseProducer<SpillContext>>,
    stop: Arc<AtomicBool>,
) -> Result<(), WriterError> {
    std::thread::Builder::new()
        .name("backlog-reports".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                producer.poll(Duration::from_secs(1));
            }
        })
        .map(drop)
        .map_err(|e| WriterError(KafkaError::ClientCreation(e.to_string())))
}

/// How long a record stays open for more deliveries before it is sent. In fleet mode every
/// delivery waits that long, so briefly. Otherwise only deliveries of a subscription that
/// cannot keep up do, and the wait delays only when their source offsets are committed: with
/// 5 ms, ten dead subscriptions spilling the events of 32 source partitions filled records of
/// four deliveries each, and sending 60,000 tiny records a second cost more than writing
/// their deliveries.
pub fn linger_of(keyed: bool) -> Duration {
    if keyed {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(100)
    }
}

/// Room kept in a record for a delivery's fields besides its event.
const DELIVERY_OVERHEAD: usize = 512;

/// Writes deliveries to their subscription's backlog. Cheap to clone.
#[derive(Clone)]
pub struct BacklogWriter {
    inner: Arc<Inner>,
}

/// The backlog writer could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the backlog producer")]
pub struct WriterError(#[source] KafkaError);

impl BacklogWriter {
    /// A writer producing with `client` (brokers, security options), creating backlog topics
    /// when `create_topics`. Failed writes are retried, or dead-lettered through `settler`.
    pub fn new(
        client: ClientConfig,
        settings: BacklogSettings,
        create_topics: bool,
        max_message_bytes: usize,
        settler: Settler,
    ) -> Result<Self, WriterError> {
        let max_record_bytes = record_limit(max_message_bytes);
        let mut config = client.clone();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // Records are filled for up to their linger already; this lets librdkafka put the
            // records of several subscriptions into one request, and wake its broker thread
            // once for them: at 1 ms, outside fleet mode, a wake-up per record cost about as
            // much as filling the records.
            .set("linger.ms", if settings.keyed { "1" } else { "10" })
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.kbytes", "65536")
            .set("message.max.bytes", max_record_bytes.to_string());
        let (failed_tx, failed_rx) = mpsc::unbounded_channel();
        let context = SpillContext {
            metrics: settler.metrics().clone(),
            failed: failed_tx,
        };
        let producer: Arc<BaseProducer<SpillContext>> =
            Arc::new(config.create_with_context(context).map_err(WriterError)?);
        let stop_polling = Arc::new(AtomicBool::new(false));
        spawn_polling(producer.clone(), stop_polling.clone())?;
        let admin = if create_topics {
            Some(client.create().map_err(WriterError)?)
        } else {
            None
        };
        let opened = Arc::new(Notify::new());
        let linger_for = linger_of(settings.keyed);
        let writer = BacklogWriter {
            inner: Arc::new(Inner {
                producer,
                stop_polling,
                settings,
                admin,
                created: Mutex::new(HashSet::new()),
                max_record_bytes,
                close_at: record::TARGET_BYTES.min(max_record_bytes.saturating_sub(4096)),
                settler,
                open: Mutex::default(),
                opened: opened.clone(),
                linger: linger_for,
            }),
        };
        // Weak: the tasks must not keep the producer (whose context feeds one) alive.
        tokio::spawn(retry_failed(Arc::downgrade(&writer.inner), failed_rx));
        tokio::spawn(linger(Arc::downgrade(&writer.inner), opened));
        Ok(writer)
    }

    /// Creates the backlog topics of `subscriptions` that do not exist yet (with
    /// `kafka.create_topics`; otherwise they must exist, or the cluster must create them on
    /// first use). Problems are logged, not fatal.
    pub async fn ensure_topics<'a>(&self, subscriptions: impl IntoIterator<Item = &'a str>) {
        let Some(admin) = &self.inner.admin else {
            return;
        };
        let wanted: Vec<String> = {
            let created = self.inner.created.lock().expect("created lock");
            subscriptions
                .into_iter()
                .map(|s| topic::name(&self.inner.settings.prefix, s))
                .filter(|t| !created.contains(t))
                .collect()
        };
        if wanted.is_empty() {
            return;
        }
        let max_bytes = self.inner.max_record_bytes.to_string();
        let topics: Vec<NewTopic> = wanted
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.inner.settings.partitions,
                    TopicReplication::Fixed(-1),
                )
                .set("max.message.bytes", &max_bytes)
            })
            .collect();
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        match admin.create_topics(&topics, &options).await {
            Ok(results) => {
                let mut created = self.inner.created.lock().expect("created lock");
                for result in results {
                    match result {
                        Ok(topic) => {
                            tracing::info!(%topic, "created backlog topic");
                            created.insert(topic);
                        }
                        Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                            created.insert(topic);
                        }
                        Err((topic, code)) => {
                            tracing::warn!(%topic, error = %code, "cannot create backlog topic")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot create backlog topics"),
        }
    }

    fn send(&self, ticket: Box<Ticket>, payload: &[u8]) -> Result<(), Box<Ticket>> {
        let count = ticket.spilled.len().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "hookline-subscription",
                value: Some(&*ticket.subscription),
            })
            .insert(Header {
                key: "hookline-cause",
                value: Some(ticket.cause.as_str()),
            })
            .insert(Header {
                key: "hookline-deliveries",
                value: Some(&count),
            });
        let topic = ticket.topic.clone();
        let key = ticket.key.clone();
        let record = BaseRecord::with_opaque_to(&topic, ticket)
            .key(&key)
            .payload(payload)
            .headers(headers);
        self.inner
            .producer
            .send(record)
            .map_err(|(_, record)| record.delivery_opaque)
    }

    /// Hands a filled record to the producer; gives it back when the producer's buffer is
    /// full.
    fn send_filling(&self, key: &RecordKey, mut filling: Filling) -> Result<(), Filling> {
        let ticket = Box::new(Ticket {
            spilled: std::mem::take(&mut filling.spilled),
            written: std::mem::take(&mut filling.written),
            subscription: key.subscription.clone(),
            cause: filling.cause,
            topic: topic::name(&self.inner.settings.prefix, &key.subscription),
            key: format!("{}/{}", key.topic, key.partition),
        });
        match filling
            .record
            .with_closed(|payload| self.send(ticket, payload))
        {
            Ok(()) => Ok(()),
            Err(ticket) => {
                filling.spilled = ticket.spilled;
                filling.written = ticket.written;
                Err(filling)
            }
        }
    }

    /// Sends the records open for at least `age` (all of them with zero); returns when the
    /// oldest record still open was opened, if any is.
    fn send_open(&self, age: Duration) -> Option<tokio::time::Instant> {
        let mut open = self.inner.open.lock().expect("open records lock");
        let due: Vec<RecordKey> = open
            .records
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= age)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let filling = open.records.remove(&key).expect("due record");
            if let Err(back) = self.send_filling(&key, filling) {
                // The producer's buffer is full; the next round tries again.
                open.records.insert(key, back);
            }
        }
        open.records.values().map(|f| f.opened).min()
    }

    /// Sends every open record, then waits up to `grace` for every record handed over to be
    /// acknowledged. What is still unacknowledged then stays unsettled (its event is read
    /// again after a restart).
    pub fn flush(&self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        while self.send_open(Duration::ZERO).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if let Err(e) = self.inner.producer.flush(left) {
            tracing::warn!(error = %e, "backlog writes still unacknowledged at shutdown; their events will be read again");
        }
    }
}

impl Spill for BacklogWriter {
    fn spill(&self, job: Job, cause: SpillCause, lane: &Arc<SpillLedger>) -> Result<(), Box<Job>> {
        let origin = &job.event.origin;
        let key = RecordKey {
            subscription: job.subscription.id.clone(),
            topic: origin.topic.clone(),
            partition: origin.partition,
        };
        // An event read from a source topic is referred to there; one from a retry tier (or
        // any, with `backlog_events = "copy"`) is copied: the bytes as read, or serialised once
        // for every subscription that spills it.
        let copy = (job.from != JobFrom::Source
            || self.inner.settings.events == BacklogEvents::Copy)
            .then(|| job.event.payload.json());
        let room = match &copy {
            Some(json) => json.len() + DELIVERY_OVERHEAD,
            None if job.dedup.is_empty() => record::REFERENCE_BYTES,
            None => record::REFERENCE_BYTES + DELIVERY_OVERHEAD,
        };
        let mut open = self.inner.open.lock().expect("open records lock");
        let filling = match open.records.entry(key) {
            Entry::Occupied(e) => {
                let filling = e.into_mut();
                // A record with no room for this delivery goes first.
                if filling.record.count() >= record::MAX_DELIVERIES
                    || filling.record.bytes() + room > self.inner.close_at
                {
                    let full = std::mem::replace(filling, Filling::new(&job, cause));
                    let key = RecordKey {
                        subscription: job.subscription.id.clone(),
                        topic: job.event.origin.topic.clone(),
                        partition: job.event.origin.partition,
                    };
                    if let Err(back) = self.send_filling(&key, full) {
                        // The producer's buffer is full: the job goes back, and the lane
                        // tries again.
                        *filling = back;
                        return Err(Box::new(job));
                    }
                    self.inner.opened.notify_one();
                }
                filling
            }
            Entry::Vacant(e) => {
                self.inner.opened.notify_one();
                e.insert(Filling::new(&job, cause))
            }
        };
        match &copy {
            Some(json) => filling.record.push_copy(&job, json),
            None => filling.record.push_reference(&job),
        }
        if !filling.written.iter().any(|w| w.tells(lane)) {
            filling.written.push(Written::new(lane));
        }
        filling.spilled.push(Spilled {
            ack: job.ack,
            event: job.event.payload,
        });
        Ok(())
    }
}

/// Sends records once they have been open for their linger: a spilling subscription's
/// deliveries share records, and a lone delivery waits at most that long. Ends when the
/// writer is gone.
async fn linger(writer: std::sync::Weak<Inner>, opened: Arc<Notify>) {
    loop {
        opened.notified().await;
        let mut oldest = tokio::time::Instant::now();
        loop {
            let Some(inner) = writer.upgrade() else {
                return;
            };
            let linger = inner.linger;
            drop(inner);
            tokio::time::sleep_until(oldest + linger).await;
            let Some(inner) = writer.upgrade() else {
                return;
            };
            match (BacklogWriter { inner }).send_open(linger) {
                Some(next) => oldest = next,
                None => break,
            }
        }
    }
}

/// Dead-letters the deliveries of a record Kafka can never accept, read back from the record's
/// bytes (they are in the order of `spilled`).
fn dead_letter_refused(
    settler: &Settler,
    subscription: &str,
    spilled: Vec<Spilled>,
    payload: &[u8],
    error: &KafkaError,
) {
    let record = match record::decode(payload) {
        Ok(record) if record.deliveries.len() == spilled.len() => record,
        other => {
            // Not possible for a record this writer built; if it were, the acks stay
            // unsettled and the events are read again after a restart.
            let problem = other.map_or_else(|e| e.to_string(), |_| "delivery count".into());
            tracing::error!(subscription, problem, "cannot read back a refused backlog record; its events will be read again after a restart");
            return;
        }
    };
    for (waiting, Spilled { ack, event, .. }) in record.deliveries.into_iter().zip(spilled) {
        let letter = DeadLetter {
            origin: waiting.origin.to_origin(),
            reason: Reason::BacklogWriteFailed,
            error: format!("cannot write to the backlog: {error}"),
            subscription: Some(subscription.to_string()),
            webhook_id: Some(waiting.webhook_id),
            attempts: 0,
            status: None,
            payload: event.json().to_vec(),
        };
        let settler = settler.clone();
        tokio::spawn(async move { settler.dead_letter(letter, ack).await });
    }
}

/// Retries failed writes after a pause, and dead-letters the ones Kafka can never accept.
/// Ends when the writer is gone (its producer's context holds the sending side).
async fn retry_failed(writer: std::sync::Weak<Inner>, mut failed: mpsc::UnboundedReceiver<Failed>) {
    while let Some(Failed {
        mut ticket,
        payload,
        error,
    }) = failed.recv().await
    {
        let sub = ticket.subscription.clone();
        let Some(inner) = writer.upgrade() else {
            // Stopped meanwhile: the ack drops unsettled; the event is read again.
            return;
        };
        if is_permanent(&error) {
            tracing::error!(subscription = %sub, deliveries = ticket.spilled.len(), error = %error, "Kafka refuses this backlog record; dead-lettering its events");
            dead_letter_refused(&inner.settler, &sub, ticket.spilled, &payload, &error);
            continue;
        }
        tracing::warn!(subscription = %sub, error = %error, "backlog write failed; retrying (its order relative to later records is lost)");
        drop(inner);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(inner) = writer.upgrade() else {
            return;
        };
        let writer = BacklogWriter { inner };
        loop {
            match writer.send(ticket, &payload) {
                Ok(()) => break,
                Err(back) => {
                    ticket = back;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
