//! The dispatcher: one lane per subscription, reconciled with each rule set, and the entry
//! point where the pipeline and the retry readers hand over deliveries.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::{build_client, BuildError};
use super::health::DeliveryHealth;
use super::lane::{Lane, Shared};
use super::ssrf::Guard;
use super::tls::TlsSettings;
use super::{Divert, Gone, Job, Spill, SpillCause, SubscriptionSettings};
use crate::rules::dedup::DedupStore;
use crate::settle::Settler;

/// Delivery-wide settings (from `[delivery]` and `[kafka]` in hookline.toml).
#[derive(Clone, Debug)]
pub struct DeliverySettings {
    /// Networks destinations may resolve to even though they are private or loopback.
    pub allow_networks: Vec<ipnet::IpNet>,
    /// A queued source event older than this moves its lane to the backlog.
    pub spill_after: Duration,
    /// Source jobs all queues together may hold (half the source's in-flight budget).
    pub source_limit: usize,
    /// Fleet mode: every delivery goes through its subscription's backlog, whose partition
    /// one instance of the consumer group owns.
    pub keyed: bool,
    /// The egress proxy deliveries go through, if any.
    pub proxy: Option<super::proxy::ProxySettings>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            allow_networks: Vec::new(),
            spill_after: Duration::from_secs(1),
            source_limit: 5_000,
            keyed: false,
            proxy: None,
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// Looked up twice per delivery: foldhash rather than SipHash (the keys are subscription
    /// ids from configuration).
    lanes: RwLock<HashMap<Arc<str>, Lane, foldhash::fast::RandomState>>,
    keyed: bool,
}

/// Owns every subscription's lane. Cheap to clone.
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
                    closing_now: std::sync::atomic::AtomicBool::new(false),
                    abort: CancellationToken::new(),
                    divert: RwLock::new(None),
                    spill: std::sync::OnceLock::new(),
                    gone: RwLock::new(None),
                    health: Arc::default(),
                    dedup: DedupStore::new(),
                    source_held: Arc::new(AtomicUsize::new(0)),
                    source_limit: settings.source_limit.max(1),
                    spill_after: settings.spill_after,
                    lanes: RwLock::new(Vec::new()),
                    epoch: tokio::time::Instant::now(),
                }),
                lanes: RwLock::new(HashMap::default()),
                keyed: settings.keyed,
            }),
        })
    }

    /// Installs the hook that takes jobs whose in-memory retries ran out (the durable retry
    /// tiers).
    pub fn set_divert(&self, divert: Arc<dyn Divert>) {
        *self.inner.shared.divert.write().expect("divert lock") = Some(divert);
    }

    /// Installs the hook that takes what a subscription cannot take now (its backlog). Once:
    /// a later call is ignored.
    pub fn set_spill(&self, spill: Arc<dyn Spill>) {
        if self.inner.shared.spill.set(spill).is_err() {
            tracing::warn!("a spill hook is already installed; keeping it");
        }
    }

    /// Installs the hook told about `410 Gone` (the subscription catalogue disables the
    /// subscription). Without it, a 410 is a permanent failure like any other 4xx.
    pub fn set_gone(&self, gone: Arc<dyn Gone>) {
        *self.inner.shared.gone.write().expect("gone lock") = Some(gone);
    }

    /// Every subscription's successes and failures since they were last taken.
    pub fn health(&self) -> Arc<DeliveryHealth> {
        self.inner.shared.health.clone()
    }

    /// The SSRF guard every delivery goes through.
    pub fn guard(&self) -> Arc<Guard> {
        self.inner.shared.guard.clone()
    }

    /// Starts a lane for every new subscription and hands changed settings to the others
    /// (each keeps its queue, its order and its circuit). Call before the rules that name
    /// them go live, so that no event is routed to a subscription without a lane.
    pub fn prepare(&self, subscriptions: &[Arc<SubscriptionSettings>]) {
        let mut lanes = self.inner.lanes.write().expect("lanes lock");
        for sub in subscriptions {
            match lanes.get(&sub.id) {
                Some(lane) if lane.settings() == *sub => {}
                Some(lane) => lane.update(sub.clone()),
                None => {
                    let lane = Lane::start(self.inner.shared.clone(), sub.clone());
                    lanes.insert(sub.id.clone(), lane);
                }
            }
        }
    }

    /// Retires the lanes of subscriptions not in `subscriptions`: each delivers what it holds
    /// from source topics, gives its backlog jobs back, and stops. Call after the rules
    /// without them went live.
    pub fn retire_absent(&self, subscriptions: &[Arc<SubscriptionSettings>]) {
        let mut lanes = self.inner.lanes.write().expect("lanes lock");
        lanes.retain(|id, lane| {
            let keep = subscriptions.iter().any(|s| &s.id == id);
            if !keep {
                lane.retire();
            }
            keep
        });
    }

    /// [`Dispatcher::prepare`] then [`Dispatcher::retire_absent`].
    pub fn apply(&self, subscriptions: &[Arc<SubscriptionSettings>]) {
        self.prepare(subscriptions);
        self.retire_absent(subscriptions);
    }

    /// The lane of subscription `id`, if it runs.
    pub fn lane(&self, id: &str) -> Option<Lane> {
        self.inner
            .lanes
            .read()
            .expect("lanes lock")
            .get(id)
            .cloned()
    }

    /// Every running lane.
    pub fn lanes(&self) -> Vec<Lane> {
        let lanes = self.inner.lanes.read().expect("lanes lock");
        lanes.values().cloned().collect()
    }

    /// Whether a delivery to `subscription` should be rendered now (it will be queued
    /// directly), or go to its backlog unrendered.
    pub fn wants_body(&self, subscription: &str) -> bool {
        if self.inner.keyed && self.inner.shared.spill_hook().is_some() {
            return false;
        }
        // Borrowed under the lock, not cloned: the lane's reference count is shared by every
        // thread, and this runs for every delivery.
        let lanes = self.inner.lanes.read().expect("lanes lock");
        lanes.get(subscription).is_none_or(Lane::wants_body)
    }

    /// Hands `job` to its subscription: straight into its queue while it keeps up, else into
    /// its backlog (always, in fleet mode). Returns once the job is queued or handed to the
    /// backlog writer. A job for a subscription the rules no longer have is settled as
    /// dropped; during shutdown it is left unsettled (re-delivered after a restart).
    pub async fn submit(&self, job: Job) {
        let shared = &self.inner.shared;
        if shared.is_closing() {
            return drop(job);
        }
        let keyed = self.inner.keyed && shared.spill_hook().is_some();
        // The lane is borrowed under the lock for the common cases that need no await (a
        // spilling lane's delivery), and cloned only for the others.
        let (lane, job) = {
            let lanes = self.inner.lanes.read().expect("lanes lock");
            let Some(lane) = lanes.get(&job.subscription.id) else {
                drop(lanes);
                let id = job.subscription.id.clone();
                return shared.settler.dropped(&id, job.ack);
            };
            lane.submitted();
            if keyed {
                (lane.clone(), job)
            } else {
                match lane.try_spill_now(job) {
                    None => return,
                    Some(job) => (lane.clone(), job),
                }
            }
        };
        if keyed {
            lane.spill(job, SpillCause::Keyed).await;
        } else {
            lane.offer(job).await;
        }
    }

    /// Closes every queue; lanes start no new request, requests in flight may finish for up
    /// to `grace`. Whatever is unfinished or still queued is left unsettled, so it is
    /// re-delivered after a restart.
    pub async fn shutdown(&self, grace: Duration) {
        let shared = &self.inner.shared;
        shared.close();
        for lane in self.inner.lanes.write().expect("lanes lock").drain() {
            drop(lane);
        }
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
