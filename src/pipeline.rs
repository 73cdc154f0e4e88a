//! The stages between reading a message and handing deliveries to their queues: split into
//! events, route (classify, match, render), submit, and dead-letter what cannot go on.
//!
//! Every part a message fans out into takes one [`Ack`](crate::source::ack::Ack) from the
//! message's [`MessageAck`]; the message's offset settles when all of them have.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use prometheus::IntCounter;
use tokio_util::task::TaskTracker;

use crate::deliver::{Dispatcher, Job, JobFrom};
use crate::dlq::{DeadLetter, Reason};
use crate::event::{webhook_id, Event, Origin};
use crate::metrics::Metrics;
use crate::rules::{Router, RuleSet};
use crate::settle::Settler;
use crate::source::ack::{Ack, MessageAck};
use crate::source::consumer::{Flow, Handler};
use crate::source::split::split;

/// The most of a too-large message's bytes copied into its dead-letter record (a message
/// within `kafka.max_message_bytes` is kept whole). The whole message stays in its source
/// topic at the offset the record's headers name.
const MAX_TOO_LARGE_PAYLOAD: usize = 64 * 1024;

/// One Kafka message, borrowed from the consumer.
#[derive(Debug)]
pub struct Record<'a> {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Broker or producer timestamp.
    pub timestamp_ms: Option<i64>,
    /// The value; `None` for a tombstone.
    pub payload: Option<&'a [u8]>,
}

/// The routing stages of one running router. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    router: Router,
    dispatcher: Dispatcher,
    settler: Settler,
    metrics: Metrics,
    max_message_bytes: usize,
    background: TaskTracker,
    counters: Arc<Mutex<HashMap<Arc<str>, TopicCounters>>>,
}

/// One topic's counters, looked up by label once per topic rather than per event.
#[derive(Clone)]
struct TopicCounters {
    messages: IntCounter,
    events: IntCounter,
    matched: IntCounter,
    unmatched: IntCounter,
}

impl Pipeline {
    /// A pipeline routing with `router` and delivering through `dispatcher`.
    pub fn new(
        router: Router,
        dispatcher: Dispatcher,
        settler: Settler,
        max_message_bytes: usize,
    ) -> Self {
        let metrics = settler.metrics().clone();
        Pipeline {
            router,
            dispatcher,
            settler,
            metrics,
            max_message_bytes,
            background: TaskTracker::new(),
            counters: Arc::default(),
        }
    }

    fn counters(&self, topic: &Arc<str>) -> TopicCounters {
        let mut counters = self.counters.lock().expect("counters lock");
        if let Some(c) = counters.get(topic) {
            return c.clone();
        }
        let m = &self.metrics;
        let label = [&**topic];
        let c = TopicCounters {
            messages: m.messages_consumed.with_label_values(&label),
            events: m.events_consumed.with_label_values(&label),
            matched: m.events_matched.with_label_values(&label),
            unmatched: m.events_unmatched.with_label_values(&label),
        };
        counters.insert(topic.clone(), c.clone());
        c
    }
}

/// Routes every event of a message. Returns once each delivery is queued (waiting while a
/// queue is full) or a dead letter for it is under way.
impl Handler for Pipeline {
    async fn handle(&self, record: Record<'_>, ack: MessageAck) -> Flow {
        let counters = self.counters(&record.topic);
        counters.messages.inc();
        let origin = |index: u32| Origin {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            index,
        };
        // One rule set for the whole message: its events are parsed for what it reads.
        let rules = self.router.current();
        let wanted = rules.wanted(&record.topic);
        match split(record.payload, self.max_message_bytes, &wanted) {
            Err(refused) => self.invalid(
                origin(0),
                refused.reason,
                refused.message,
                record.payload,
                &ack,
            ),
            Ok(elements) => {
                let received_at = Utc::now();
                for (index, element) in elements.into_iter().enumerate() {
                    let origin = origin(index as u32);
                    match element {
                        Err(refused) => {
                            // The bad element alone: the others are routed as usual.
                            let element = refused.element.map(|e| e.to_string().into_bytes());
                            self.invalid(
                                origin,
                                refused.reason,
                                refused.message,
                                element.as_deref(),
                                &ack,
                            )
                        }
                        Ok(payload) => {
                            let event = Event {
                                origin,
                                payload: Arc::new(payload),
                                received_at,
                                kafka_timestamp_ms: record.timestamp_ms,
                            };
                            self.route(&rules, &counters, event, &ack).await;
                        }
                    }
                }
            }
        }
        ack.finish();
        Flow::Next
    }
}

impl Pipeline {
    /// Routes `event` with `rules`, the set it was parsed for.
    async fn route(
        &self,
        rules: &RuleSet,
        counters: &TopicCounters,
        event: Event,
        ack: &MessageAck,
    ) {
        counters.events.inc();
        let dispatcher = &self.dispatcher;
        let mut routing = self
            .router
            .route_in(rules, &event, &|s| dispatcher.wants_body(&s.id));
        if routing.deliveries.is_empty() {
            counters.unmatched.inc();
            return;
        }
        counters.matched.inc();
        for rendered in std::mem::take(&mut routing.deliveries) {
            let part = ack.part();
            // Left out for a job going to its backlog unrendered (see `Job::webhook_id`).
            let id = match rendered.body {
                Some(_) => webhook_id(&event.origin, &rendered.subscription.id),
                None => String::new(),
            };
            // No body: not rendered, because it goes to the subscription's backlog.
            let body = match rendered.body.transpose() {
                Ok(body) => body,
                Err(e) => {
                    // Counted in render_errors by the router, which rendered it.
                    let letter = DeadLetter::render_failed(
                        event.origin.clone(),
                        e.to_string(),
                        &rendered.subscription.id,
                        id,
                        &event.payload,
                    );
                    self.dead_letter(letter, part);
                    continue;
                }
            };
            let job = Job {
                subscription: rendered.subscription,
                webhook_id: id,
                event_type: routing.category.clone(),
                body,
                event: event.clone(),
                ack: part,
                retry_round: 0,
                from: JobFrom::Source,
                dedup: rendered.dedup,
            };
            self.dispatcher.submit(job).await;
        }
    }

    fn invalid(
        &self,
        origin: Origin,
        reason: Reason,
        error: String,
        payload: Option<&[u8]>,
        ack: &MessageAck,
    ) {
        self.metrics
            .messages_invalid
            .with_label_values(&[reason.as_str()])
            .inc();
        let bytes = payload.unwrap_or_default();
        let kept = match reason {
            Reason::TooLarge => &bytes[..bytes.len().min(MAX_TOO_LARGE_PAYLOAD)],
            _ => bytes,
        };
        let letter = DeadLetter::input(origin, reason, error, kept.to_vec());
        self.dead_letter(letter, ack.part());
    }

    /// Dead-letters in the background so a slow dead-letter topic does not stall reading;
    /// the ack keeps the offset from being committed until the write is acknowledged.
    fn dead_letter(&self, letter: DeadLetter, ack: Ack) {
        let settler = self.settler.clone();
        self.background
            .spawn(async move { settler.dead_letter(letter, ack).await });
    }

    /// Waits up to `grace` for background dead-letter writes to finish.
    pub async fn drain(&self, grace: Duration) {
        self.background.close();
        let _ = tokio::time::timeout(grace, self.background.wait()).await;
    }
}
