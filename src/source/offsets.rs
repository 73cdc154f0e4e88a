//! The shared offset state: the tracker, the bound on messages in flight, and the
//! [`SettleSink`] that settling acks report to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use super::ack::{MessageAck, SettleSink};
use super::watermark::{Commit, OffsetTracker};
use super::Role;
use crate::metrics::Metrics;

/// Where a partition must be read again from, and in which assignment that was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewind {
    /// The assignment's generation.
    pub generation: u64,
    /// The lowest offset given back.
    pub offset: i64,
}

struct Inner {
    tracker: Mutex<OffsetTracker>,
    inflight: Semaphore,
    metrics: Metrics,
    /// Partitions to seek back, by the read loop.
    rewinds: Mutex<HashMap<(Arc<str>, i32), Rewind>>,
    rewound: Notify,
    role: Role,
}

/// Offset state shared by the consumer loop, the committer, the rebalance callbacks and every
/// settling ack. Cheap to clone.
#[derive(Clone)]
pub struct Offsets {
    inner: Arc<Inner>,
}

impl Offsets {
    /// At most `max_inflight` messages may be read and unsettled at once; partitions are
    /// counted under `role`.
    pub fn new(max_inflight: usize, metrics: Metrics, role: Role) -> Self {
        Offsets {
            inner: Arc::new(Inner {
                tracker: Mutex::new(OffsetTracker::default()),
                inflight: Semaphore::new(max_inflight.min(Semaphore::MAX_PERMITS)),
                metrics,
                rewinds: Mutex::new(HashMap::new()),
                rewound: Notify::new(),
                role,
            }),
        }
    }

    /// Whether the partition is currently this consumer's.
    pub fn is_assigned(&self, topic: &str, partition: i32) -> bool {
        self.lock().is_assigned(topic, partition)
    }

    /// Waits for room, registers the message as read, and returns its ack.
    pub async fn read(&self, topic: Arc<str>, partition: i32, offset: i64) -> MessageAck {
        self.inner
            .inflight
            .acquire()
            .await
            .expect("the semaphore is never closed")
            .forget();
        self.inner.metrics.inflight_messages.inc();
        let generation = self.lock().read(&topic, partition, offset);
        let sink: Arc<dyn SettleSink> = self.inner.clone();
        MessageAck::new(topic, partition, generation, offset, sink)
    }

    /// Partitions were assigned.
    pub fn assign(&self, partitions: &[(String, i32)]) {
        let mut tracker = self.lock();
        let before = tracker.assigned();
        for (topic, partition) in partitions {
            tracker.assign(topic, *partition);
        }
        // Added, not set: several consumers of one role would otherwise overwrite each other.
        self.partitions_gauge()
            .add((tracker.assigned() - before) as i64);
    }

    /// Partitions were revoked; returns their final positions to commit.
    pub fn revoke(&self, partitions: &[(String, i32)]) -> Vec<Commit> {
        let mut tracker = self.lock();
        let before = tracker.assigned();
        let commits = partitions
            .iter()
            .filter_map(|(topic, partition)| tracker.revoke(topic, *partition))
            .collect();
        self.partitions_gauge()
            .sub((before - tracker.assigned()) as i64);
        commits
    }

    /// Positions that moved since last taken.
    pub fn take_commits(&self) -> Vec<Commit> {
        self.lock().take_commits()
    }

    /// Offer these positions again.
    pub fn commit_failed(&self, commits: &[Commit]) {
        let mut tracker = self.lock();
        commits.iter().for_each(|c| tracker.commit_failed(c));
    }

    /// Messages read and not yet settled, over every assigned partition.
    pub fn pending(&self) -> usize {
        self.lock().pending()
    }

    /// Every partition with messages given back, and where to read it again from.
    pub fn take_rewinds(&self) -> Vec<((Arc<str>, i32), Rewind)> {
        let mut rewinds = self.inner.rewinds.lock().expect("rewinds lock");
        rewinds.drain().collect()
    }

    /// The rewind asked for `partition` of `topic`, if any (taken).
    pub fn take_rewind(&self, topic: &str, partition: i32) -> Option<Rewind> {
        let mut rewinds = self.inner.rewinds.lock().expect("rewinds lock");
        // Asked for every message read: the key is built only when there is a rewind.
        if rewinds.is_empty() {
            return None;
        }
        rewinds.remove(&(Arc::from(topic), partition))
    }

    /// Keeps `rewind` of `partition` of `topic` for later: the partition is paused, and is
    /// rewound once it resumes ([`Offsets::wake_rewinds`]).
    pub fn defer_rewind(&self, topic: &str, partition: i32, rewind: Rewind) {
        self.inner.ask_rewind(topic, partition, rewind);
    }

    /// Makes [`Offsets::rewound`] resolve, so that deferred rewinds are looked at again.
    pub fn wake_rewinds(&self) {
        self.inner.rewound.notify_one();
    }

    /// The generation of the current assignment of `partition` of `topic`.
    pub fn generation(&self, topic: &str, partition: i32) -> Option<u64> {
        self.lock().generation(topic, partition)
    }

    /// The partitions of `topic` this consumer holds, with their generations.
    pub fn partitions_of(&self, topic: &str) -> Vec<(i32, u64)> {
        self.lock().partitions_of(topic)
    }

    /// Resolves when a message was given back.
    pub async fn rewound(&self) {
        self.inner.rewound.notified().await
    }

    /// Whether `generation` is the current assignment of `partition` of `topic`.
    pub fn is_current(&self, topic: &str, partition: i32, generation: u64) -> bool {
        self.generation(topic, partition) == Some(generation)
    }

    /// The position before which every message of `partition` of `topic` is settled.
    pub fn watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.lock().watermark(topic, partition)
    }

    fn partitions_gauge(&self) -> prometheus::IntGauge {
        self.inner
            .metrics
            .assigned_partitions
            .with_label_values(&[self.inner.role.as_str()])
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetTracker> {
        self.inner.tracker.lock().expect("offset tracker lock")
    }
}

impl Inner {
    fn release(&self) {
        self.inflight.add_permits(1);
        self.metrics.inflight_messages.dec();
    }
}

impl Inner {
    /// Asks for `partition` of `topic` to be read again from `rewind` (the lowest offset asked
    /// for wins; a new assignment's request replaces an old one's).
    fn ask_rewind(&self, topic: &str, partition: i32, rewind: Rewind) {
        let mut rewinds = self.rewinds.lock().expect("rewinds lock");
        let at = rewinds.entry((topic.into(), partition)).or_insert(rewind);
        if at.generation != rewind.generation {
            *at = rewind;
        }
        at.offset = at.offset.min(rewind.offset);
    }
}

impl SettleSink for Inner {
    fn settled(&self, topic: &str, partition: i32, generation: u64, offset: i64) {
        self.tracker
            .lock()
            .expect("offset tracker lock")
            .settle(topic, partition, generation, offset);
        self.release();
    }

    fn unread(&self, topic: &str, partition: i32, generation: u64, offset: i64) {
        self.tracker
            .lock()
            .expect("offset tracker lock")
            .unread(topic, partition, generation, offset);
        self.release();
    }

    fn given_back(&self, topic: &str, partition: i32, generation: u64, offset: i64) {
        // Stays pending (never committed past) until it is read again.
        self.ask_rewind(topic, partition, Rewind { generation, offset });
        self.release();
        self.rewound.notify_one();
    }

    fn abandoned(&self, topic: &str, partition: i32, _generation: u64, offset: i64) {
        // The offset stays pending: this process will not commit past it, so the message is
        // re-delivered after a restart or rebalance. Only the in-flight slot is given back.
        // Debug, not warn: a shutdown abandons a whole queue at once, and the stop already
        // reports how many events are left unsettled.
        tracing::debug!(
            topic,
            partition,
            offset,
            "message left unsettled; it will be re-delivered"
        );
        self.release();
    }
}
