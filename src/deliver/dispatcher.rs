//! Per-subscription queues and their workers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::worker::Worker;
use super::{Job, SubscriptionSettings};
use crate::settle::Settler;

/// Delivery-wide settings (from `[delivery]` in hookline.toml).
#[derive(Clone, Debug, Default)]
pub struct DeliverySettings {
    /// Networks destinations may resolve to even though they are private or loopback.
    pub allow_networks: Vec<ipnet::IpNet>,
}

/// Building the HTTP client failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client")]
pub struct BuildError(#[source] reqwest::Error);

struct Queue {
    settings: Arc<SubscriptionSettings>,
    sender: mpsc::Sender<Job>,
}

struct Inner {
    client: reqwest::Client,
    settler: Settler,
    queues: RwLock<HashMap<Arc<str>, Queue>>,
    workers: TaskTracker,
}

/// Owns every subscription's queue. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl Dispatcher {
    /// A dispatcher with no subscriptions yet; call [`Dispatcher::apply`].
    pub fn new(settler: Settler, settings: DeliverySettings) -> Result<Self, BuildError> {
        let _ = settings;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError)?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                client,
                settler,
                queues: RwLock::new(HashMap::new()),
                workers: TaskTracker::new(),
            }),
        })
    }

    /// Starts queues for new or changed subscriptions and closes those of removed ones. A closed
    /// queue's workers finish what it holds before they stop.
    pub fn apply(&self, subscriptions: &[Arc<SubscriptionSettings>]) {
        let mut queues = self.inner.queues.write().expect("queues lock");
        queues.retain(|id, _| subscriptions.iter().any(|s| &s.id == id));
        for sub in subscriptions {
            if queues.get(&sub.id).is_some_and(|q| q.settings == *sub) {
                continue;
            }
            let (sender, receiver) = mpsc::channel(sub.config.queue);
            let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
            for _ in 0..sub.config.concurrency {
                let worker = Worker::new(
                    sub.clone(),
                    self.inner.client.clone(),
                    self.inner.settler.clone(),
                );
                self.inner.workers.spawn(worker.run(receiver.clone()));
            }
            queues.insert(
                sub.id.clone(),
                Queue {
                    settings: sub.clone(),
                    sender,
                },
            );
        }
    }

    /// Queues `job`, waiting while its subscription's queue is full.
    pub async fn submit(&self, job: Job) {
        let sender = {
            let queues = self.inner.queues.read().expect("queues lock");
            queues.get(&job.subscription.id).map(|q| q.sender.clone())
        };
        let metrics = self.inner.settler.metrics();
        match sender {
            Some(sender) => {
                metrics
                    .deliveries_submitted
                    .with_label_values(&[&job.subscription.id])
                    .inc();
                metrics
                    .queue_depth
                    .with_label_values(&[&job.subscription.id])
                    .inc();
                if let Err(mpsc::error::SendError(job)) = sender.send(job).await {
                    // The queue closed between lookup and send (a reload removed it): the
                    // subscription no longer exists, so the rule set no longer wants this event.
                    metrics
                        .queue_depth
                        .with_label_values(&[&job.subscription.id])
                        .dec();
                    self.inner.settler.dropped(&job.subscription.id, job.ack);
                }
            }
            None => {
                let id = job.subscription.id.clone();
                self.inner.settler.dropped(&id, job.ack);
            }
        }
    }

    /// Closes every queue and waits up to `grace` for workers to finish what they hold.
    /// Whatever is unfinished then is left unsettled and re-delivered after a restart.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.queues.write().expect("queues lock").clear();
        self.inner.workers.close();
        if tokio::time::timeout(grace, self.inner.workers.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "delivery workers still busy at shutdown; their events will be re-delivered"
            );
        }
    }
}
