//! The rdkafka consumer context: rebalance callbacks that keep the offset tracker in step with
//! the assignment (committing a revoked partition's settled position before it goes), commit
//! results, lag from librdkafka's statistics, and librdkafka's errors at a fitting level.
//!
//! Lag and committed-offset series exist only for partitions this instance holds: a revoked
//! partition's series are removed, so that the new owner's are the only ones and `sum()` over
//! instances counts each partition once.

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::Offsets;
use super::watermark::Commit;
use super::Role;
use crate::metrics::Metrics;

/// Called with the partitions a rebalance takes away, after their final commit.
pub type OnRevoke = std::sync::Arc<dyn Fn(&[(String, i32)]) + Send + Sync>;

/// Context of a consumer (the source, a retry-tier reader, or the backlog reader).
pub struct SourceContext {
    pub(super) offsets: Offsets,
    pub(super) metrics: Metrics,
    pub(super) role: Role,
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
                // Statistics can still list a partition just revoked.
                if *partition >= 0
                    && p.consumer_lag >= 0
                    && self.offsets.is_assigned(topic, *partition)
                {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[self.role.as_str(), topic, &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A topic pattern that matches nothing yet is normal (the topic is picked up once it
        // is created); a missing literal topic may be a typo, worth a warning, not an error.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownTopicOrPartition) {
            if reason.contains(": ^") {
                tracing::info!(reason, "no topic matches a subscribed pattern yet");
            } else {
                tracing::warn!(reason, "a subscribed topic does not exist (yet)");
            }
        } else {
            tracing::error!(%error, reason, "librdkafka error");
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions(tpl);
            let commits = self.offsets.revoke(&revoked);
            tracing::info!(role = self.role.as_str(), partitions = ?revoked, "partitions revoked");
            if !commits.is_empty() {
                // Synchronously: after this callback the partitions belong to someone else,
                // who starts from whatever is committed.
                let result = consumer.commit(&commit_list(&commits), CommitMode::Sync);
                self.record_commit(&result, &commits);
            }
            for (topic, partition) in &revoked {
                let labels = [self.role.as_str(), topic, &partition.to_string()];
                let _ = self.metrics.consumer_lag.remove_label_values(&labels);
                let _ = self.metrics.committed_offset.remove_label_values(&labels);
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
                tracing::info!(role = self.role.as_str(), partitions = ?assigned, "partitions assigned");
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
                // Not for partitions revoked meanwhile: their series are gone for good.
                for c in commits
                    .iter()
                    .filter(|c| self.offsets.is_assigned(&c.topic, c.partition))
                {
                    self.metrics
                        .committed_offset
                        .with_label_values(&[
                            self.role.as_str(),
                            &c.topic,
                            &c.partition.to_string(),
                        ])
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
