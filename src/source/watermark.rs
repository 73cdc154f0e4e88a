//! The offset tracker: which offsets of each assigned partition are read but not yet settled,
//! and so how far the partition may be committed.
//!
//! The commit position of a partition is the lowest unsettled offset, or one past the highest
//! offset read when nothing is pending. Later offsets finishing first never move it past an
//! earlier unsettled one (DESIGN.md invariant 1). Gaps in offsets (compaction, transaction
//! markers) need no special case: only offsets actually read are ever pending.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A partition's identity.
pub type PartitionKey = (Arc<str>, i32);

/// One partition's read-but-unsettled offsets.
#[derive(Debug, Default)]
pub struct PartitionTracker {
    pending: BTreeSet<i64>,
    /// One past the highest offset read.
    next: Option<i64>,
    /// The last commit position handed out by [`PartitionTracker::take_commit`].
    committed: Option<i64>,
}

impl PartitionTracker {
    /// `offset` was read and is now in flight.
    pub fn read(&mut self, offset: i64) {
        self.pending.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// `offset` is settled.
    pub fn settle(&mut self, offset: i64) {
        self.pending.remove(&offset);
    }

    /// `offset` will be read again (handed back, or given back after processing). It stays
    /// pending until it is read again and settled, so nothing is committed past it even if
    /// the consumer never manages to seek back to it.
    pub fn unread(&mut self, offset: i64) {
        debug_assert!(
            self.pending.contains(&offset),
            "only an offset read and unsettled can be read again"
        );
    }

    /// Offsets read but unsettled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The position everything before which is settled, if anything was read.
    pub fn watermark(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }

    /// The watermark, if it moved past the last position taken.
    pub fn take_commit(&mut self) -> Option<i64> {
        let w = self.watermark()?;
        if self.committed.is_some_and(|c| c >= w) {
            return None;
        }
        self.committed = Some(w);
        Some(w)
    }

    /// A commit of `offset` failed: offer it again next time.
    pub fn commit_failed(&mut self, offset: i64) {
        if self.committed == Some(offset) {
            self.committed = None;
        }
    }
}

#[derive(Debug)]
struct Assigned {
    generation: u64,
    tracker: PartitionTracker,
}

/// Every assigned partition's tracker. Each assignment gets a new generation, so a settle that
/// arrives after its partition was revoked (and maybe re-assigned) is recognised and ignored.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<PartitionKey, Assigned>,
    next_generation: u64,
}

/// A position to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// The next offset to consume.
    pub offset: i64,
}

impl OffsetTracker {
    /// The partition is assigned to this consumer; returns its generation. Assigning a
    /// partition that is already tracked keeps its state (an incremental assignment may repeat
    /// one we already hold).
    pub fn assign(&mut self, topic: &str, partition: i32) -> u64 {
        let next = &mut self.next_generation;
        self.partitions
            .entry((topic.into(), partition))
            .or_insert_with(|| {
                *next += 1;
                Assigned {
                    generation: *next,
                    tracker: PartitionTracker::default(),
                }
            })
            .generation
    }

    /// The partition is revoked; returns its final position if it moved since the last commit.
    pub fn revoke(&mut self, topic: &str, partition: i32) -> Option<Commit> {
        let key: PartitionKey = (topic.into(), partition);
        let mut assigned = self.partitions.remove(&key)?;
        let offset = assigned.tracker.take_commit()?;
        Some(Commit {
            topic: key.0,
            partition,
            offset,
        })
    }

    /// `offset` was read; returns the partition's generation. A message from a partition not
    /// (yet) known is tracked under a new assignment: librdkafka can hand out a message before
    /// the assignment callback has been seen.
    pub fn read(&mut self, topic: &str, partition: i32, offset: i64) -> u64 {
        self.assign(topic, partition);
        let assigned = self
            .partitions
            .get_mut(&(topic.into(), partition))
            .expect("just assigned");
        assigned.tracker.read(offset);
        assigned.generation
    }

    /// `offset` of the given assignment is settled. Returns false when the assignment is gone.
    pub fn settle(&mut self, topic: &str, partition: i32, generation: u64, offset: i64) -> bool {
        match self.partitions.get_mut(&(topic.into(), partition)) {
            Some(a) if a.generation == generation => {
                a.tracker.settle(offset);
                true
            }
            _ => false,
        }
    }

    /// `offset` of the given assignment will be read again.
    pub fn unread(&mut self, topic: &str, partition: i32, generation: u64, offset: i64) {
        if let Some(a) = self.partitions.get_mut(&(topic.into(), partition)) {
            if a.generation == generation {
                a.tracker.unread(offset);
            }
        }
    }

    /// Positions that moved since they were last taken.
    pub fn take_commits(&mut self) -> Vec<Commit> {
        let mut out: Vec<Commit> = self
            .partitions
            .iter_mut()
            .filter_map(|((topic, partition), a)| {
                a.tracker.take_commit().map(|offset| Commit {
                    topic: topic.clone(),
                    partition: *partition,
                    offset,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// A commit failed; offer it again.
    pub fn commit_failed(&mut self, commit: &Commit) {
        if let Some(a) = self
            .partitions
            .get_mut(&(commit.topic.clone(), commit.partition))
        {
            a.tracker.commit_failed(commit.offset);
        }
    }

    /// Offsets read but unsettled, over every partition.
    pub fn pending(&self) -> usize {
        self.partitions.values().map(|a| a.tracker.pending()).sum()
    }

    /// The generation of the current assignment of `partition` of `topic`.
    pub fn generation(&self, topic: &str, partition: i32) -> Option<u64> {
        self.partitions
            .get(&(topic.into(), partition))
            .map(|a| a.generation)
    }

    /// The watermark of `partition` of `topic`: everything before it is settled.
    pub fn watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(topic.into(), partition))
            .and_then(|a| a.tracker.watermark())
    }

    /// Partitions tracked.
    pub fn assigned(&self) -> usize {
        self.partitions.len()
    }

    /// The partitions of `topic` tracked here, with their generations.
    pub fn partitions_of(&self, topic: &str) -> Vec<(i32, u64)> {
        self.partitions
            .iter()
            .filter(|((t, _), _)| **t == *topic)
            .map(|((_, p), a)| (*p, a.generation))
            .collect()
    }

    /// Whether the partition is tracked (assigned, or read from before its assignment was seen).
    pub fn is_assigned(&self, topic: &str, partition: i32) -> bool {
        self.partitions.contains_key(&(topic.into(), partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_read_nothing_to_commit() {
        let mut t = PartitionTracker::default();
        assert_eq!(t.watermark(), None);
        assert_eq!(t.take_commit(), None);
    }

    #[test]
    fn out_of_order_completion_never_passes_an_unsettled_offset() {
        let mut t = PartitionTracker::default();
        for o in 10..15 {
            t.read(o);
        }
        t.settle(12);
        t.settle(14);
        t.settle(13);
        assert_eq!(t.watermark(), Some(10), "10 and 11 are still pending");
        t.settle(11);
        assert_eq!(t.watermark(), Some(10));
        t.settle(10);
        assert_eq!(
            t.watermark(),
            Some(15),
            "all settled: commit past the last read"
        );
    }

    #[test]
    fn gaps_in_offsets_do_not_block() {
        let mut t = PartitionTracker::default();
        t.read(3);
        t.read(7); // 4..=6 were compacted away
        t.settle(7);
        assert_eq!(t.watermark(), Some(3));
        t.settle(3);
        assert_eq!(t.watermark(), Some(8));
    }

    #[test]
    fn an_unread_offset_holds_the_watermark_back_until_it_is_read_again() {
        let mut t = PartitionTracker::default();
        t.read(4);
        t.read(5);
        t.settle(4);
        t.unread(5); // postponed: it will be read again
        assert_eq!(
            t.watermark(),
            Some(5),
            "never commit past a message handed back"
        );
        // The seek back failed: later offsets are read and settled, the watermark stays.
        t.read(6);
        t.settle(6);
        assert_eq!(t.watermark(), Some(5));
        t.read(5);
        t.settle(5);
        assert_eq!(t.watermark(), Some(7));
    }

    #[test]
    fn take_commit_only_when_moved_and_again_after_failure() {
        let mut t = PartitionTracker::default();
        t.read(0);
        t.read(1);
        assert_eq!(t.take_commit(), Some(0));
        assert_eq!(t.take_commit(), None);
        t.settle(0);
        assert_eq!(t.take_commit(), Some(1));
        t.commit_failed(1);
        assert_eq!(t.take_commit(), Some(1));
        t.settle(1);
        assert_eq!(t.take_commit(), Some(2));
    }

    #[test]
    fn random_completion_order_matches_a_model() {
        // Settle offsets in a shuffled order; after each step the watermark must equal the
        // smallest offset not yet settled.
        use rand::seq::SliceRandom;
        let mut rng = rand::rng();
        for _ in 0..200 {
            let mut order: Vec<i64> = (0..50).collect();
            order.shuffle(&mut rng);
            let mut t = PartitionTracker::default();
            (0..50).for_each(|o| t.read(o));
            let mut settled = [false; 50];
            for o in order {
                t.settle(o);
                settled[o as usize] = true;
                let expect = settled.iter().position(|s| !s).map_or(50, |p| p as i64);
                assert_eq!(t.watermark(), Some(expect));
            }
        }
    }

    #[test]
    fn stale_generation_is_ignored_after_reassignment() {
        let mut t = OffsetTracker::default();
        let g1 = t.read("t", 0, 5);
        assert_eq!(
            t.revoke("t", 0),
            Some(Commit {
                topic: "t".into(),
                partition: 0,
                offset: 5
            })
        );
        let g2 = t.assign("t", 0);
        assert_ne!(g1, g2);
        t.read("t", 0, 5);
        assert!(!t.settle("t", 0, g1, 5), "settle from the old assignment");
        assert_eq!(t.pending(), 1);
        assert!(t.settle("t", 0, g2, 5));
        assert_eq!(
            t.take_commits(),
            vec![Commit {
                topic: "t".into(),
                partition: 0,
                offset: 6
            }]
        );
    }
}
