//! Settlement handles: how the stages after `source` tell the offset tracker that an event is
//! done with.
//!
//! One Kafka message can fan out into many deliveries (array elements x matched
//! subscriptions). The message's offset is settled only when every one of them is settled.
//! [`MessageAck`] counts them; each delivery holds one [`Ack`]. An `Ack` dropped without
//! [`Ack::settle`] (a crash path, a shutdown mid-delivery) poisons the message: its offset is
//! never committed by this process, so a restart re-delivers it instead of skipping it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Called once when every part of a message is settled.
pub trait SettleSink: Send + Sync + 'static {
    /// The message at `offset` of `partition` (within assignment `generation`) is settled.
    fn settled(&self, topic: &str, partition: i32, generation: u64, offset: i64);

    /// A part of the message was dropped unsettled: its offset must never be committed by
    /// this process. Called once, instead of [`SettleSink::settled`].
    fn abandoned(&self, topic: &str, partition: i32, generation: u64, offset: i64) {
        let _ = (topic, partition, generation, offset);
    }

    /// The message was handed back unprocessed and will be read again (the consumer seeks
    /// back to it): forget it was read. Called instead of the other two.
    fn unread(&self, topic: &str, partition: i32, generation: u64, offset: i64) {
        let _ = (topic, partition, generation, offset);
    }

    /// A part was given back after the message was processed ([`Ack::give_back`]): the
    /// message must be read again, and the consumer must seek back to it. Called instead of
    /// the others. By default it counts as abandoned (never committed by this process).
    fn given_back(&self, topic: &str, partition: i32, generation: u64, offset: i64) {
        self.abandoned(topic, partition, generation, offset);
    }
}

struct Shared {
    topic: Arc<str>,
    partition: i32,
    generation: u64,
    offset: i64,
    /// Parts not yet settled, plus one held by the [`MessageAck`] while parts are handed out.
    remaining: AtomicUsize,
    poisoned: AtomicBool,
    given_back: AtomicBool,
    sink: Arc<dyn SettleSink>,
}

impl Shared {
    fn release(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        if self.poisoned.load(Ordering::Acquire) {
            self.sink
                .abandoned(&self.topic, self.partition, self.generation, self.offset);
        } else if self.given_back.load(Ordering::Acquire) {
            self.sink
                .given_back(&self.topic, self.partition, self.generation, self.offset);
        } else {
            self.sink
                .settled(&self.topic, self.partition, self.generation, self.offset);
        }
    }
}

/// The message-level handle: hands out one [`Ack`] per part, then is finished.
pub struct MessageAck {
    shared: Arc<Shared>,
    finished: bool,
}

impl MessageAck {
    /// A handle for the message at `offset`; `sink` hears when all its parts are settled.
    pub fn new(
        topic: Arc<str>,
        partition: i32,
        generation: u64,
        offset: i64,
        sink: Arc<dyn SettleSink>,
    ) -> Self {
        MessageAck {
            shared: Arc::new(Shared {
                topic,
                partition,
                generation,
                offset,
                remaining: AtomicUsize::new(1),
                poisoned: AtomicBool::new(false),
                given_back: AtomicBool::new(false),
                sink,
            }),
            finished: false,
        }
    }

    /// One more part that must settle before the message does.
    pub fn part(&self) -> Ack {
        self.shared.remaining.fetch_add(1, Ordering::AcqRel);
        Ack {
            shared: Some(self.shared.clone()),
        }
    }

    /// The message was not processed and will be read again: it must neither settle nor
    /// count as abandoned. Only valid before any part was handed out.
    pub fn unread(mut self) {
        debug_assert_eq!(
            self.shared.remaining.load(Ordering::Acquire),
            1,
            "parts were handed out"
        );
        self.finished = true;
        let s = &self.shared;
        s.sink.unread(&s.topic, s.partition, s.generation, s.offset);
    }

    /// No more parts will be added. A message with no parts (nothing matched) settles here.
    pub fn finish(mut self) {
        self.finished = true;
        self.shared.release();
    }
}

impl Drop for MessageAck {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.poisoned.store(true, Ordering::Release);
            self.shared.release();
        }
    }
}

/// One part of a message (one delivery, or one dead-letter write). Settle it exactly once,
/// after the delivery succeeded or its dead-letter record was acknowledged by Kafka.
#[must_use = "an Ack that is dropped unsettled keeps its offset from ever being committed"]
pub struct Ack {
    shared: Option<Arc<Shared>>,
}

impl Ack {
    /// An ack that belongs to no message: for dry runs, benchmarks and replays.
    pub fn detached() -> Self {
        Ack { shared: None }
    }

    /// This part is done: delivered, dead-lettered, or deliberately dropped by a rule.
    pub fn settle(mut self) {
        if let Some(shared) = self.shared.take() {
            shared.release();
        }
    }

    /// This part was not done and should be done later from its source: the message is read
    /// again (its offset stays uncommitted until then). Other parts of the same message are
    /// done again too when it is re-read; at-least-once.
    pub fn give_back(mut self) {
        if let Some(shared) = self.shared.take() {
            shared.given_back.store(true, Ordering::Release);
            shared.release();
        }
    }

    /// The topic, partition and offset this part holds back (`None` when detached).
    pub fn position(&self) -> Option<(&str, i32, i64)> {
        self.shared
            .as_ref()
            .map(|s| (&*s.topic, s.partition, s.offset))
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.poisoned.store(true, Ordering::Release);
            shared.release();
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shared {
            Some(s) => write!(f, "Ack({}/{}@{})", s.topic, s.partition, s.offset),
            None => write!(f, "Ack(detached)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Record(Mutex<Vec<i64>>);
    impl SettleSink for Record {
        fn settled(&self, _t: &str, _p: i32, _g: u64, offset: i64) {
            self.0.lock().unwrap().push(offset);
        }
    }

    fn message(sink: &Arc<Record>, offset: i64) -> MessageAck {
        MessageAck::new("t".into(), 0, 1, offset, sink.clone())
    }

    #[test]
    fn settles_after_every_part() {
        let sink = Arc::new(Record::default());
        let msg = message(&sink, 7);
        let (a, b) = (msg.part(), msg.part());
        msg.finish();
        a.settle();
        assert!(sink.0.lock().unwrap().is_empty());
        b.settle();
        assert_eq!(*sink.0.lock().unwrap(), vec![7]);
    }

    #[test]
    fn message_without_parts_settles_on_finish() {
        let sink = Arc::new(Record::default());
        message(&sink, 3).finish();
        assert_eq!(*sink.0.lock().unwrap(), vec![3]);
    }

    #[test]
    fn dropped_part_never_settles() {
        let sink = Arc::new(Record::default());
        let msg = message(&sink, 9);
        let (a, b) = (msg.part(), msg.part());
        msg.finish();
        drop(a);
        b.settle();
        assert!(sink.0.lock().unwrap().is_empty());
    }

    #[derive(Default)]
    struct GivenBack(Mutex<Vec<i64>>);
    impl SettleSink for GivenBack {
        fn settled(&self, _t: &str, _p: i32, _g: u64, _o: i64) {
            panic!("a given-back message must not settle");
        }
        fn given_back(&self, _t: &str, _p: i32, _g: u64, offset: i64) {
            self.0.lock().unwrap().push(offset);
        }
    }

    #[test]
    fn a_part_given_back_has_the_message_read_again() {
        let sink = Arc::new(GivenBack::default());
        let msg = MessageAck::new("t".into(), 2, 1, 11, sink.clone());
        let (a, b) = (msg.part(), msg.part());
        msg.finish();
        assert_eq!(a.position(), Some(("t", 2, 11)));
        a.give_back();
        assert!(sink.0.lock().unwrap().is_empty(), "b is still out");
        b.settle();
        assert_eq!(*sink.0.lock().unwrap(), vec![11]);
    }

    #[test]
    fn unfinished_message_never_settles() {
        let sink = Arc::new(Record::default());
        let msg = message(&sink, 4);
        msg.part().settle();
        drop(msg);
        assert!(sink.0.lock().unwrap().is_empty());
    }
}
