//! The reader roles beside the source: one consumer over every retry tier (group
//! `<group_id>.retry`), and one consumer over every backlog topic (group
//! `<group_id>.backlog`) with its monitor. A record not due yet pauses only its own
//! partition, so one consumer serves every tier.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::delivery::Delivery;
use crate::backlog::fetch::SourceFetcher;
use crate::backlog::monitor::Monitor;
use crate::backlog::{topic, BacklogReader};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::retry_topic::RetryReader;
use crate::rules::Router;
use crate::source::consumer::{consumer_config, tier_reader_config};
use crate::source::{Role, Source, SourceError};

/// The consumers of hookline's own topics.
pub(super) struct Readers {
    retry: Option<Arc<Source>>,
    backlog: Arc<Source>,
    /// Reads the events backlog records refer to from their source topics.
    fetcher: SourceFetcher,
}

impl Readers {
    /// Creates and subscribes the consumers.
    pub fn new(settings: &Settings, metrics: &Metrics) -> Result<Readers, SourceError> {
        let mut retry = None;
        if let Some(schedule) = &settings.retry_schedule {
            let group = format!("{}.retry", settings.kafka.group_id);
            let config = tier_reader_config(&settings.kafka, &group);
            let reader =
                Source::with_config(config, &settings.kafka, metrics.clone(), Role::Retry)?;
            reader.subscribe(&schedule.topics())?;
            retry = Some(Arc::new(reader));
        }
        let mut config = consumer_config(&settings.kafka);
        config
            .set("group.id", format!("{}.backlog", settings.kafka.group_id))
            // New backlog topics are found by the pattern subscription at the next refresh.
            .set("topic.metadata.refresh.interval.ms", "10000")
            // Read ahead little: each lane takes only what it can send soon, and whatever
            // is fetched beyond that is dropped again when the partition pauses.
            .set("queued.min.messages", "1000")
            .set("queued.max.messages.kbytes", "8192")
            .set("max.partition.fetch.bytes", "262144");
        // Each lane bounds what it takes from its backlog; a shared cap would let one
        // subscription's read-ahead stop the others'.
        let mut kafka = settings.kafka.clone();
        kafka.max_inflight_messages = usize::MAX;
        let backlog = Source::with_config(config, &kafka, metrics.clone(), Role::Backlog)?;
        backlog.subscribe(&[topic::pattern(&settings.backlog.prefix)])?;
        let fetcher = SourceFetcher::new(&settings.kafka).map_err(SourceError::Create)?;
        Ok(Readers {
            retry,
            backlog: Arc::new(backlog),
            fetcher,
        })
    }

    /// Starts reading; the handles end after `stop`.
    pub fn spawn(
        &self,
        settings: &Settings,
        router: &Router,
        delivery: &Delivery,
        stop: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(reader) = &self.retry {
            let reader = reader.clone();
            let handler = RetryReader::new(
                router.clone(),
                delivery.dispatcher.clone(),
                delivery.settler.clone(),
            );
            let stop = stop.clone();
            tasks.push(tokio::spawn(
                async move { reader.run(&handler, stop).await },
            ));
        }
        let handler = BacklogReader::new(
            router.clone(),
            delivery.dispatcher.clone(),
            delivery.settler.clone(),
            settings.backlog.clone(),
            self.fetcher.clone(),
        );
        let monitor = Monitor {
            source: self.backlog.clone(),
            dispatcher: delivery.dispatcher.clone(),
            settings: settings.backlog.clone(),
            metrics: delivery.settler.metrics().clone(),
            waiting: handler.waiting(),
        };
        tokio::spawn(monitor.run(stop.clone()));
        // A revoked backlog partition is someone else's now: lanes drop what they queued
        // from it (the new owner reads it again) instead of delivering it beside them.
        let dispatcher = delivery.dispatcher.clone();
        let prefix = settings.backlog.prefix.clone();
        self.backlog.on_revoke(Arc::new(move |revoked| {
            for (t, p) in revoked {
                let lane = topic::subscription_of(&prefix, t).and_then(|s| dispatcher.lane(s));
                if let Some(lane) = lane {
                    lane.forget_backlog(t, *p);
                }
            }
        }));
        let backlog = self.backlog.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(
            async move { backlog.run(&handler, stop).await },
        ));
        tasks
    }

    /// Signals that each reader's consumer has closed (see [`Source::closed`]).
    pub fn closed(&self) -> Vec<CancellationToken> {
        let mut out: Vec<_> = self.retry.iter().map(|r| r.closed()).collect();

        out.push(self.backlog.closed());
        out
    }

    /// Commits what every reader settled.
    pub async fn commit(&self) {
        if let Some(reader) = &self.retry {
            reader.commit().await;
        }
        self.backlog.commit().await;
    }
}
