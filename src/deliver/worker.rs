//! First-cut delivery worker: POST with a timeout and a few retries with backoff.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, Mutex};

use super::{Job, SubscriptionSettings};
use crate::dlq::{DeadLetter, Reason};
use crate::settle::Settler;

pub(super) struct Worker {
    sub: Arc<SubscriptionSettings>,
    client: reqwest::Client,
    settler: Settler,
}

enum Attempt {
    Delivered,
    Retry { status: Option<u16>, error: String },
    Reject { status: u16, error: String },
}

impl Worker {
    pub(super) fn new(
        sub: Arc<SubscriptionSettings>,
        client: reqwest::Client,
        settler: Settler,
    ) -> Self {
        Worker {
            sub,
            client,
            settler,
        }
    }

    pub(super) async fn run(self, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let job = { queue.lock().await.recv().await };
            let Some(job) = job else { return };
            self.settler
                .metrics()
                .queue_depth
                .with_label_values(&[&self.sub.id])
                .dec();
            self.deliver(job).await;
        }
    }

    async fn deliver(&self, job: Job) {
        let body = serde_json::to_vec(&job.body).expect("a JSON value serialises");
        let retry = &self.sub.config.retry;
        let mut attempts = 0;
        let (status, error, reason) = loop {
            attempts += 1;
            match self.attempt(&job, &body).await {
                Attempt::Delivered => {
                    let latency = (chrono::Utc::now() - job.event.received_at)
                        .to_std()
                        .unwrap_or_default();
                    self.settler
                        .metrics()
                        .delivery_latency
                        .with_label_values(&[&self.sub.id])
                        .observe(latency.as_secs_f64());
                    self.settler.delivered(&self.sub.id, job.ack);
                    return;
                }
                Attempt::Reject { status, error } => break (Some(status), error, Reason::Rejected),
                Attempt::Retry { status, error } if attempts >= retry.attempts => {
                    break (status, error, Reason::RetriesExhausted)
                }
                Attempt::Retry { .. } => {
                    let ceiling = retry
                        .initial_backoff
                        .saturating_mul(1 << (attempts - 1).min(16))
                        .min(retry.max_backoff);
                    let wait = rand::rng().random_range(Duration::ZERO..=ceiling);
                    tokio::time::sleep(wait).await;
                }
            }
        };
        let letter = DeadLetter {
            origin: job.event.origin.clone(),
            reason,
            error,
            subscription: Some(self.sub.id.to_string()),
            webhook_id: Some(job.webhook_id.clone()),
            attempts,
            status,
            payload: serde_json::to_vec(&*job.event.payload).expect("a JSON value serialises"),
        };
        self.settler.dead_letter(letter, job.ack).await;
    }

    async fn attempt(&self, job: &Job, body: &[u8]) -> Attempt {
        let class = |c: &str| {
            self.settler
                .metrics()
                .delivery_attempts
                .with_label_values(&[&self.sub.id, c])
                .inc()
        };
        let request = self
            .client
            .post(self.sub.url.clone())
            .timeout(self.sub.config.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &job.webhook_id)
            .body(body.to_vec());
        match request.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                class(&format!("{}xx", status / 100));
                match status {
                    200..=299 => Attempt::Delivered,
                    408 | 429 | 500..=599 if status != 501 && status != 505 => Attempt::Retry {
                        status: Some(status),
                        error: format!("receiver answered {status}"),
                    },
                    _ => Attempt::Reject {
                        status,
                        error: format!("receiver answered {status}"),
                    },
                }
            }
            Err(e) => {
                class(if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "error"
                });
                // without_url: a query-string token must never reach logs or the DLQ.
                Attempt::Retry {
                    status: None,
                    error: e.without_url().to_string(),
                }
            }
        }
    }
}
