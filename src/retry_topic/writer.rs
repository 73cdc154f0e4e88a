//! Moving a job to its next retry tier: the dispatcher's [`Divert`] hook. Writing the record
//! settles the job's source offset, so a dead receiver's backlog waits in Kafka, not in memory,
//! and the consumer moves on (DESIGN.md invariant 2).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use super::record::RetryRecord;
use super::schedule::RetrySchedule;
use crate::deliver::{Divert, DivertCause, Job};
use crate::dlq::{DeadLetter, Reason};
use crate::settle::Settler;

struct Inner {
    producer: FutureProducer,
    schedule: RetrySchedule,
    /// Absent for a writer that only writes records (`hookline replay`).
    settler: Option<Settler>,
}

/// Writes diverted jobs to the tier of their next round, or dead-letters them when the
/// schedule is exhausted. Cheap to clone.
#[derive(Clone)]
pub struct RetryWriter {
    inner: Arc<Inner>,
}

impl RetryWriter {
    /// A writer producing through `producer`.
    pub fn new(producer: FutureProducer, schedule: RetrySchedule, settler: Settler) -> Self {
        RetryWriter {
            inner: Arc::new(Inner {
                producer,
                schedule,
                settler: Some(settler),
            }),
        }
    }

    /// A writer for [`RetryWriter::write`] only, outside a running router.
    pub fn new_for_replay(producer: FutureProducer, schedule: RetrySchedule) -> Self {
        RetryWriter {
            inner: Arc::new(Inner {
                producer,
                schedule,
                settler: None,
            }),
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> &RetrySchedule {
        &self.inner.schedule
    }

    /// Writes `record` to `topic` and waits for the broker's acknowledgement.
    pub async fn write(
        &self,
        topic: &str,
        record: &RetryRecord,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let payload = serde_json::to_vec(record).expect("a retry record serialises");
        let due = chrono::DateTime::from_timestamp_millis(record.due_ms)
            .unwrap_or_default()
            .to_rfc3339();
        let round = record.round.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "hookline-subscription",
                value: Some(&record.subscription),
            })
            .insert(Header {
                key: "hookline-webhook-id",
                value: Some(&record.webhook_id),
            })
            .insert(Header {
                key: "hookline-round",
                value: Some(&round),
            })
            .insert(Header {
                key: "hookline-due",
                value: Some(&due),
            });
        // Keyed by delivery id: every round of one delivery lands on the same partition.
        let message = FutureRecord::to(topic)
            .key(&record.webhook_id)
            .payload(&payload)
            .headers(headers);
        self.inner
            .producer
            .send(message, Timeout::After(Duration::from_secs(30)))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }

    async fn divert_job(&self, job: Job, cause: DivertCause) -> Result<(), Job> {
        let DivertCause::RetriesExhausted {
            attempts,
            status,
            error,
        } = cause;
        let Some(settler) = &self.inner.settler else {
            return Err(job);
        };
        let subscription = job.subscription.id.clone();
        let round = job.retry_round + 1;
        let Some(delay) = self.inner.schedule.delay(round) else {
            let letter = DeadLetter {
                origin: job.event.origin.clone(),
                reason: Reason::RetryScheduleExhausted,
                error: format!(
                    "still failing after {} durable retry rounds: {error}",
                    self.inner.schedule.rounds()
                ),
                subscription: Some(subscription.to_string()),
                webhook_id: Some(job.webhook_id.clone()),
                attempts,
                status,
                payload: job.event.payload.json().to_vec(),
            };
            settler.dead_letter(letter, job.ack).await;
            return Ok(());
        };
        let due = chrono::Utc::now() + delay;
        let record = match RetryRecord::from_job(&job, round, due, Some(error.clone()), status) {
            Ok(record) => record,
            Err(e) => {
                // Only the rules' fields of this event were ever parsed, and the rest is not
                // JSON a record can hold: it goes to the dead-letter topic as it came.
                tracing::warn!(%subscription, origin = %job.event.origin, error = %e, "event cannot be kept in a retry record; dead-lettering it");
                return Err(job);
            }
        };
        let topic = self.inner.schedule.topic_for(delay);
        let written = tokio::select! {
            r = self.write(&topic, &record) => r,
            // The grace is over: the job stays unsettled and is re-delivered after a restart.
            _ = settler.stopping().cancelled() => {
                drop(job);
                return Ok(());
            }
        };
        match written {
            Ok(()) => {
                let metrics = settler.metrics();
                metrics
                    .retry_topic_writes
                    .with_label_values(&[&subscription])
                    .inc();
                metrics
                    .deliveries
                    .with_label_values(&[&subscription, "retry_topic"])
                    .inc();
                tracing::info!(
                    subscription = &*subscription,
                    origin = %job.event.origin,
                    round,
                    due = %due.to_rfc3339(),
                    %error,
                    "delivery moved to the retry topic"
                );
                job.ack.settle();
                Ok(())
            }
            Err(e) if crate::produce::is_permanent(&e) => {
                // Retrying the same record cannot help: dead-letter the event with the cause
                // (the settler writes it without its payload if Kafka refuses that too).
                tracing::error!(%topic, error = %e, origin = %job.event.origin, "Kafka refuses this retry record; dead-lettering the event");
                let letter = DeadLetter {
                    origin: job.event.origin.clone(),
                    reason: Reason::RetryWriteFailed,
                    error: format!(
                        "cannot write to retry tier {topic}: {e}; last failure: {error}"
                    ),
                    subscription: Some(subscription.to_string()),
                    webhook_id: Some(job.webhook_id.clone()),
                    attempts,
                    status,
                    payload: job.event.payload.json().to_vec(),
                };
                settler.dead_letter(letter, job.ack).await;
                Ok(())
            }
            Err(e) => {
                // The lane falls back to what it does without a retry topic: dead-letter.
                tracing::error!(%topic, error = %e, "cannot write to the retry topic");
                Err(job)
            }
        }
    }
}

impl Divert for RetryWriter {
    fn divert(&self, job: Job, cause: DivertCause) -> BoxFuture<'static, Result<(), Job>> {
        let this = self.clone();
        Box::pin(async move { this.divert_job(job, cause).await })
    }
}
