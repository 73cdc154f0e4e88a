//! A lane's spill ledger: whether its deliveries go straight to its queue or through its
//! backlog, and when they may go straight again without overtaking what is in the backlog.
//!
//! Once a lane spills one delivery, every later one spills too until the backlog's reader has
//! taken everything this lane wrote: the records it wrote are all acknowledged, and on every
//! backlog partition it wrote to, the reader (here, or on another instance through the
//! group's committed offsets) is past the last of them. Only then can a delivery queued
//! directly not overtake an older one still in Kafka.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::super::SpillCause;

#[derive(Debug, Default)]
struct Positions {
    /// The last record this lane wrote, per backlog partition.
    written: HashMap<i32, i64>,
    /// The last record the local reader handed to this lane, per backlog partition.
    handed: HashMap<i32, i64>,
    /// The backlog group's committed position (next offset to read), per backlog partition.
    committed: HashMap<i32, i64>,
}

/// See the module documentation. Shared by the lane, the dispatcher, the backlog writer's
/// delivery reports and the backlog reader.
#[derive(Debug, Default)]
pub struct SpillLedger {
    spilling: AtomicBool,
    /// Why the current spell of spilling began (for the metric label and the log line).
    cause: Mutex<Option<SpillCause>>,
    /// Records handed to the writer and not yet acknowledged or abandoned.
    unwritten: AtomicUsize,
    positions: Mutex<Positions>,
}

impl SpillLedger {
    /// Whether deliveries currently go through the backlog.
    pub fn spilling(&self) -> bool {
        self.spilling.load(Ordering::Acquire)
    }

    /// Why the current spell began.
    pub fn cause(&self) -> Option<SpillCause> {
        *self.cause.lock().expect("ledger lock")
    }

    /// Starts (or continues) a spell of spilling; returns true when it just began.
    pub fn start(&self, cause: SpillCause) -> bool {
        let mut current = self.cause.lock().expect("ledger lock");
        let began = !self.spilling.swap(true, Ordering::AcqRel);
        if began || current.is_none() {
            *current = Some(cause);
        }
        began
    }

    /// One record handed to the writer.
    pub fn writing(&self) {
        self.unwritten.fetch_add(1, Ordering::AcqRel);
    }

    /// A record handed to the writer landed at `offset` of `partition`.
    pub(crate) fn written(&self, partition: i32, offset: i64) {
        let mut p = self.positions.lock().expect("ledger lock");
        let last = p.written.entry(partition).or_insert(offset);
        *last = (*last).max(offset);
    }

    /// A record handed to the writer is done with (written or abandoned).
    pub(crate) fn settled_one(&self) {
        self.unwritten.fetch_sub(1, Ordering::AcqRel);
    }

    /// The local reader handed the record at `offset` of `partition` to the lane.
    pub fn handed(&self, partition: i32, offset: i64) {
        let mut p = self.positions.lock().expect("ledger lock");
        let last = p.handed.entry(partition).or_insert(offset);
        *last = (*last).max(offset);
    }

    /// The backlog group committed `next` (the next offset to read) on `partition`.
    pub fn committed(&self, partition: i32, next: i64) {
        let mut p = self.positions.lock().expect("ledger lock");
        let last = p.committed.entry(partition).or_insert(next);
        *last = (*last).max(next);
    }

    /// Backlog partitions this lane wrote to, for polling their committed positions.
    pub fn partitions_written(&self) -> Vec<i32> {
        let p = self.positions.lock().expect("ledger lock");
        p.written.keys().copied().collect()
    }

    /// Whether nothing this lane wrote is still ahead of the backlog's reader.
    pub fn caught_up(&self) -> bool {
        if self.unwritten.load(Ordering::Acquire) > 0 {
            return false;
        }
        let p = self.positions.lock().expect("ledger lock");
        p.written.iter().all(|(partition, last)| {
            p.handed.get(partition).is_some_and(|h| h >= last)
                || p.committed.get(partition).is_some_and(|c| c > last)
        })
    }

    /// Ends the spell: deliveries go straight to the queue again. Only call when
    /// [`SpillLedger::caught_up`] and the lane can take deliveries.
    pub fn stop(&self) -> Option<SpillCause> {
        self.spilling.store(false, Ordering::Release);
        self.cause.lock().expect("ledger lock").take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_only_when_every_written_record_was_taken() {
        let l = SpillLedger::default();
        assert!(l.caught_up(), "nothing written");
        assert!(l.start(SpillCause::QueueFull));
        assert!(!l.start(SpillCause::Paused), "already spilling");
        assert_eq!(l.cause(), Some(SpillCause::QueueFull));
        l.writing();
        l.writing();
        assert!(!l.caught_up(), "writes in flight");
        l.written(0, 10);
        l.settled_one();
        l.written(1, 4);
        l.settled_one();
        assert!(!l.caught_up());
        l.handed(0, 10);
        assert!(!l.caught_up(), "partition 1 not read past 4 yet");
        l.committed(1, 4);
        assert!(!l.caught_up(), "committed 4 means 4 is still to read");
        l.committed(1, 5);
        assert!(l.caught_up());
        assert_eq!(l.stop(), Some(SpillCause::QueueFull));
        assert!(!l.spilling());
    }
}
