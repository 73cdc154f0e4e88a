//! The lane's task: take a request's worth of jobs from the queue (dedup applied to each),
//! wait for the stack to be ready (concurrency slot, rate-limit token, circuit closed or
//! probing), call it, and settle each job when the answer comes back ([`super::finish`]).
//!
//! Meanwhile it moves work out of memory whenever the subscription stops keeping up: when the
//! circuit opens, the subscription is paused or disabled, or the oldest queued source event
//! waited longer than `spill_after`, what it holds from source topics and retry tiers goes to
//! the backlog ([`Lane::evacuate`]). Jobs read from the backlog stay (at most the lane's
//! read-ahead) to probe the circuit, or go back to the backlog when the subscription is
//! paused, disabled or removed, so a paused subscription's events wait in Kafka, not here.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceExt};

use super::super::batch::{Batch, Batcher};
use super::super::breaker::Circuit;
use super::super::client::{self, chain};
use super::super::events::{CircuitState, Observer};
use super::super::rate_limit::Bucket;
use super::super::request::Response;
use super::super::stack::{self, Stack};
use super::super::{Job, JobFrom, SpillCause, SubscriptionSettings, SubscriptionStatus};
use super::finish::finish;
use super::Lane;
use crate::dlq::Reason;
use crate::rules::dedup::Verdict;

/// A circuit for `settings` whose transitions are observed and published to the lane.
pub(super) fn new_circuit(
    settings: &SubscriptionSettings,
    observer: &Observer,
    state: &Arc<watch::Sender<CircuitState>>,
    wake: &Arc<tokio::sync::Notify>,
) -> Circuit {
    let observer = observer.clone();
    let state = state.clone();
    let wake = wake.clone();
    let on_transition = Arc::new(move |from: CircuitState, to: CircuitState| {
        observer.circuit_transition(from, to);
        state.send_replace(to);
        wake.notify_waiters();
    });
    Circuit::new(settings.config.breaker.clone(), on_transition)
}

/// Runs the lane, restarting it if it panics: a bug in one request must not stop the
/// subscription for the life of the process. The job being handled is left unsettled (its
/// event is re-delivered after a restart); everything queued stays queued.
pub(super) async fn supervise(lane: Lane) {
    loop {
        match AssertUnwindSafe(run(lane.clone())).catch_unwind().await {
            Ok(()) => return,
            Err(_) => {
                lane.inner
                    .shared
                    .settler
                    .metrics()
                    .lane_restarts
                    .with_label_values(&[&lane.inner.id])
                    .inc();
                tracing::error!(subscription = %lane.inner.id, "lane task panicked; restarting it");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// What woke the lane while it waited.
enum Wake<T> {
    Ready(T),
    Changed,
    Circuit(CircuitState),
    Slow,
    Stop,
}

struct State {
    settings: Arc<SubscriptionSettings>,
    stack: Result<Stack, client::BuildError>,
    batcher: Batcher,
}

/// What the lane listens to while it waits.
struct Signals {
    updates: watch::Receiver<Arc<SubscriptionSettings>>,
    circuit: watch::Receiver<CircuitState>,
}

impl Lane {
    fn build(&self, settings: &SubscriptionSettings) -> Result<Stack, client::BuildError> {
        let circuit = {
            let mut current = self.inner.circuit.lock().expect("circuit lock");
            if current.config() != &settings.config.breaker {
                *current = Arc::new(new_circuit(
                    settings,
                    &self.inner.observer,
                    &self.inner.circuit_state,
                    &self.inner.wake,
                ));
                self.inner.circuit_state.send_replace(CircuitState::Closed);
            }
            current.clone()
        };
        let bucket = {
            let mut current = self.inner.bucket.lock().expect("bucket lock");
            let wanted = &settings.config.rate_limit;
            if current.0 != *wanted {
                let bucket = wanted
                    .as_ref()
                    .map(|rl| Arc::new(Bucket::new(rl.per_second, rl.burst())));
                *current = (wanted.clone(), bucket);
            }
            current.1.clone()
        };
        stack::build(
            settings,
            self.inner.shared.guard.clone(),
            self.inner.observer.clone(),
            circuit,
            bucket,
            self.inner.ledger.clone(),
        )
    }

    /// When the oldest queued source job will have waited `spill_after`.
    fn slow_at(&self) -> Option<Instant> {
        // Without a backlog there is nowhere to move them: they wait.
        self.inner.shared.spill_hook()?;
        let since = self.inner.queue.oldest(JobFrom::Source)?;
        Some(since + self.inner.shared.spill_after)
    }

    /// Waits for `work`, a settings change, the circuit opening, a queued source job growing
    /// old, or the end, whichever comes first.
    async fn wait<T>(&self, signals: &mut Signals, work: impl Future<Output = T>) -> Wake<T> {
        let stop = self.inner.shared.closing.clone();
        let slow_at = self.slow_at();
        let slow = async move {
            match slow_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => Wake::Stop,
            changed = signals.updates.changed() => match changed {
                Ok(()) => Wake::Changed,
                // The lane owns the sender: it cannot go away while the task runs.
                Err(_) => Wake::Stop,
            },
            Ok(()) = signals.circuit.changed() => Wake::Circuit(*signals.circuit.borrow_and_update()),
            _ = slow => Wake::Slow,
            value = work => Wake::Ready(value),
        }
    }

    fn refresh(&self, state: &mut State, signals: &mut Signals) {
        state.settings = signals.updates.borrow_and_update().clone();
        state.stack = self.build(&state.settings);
        state
            .batcher
            .set_config(state.settings.config.batch.clone());
    }

    /// The dedup verdict on a job taken from the queue; repeats are settled here.
    fn keep(&self, job: Job) -> Option<Job> {
        let shared = &self.inner.shared;
        let now = Instant::now().into_std();
        match shared
            .dedup
            .claim(&self.inner.id, &job.dedup, &job.webhook_id, now)
        {
            Verdict::Deliver => Some(job),
            Verdict::Repeat => {
                shared
                    .settler
                    .metrics()
                    .dedup_suppressed
                    .with_label_values(&[&self.inner.id])
                    .inc();
                shared.settler.dropped(&self.inner.id, job.ack);
                None
            }
        }
    }

    /// Jobs taken but not sent go back where they came from (their dedup claims released):
    /// into the backlog for source and retry jobs (and the lane starts spilling), back to the
    /// front of the queue for backlog jobs.
    pub(super) async fn put_back(&self, cause: SpillCause, jobs: Vec<Job>) {
        for job in &jobs {
            self.inner
                .shared
                .dedup
                .released(&self.inner.id, &job.dedup, &job.webhook_id);
        }
        self.evacuate(cause, jobs).await;
    }

    /// The subscription stopped taking deliveries (paused, disabled, removed): backlog jobs
    /// go back to the backlog, to be read again when it takes them.
    fn give_back_backlog(&self) {
        for job in self.inner.queue.drain(|j| j.from == JobFrom::Backlog) {
            job.ack.give_back();
        }
    }
}

fn status_cause(status: SubscriptionStatus) -> SpillCause {
    match status {
        SubscriptionStatus::Disabled => SpillCause::Disabled,
        _ => SpillCause::Paused,
    }
}

async fn run(lane: Lane) {
    let inner = lane.inner.clone();
    let mut updates = inner.settings.subscribe();
    let settings = updates.borrow_and_update().clone();
    let mut state = State {
        stack: lane.build(&settings),
        batcher: Batcher::new(settings.config.batch.clone()),
        settings,
    };
    let mut signals = Signals {
        updates,
        circuit: inner.circuit_state.subscribe(),
    };
    let mut held: Option<Batch> = None;
    loop {
        let retired = inner.retired.load(Ordering::Acquire);
        if retired {
            lane.give_back_backlog();
        }
        if state.settings.config.status != SubscriptionStatus::Active {
            let mut taken: Vec<Job> = held.take().map(|b| b.jobs).unwrap_or_default();
            taken.extend(state.batcher.take_carry());
            lane.put_back(status_cause(state.settings.config.status), taken)
                .await;
            lane.give_back_backlog();
            if retired {
                // Removed while not taking deliveries: without a backlog its events waited
                // here, and the rule set no longer wants them.
                for job in inner.queue.drain(|_| true) {
                    inner.shared.settler.dropped(&inner.id, job.ack);
                }
                return;
            }
            let woken = inner.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match lane.wait(&mut signals, woken).await {
                Wake::Stop => return,
                Wake::Changed => lane.refresh(&mut state, &mut signals),
                Wake::Ready(()) | Wake::Circuit(_) | Wake::Slow => {}
            }
            continue;
        }
        let batch = match held.take() {
            Some(batch) => batch,
            None => {
                let queue = inner.queue.clone();
                let mut keep = |job| lane.keep(job);
                let first = state.batcher.first(&queue, &mut keep);
                let first = match lane.wait(&mut signals, first).await {
                    Wake::Ready(Some(first)) => first,
                    // Closed and empty: the subscription was removed, or we are stopping.
                    Wake::Ready(None) | Wake::Stop => return,
                    Wake::Changed => {
                        lane.refresh(&mut state, &mut signals);
                        continue;
                    }
                    Wake::Circuit(CircuitState::Open) => {
                        lane.evacuate(SpillCause::CircuitOpen, Vec::new()).await;
                        continue;
                    }
                    Wake::Circuit(_) => continue,
                    Wake::Slow => {
                        lane.evacuate(SpillCause::Slow, Vec::new()).await;
                        continue;
                    }
                };
                inner.wake.notify_waiters();
                let mut keep = |job| lane.keep(job);
                state.batcher.fill(first, &queue, &mut keep).await
            }
        };
        inner.wake.notify_waiters();
        let service = match &mut state.stack {
            Ok(stack) => &mut stack.service,
            Err(e) => {
                let error = chain(e);
                spawn_finish(
                    &lane,
                    batch,
                    async move { Err::<Response, BoxError>(error.into()) },
                    Some(Reason::Refused),
                );
                continue;
            }
        };
        match lane.wait(&mut signals, service.ready()).await {
            Wake::Ready(Ok(service)) => {
                let future = service.call(batch.delivery.clone());
                spawn_finish(&lane, batch, future, None);
            }
            Wake::Ready(Err(e)) => {
                spawn_finish(
                    &lane,
                    batch,
                    async move { Err::<Response, BoxError>(e) },
                    None,
                );
            }
            Wake::Stop => return,
            Wake::Changed => {
                held = Some(batch);
                lane.refresh(&mut state, &mut signals);
            }
            Wake::Circuit(CircuitState::Open) => {
                lane.put_back(SpillCause::CircuitOpen, batch.jobs).await;
            }
            Wake::Circuit(_) => held = Some(batch),
            Wake::Slow => {
                // The batch in hand goes out as soon as the stack is ready; what waits behind
                // it from source topics moves to the backlog.
                lane.evacuate(SpillCause::Slow, Vec::new()).await;
                held = Some(batch);
            }
        }
    }
}

fn spawn_finish(
    lane: &Lane,
    batch: Batch,
    response: impl Future<Output = Result<Response, BoxError>> + Send + 'static,
    reason: Option<Reason>,
) {
    // The stack's future is large (every layer's state): boxed once where it will stay, the
    // task around it moves cheaply into the runtime.
    let task = finish(lane.clone(), batch, Box::pin(response), reason);
    lane.inner.shared.tasks.spawn(task);
}
