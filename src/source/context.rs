//! The rdkafka consumer context: rebalance callbacks that keep the offset tracker in step with
//! the assignment (committing a revoked partition's settled position before it goes), commit
//! results, and lag from librdkafka's statistics.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::Offsets;
use super::watermark::Commit;
use crate::metrics::Metrics;

/// Called with the partitions a rebalance takes away, after their final commit.
pub type OnRevoke = std::sync::Arc<dyn Fn(&[(String, i32)]) + Send + Sync>;

/// Context of the source consumer.
pub struct SourceContext {
    pub(super) offsets: Offsets,
    pub(super) metrics: Metrics,
    pub(super) on_revoke: std::sync::RwLock<Option<OnRevoke>>,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// The list librdkafka commits from our positions.
pub(super) fn commit_list(commits: &[Commit]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for c in commits {
        tpl.add_partition_offset(&c.topic, c.partition, Offset::Offset(c.offset))
            .expect("a valid offset");
    }
    tpl
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            let commits = self.offsets.revoke(&revoked);
            tracing::info!(partitions = ?revoked, "partitions revoked");
            if !commits.is_empty() {
                // Synchronously: after this callback the partitions belong to someone else,
                // who starts from whatever is committed.
                let result = consumer.commit(&commit_list(&commits), CommitMode::Sync);
                self.record_commit(&result, &commits);
            }
            let hook = self.on_revoke.read().expect("revoke hook lock").clone();
            if let Some(hook) = hook {
                hook(&revoked);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = partitions(tpl);
                tracing::info!(partitions = ?assigned, "partitions assigned");
                self.offsets.assign(&assigned);
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

impl SourceContext {
    /// Counts a commit and publishes the committed positions.
    pub(super) fn record_commit(&self, result: &KafkaResult<()>, commits: &[Commit]) {
        match result {
            Ok(()) => {
                self.metrics.commits.with_label_values(&["ok"]).inc();
                for c in commits {
                    self.metrics
                        .committed_offset
                        .with_label_values(&[&*c.topic, &c.partition.to_string()])
                        .set(c.offset);
                }
                tracing::debug!(?commits, "offsets committed");
            }
            Err(e) => {
                self.metrics.commits.with_label_values(&["error"]).inc();
                tracing::warn!(error = %e, "offset commit failed; will retry");
                self.offsets.commit_failed(commits);
            }
        }
    }
}
