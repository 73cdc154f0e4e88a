//! A lane: one subscription's queue, its tower stack, and the task that drives them.
//!
//! A lane takes a delivery straight into its small in-memory queue only while it keeps up.
//! Otherwise (queue full, oldest queued event older than `spill_after`, receiver failing,
//! circuit open, paused, disabled) the delivery goes to the subscription's durable backlog
//! ([`Spill`]), and so does every delivery after it until the backlog's reader has caught up
//! ([`ledger`]). Nothing read from a source topic waits in memory behind a slow receiver: when
//! a lane starts spilling, what its queue holds from source topics and retry tiers moves to
//! the backlog too, in order. The backlog's reader feeds the lane at the subscription's own
//! pace ([`Lane::admit_backlog`]).
//!
//! - [`ledger`]: spilling or not, and when the reader has caught up.
//! - [`task`]: the loop that takes jobs, applies dedup, waits for the stack and calls it.
//! - [`finish`]: settling each job of a request when its answer comes.

mod finish;
pub mod ledger;
mod patience;
mod task;

pub use finish::GONE_REASON;
pub use ledger::SpillLedger;

/// How long a full queue waits for room at a time while no other lane starves; then whether
/// the lane still delivers directly, and whether another lane starves, is asked again.
const UNCONTESTED_WAIT: Duration = Duration::from_millis(10);

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::breaker::Circuit;
use super::config::RateLimitConfig;
use super::events::{CircuitState, Observer};
use super::health::DeliveryHealth;
use super::queue::{PushError, Queue};
use super::rate_limit::Bucket;
use super::ssrf::Guard;
use super::{
    Divert, Gone, Job, JobFrom, Spill, SpillCause, SubscriptionSettings, SubscriptionStatus,
};
use crate::rules::dedup::DedupStore;
use crate::settle::Settler;

/// What every lane of a dispatcher shares.
pub(super) struct Shared {
    pub settler: Settler,
    pub guard: Arc<Guard>,
    /// Lanes and their in-flight deliveries.
    pub tasks: TaskTracker,
    /// Shutdown began: lanes start no new request (what is still queued stays unsettled and
    /// is re-delivered after restart, so a long queue cannot hold up a stop); requests in
    /// flight finish until `abort`.
    pub closing: CancellationToken,
    /// Set with `closing`, for checks on every delivery: a token's `is_cancelled` takes a lock.
    pub closing_now: AtomicBool,
    /// The shutdown grace is over: everything unfinished is abandoned unsettled.
    pub abort: CancellationToken,
    pub divert: RwLock<Option<Arc<dyn Divert>>>,
    /// Set once at startup; read for every spilled delivery, so no lock.
    pub spill: std::sync::OnceLock<Arc<dyn Spill>>,
    pub gone: RwLock<Option<Arc<dyn Gone>>>,
    /// Successes and failures, for the fleet-wide failure streak.
    pub health: Arc<DeliveryHealth>,
    /// Dedup memory, by subscription; outlives lanes and rule sets.
    pub dedup: DedupStore,
    /// Source jobs queued in every lane together.
    pub source_held: Arc<AtomicUsize>,
    /// At most this many source jobs may be queued in all lanes together, so that queues can
    /// never use up the source's in-flight budget (half of `kafka.max_inflight_messages`).
    pub source_limit: usize,
    /// A queued source job older than this moves the lane to its backlog.
    pub spill_after: Duration,
    /// Every lane started, to tell whether holding up the source starves one of them.
    pub lanes: RwLock<Vec<std::sync::Weak<Inner>>>,
    /// The origin of the lanes' `last_offered` clocks.
    pub epoch: tokio::time::Instant,
}

impl Shared {
    pub fn divert(&self) -> Option<Arc<dyn Divert>> {
        self.divert.read().expect("divert lock").clone()
    }

    /// Begins shutdown: `closing` and `closing_now` together, the only place either is set.
    pub fn close(&self) {
        self.closing_now.store(true, Ordering::Release);
        self.closing.cancel();
    }

    /// Whether shutdown began (see `closing`).
    pub fn is_closing(&self) -> bool {
        self.closing_now.load(Ordering::Acquire)
    }

    pub fn spill_hook(&self) -> Option<&Arc<dyn Spill>> {
        self.spill.get()
    }

    pub fn gone_hook(&self) -> Option<Arc<dyn Gone>> {
        self.gone.read().expect("gone lock").clone()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a lane other than `me` is starving: it was offered events within the last
    /// second, delivers directly, and has nothing queued. Holding up the source then keeps
    /// events from it.
    fn others_starving(&self, me: &Inner) -> bool {
        let now = self.now_ms();
        let lanes = self.lanes.read().expect("lanes lock");
        lanes
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .any(|lane| !std::ptr::eq(&*lane, me) && lane.starving(now))
    }
}

pub(super) struct Inner {
    pub id: Arc<str>,
    pub shared: Arc<Shared>,
    pub queue: Queue,
    pub settings: watch::Sender<Arc<SubscriptionSettings>>,
    pub observer: Observer,
    /// Kept across stack rebuilds (a reload does not close an open circuit); replaced only
    /// when the breaker's own settings change.
    pub circuit: Mutex<Arc<Circuit>>,
    /// The rate limit's bucket, kept across stack rebuilds like the circuit; replaced only
    /// when `rate_limit` changes.
    pub bucket: Mutex<(Option<RateLimitConfig>, Option<Arc<Bucket>>)>,
    /// The circuit's state as transitions report it, for the task and the backlog reader.
    pub circuit_state: Arc<watch::Sender<CircuitState>>,
    pub ledger: Arc<SpillLedger>,
    /// How long a full queue may still make the source wait for room.
    pub patience: patience::Patience,
    /// Serialises spill decisions, so that the records of one lane land in the backlog in
    /// the order the decisions were taken.
    pub order: tokio::sync::Mutex<()>,
    /// Whether the lane may take backlog jobs may have changed (room freed, settings or
    /// circuit changed, lane retired).
    pub wake: Arc<Notify>,
    /// The rule set no longer has this subscription.
    pub retired: AtomicBool,
    /// When a delivery was last offered ([`Shared::epoch`] milliseconds).
    pub last_offered: AtomicU64,
    /// `hookline_deliveries_submitted_total` of this subscription.
    pub submitted: IntCounter,
    /// `hookline_backlog_spilled_total` of this subscription, per cause (labels are looked up
    /// once per lane, not once per delivery).
    pub spilled: [IntCounter; SpillCause::ALL.len()],
}

impl Inner {
    fn starving(&self, now_ms: u64) -> bool {
        !self.retired.load(Ordering::Acquire)
            && !self.ledger.spilling()
            && self.queue.is_empty()
            && now_ms.saturating_sub(self.last_offered.load(Ordering::Relaxed)) < 1_000
    }
}

/// One subscription's lane as the dispatcher and the backlog reader see it. Cheap to clone.
#[derive(Clone)]
pub struct Lane {
    pub(super) inner: Arc<Inner>,
}

/// Whether a lane takes a backlog job now.
pub enum BacklogAdmission {
    /// Push it with [`Lane::push_backlog`].
    Now,
    /// Not now; resolves when it may (or the lane is gone).
    Later(futures::future::BoxFuture<'static, ()>),
    /// The lane is gone (its subscription was removed).
    Gone,
}

impl Lane {
    pub(super) fn start(shared: Arc<Shared>, settings: Arc<SubscriptionSettings>) -> Lane {
        let id = settings.id.clone();
        let metrics = shared.settler.metrics().clone();
        let depth = metrics.queue_depth.with_label_values(&[&id]);
        let queue = Queue::new(settings.config.queue, depth, shared.source_held.clone());
        let circuit_state = Arc::new(watch::channel(CircuitState::Closed).0);
        let wake = Arc::new(Notify::new());
        let observer = Observer::new(id.clone(), metrics.clone());
        let circuit = Arc::new(task::new_circuit(
            &settings,
            &observer,
            &circuit_state,
            &wake,
        ));
        let (settings_tx, _) = watch::channel(settings);
        let submitted = metrics.deliveries_submitted.with_label_values(&[&id]);
        let spilled = SpillCause::ALL.map(|cause| {
            metrics
                .backlog_spilled
                .with_label_values(&[&id, cause.as_str()])
        });
        let lane = Lane {
            inner: Arc::new(Inner {
                id,
                shared: shared.clone(),
                queue,
                settings: settings_tx,
                observer,
                circuit: Mutex::new(circuit),
                bucket: Mutex::new((None, None)),
                circuit_state,
                ledger: Arc::default(),
                patience: Default::default(),
                order: tokio::sync::Mutex::new(()),
                wake,
                retired: AtomicBool::new(false),
                last_offered: AtomicU64::new(0),
                submitted,
                spilled,
            }),
        };
        {
            let mut lanes = shared.lanes.write().expect("lanes lock");
            lanes.retain(|l| l.strong_count() > 0);
            lanes.push(Arc::downgrade(&lane.inner));
        }
        shared.tasks.spawn(task::supervise(lane.clone()));
        lane
    }

    /// The subscription id.
    pub fn id(&self) -> &Arc<str> {
        &self.inner.id
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<SubscriptionSettings> {
        self.inner.settings.borrow().clone()
    }

    /// Its spill ledger.
    pub fn ledger(&self) -> &Arc<SpillLedger> {
        &self.inner.ledger
    }

    pub(super) fn update(&self, settings: Arc<SubscriptionSettings>) {
        self.inner.queue.set_capacity(settings.config.queue);
        self.inner.settings.send_replace(settings);
        self.inner.wake.notify_waiters();
    }

    /// Disables the lane here at once, before the rules say so (a `410 Gone`: the catalogue
    /// is told, and every instance follows when its change arrives). What the lane holds
    /// goes to the backlog.
    pub(super) fn suspend(&self, reason: &str) {
        let mut settings = (*self.settings()).clone();
        settings.config.status = SubscriptionStatus::Disabled;
        settings.config.disable_reason = Some(reason.to_string());
        self.update(Arc::new(settings));
    }

    /// The rule set no longer has this subscription: the lane delivers what it holds from
    /// source topics, gives its backlog jobs back to the backlog, and stops.
    pub(super) fn retire(&self) {
        self.inner.retired.store(true, Ordering::Release);
        self.inner.queue.close();
        self.inner.wake.notify_waiters();
    }

    /// Whether a delivery rendered now would be queued directly (else it goes to the
    /// backlog unrendered, and is rendered when read back).
    pub fn wants_body(&self) -> bool {
        let ledger = &self.inner.ledger;
        !ledger.spilling() || (ledger.caught_up() && self.refuses_direct().is_none())
    }

    /// Why a delivery cannot be queued directly now, if it cannot.
    fn refuses_direct(&self) -> Option<SpillCause> {
        match self.inner.settings.borrow().config.status {
            SubscriptionStatus::Paused => return Some(SpillCause::Paused),
            SubscriptionStatus::Disabled => return Some(SpillCause::Disabled),
            SubscriptionStatus::Active => {}
        }
        if *self.inner.circuit_state.borrow() == CircuitState::Open {
            return Some(SpillCause::CircuitOpen);
        }
        if !self.inner.observer.is_healthy() {
            return Some(SpillCause::Unhealthy);
        }
        let since = self.inner.queue.oldest(JobFrom::Source)?;
        (since.elapsed() > self.inner.shared.spill_after).then_some(SpillCause::Slow)
    }

    /// Queues `job` directly, or sends it to the backlog (see the module documentation).
    /// Without a backlog, waits for room instead.
    pub(super) async fn offer(&self, job: Job) {
        let _order = self.inner.order.lock().await;
        let ledger = &self.inner.ledger;
        if ledger.spilling()
            && job.body.is_some()
            && self.refuses_direct().is_none()
            && ledger.caught_up()
        {
            if let Some(cause) = ledger.stop() {
                tracing::info!(subscription = %self.inner.id, was = cause.as_str(), "backlog caught up; delivering directly again");
            }
        }
        if ledger.spilling() || job.body.is_none() {
            let cause = ledger.cause().unwrap_or(SpillCause::QueueFull);
            return self.spill_locked(job, cause).await;
        }
        if let Some(cause) = self.refuses_direct() {
            self.evacuate_locked(cause).await;
            return self.spill_locked(job, cause).await;
        }
        let shared = &self.inner.shared;
        self.inner
            .last_offered
            .store(shared.now_ms(), Ordering::Relaxed);
        let from = job.from;
        let admit = |_: &_| {
            from != JobFrom::Source
                || shared.source_held.load(Ordering::Acquire) < shared.source_limit
        };
        // A full queue back-pressures the source while that starves no other lane (a healthy
        // receiver, momentarily saturated, or the only one busy): the events stay on the direct
        // path. While another lane starves, the wait comes out of the lane's patience, and a
        // lane slower than the source soon uses it up and spills (until caught up).
        // Room now (the common case) asks nothing of the other lanes.
        let mut job = match self.inner.queue.try_push_if(job, admit) {
            Err(PushError::Full(back)) if shared.spill_hook().is_some() => *back,
            other => return self.admitted(other).await,
        };
        let admitted = loop {
            let contested = shared.others_starving(&self.inner);
            let patience = &self.inner.patience;
            let slice = if contested {
                patience.allowance()
            } else {
                UNCONTESTED_WAIT
            };
            let started = tokio::time::Instant::now();
            let pushed = self.inner.queue.push_within(job, admit, slice).await;
            if contested {
                patience.spend(started.elapsed());
            }
            match pushed {
                Err(PushError::Full(back)) if !contested && shared.spill_hook().is_some() => {
                    job = *back;
                    // Still delivering at all? A hanging or failing receiver spills here.
                    if let Some(cause) = self.refuses_direct() {
                        self.evacuate_locked(cause).await;
                        return self.spill_locked(job, cause).await;
                    }
                }
                other => break other,
            }
        };
        self.admitted(admitted).await;
    }

    /// Finishes [`Lane::offer`] once the queue has answered.
    async fn admitted(&self, admitted: Result<(), PushError>) {
        match admitted {
            Ok(()) => {}
            Err(PushError::Full(job)) => {
                if self.inner.shared.spill_hook().is_none() {
                    // No backlog: back-pressure, as a plain bounded queue.
                    return self.push_waiting(*job).await;
                }
                self.evacuate_locked(SpillCause::QueueFull).await;
                self.spill_locked(*job, SpillCause::QueueFull).await;
            }
            Err(PushError::Closed(job)) => self.closed(*job),
        }
    }

    /// Spills `job` at once, without waiting, when [`Lane::offer`] would spill it anyway (the
    /// router left it unrendered because the lane spills) and nothing else is deciding for
    /// this lane right now; gives it back otherwise (`Some`). Ten spilling neighbours make
    /// this the path of most deliveries, and the awaits of `offer` cost more than the spill.
    pub(super) fn try_spill_now(&self, job: Job) -> Option<Job> {
        let Ok(_order) = self.inner.order.try_lock() else {
            return Some(job);
        };
        let ledger = &self.inner.ledger;
        let Some(hook) = self.inner.shared.spill_hook() else {
            return Some(job);
        };
        if job.body.is_some() || !ledger.spilling() {
            return Some(job);
        }
        let cause = ledger.cause().unwrap_or(SpillCause::QueueFull);
        match hook.spill(job, cause, ledger) {
            Ok(()) => {
                self.inner.spilled[cause as usize].inc();
                None
            }
            // The producer's buffer is full: `offer` waits for room.
            Err(back) => Some(*back),
        }
    }

    /// Sends `job` to the backlog whatever the lane's state (fleet mode).
    pub(super) async fn spill(&self, job: Job, cause: SpillCause) {
        let _order = self.inner.order.lock().await;
        self.spill_locked(job, cause).await;
    }

    /// Moves what the queue holds from source topics and retry tiers to the backlog, and
    /// starts spilling. `held` are jobs the lane had taken but not sent yet; they are older
    /// than anything queued.
    pub(super) async fn evacuate(&self, cause: SpillCause, held: Vec<Job>) {
        let _order = self.inner.order.lock().await;
        if self.inner.shared.spill_hook().is_none() {
            // Nowhere to put them: they wait in the queue as before.
            self.inner.queue.push_front(held);
            return;
        }
        let (backlog, others): (Vec<Job>, Vec<Job>) =
            held.into_iter().partition(|j| j.from == JobFrom::Backlog);
        self.inner.queue.push_front(backlog);
        for job in others {
            self.spill_locked(job, cause).await;
        }
        self.evacuate_locked(cause).await;
    }

    async fn evacuate_locked(&self, cause: SpillCause) {
        if self.inner.shared.spill_hook().is_none() {
            return;
        }
        if self.inner.ledger.start(cause) {
            tracing::warn!(subscription = %self.inner.id, cause = cause.as_str(), "subscription cannot keep up; its deliveries go to its backlog");
        }
        let moved = self.inner.queue.drain(|j| j.from != JobFrom::Backlog);
        for job in moved {
            self.spill_locked(job, cause).await;
        }
    }

    async fn spill_locked(&self, mut job: Job, cause: SpillCause) {
        let Some(hook) = self.inner.shared.spill_hook() else {
            return self.push_waiting(job).await;
        };
        let ledger = &self.inner.ledger;
        if ledger.start(cause) {
            tracing::warn!(subscription = %self.inner.id, cause = cause.as_str(), "subscription cannot keep up; its deliveries go to its backlog");
        }
        self.inner.spilled[cause as usize].inc();
        // Rendered again when read back, with the rules then in force.
        job.body = None;
        loop {
            match hook.spill(job, cause, ledger) {
                Ok(()) => return,
                Err(back) => {
                    let back = *back;
                    // The producer's buffer is full: Kafka is slower than we read. Waiting
                    // here back-pressures the source, which is what should happen then.
                    job = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    async fn push_waiting(&self, job: Job) {
        if let Err(e) = self.inner.queue.push(job).await {
            self.closed(e.into_job());
        }
    }

    /// The lane stopped between lookup and queueing: on shutdown the job stays unsettled (it
    /// is re-delivered after restart); when its subscription was removed, the rule set no
    /// longer wants it.
    fn closed(&self, job: Job) {
        if self.inner.shared.is_closing() {
            drop(job);
        } else {
            self.inner.shared.settler.dropped(&self.inner.id, job.ack);
        }
    }

    /// How many backlog jobs the lane holds ahead of its stack: enough to keep every
    /// concurrency slot busy, and no more (the rest waits in Kafka).
    fn read_ahead(&self) -> usize {
        let settings = self.settings();
        let per_request = settings.config.batch.as_ref().map_or(1, |b| b.max_events);
        (2 * settings.config.concurrency * per_request).clamp(16, settings.config.queue.max(16))
    }

    /// Whether the lane takes a backlog job now. Once it has refused, it takes them again only
    /// when half its read-ahead is free (`resuming`): the reader's partition is paused and
    /// resumed each time, and each resume fetches anew, so a 1/s subscription should not
    /// resume once a second for one record.
    fn takes_backlog(&self, resuming: bool) -> Result<(), Option<Duration>> {
        if self.inner.settings.borrow().config.status != SubscriptionStatus::Active {
            return Err(None);
        }
        if *self.inner.circuit_state.borrow() == CircuitState::Open {
            // One job for the probe once the open period is over.
            let left = self.circuit().open_remaining(tokio::time::Instant::now());
            if !left.is_zero() || self.inner.queue.counts().of(JobFrom::Backlog) > 0 {
                return Err((!left.is_zero()).then_some(left));
            }
            return Ok(());
        }
        let queue = &self.inner.queue;
        let read_ahead = self.read_ahead();
        let limit = if resuming {
            read_ahead.div_ceil(2)
        } else {
            read_ahead
        };
        if queue.counts().of(JobFrom::Backlog) >= limit || queue.len() >= queue.capacity() {
            return Err(None);
        }
        Ok(())
    }

    /// Whether the lane takes a backlog job now, or when to ask again.
    pub fn admit_backlog(&self) -> BacklogAdmission {
        if self.inner.retired.load(Ordering::Acquire) {
            return BacklogAdmission::Gone;
        }
        if self.takes_backlog(false).is_ok() {
            return BacklogAdmission::Now;
        }
        let lane = self.clone();
        BacklogAdmission::Later(Box::pin(async move {
            loop {
                let inner = &lane.inner;
                let woken = inner.wake.notified();
                let room = inner.queue.room();
                tokio::pin!(woken, room);
                woken.as_mut().enable();
                room.as_mut().enable();
                if inner.retired.load(Ordering::Acquire) || inner.shared.is_closing() {
                    return;
                }
                let wait = match lane.takes_backlog(true) {
                    Ok(()) => return,
                    Err(wait) => wait,
                };
                let timer = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600)));
                tokio::select! {
                    _ = woken => {}
                    _ = room => {}
                    _ = timer => {}
                    _ = inner.shared.closing.cancelled() => return,
                }
            }
        }))
    }

    /// Queues the jobs of one backlog record (ask [`Lane::admit_backlog`] first), even past
    /// the lane's read-ahead and capacity: a record holds a bounded number of deliveries.
    /// Gives them back if the lane has closed.
    pub fn push_backlog(&self, jobs: Vec<Job>) -> Result<(), Vec<Job>> {
        self.inner.queue.push_all(jobs)
    }

    /// Backlog partition `partition` of `topic` is no longer this instance's: what the lane
    /// queued from it is dropped unsettled (the new owner reads it again).
    pub fn forget_backlog(&self, topic: &str, partition: i32) {
        let dropped = self.inner.queue.drain(|j| {
            j.from == JobFrom::Backlog
                && j.ack
                    .position()
                    .is_some_and(|(t, p, _)| t == topic && p == partition)
        });
        drop(dropped);
    }

    /// When the oldest backlog job the lane holds was first read from its source.
    pub fn oldest_backlog_received(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.inner.queue.oldest_received(JobFrom::Backlog)
    }

    /// Counts a delivery handed to this lane.
    pub(super) fn submitted(&self) {
        self.inner.submitted.inc();
    }

    /// The circuit in force.
    pub(super) fn circuit(&self) -> Arc<Circuit> {
        self.inner.circuit.lock().expect("circuit lock").clone()
    }
}
