//! Writing to backlogs: the dispatcher's [`Spill`] hook.
//!
//! A spill only queues the record in librdkafka and returns, so the consumer never waits a
//! Kafka round trip per event of a slow subscription. The producer is idempotent, so records
//! of one subscription land in the order they were spilled even when librdkafka retries. Its
//! delivery callback settles the event's ack (the source offset may then be committed) and
//! tells the lane where the record landed. A failed write is retried after a pause (its order
//! relative to later records is then lost, and the log says so); a write Kafka can never
//! accept (too large, not authorised) is dead-lettered with its cause.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use tokio::sync::mpsc;

use super::{record, topic, BacklogSettings};
use crate::deliver::{Job, Spill, SpillCause, Written};
use crate::dlq::{DeadLetter, Reason};
use crate::metrics::Metrics;
use crate::settle::Settler;

/// One record on its way: what its delivery report settles.
pub struct Ticket {
    job: Job,
    cause: SpillCause,
    written: Written,
    topic: String,
}

/// A write that failed, for the retry task.
struct Failed {
    ticket: Box<Ticket>,
    payload: Vec<u8>,
    error: KafkaError,
}

/// The producer's context: settles each record when Kafka answers.
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
                let Ticket { job, written, .. } = *ticket;
                written.at(message.partition(), message.offset());
                job.ack.settle();
            }
            Err((error, message)) => {
                self.metrics
                    .backlog_write_errors
                    .with_label_values(&[&ticket.job.subscription.id])
                    .inc();
                let payload = message.payload().unwrap_or_default().to_vec();
                // Nothing to do if the retry task is gone (shutdown): the ack drops unsettled
                // and the event is read again after a restart.
                let _ = self.failed.send(Failed {
                    ticket,
                    payload,
                    error: error.clone(),
                });
            }
        }
    }
}

/// Errors no retry can fix.
fn is_permanent(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::InvalidTopic
        )
    )
}

struct Inner {
    producer: ThreadedProducer<SpillContext>,
    /// For dead-lettering what Kafka can never accept.
    settler: Settler,
    settings: BacklogSettings,
    admin: Option<AdminClient<DefaultClientContext>>,
    /// Topics known to exist (created, or found).
    created: Mutex<HashSet<String>>,
    max_record_bytes: usize,
}

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
        // Room for the event and the record around it.
        let max_record_bytes = (max_message_bytes + 64 * 1024).max(1_000_000);
        let mut config = client.clone();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.kbytes", "65536")
            .set("message.max.bytes", max_record_bytes.to_string());
        let (failed_tx, failed_rx) = mpsc::unbounded_channel();
        let context = SpillContext {
            metrics: settler.metrics().clone(),
            failed: failed_tx,
        };
        let producer: ThreadedProducer<SpillContext> =
            config.create_with_context(context).map_err(WriterError)?;
        let admin = if create_topics {
            Some(client.create().map_err(WriterError)?)
        } else {
            None
        };
        let writer = BacklogWriter {
            inner: Arc::new(Inner {
                producer,
                settings,
                admin,
                created: Mutex::new(HashSet::new()),
                max_record_bytes,
                settler,
            }),
        };
        // Weak: the task must not keep the producer (whose context feeds it) alive.
        tokio::spawn(retry_failed(Arc::downgrade(&writer.inner), failed_rx));
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
        let job = &ticket.job;
        let origin = &job.event.origin;
        // Keyed by source partition: one source partition's events stay in order in one
        // backlog partition, however many the topic has.
        let key = format!("{}/{}", origin.topic, origin.partition);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "hookline-subscription",
                value: Some(&*job.subscription.id),
            })
            .insert(Header {
                key: "hookline-webhook-id",
                value: Some(&job.webhook_id),
            })
            .insert(Header {
                key: "hookline-cause",
                value: Some(ticket.cause.as_str()),
            });
        let topic = ticket.topic.clone();
        let record = BaseRecord::with_opaque_to(&topic, ticket)
            .key(&key)
            .payload(payload)
            .headers(headers);
        self.inner
            .producer
            .send(record)
            .map_err(|(_, record)| record.delivery_opaque)
    }

    /// Waits up to `grace` for every record handed over to be acknowledged. What is still
    /// unacknowledged then stays unsettled (its event is read again after a restart).
    pub fn flush(&self, grace: Duration) {
        if let Err(e) = self.inner.producer.flush(grace) {
            tracing::warn!(error = %e, "backlog writes still unacknowledged at shutdown; their events will be read again");
        }
    }
}

impl Spill for BacklogWriter {
    fn spill(&self, job: Job, cause: SpillCause, written: Written) -> Result<(), Box<Job>> {
        let payload = record::encode(&job, cause);
        let topic = topic::name(&self.inner.settings.prefix, &job.subscription.id);
        let ticket = Box::new(Ticket {
            job,
            cause,
            written,
            topic,
        });
        // On a full buffer the job goes back; its `Written` is dropped, which the lane
        // counts as done with.
        self.send(ticket, &payload)
            .map_err(|ticket| Box::new(ticket.job))
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
        let sub = ticket.job.subscription.id.clone();
        let Some(inner) = writer.upgrade() else {
            // Stopped meanwhile: the ack drops unsettled; the event is read again.
            return;
        };
        if is_permanent(&error) {
            tracing::error!(subscription = %sub, origin = %ticket.job.event.origin, error = %error, "Kafka refuses this backlog record; dead-lettering the event");
            let Ticket { job, .. } = *ticket;
            let letter = DeadLetter {
                origin: job.event.origin.clone(),
                reason: Reason::BacklogWriteFailed,
                error: format!("cannot write to the backlog: {error}"),
                subscription: Some(sub.to_string()),
                webhook_id: Some(job.webhook_id.clone()),
                attempts: 0,
                status: None,
                payload: serde_json::to_vec(&*job.event.payload).expect("JSON serialises"),
            };
            let settler = inner.settler.clone();
            tokio::spawn(async move { settler.dead_letter(letter, job.ack).await });
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
