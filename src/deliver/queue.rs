//! A subscription's bounded in-memory queue. Unlike a plain bounded channel its capacity can
//! change on a rule reload without replacing the queue (and so without reordering or
//! stranding the events in it): the bound is a semaphore, one permit per queued job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::Job;

/// A job with the permit that holds its place in the queue.
pub struct Queued {
    job: Job,
    permit: OwnedSemaphorePermit,
}

struct Bound {
    permits: Arc<Semaphore>,
    capacity: Mutex<usize>,
    /// Permits still to be retired after a shrink (they are in use by queued jobs).
    debt: AtomicUsize,
}

/// The submitting side. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::UnboundedSender<Queued>,
    bound: Arc<Bound>,
}

/// The lane's side.
pub struct Receiver {
    rx: mpsc::UnboundedReceiver<Queued>,
    bound: Arc<Bound>,
}

/// Why a job was not queued; the job comes back (boxed: it is large and this is the rare path).
pub enum SendError {
    /// The queue is at its bound.
    Full(Box<Job>),
    /// The lane is gone.
    Closed(Box<Job>),
}

/// A queue holding at most `capacity` jobs.
pub fn bounded(capacity: usize) -> (Sender, Receiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let bound = Arc::new(Bound {
        permits: Arc::new(Semaphore::new(capacity)),
        capacity: Mutex::new(capacity),
        debt: AtomicUsize::new(0),
    });
    (
        Sender {
            tx,
            bound: bound.clone(),
        },
        Receiver { rx, bound },
    )
}

impl Sender {
    /// Queues `job` if there is room.
    pub fn try_send(&self, job: Job) -> Result<(), SendError> {
        match self.bound.permits.clone().try_acquire_owned() {
            Ok(permit) => self.push(job, permit),
            Err(TryAcquireError::NoPermits) => Err(SendError::Full(Box::new(job))),
            Err(TryAcquireError::Closed) => Err(SendError::Closed(Box::new(job))),
        }
    }

    /// Queues `job`, waiting for room.
    pub async fn send(&self, job: Job) -> Result<(), SendError> {
        match self.bound.permits.clone().acquire_owned().await {
            Ok(permit) => self.push(job, permit),
            Err(_) => Err(SendError::Closed(Box::new(job))),
        }
    }

    /// Queues `job`, waiting up to `patience` for room; gives it back as `Full` when none
    /// freed in that time.
    pub async fn send_within(&self, job: Job, patience: Duration) -> Result<(), SendError> {
        match tokio::time::timeout(patience, self.bound.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => self.push(job, permit),
            Ok(Err(_)) => Err(SendError::Closed(Box::new(job))),
            Err(_) => Err(SendError::Full(Box::new(job))),
        }
    }

    fn push(&self, job: Job, permit: OwnedSemaphorePermit) -> Result<(), SendError> {
        self.tx
            .send(Queued { job, permit })
            .map_err(|e| SendError::Closed(Box::new(e.0.job)))
    }

    /// Changes the bound. Shrinking below the number of queued jobs refuses new ones until
    /// enough have left.
    pub fn set_capacity(&self, capacity: usize) {
        let mut current = self.bound.capacity.lock().expect("queue lock");
        if capacity > *current {
            let mut grow = capacity - *current;
            // Cancel outstanding debt first.
            while grow > 0 && self.bound.debt.load(Ordering::Acquire) > 0 {
                self.bound.debt.fetch_sub(1, Ordering::AcqRel);
                grow -= 1;
            }
            self.bound.permits.add_permits(grow);
        } else {
            let shrink = *current - capacity;
            let forgotten = self.bound.permits.forget_permits(shrink);
            self.bound
                .debt
                .fetch_add(shrink - forgotten, Ordering::AcqRel);
        }
        *current = capacity;
    }
}

impl Receiver {
    fn release(&self, queued: Queued) -> Job {
        let debt = &self.bound.debt;
        if debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok()
        {
            queued.permit.forget();
        }
        queued.job
    }

    /// The next job; `None` once every sender is gone and the queue is empty. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Job> {
        let queued = self.rx.recv().await?;
        Some(self.release(queued))
    }

    /// The next job if one is queued now; `Err(true)` when the queue is closed and empty.
    pub fn try_recv(&mut self) -> Result<Job, bool> {
        match self.rx.try_recv() {
            Ok(queued) => Ok(self.release(queued)),
            Err(mpsc::error::TryRecvError::Empty) => Err(false),
            Err(mpsc::error::TryRecvError::Disconnected) => Err(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::config::SubscriptionConfig;
    use crate::event::{Event, Origin};
    use crate::source::ack::Ack;

    fn job(offset: i64) -> Job {
        let sub: SubscriptionConfig =
            serde_json::from_str(r#"{"id":"s","url":"http://127.0.0.1:9/"}"#).unwrap();
        let origin = Origin {
            topic: "t".into(),
            partition: 0,
            offset,
            index: 0,
        };
        Job {
            subscription: std::sync::Arc::new(sub.validate().unwrap()),
            webhook_id: "msg_x".into(),
            event_type: "x".into(),
            body: serde_json::Value::Null,
            event: Event::new(origin, serde_json::Value::Null),
            ack: Ack::detached(),
            retry_round: 0,
        }
    }

    #[tokio::test]
    async fn bound_holds_and_changes() {
        let (tx, mut rx) = bounded(2);
        assert!(tx.try_send(job(0)).is_ok());
        assert!(tx.try_send(job(1)).is_ok());
        assert!(matches!(tx.try_send(job(2)), Err(SendError::Full(_))));
        tx.set_capacity(3);
        assert!(tx.try_send(job(2)).is_ok());
        tx.set_capacity(1);
        assert!(matches!(tx.try_send(job(3)), Err(SendError::Full(_))));
        // Three queued, bound one: room again only after three leave.
        assert_eq!(rx.recv().await.unwrap().event.origin.offset, 0);
        assert_eq!(rx.recv().await.unwrap().event.origin.offset, 1);
        assert!(matches!(tx.try_send(job(3)), Err(SendError::Full(_))));
        assert_eq!(rx.recv().await.unwrap().event.origin.offset, 2);
        assert!(tx.try_send(job(3)).is_ok());
        assert!(matches!(tx.try_send(job(4)), Err(SendError::Full(_))));
        drop(tx);
        assert_eq!(rx.try_recv().ok().unwrap().event.origin.offset, 3);
        assert_eq!(rx.try_recv().err(), Some(true));
    }
}
