//! Watching backlogs, every few seconds:
//! - depth and age of each backlog this instance reads (the owner of a backlog partition
//!   reports it, so summing over a fleet counts each once);
//! - the backlog group's committed positions on the partitions a spilling lane wrote to, so
//!   the lane knows it caught up even when another instance reads its backlog.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{topic, BacklogSettings};
use crate::deliver::Dispatcher;
use crate::metrics::Metrics;
use crate::source::Source;

/// How often gauges and positions are refreshed.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// What the monitor reads.
pub struct Monitor {
    /// The backlog consumer.
    pub source: Arc<Source>,
    /// Lanes, for their ledgers and read-ahead.
    pub dispatcher: Dispatcher,
    /// Backlog naming.
    pub settings: BacklogSettings,
    /// The gauges.
    pub metrics: Metrics,
    /// From the reader: when the event each partition waits at was read from its source.
    pub waiting: super::reader::Waiting,
}

fn offset_of(tpl: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match tpl.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

impl Monitor {
    /// Refreshes until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reported: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            // A query may take seconds; a stop must not wait for it (nor keep the dispatcher
            // and its producers alive meanwhile).
            let cycle = async {
                self.positions().await;
                self.gauges(reported.clone()).await
            };
            tokio::select! {
                now = cycle => reported = now,
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Runs a blocking consumer query off the async workers.
    async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Source) -> T + Send + 'static,
    ) -> Option<T> {
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || f(&source)).await.ok()
    }

    /// Tells spilling lanes where the group has committed on the partitions they wrote to.
    async fn positions(&self) {
        let lanes: Vec<_> = self
            .dispatcher
            .lanes()
            .into_iter()
            .filter(|l| l.ledger().spilling())
            .collect();
        let mut tpl = TopicPartitionList::new();
        for lane in &lanes {
            let name = topic::name(&self.settings.prefix, lane.id());
            for p in lane.ledger().partitions_written() {
                tpl.add_partition(&name, p);
            }
        }
        if tpl.count() == 0 {
            return;
        }
        let committed = self
            .query(move |s| s.consumer().committed_offsets(tpl, Duration::from_secs(5)))
            .await;
        let Some(Ok(committed)) = committed else {
            return;
        };
        for lane in &lanes {
            let name = topic::name(&self.settings.prefix, lane.id());
            for p in lane.ledger().partitions_written() {
                if let Some(next) = offset_of(&committed, &name, p) {
                    lane.ledger().committed(p, next);
                }
            }
        }
    }

    /// Sets depth and age for the backlogs this instance reads; removes the series of
    /// backlogs it no longer reads. Returns the subscriptions reported.
    async fn gauges(&self, before: HashSet<String>) -> HashSet<String> {
        let assignment = match self.source.consumer().assignment() {
            Ok(a) => a,
            Err(_) => return before,
        };
        let owned: Vec<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let mut ends = TopicPartitionList::new();
        for (t, p) in &owned {
            let _ = ends.add_partition_offset(t, *p, Offset::End);
        }
        let ends = if owned.is_empty() {
            None
        } else {
            self.query(move |s| s.consumer().offsets_for_times(ends, Duration::from_secs(5)))
                .await
                .and_then(Result::ok)
        };
        let mut unknown = TopicPartitionList::new();
        for (t, p) in &owned {
            if self.source.offsets().watermark(t, *p).is_none() {
                unknown.add_partition(t, *p);
            }
        }
        let committed = if unknown.count() == 0 {
            None
        } else {
            self.query(move |s| {
                s.consumer()
                    .committed_offsets(unknown, Duration::from_secs(5))
            })
            .await
            .and_then(Result::ok)
        };
        let now = Utc::now();
        let mut depths: HashMap<String, i64> = HashMap::new();
        let mut oldest: HashMap<String, DateTime<Utc>> = HashMap::new();
        let waiting = self.waiting.lock().expect("waiting lock").clone();
        for (t, p) in &owned {
            let Some(sub) = topic::subscription_of(&self.settings.prefix, t) else {
                continue;
            };
            let end = ends.as_ref().and_then(|e| offset_of(e, t, *p));
            let at = self
                .source
                .offsets()
                .watermark(t, *p)
                .or_else(|| committed.as_ref().and_then(|c| offset_of(c, t, *p)))
                .unwrap_or(0);
            let depth = end.map_or(0, |e| (e - at).max(0));
            *depths.entry(sub.to_string()).or_default() += depth;
            if depth > 0 {
                if let Some(received) = waiting.get(&(t.clone(), *p)) {
                    let o = oldest.entry(sub.to_string()).or_insert(*received);
                    *o = (*o).min(*received);
                }
            }
        }
        for (sub, depth) in &depths {
            let mut age = oldest.get(sub).copied();
            if *depth > 0 {
                if let Some(lane) = self.dispatcher.lane(sub) {
                    if let Some(held) = lane.oldest_backlog_received() {
                        age = Some(age.map_or(held, |a| a.min(held)));
                    }
                }
            }
            let seconds = age.map_or(0.0, |a| (now - a).num_milliseconds().max(0) as f64 / 1e3);
            self.metrics
                .backlog_depth
                .with_label_values(&[sub])
                .set(*depth);
            self.metrics
                .backlog_oldest_age
                .with_label_values(&[sub])
                .set(seconds);
        }
        for sub in before.difference(&depths.keys().cloned().collect()) {
            let _ = self.metrics.backlog_depth.remove_label_values(&[sub]);
            let _ = self.metrics.backlog_oldest_age.remove_label_values(&[sub]);
        }
        depths.into_keys().collect()
    }
}
