//! Turning queued jobs into requests: one job per request, or (with `batch`) up to
//! `max_events` jobs and `max_bytes` of body per request as a JSON array, waiting at most
//! `max_wait` after the first job for the batch to fill.
//!
//! A batch's `webhook-id` is derived from the ids of its events, in order: the same batch keeps
//! it across retries. After a crash the events may be grouped differently and the batch then
//! gets a different id; a batch of one keeps its event's own id.

use bytes::Bytes;
use tokio::time::Instant;

use super::config::BatchConfig;
use super::queue::Queue;
use super::request::Delivery;
use super::{Job, JobFrom};

/// Jobs sent together, with the request carrying them.
pub struct Batch {
    /// The jobs, in queue order. Each is settled on its own.
    pub jobs: Vec<Job>,
    /// The request.
    pub delivery: Delivery,
}

/// Reads a subscription's queue and groups jobs into requests.
pub struct Batcher {
    config: Option<BatchConfig>,
    /// A job read that did not fit the previous batch.
    carry: Option<(Job, Vec<u8>)>,
}

fn encode(job: &Job) -> Vec<u8> {
    // Only jobs with a body are queued (the dispatcher and the backlog reader see to it).
    debug_assert!(job.body.is_some(), "a job without a body was queued");
    serde_json::to_vec(job.body.as_ref().unwrap_or(&serde_json::Value::Null))
        .expect("a JSON value serialises")
}

/// Decides on each job taken from the queue: `Some` to send it, `None` when it was settled
/// on the spot (a dedup repeat).
pub trait Keep: FnMut(Job) -> Option<Job> {}
impl<F: FnMut(Job) -> Option<Job>> Keep for F {}

/// The `webhook-id` of a batch of events with `ids`.
pub fn batch_id<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    let mut hash = Sha256::new();
    let mut count = 0;
    let mut only = "";
    for id in ids {
        hash.update(id.as_bytes());
        hash.update(b"\n");
        count += 1;
        only = id;
    }
    if count == 1 {
        return only.to_string();
    }
    let mut out = String::from("msg_batch_");
    for byte in &hash.finalize()[..16] {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

impl Batcher {
    /// A batcher for a subscription's `batch` block (`None`: one job per request).
    pub fn new(config: Option<BatchConfig>) -> Self {
        Batcher {
            config,
            carry: None,
        }
    }

    /// The `batch` block in force.
    pub fn set_config(&mut self, config: Option<BatchConfig>) {
        self.config = config;
    }

    /// Whether a job read earlier is waiting.
    pub fn has_carry(&self) -> bool {
        self.carry.is_some()
    }

    /// The job read earlier that did not fit its batch, if any.
    pub fn take_carry(&mut self) -> Option<Job> {
        self.carry.take().map(|(job, _)| job)
    }

    /// Waits for the first job of the next request; `None` when the queue is closed and
    /// empty. Cancel-safe: nothing is lost if the wait is abandoned (a job `keep` settled is
    /// settled either way).
    pub async fn first(&mut self, queue: &Queue, keep: &mut impl Keep) -> Option<First> {
        if let Some((job, body)) = self.carry.take() {
            return Some(First { job, body });
        }
        loop {
            let job = queue.pop().await?;
            if let Some(job) = keep(job) {
                let body = encode(&job);
                return Some(First { job, body });
            }
        }
    }

    /// Completes the request that starts with `first`: with batching, reads more jobs until
    /// `max_events`, `max_bytes` or `max_wait`. Not cancel-safe: run it to completion.
    pub async fn fill(&mut self, first: First, queue: &Queue, keep: &mut impl Keep) -> Batch {
        let First {
            job: first,
            body: first_body,
        } = first;
        let Some(config) = self.config.clone() else {
            let mut delivery = Delivery::new(first.webhook_id.as_str(), first_body);
            delivery.holds_source = first.from != JobFrom::Backlog;
            return Batch {
                jobs: vec![first],
                delivery,
            };
        };
        let deadline = Instant::now() + config.max_wait;
        let mut size = 2 + first_body.len();
        let mut jobs = vec![first];
        let mut bodies = vec![first_body];
        while jobs.len() < config.max_events {
            let next = match queue.try_pop() {
                Ok(job) => Some(job),
                Err(true) => None,
                Err(false) => tokio::time::timeout_at(deadline, queue.pop())
                    .await
                    .ok()
                    .flatten(),
            };
            let Some(job) = next else { break };
            let Some(job) = keep(job) else { continue };
            let body = encode(&job);
            if size + 1 + body.len() > config.max_bytes {
                self.carry = Some((job, body));
                break;
            }
            size += 1 + body.len();
            jobs.push(job);
            bodies.push(body);
        }
        let mut out = Vec::with_capacity(size);
        out.push(b'[');
        for (i, body) in bodies.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(body);
        }
        out.push(b']');
        let id = batch_id(jobs.iter().map(|j| j.webhook_id.as_str()));
        let mut delivery = Delivery::new(id, Bytes::from(out));
        delivery.holds_source = jobs.iter().any(|j| j.from != JobFrom::Backlog);
        Batch { jobs, delivery }
    }

    /// `first` then `fill`, for callers with nothing else to wait on.
    pub async fn next(&mut self, queue: &Queue, keep: &mut impl Keep) -> Option<Batch> {
        let first = self.first(queue, keep).await?;
        Some(self.fill(first, queue, keep).await)
    }
}

/// The first job of a request, read from the queue.
pub struct First {
    job: Job,
    body: Vec<u8>,
}

impl First {
    /// The job.
    pub fn job(&self) -> &Job {
        &self.job
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::deliver::{test_job, JobFrom};

    fn job(n: i64, body: serde_json::Value) -> Job {
        let mut job = test_job(n, JobFrom::Source);
        job.body = Some(body);
        job
    }

    fn queue() -> Queue {
        let depth = prometheus::IntGauge::new("d", "d").unwrap();
        Queue::new(16, depth, Arc::default())
    }

    fn all(job: Job) -> Option<Job> {
        Some(job)
    }

    fn batching(max_events: usize, max_bytes: usize) -> Option<BatchConfig> {
        Some(BatchConfig {
            max_events,
            max_bytes,
            max_wait: Duration::from_secs(1),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn groups_up_to_max_events_as_a_json_array() {
        let q = queue();
        for n in 0..5 {
            q.try_push(job(n, json!({"n": n}))).unwrap();
        }
        let mut batcher = Batcher::new(batching(3, 1 << 20));
        let mut taken = 0;
        let mut keep = |j: Job| {
            taken += 1;
            Some(j)
        };
        let b = batcher.next(&q, &mut keep).await.unwrap();
        assert_eq!(b.jobs.len(), 3);
        let body: serde_json::Value = serde_json::from_slice(&b.delivery.body).unwrap();
        assert_eq!(body, json!([{"n": 0}, {"n": 1}, {"n": 2}]));
        assert!(b.delivery.webhook_id.starts_with("msg_batch_"));
        // Stable: the same events give the same id.
        let ids: Vec<&str> = b.jobs.iter().map(|j| j.webhook_id.as_str()).collect();
        assert_eq!(batch_id(ids.iter().copied()), *b.delivery.webhook_id);
        // The rest goes out when max_wait passes, not before.
        let start = Instant::now();
        let b = batcher.next(&q, &mut keep).await.unwrap();
        assert_eq!(b.jobs.len(), 2);
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        assert_eq!(taken, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn max_bytes_starts_a_new_batch_and_keeps_order() {
        let q = queue();
        for n in 0..3 {
            q.try_push(job(n, json!({"pad": "x".repeat(40)}))).unwrap();
        }
        q.close();
        // Each body is 50 bytes: two fit in 2 + 50 + 1 + 50 = 103.
        let mut batcher = Batcher::new(batching(10, 103));
        let first = batcher.next(&q, &mut all).await.unwrap();
        assert_eq!(first.jobs.len(), 2);
        assert_eq!(first.delivery.body.len(), 103);
        assert!(batcher.has_carry());
        let second = batcher.next(&q, &mut all).await.unwrap();
        assert_eq!(second.jobs.len(), 1);
        assert_eq!(second.jobs[0].event.origin.offset, 2);
        // A batch of one keeps its event's id, and is still an array.
        assert_eq!(
            second.delivery.webhook_id.as_ref(),
            second.jobs[0].webhook_id
        );
        assert!(second.delivery.body.starts_with(b"["));
        assert!(batcher.next(&q, &mut all).await.is_none());
    }

    #[tokio::test]
    async fn without_batching_each_job_is_its_own_request() {
        let q = queue();
        q.try_push(job(7, json!({"a": 1}))).unwrap();
        let mut batcher = Batcher::new(None);
        let b = batcher.next(&q, &mut all).await.unwrap();
        assert_eq!(&b.delivery.body[..], br#"{"a":1}"#);
        assert_eq!(b.delivery.webhook_id.as_ref(), b.jobs[0].webhook_id);
    }
}
