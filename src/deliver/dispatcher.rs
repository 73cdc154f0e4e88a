//! The dispatcher: one queue and one lane (the task driving the subscription's stack) per
//! subscription, reconciled with each rule set.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::{build_client, BuildError};
use super::events::Observer;
use super::lane::{Lane, Shared};
use super::queue::{self, SendError};
use super::ssrf::Guard;
use super::tls::TlsSettings;
use super::{Divert, DivertCause, Job, SubscriptionSettings, SubscriptionStatus};
use crate::settle::Settler;

/// How long `submit` waits for room in a full queue of a healthy receiver. When none frees in
/// that time the receiver counts as unhealthy and the job is diverted instead.
pub const QUEUE_PATIENCE: Duration = Duration::from_millis(250);

/// Delivery-wide settings (from `[delivery]` in hookline.toml).
#[derive(Clone, Debug, Default)]
pub struct DeliverySettings {
    /// Networks destinations may resolve to even though they are private or loopback.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// The egress proxy deliveries go through, if any.
    pub proxy: Option<super::proxy::ProxySettings>,
}

struct LaneHandle {
    settings: Arc<SubscriptionSettings>,
    sender: queue::Sender,
    update: watch::Sender<Arc<SubscriptionSettings>>,
    observer: Observer,
}

struct Inner {
    shared: Arc<Shared>,
    lanes: RwLock<HashMap<Arc<str>, LaneHandle>>,
}

/// Owns every subscription's queue. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl Dispatcher {
    /// A dispatcher with no subscriptions yet; call [`Dispatcher::apply`]. Fails if no HTTP
    /// client can be built at all (a broken TLS backend), so that shows at startup.
    pub fn new(settler: Settler, settings: DeliverySettings) -> Result<Self, BuildError> {
        let guard = Arc::new(Guard::new(settings.allow_networks).with_proxy(settings.proxy));
        build_client(&TlsSettings::default(), guard.clone(), 1)?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    settler,
                    guard,
                    tasks: TaskTracker::new(),
                    closing: CancellationToken::new(),
                    abort: CancellationToken::new(),
                    divert: RwLock::new(None),
                }),
                lanes: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// Installs the hook that takes jobs a full queue cannot hold and jobs whose in-memory
    /// retries ran out (the durable retry topic).
    pub fn set_divert(&self, divert: Arc<dyn Divert>) {
        *self.inner.shared.divert.write().expect("divert lock") = Some(divert);
    }

    /// Reconciles the running lanes with `subscriptions`: unchanged ones keep their queue and
    /// stack; changed ones keep their queue (and its order) and get a new stack while requests
    /// in flight on the old one finish; removed ones deliver what they hold and stop.
    pub fn apply(&self, subscriptions: &[Arc<SubscriptionSettings>]) {
        let mut lanes = self.inner.lanes.write().expect("lanes lock");
        // Dropping a handle closes its queue and settings channel: the lane drains and stops.
        lanes.retain(|id, _| subscriptions.iter().any(|s| &s.id == id));
        for sub in subscriptions {
            match lanes.get_mut(&sub.id) {
                Some(lane) if lane.settings == *sub => {}
                Some(lane) => {
                    lane.sender.set_capacity(sub.config.queue);
                    lane.settings = sub.clone();
                    let _ = lane.update.send(sub.clone());
                }
                None => {
                    let (sender, receiver) = queue::bounded(sub.config.queue);
                    let (update, updates) = watch::channel(sub.clone());
                    let observer =
                        Observer::new(sub.id.clone(), self.inner.shared.settler.metrics().clone());
                    let lane = Lane::new(
                        self.inner.shared.clone(),
                        receiver,
                        updates,
                        observer.clone(),
                    );
                    self.inner.shared.tasks.spawn(lane.run());
                    lanes.insert(
                        sub.id.clone(),
                        LaneHandle {
                            settings: sub.clone(),
                            sender,
                            update,
                            observer,
                        },
                    );
                }
            }
        }
    }

    /// Queues `job`. Returns at once when there is room; when the subscription's queue is full
    /// it offers the job to the [`Divert`] hook, or (without one, or if the hook gives it back)
    /// waits for room. A job for a subscription that is not running is settled as dropped.
    pub async fn submit(&self, job: Job) {
        let lane = {
            let lanes = self.inner.lanes.read().expect("lanes lock");
            lanes
                .get(&job.subscription.id)
                .map(|l| (l.sender.clone(), l.observer.clone()))
        };
        let settler = &self.inner.shared.settler;
        let Some((sender, observer)) = lane else {
            let id = job.subscription.id.clone();
            settler.dropped(&id, job.ack);
            return;
        };
        settler
            .metrics()
            .deliveries_submitted
            .with_label_values(&[&job.subscription.id])
            .inc();
        // Counted before it is queued, so the lane's count-down never sees it early.
        observer.queue_depth(1);
        let divert = self.inner.shared.divert();
        // With somewhere durable to put it, a job waits for room only while its receiver is
        // healthy: a receiver that is merely busy back-pressures, one that fails or hangs has
        // its overflow diverted so the consumer and the other subscriptions go on.
        let paused = job.subscription.config.status == SubscriptionStatus::Paused;
        let mut queued = sender.try_send(job);
        if divert.is_some() {
            while let Err(SendError::Full(job)) = queued {
                // A paused subscription's queue does not move until it is resumed.
                if paused || !observer.is_healthy() {
                    queued = Err(SendError::Full(job));
                    break;
                }
                queued = sender.send_within(*job, QUEUE_PATIENCE).await;
                if matches!(queued, Err(SendError::Full(_))) {
                    // Full and not moving: a receiver that hangs has not failed an attempt
                    // yet, but it is no longer keeping up.
                    observer.queue_stalled();
                }
            }
        }
        let job = match queued {
            Ok(()) => return,
            Err(SendError::Full(job)) => {
                match divert {
                    Some(divert) => {
                        observer.queue_depth(-1);
                        // In the background: the consumer must not wait a Kafka round trip
                        // per event of a dead receiver, or it would slow every other
                        // subscription down. The job's ack keeps its offset uncommitted
                        // until the write is acknowledged.
                        let settler = settler.clone();
                        self.inner.shared.tasks.spawn(async move {
                            if let Err(job) = divert.divert(*job, DivertCause::QueueFull).await {
                                observer.queue_depth(1);
                                if let Err(SendError::Closed(job) | SendError::Full(job)) =
                                    sender.send(job).await
                                {
                                    observer.queue_depth(-1);
                                    settler.dropped(&job.subscription.id, job.ack);
                                }
                            }
                        });
                        return;
                    }
                    None => sender.send(*job).await,
                }
            }
            Err(e) => Err(e),
        };
        if let Err(SendError::Closed(job) | SendError::Full(job)) = job {
            // The lane closed between lookup and send (a reload removed the subscription):
            // the rule set no longer wants this event.
            observer.queue_depth(-1);
            settler.dropped(&job.subscription.id, job.ack);
        }
    }

    /// Closes every queue; lanes start no new request, requests in flight may finish for up
    /// to `grace`. Whatever is unfinished or still queued is left unsettled, so it is
    /// re-delivered after a restart.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.lanes.write().expect("lanes lock").clear();
        let shared = &self.inner.shared;
        shared.closing.cancel();
        shared.tasks.close();
        if tokio::time::timeout(grace, shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "deliveries still in flight at shutdown; their events will be re-delivered"
            );
            shared.abort.cancel();
            shared.tasks.wait().await;
        }
    }
}
