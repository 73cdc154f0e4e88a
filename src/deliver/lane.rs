//! A lane: the task that drives one subscription's stack. It takes a request's worth of jobs
//! from the queue, waits for the stack to be ready (concurrency slot, rate-limit token, circuit
//! closed or probing), calls it, and settles each job when the response comes back.

use std::future::Future;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{BoxError, Service, ServiceExt};

use super::batch::{Batch, Batcher};
use super::client::{self, chain};
use super::events::Observer;
use super::queue::Receiver;
use super::request::Response;
use super::retry::policy::{classify, Class};
use super::ssrf::Guard;
use super::stack::{self, Stack};
use super::{Divert, DivertCause, SubscriptionSettings, SubscriptionStatus};
use crate::dlq::{DeadLetter, Reason};
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
    /// The shutdown grace is over: everything unfinished is abandoned unsettled.
    pub abort: CancellationToken,
    pub divert: RwLock<Option<Arc<dyn Divert>>>,
}

impl Shared {
    pub fn divert(&self) -> Option<Arc<dyn Divert>> {
        self.divert.read().expect("divert lock").clone()
    }
}

pub(super) struct Lane {
    shared: Arc<Shared>,
    queue: Receiver,
    updates: watch::Receiver<Arc<SubscriptionSettings>>,
    observer: Observer,
}

/// What woke the lane while it waited.
enum Wake<T> {
    Ready(T),
    Changed,
    Removed,
    Stop,
}

impl Lane {
    pub fn new(
        shared: Arc<Shared>,
        queue: Receiver,
        updates: watch::Receiver<Arc<SubscriptionSettings>>,
        observer: Observer,
    ) -> Self {
        Lane {
            shared,
            queue,
            updates,
            observer,
        }
    }

    fn build(&self, settings: &SubscriptionSettings) -> Result<Stack, client::BuildError> {
        stack::build(settings, self.shared.guard.clone(), self.observer.clone())
    }

    /// Waits for `work`, a settings change, or the end, whichever comes first.
    async fn wait<T>(
        updates: &mut watch::Receiver<Arc<SubscriptionSettings>>,
        removed: bool,
        stop: &CancellationToken,
        work: impl Future<Output = T>,
    ) -> Wake<T> {
        tokio::select! {
            biased;
            _ = stop.cancelled() => Wake::Stop,
            changed = updates.changed(), if !removed => match changed {
                Ok(()) => Wake::Changed,
                Err(_) => Wake::Removed,
            },
            value = work => Wake::Ready(value),
        }
    }

    pub async fn run(mut self) {
        let mut settings = self.updates.borrow_and_update().clone();
        let mut stack = self.build(&settings);
        let mut batcher = Batcher::new(settings.config.batch.clone());
        let mut removed = false;
        let mut held: Option<Batch> = None;
        loop {
            if settings.config.status == SubscriptionStatus::Paused {
                if removed {
                    // Removed while paused: the rule set no longer wants these events.
                    self.drop_all(held.take(), &mut batcher).await;
                    return;
                }
                let stop = self.shared.closing.clone();
                match Self::wait(
                    &mut self.updates,
                    removed,
                    &stop,
                    std::future::pending::<()>(),
                )
                .await
                {
                    Wake::Changed => {}
                    Wake::Removed => removed = true,
                    Wake::Ready(()) | Wake::Stop => return,
                }
                settings = self.updates.borrow_and_update().clone();
                stack = self.build(&settings);
                batcher.set_config(settings.config.batch.clone());
                continue;
            }
            let batch = match held.take() {
                Some(batch) => batch,
                None => {
                    let observer = self.observer.clone();
                    let stop = self.shared.closing.clone();
                    let first = batcher.first(&mut self.queue, || observer.queue_depth(-1));
                    match Self::wait(&mut self.updates, removed, &stop, first).await {
                        Wake::Ready(Some(first)) => {
                            batcher
                                .fill(first, &mut self.queue, || observer.queue_depth(-1))
                                .await
                        }
                        // Closed and empty: the subscription was removed or we are shutting down.
                        Wake::Ready(None) | Wake::Stop => return,
                        Wake::Removed => {
                            removed = true;
                            continue;
                        }
                        Wake::Changed => {
                            settings = self.updates.borrow_and_update().clone();
                            stack = self.build(&settings);
                            batcher.set_config(settings.config.batch.clone());
                            continue;
                        }
                    }
                }
            };
            if settings.config.status == SubscriptionStatus::Disabled {
                for job in batch.jobs {
                    self.shared
                        .settler
                        .dropped(self.observer.subscription(), job.ack);
                }
                continue;
            }
            let service = match &mut stack {
                Ok(stack) => &mut stack.service,
                Err(e) => {
                    let error = chain(e);
                    self.spawn_finish(
                        batch,
                        async move { Err::<Response, BoxError>(error.into()) },
                        Some(Reason::Refused),
                    );
                    continue;
                }
            };
            let stop = self.shared.closing.clone();
            match Self::wait(&mut self.updates, removed, &stop, service.ready()).await {
                Wake::Ready(Ok(service)) => {
                    let future = service.call(batch.delivery.clone());
                    self.spawn_finish(batch, future, None);
                }
                Wake::Ready(Err(e)) => {
                    self.spawn_finish(batch, async move { Err::<Response, BoxError>(e) }, None);
                }
                Wake::Stop => return,
                Wake::Removed => {
                    removed = true;
                    held = Some(batch);
                }
                Wake::Changed => {
                    held = Some(batch);
                    settings = self.updates.borrow_and_update().clone();
                    stack = self.build(&settings);
                    batcher.set_config(settings.config.batch.clone());
                }
            }
        }
    }

    /// Settles everything still queued as dropped.
    async fn drop_all(&mut self, held: Option<Batch>, batcher: &mut Batcher) {
        let settler = &self.shared.settler;
        let sub = self.observer.subscription().to_string();
        for job in held.into_iter().flat_map(|b| b.jobs) {
            settler.dropped(&sub, job.ack);
        }
        let observer = self.observer.clone();
        while let Some(batch) = batcher
            .next(&mut self.queue, || observer.queue_depth(-1))
            .await
        {
            for job in batch.jobs {
                settler.dropped(&sub, job.ack);
            }
        }
    }

    fn spawn_finish(
        &self,
        batch: Batch,
        response: impl Future<Output = Result<Response, BoxError>> + Send + 'static,
        reason: Option<Reason>,
    ) {
        let shared = self.shared.clone();
        let observer = self.observer.clone();
        self.shared
            .tasks
            .spawn(finish(shared, observer, batch, response, reason));
    }
}

/// Waits for one request's outcome and settles each of its jobs.
async fn finish(
    shared: Arc<Shared>,
    observer: Observer,
    batch: Batch,
    response: impl Future<Output = Result<Response, BoxError>>,
    reason: Option<Reason>,
) {
    let result = tokio::select! {
        r = response => r,
        // Abandoned at shutdown: the acks drop unsettled and the events are re-delivered.
        _ = shared.abort.cancelled() => return,
    };
    let attempts = batch.delivery.attempts();
    let sub = observer.subscription().to_string();
    let class = classify(&result);
    if class == Class::Delivered && reason.is_none() {
        let now = chrono::Utc::now();
        for job in batch.jobs {
            let latency = (now - job.event.received_at).to_std().unwrap_or_default();
            observer.delivery_succeeded(&batch.delivery.webhook_id, 1, attempts, latency);
            shared.settler.delivered(&sub, job.ack);
        }
        return;
    }
    let (status, error) = match &result {
        Ok(response) => (
            Some(response.status.as_u16()),
            format!("receiver answered {}", response.status),
        ),
        Err(e) => (None, describe(e.as_ref())),
    };
    let reason = reason.unwrap_or(match (&result, class) {
        (Err(e), _) if matches!(e.downcast_ref(), Some(client::Error::Refused(_))) => {
            Reason::Refused
        }
        (_, Class::Transient { .. }) => Reason::RetriesExhausted,
        _ => Reason::Rejected,
    });
    let divert = (reason == Reason::RetriesExhausted)
        .then(|| shared.divert())
        .flatten();
    for job in batch.jobs {
        let job = match &divert {
            Some(divert) => {
                let cause = DivertCause::RetriesExhausted {
                    attempts,
                    status,
                    error: error.clone(),
                };
                match divert.divert(job, cause).await {
                    Ok(()) => continue,
                    Err(job) => job,
                }
            }
            None => job,
        };
        let letter = DeadLetter {
            origin: job.event.origin.clone(),
            reason,
            error: error.clone(),
            subscription: Some(sub.clone()),
            webhook_id: Some(job.webhook_id.clone()),
            attempts,
            status,
            payload: serde_json::to_vec(&*job.event.payload).expect("a JSON value serialises"),
        };
        tokio::select! {
            () = shared.settler.dead_letter(letter, job.ack) => {}
            _ = shared.abort.cancelled() => return,
        }
    }
}

fn describe(error: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if error.is::<tower::timeout::error::Elapsed>() {
        return "no answer within the timeout".into();
    }
    chain(error)
}
