//! A subscription's bounded in-memory queue.
//!
//! Unlike a channel, both sides can work on it: the lane takes jobs from the front, and the
//! dispatcher can take out every job that holds a source offset, in order, when the lane
//! starts spilling to its backlog (so nothing read from a source topic waits in memory behind a
//! slow receiver). The bound can change on a rule reload without replacing the queue, so a
//! reload neither reorders nor strands what is queued.
//!
//! Written by hand (a mutex around a `VecDeque` and two `Notify`s): tokio's and crossbeam's
//! channels cannot be drained selectively from the sending side.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::IntGauge;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Job, JobFrom};

struct Queued {
    job: Job,
    at: Instant,
}

struct State {
    jobs: VecDeque<Queued>,
    capacity: usize,
    closed: bool,
    /// Jobs per [`JobFrom`], indexed by `JobFrom::index`.
    counts: [usize; 3],
}

struct Inner {
    state: Mutex<State>,
    /// A job was pushed, or the queue closed.
    item: Notify,
    /// A job left.
    room: Notify,
    depth: IntGauge,
    /// Source jobs queued in every lane together (shared by all queues of a dispatcher).
    source_held: Arc<AtomicUsize>,
}

/// The queue. Cheap to clone; every clone is the same queue.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

/// Why a job was not queued; the job comes back (boxed: it is large and this is the rare path).
#[derive(Debug)]
pub enum PushError {
    /// The queue is at its bound, or the caller's own limit refused it.
    Full(Box<Job>),
    /// The queue is closed (the lane stopped).
    Closed(Box<Job>),
}

impl PushError {
    /// The job that was not queued.
    pub fn into_job(self) -> Job {
        match self {
            PushError::Full(job) | PushError::Closed(job) => *job,
        }
    }
}

impl Queue {
    /// A queue holding at most `capacity` jobs; `depth` follows its length, and
    /// `source_held` counts its source jobs together with those of other queues.
    pub fn new(capacity: usize, depth: IntGauge, source_held: Arc<AtomicUsize>) -> Self {
        depth.set(0);
        Queue {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    jobs: VecDeque::new(),
                    capacity,
                    closed: false,
                    counts: [0; 3],
                }),
                item: Notify::new(),
                room: Notify::new(),
                depth,
                source_held,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("queue lock")
    }

    /// Queues `job` if there is room and `admit` (given the jobs queued per origin) agrees.
    pub fn try_push_if(
        &self,
        job: Job,
        admit: impl FnOnce(&QueueCounts) -> bool,
    ) -> Result<(), PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed(Box::new(job)));
        }
        let counts = QueueCounts(state.counts);
        if state.jobs.len() >= state.capacity || !admit(&counts) {
            return Err(PushError::Full(Box::new(job)));
        }
        self.count(&mut state, job.from, 1);
        state.jobs.push_back(Queued {
            job,
            at: Instant::now(),
        });
        self.inner.depth.set(state.jobs.len() as i64);
        drop(state);
        self.inner.item.notify_one();
        Ok(())
    }

    /// Queues `job` if there is room.
    pub fn try_push(&self, job: Job) -> Result<(), PushError> {
        self.try_push_if(job, |_| true)
    }

    /// Queues `job` if `admit` agrees and room frees within `patience` (a queue that drains
    /// fast frees room within milliseconds); gives it back otherwise.
    pub async fn push_within(
        &self,
        mut job: Job,
        admit: impl Fn(&QueueCounts) -> bool,
        patience: std::time::Duration,
    ) -> Result<(), PushError> {
        let deadline = Instant::now() + patience;
        loop {
            let room = self.room();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push_if(job, &admit) {
                Err(PushError::Full(back)) => job = *back,
                other => return other,
            }
            tokio::select! {
                _ = room => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(PushError::Full(Box::new(job)));
                }
            }
        }
    }

    /// Queues `job`, waiting for room.
    pub async fn push(&self, mut job: Job) -> Result<(), PushError> {
        loop {
            let room = self.inner.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(job) {
                Err(PushError::Full(back)) => job = *back,
                other => return other,
            }
            room.await;
        }
    }

    fn count(&self, state: &mut State, from: JobFrom, delta: isize) {
        let n = &mut state.counts[from.index()];
        *n = n.wrapping_add_signed(delta);
        if from == JobFrom::Source {
            if delta > 0 {
                self.inner
                    .source_held
                    .fetch_add(delta as usize, Ordering::AcqRel);
            } else {
                self.inner
                    .source_held
                    .fetch_sub(delta.unsigned_abs(), Ordering::AcqRel);
            }
        }
    }

    fn take_front(&self, state: &mut State) -> Option<Job> {
        let queued = state.jobs.pop_front()?;
        self.count(state, queued.job.from, -1);
        self.inner.depth.set(state.jobs.len() as i64);
        self.inner.room.notify_waiters();
        Some(queued.job)
    }

    /// The next job; `None` once the queue is closed and empty. Cancel-safe.
    pub async fn pop(&self) -> Option<Job> {
        loop {
            let item = self.inner.item.notified();
            tokio::pin!(item);
            item.as_mut().enable();
            {
                let mut state = self.lock();
                if let Some(job) = self.take_front(&mut state) {
                    return Some(job);
                }
                if state.closed {
                    return None;
                }
            }
            item.await;
        }
    }

    /// The next job if one is queued now; `Err(true)` when the queue is closed and empty.
    pub fn try_pop(&self) -> Result<Job, bool> {
        let mut state = self.lock();
        match self.take_front(&mut state) {
            Some(job) => Ok(job),
            None => Err(state.closed),
        }
    }

    /// Takes out every job `which` selects, in queue order, leaving the others in place.
    pub fn drain(&self, which: impl Fn(&Job) -> bool) -> Vec<Job> {
        let mut state = self.lock();
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(state.jobs.len());
        for queued in state.jobs.drain(..) {
            if which(&queued.job) {
                taken.push(queued);
            } else {
                kept.push_back(queued);
            }
        }
        state.jobs = kept;
        for queued in &taken {
            self.count(&mut state, queued.job.from, -1);
        }
        self.inner.depth.set(state.jobs.len() as i64);
        drop(state);
        if !taken.is_empty() {
            self.inner.room.notify_waiters();
        }
        taken.into_iter().map(|q| q.job).collect()
    }

    /// Puts `jobs` back at the front, in their order, whatever the bound: they were taken
    /// from this queue and not sent.
    pub fn push_front(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut state = self.lock();
        let at = Instant::now();
        for job in jobs.into_iter().rev() {
            self.count(&mut state, job.from, 1);
            state.jobs.push_front(Queued { job, at });
        }
        self.inner.depth.set(state.jobs.len() as i64);
        drop(state);
        self.inner.item.notify_one();
    }

    /// Queues `jobs` at the back, in their order, whatever the bound (the caller bounds how
    /// many it adds); gives them back if the queue is closed.
    pub fn push_all(&self, jobs: Vec<Job>) -> Result<(), Vec<Job>> {
        let mut state = self.lock();
        if state.closed {
            return Err(jobs);
        }
        let at = Instant::now();
        for job in jobs {
            self.count(&mut state, job.from, 1);
            state.jobs.push_back(Queued { job, at });
        }
        self.inner.depth.set(state.jobs.len() as i64);
        drop(state);
        self.inner.item.notify_one();
        Ok(())
    }

    /// When the oldest queued job from `from` was queued.
    pub fn oldest(&self, from: JobFrom) -> Option<Instant> {
        let state = self.lock();
        if state.counts[from.index()] == 0 {
            return None;
        }
        state.jobs.iter().find(|q| q.job.from == from).map(|q| q.at)
    }

    /// When the event of the oldest queued job from `from` was first read from its source.
    pub fn oldest_received(&self, from: JobFrom) -> Option<chrono::DateTime<chrono::Utc>> {
        let state = self.lock();
        state
            .jobs
            .iter()
            .filter(|q| q.job.from == from)
            .map(|q| q.job.event.received_at)
            .min()
    }

    /// Jobs queued, per origin.
    pub fn counts(&self) -> QueueCounts {
        QueueCounts(self.lock().counts)
    }

    /// Jobs queued.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Changes the bound. Shrinking below the number of queued jobs refuses new ones until
    /// enough have left; nothing queued is dropped.
    pub fn set_capacity(&self, capacity: usize) {
        self.lock().capacity = capacity;
        self.inner.room.notify_waiters();
    }

    /// Refuses new jobs from now on; [`Queue::pop`] returns what is left, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.inner.item.notify_waiters();
        self.inner.room.notify_waiters();
    }

    /// Whether [`Queue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Resolves the next time a job leaves (or the bound grows). Create the future before
    /// checking the condition it waits for, so a change in between is not missed.
    pub fn room(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.room.notified()
    }
}

/// Jobs queued per [`JobFrom`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts([usize; 3]);

impl QueueCounts {
    /// Jobs from `from`.
    pub fn of(&self, from: JobFrom) -> usize {
        self.0[from.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::test_job;

    fn gauge() -> IntGauge {
        IntGauge::new("depth", "test").unwrap()
    }

    fn queue(capacity: usize, depth: IntGauge) -> Queue {
        Queue::new(capacity, depth, Arc::default())
    }

    #[tokio::test]
    async fn bound_holds_and_changes_without_dropping() {
        let q = queue(2, gauge());
        q.try_push(test_job(0, JobFrom::Source)).unwrap();
        q.try_push(test_job(1, JobFrom::Source)).unwrap();
        assert!(matches!(
            q.try_push(test_job(2, JobFrom::Source)),
            Err(PushError::Full(_))
        ));
        q.set_capacity(3);
        q.try_push(test_job(2, JobFrom::Source)).unwrap();
        q.set_capacity(1);
        assert!(q.try_push(test_job(3, JobFrom::Source)).is_err());
        assert_eq!(q.pop().await.unwrap().event.origin.offset, 0);
        assert_eq!(q.pop().await.unwrap().event.origin.offset, 1);
        assert!(q.try_push(test_job(3, JobFrom::Source)).is_err());
        assert_eq!(q.pop().await.unwrap().event.origin.offset, 2);
        q.try_push(test_job(3, JobFrom::Source)).unwrap();
        q.close();
        assert!(matches!(
            q.try_push(test_job(4, JobFrom::Source)),
            Err(PushError::Closed(_))
        ));
        assert_eq!(q.try_pop().ok().unwrap().event.origin.offset, 3);
        assert_eq!(q.try_pop().err(), Some(true));
        assert!(q.pop().await.is_none());
    }

    #[tokio::test]
    async fn drain_takes_selected_jobs_in_order_and_counts_follow() {
        let depth = gauge();
        let q = queue(10, depth.clone());
        for (n, from) in [
            (0, JobFrom::Backlog),
            (1, JobFrom::Source),
            (2, JobFrom::Backlog),
            (3, JobFrom::Source),
            (4, JobFrom::Retry),
        ] {
            q.try_push(test_job(n, from)).unwrap();
        }
        assert_eq!(q.counts().of(JobFrom::Source), 2);
        assert_eq!(depth.get(), 5);
        let taken = q.drain(|j| j.from != JobFrom::Backlog);
        let offsets: Vec<i64> = taken.iter().map(|j| j.event.origin.offset).collect();
        assert_eq!(offsets, vec![1, 3, 4]);
        assert_eq!(q.counts().of(JobFrom::Source), 0);
        assert_eq!(q.counts().of(JobFrom::Backlog), 2);
        assert!(q.oldest(JobFrom::Source).is_none());
        assert!(q.oldest(JobFrom::Backlog).is_some());
        assert_eq!(depth.get(), 2);
        q.push_front(taken);
        let order: Vec<i64> = std::iter::from_fn(|| q.try_pop().ok())
            .map(|j| j.event.origin.offset)
            .collect();
        assert_eq!(order, vec![1, 3, 4, 0, 2]);
        assert_eq!(depth.get(), 0);
    }

    #[test]
    fn source_jobs_are_counted_across_queues() {
        let held = Arc::new(AtomicUsize::new(0));
        let a = Queue::new(4, gauge(), held.clone());
        let b = Queue::new(4, gauge(), held.clone());
        a.try_push(test_job(0, JobFrom::Source)).unwrap();
        b.try_push(test_job(1, JobFrom::Source)).unwrap();
        b.try_push(test_job(2, JobFrom::Backlog)).unwrap();
        assert_eq!(held.load(Ordering::Acquire), 2);
        let _ = a.try_pop();
        let _ = b.drain(|_| true);
        assert_eq!(held.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn push_waits_for_room_and_admission_limits_apply() {
        let q = queue(1, gauge());
        q.try_push(test_job(0, JobFrom::Source)).unwrap();
        let waiting = {
            let q = q.clone();
            tokio::spawn(async move { q.push(test_job(1, JobFrom::Source)).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(q.pop().await.unwrap().event.origin.offset, 0);
        waiting.await.unwrap().unwrap();
        assert_eq!(q.len(), 1);
        q.set_capacity(5);
        let refused = q.try_push_if(test_job(2, JobFrom::Source), |c| c.of(JobFrom::Source) < 1);
        assert!(matches!(refused, Err(PushError::Full(_))));
        q.try_push_if(test_job(3, JobFrom::Backlog), |c| {
            c.of(JobFrom::Backlog) < 1
        })
        .unwrap();
    }
}
