//! Reading backlogs: one consumer over every backlog topic hands each record to its
//! subscription's lane when the lane has room and takes deliveries. Otherwise the record is
//! handed back and its topic's partitions paused until the lane does (`Flow::WhenReady`), so a
//! paused, failing or slow subscription's backlog stays in Kafka, and other subscriptions'
//! backlogs are read meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::fetch::{FetchError, SourceFetcher};
use super::record::{self, BacklogRecord};
use super::resolve::{resolve, Resolved};
use super::{topic, BacklogSettings};
use crate::deliver::lane::BacklogAdmission;
use crate::deliver::{Dispatcher, Job, JobFrom};
use crate::dlq::{DeadLetter, Reason};
use crate::event::{Event, Origin, Wanted};
use crate::pipeline::Record;
use crate::rules::Router;
use crate::settle::Settler;
use crate::source::ack::MessageAck;
use crate::source::consumer::{Flow, Handler};

/// Per backlog partition (topic, partition), when the event the reader waits at was read from
/// its source.
pub type Waiting = Arc<Mutex<HashMap<(String, i32), DateTime<Utc>>>>;

/// Turns backlog records back into jobs, at each subscription's pace.
pub struct BacklogReader {
    router: Router,
    dispatcher: Dispatcher,
    settler: Settler,
    settings: BacklogSettings,
    /// Reads the events records refer to from their source topics.
    fetcher: SourceFetcher,
    /// Per backlog partition, when the record it waits at was first read from its source
    /// (for the age gauge).
    waiting: Waiting,
}

impl BacklogReader {
    /// A reader handing records to `dispatcher`'s lanes, rendering them with `router`'s rules,
    /// reading the events they refer to with `fetcher`.
    pub fn new(
        router: Router,
        dispatcher: Dispatcher,
        settler: Settler,
        settings: BacklogSettings,
        fetcher: SourceFetcher,
    ) -> Self {
        BacklogReader {
            router,
            dispatcher,
            settler,
            settings,
            fetcher,
            waiting: Arc::default(),
        }
    }

    /// Per backlog partition, when the event the reader waits at was read from its source.
    pub fn waiting(&self) -> Waiting {
        self.waiting.clone()
    }

    fn wait_at(&self, message: &Record<'_>, record: &BacklogRecord) {
        let key = (message.topic.to_string(), message.partition);
        let mut waiting = self.waiting.lock().expect("waiting lock");
        waiting.insert(key, record.deliveries[0].received_at);
    }

    fn moved_on(&self, message: &Record<'_>) {
        let key = (message.topic.to_string(), message.partition);
        self.waiting.lock().expect("waiting lock").remove(&key);
    }

    /// A record whose subscription no rule set has: it waits `orphan_after` from when it was
    /// written (a rolling deploy may be adding the subscription), then is dead-lettered.
    async fn orphan(&self, message: &Record<'_>, record: BacklogRecord, ack: MessageAck) -> Flow {
        let until = record.spilled_at
            + chrono::Duration::from_std(self.settings.orphan_after).unwrap_or_default();
        if Utc::now() < until {
            self.wait_at(message, &record);
            return Flow::Later {
                until: until.into(),
                ack,
            };
        }
        // Dead letters carry the events: read back what the record refers to.
        let events = match resolve(&record, &self.fetcher, &|_| Arc::new(Wanted::All)).await {
            Ok(events) => events,
            Err(e) => return self.fetch_later(message, &record, e, ack),
        };
        tracing::warn!(subscription = %record.subscription, deliveries = record.deliveries.len(), "backlog record of a removed subscription; dead-lettering its events");
        for (waiting, event) in record.deliveries.into_iter().zip(events) {
            let (payload, gone) = match event {
                Resolved::Event { payload, .. } => (payload.json().to_vec(), String::new()),
                Resolved::Unavailable { error, payload, .. } => (payload, format!("; {error}")),
            };
            let letter = DeadLetter {
                origin: waiting.origin.to_origin(),
                reason: Reason::SubscriptionRemoved,
                error: format!(
                    "subscription {:?} was removed while the event waited in its backlog{gone}",
                    record.subscription
                ),
                subscription: Some(record.subscription.clone()),
                webhook_id: Some(waiting.webhook_id),
                attempts: 0,
                status: None,
                payload,
            };
            self.settler.dead_letter(letter, ack.part()).await;
        }
        self.moved_on(message);
        ack.finish();
        Flow::Next
    }

    /// The source topic a record refers to cannot be read now: the record is read again in
    /// a second.
    fn fetch_later(
        &self,
        message: &Record<'_>,
        record: &BacklogRecord,
        error: FetchError,
        ack: MessageAck,
    ) -> Flow {
        tracing::warn!(subscription = %record.subscription, error = %error, "cannot read the events a backlog record refers to; trying again");
        self.wait_at(message, record);
        Flow::Later {
            until: std::time::SystemTime::now() + std::time::Duration::from_secs(1),
            ack,
        }
    }

    async fn invalid(&self, message: &Record<'_>, error: String, ack: MessageAck) -> Flow {
        // Not written by hookline (or by a newer one): kept, with the reason.
        let origin = Origin {
            topic: message.topic.clone(),
            partition: message.partition,
            offset: message.offset,
            index: 0,
        };
        let letter = DeadLetter::input(
            origin,
            Reason::InvalidRecord,
            error,
            message.payload.unwrap_or_default().to_vec(),
        );
        self.settler.dead_letter(letter, ack.part()).await;
        ack.finish();
        Flow::Next
    }
}

impl Handler for BacklogReader {
    async fn handle(&self, message: Record<'_>, ack: MessageAck) -> Flow {
        let record = match record::decode(message.payload.unwrap_or_default()) {
            Ok(record) => record,
            Err(e) => return self.invalid(&message, e.to_string(), ack).await,
        };
        let owner = topic::subscription_of(&self.settings.prefix, &message.topic);
        if owner != Some(record.subscription.as_str()) {
            let e = format!(
                "a record for subscription {:?} in backlog topic {}",
                record.subscription, message.topic
            );
            return self.invalid(&message, e, ack).await;
        }
        let Some(lane) = self.dispatcher.lane(&record.subscription) else {
            return self.orphan(&message, record, ack).await;
        };
        match lane.admit_backlog() {
            BacklogAdmission::Gone => return self.orphan(&message, record, ack).await,
            BacklogAdmission::Later(ready) => {
                self.wait_at(&message, &record);
                return Flow::WhenReady { ready, ack };
            }
            BacklogAdmission::Now => {}
        }
        let rules = self.router.current();
        if !rules
            .subscriptions()
            .iter()
            .any(|s| *s.id == *record.subscription)
        {
            // The lane exists but the rules in force lost the subscription: a reload is
            // retiring it.
            return self.orphan(&message, record, ack).await;
        }
        let events = match resolve(&record, &self.fetcher, &|topic| rules.wanted(topic)).await {
            Ok(events) => events,
            Err(e) => return self.fetch_later(&message, &record, e, ack),
        };
        let mut jobs = Vec::with_capacity(record.deliveries.len());
        for (waiting, event) in record.deliveries.into_iter().zip(events) {
            let record::Waiting {
                webhook_id,
                round,
                origin,
                received_at,
                dedup,
                event: _,
            } = waiting;
            let (payload, kafka_timestamp_ms) = match event {
                Resolved::Event {
                    payload,
                    kafka_timestamp_ms,
                } => (payload, kafka_timestamp_ms),
                Resolved::Unavailable {
                    reason,
                    error,
                    payload,
                } => {
                    // This delivery alone: the rest of the record goes on.
                    tracing::warn!(subscription = %record.subscription, reason = reason.as_str(), %error, "a backlog delivery's event cannot be had; dead-lettering it");
                    let letter = DeadLetter {
                        origin: origin.to_origin(),
                        reason,
                        error,
                        subscription: Some(record.subscription.clone()),
                        webhook_id: Some(webhook_id),
                        attempts: 0,
                        status: None,
                        payload,
                    };
                    self.settler.dead_letter(letter, ack.part()).await;
                    continue;
                }
            };
            let event = Event {
                origin: origin.to_origin(),
                payload: Arc::new(payload),
                received_at,
                kafka_timestamp_ms,
            };
            let (category, body) = rules
                .render_for(&event, &record.subscription)
                .expect("the rules in force have the subscription: checked above");
            let body = match body {
                Ok(body) => body,
                Err(e) => {
                    let letter = DeadLetter::render_failed(
                        event.origin.clone(),
                        e.to_string(),
                        &record.subscription,
                        webhook_id,
                        &event.payload,
                    );
                    self.settler.render_failed(letter, ack.part()).await;
                    continue;
                }
            };
            jobs.push(Job {
                subscription: lane.settings(),
                webhook_id,
                event_type: category,
                body: Some(body),
                event,
                ack: ack.part(),
                retry_round: round,
                from: JobFrom::Backlog,
                dedup,
            });
        }
        // The whole record, even past the lane's read-ahead: a record holds at most
        // `record::MAX_DELIVERIES`, so that bounds what the lane holds.
        match lane.push_backlog(jobs) {
            Ok(()) => lane.ledger().handed(message.partition, message.offset),
            // The lane closed between the check and the push: read it again later.
            Err(jobs) => jobs.into_iter().for_each(|job| job.ack.give_back()),
        }
        self.moved_on(&message);
        ack.finish();
        Flow::Next
    }
}
