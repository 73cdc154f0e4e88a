//! Reading a retry tier: wait until a record is due (its partition paused meanwhile, so the
//! consumer keeps its group membership), then hand the job back to its subscription's queue.

use chrono::Utc;

use super::record::{self, RetryRecord};
use crate::deliver::{Dispatcher, Job, JobFrom};
use crate::dlq::{DeadLetter, Reason};
use crate::event::Origin;
use crate::pipeline::Record;
use crate::rules::Router;
use crate::settle::Settler;
use crate::source::ack::MessageAck;
use crate::source::consumer::{Flow, Handler};

/// Turns due retry records back into jobs.
pub struct RetryReader {
    router: Router,
    dispatcher: Dispatcher,
    settler: Settler,
}

impl RetryReader {
    /// A reader submitting to `dispatcher` with the subscriptions `router` has in force.
    pub fn new(router: Router, dispatcher: Dispatcher, settler: Settler) -> Self {
        RetryReader {
            router,
            dispatcher,
            settler,
        }
    }

    async fn redeliver(&self, record: RetryRecord, ack: &MessageAck) {
        let rules = self.router.current();
        let Some(subscription) = rules
            .subscriptions()
            .iter()
            .find(|s| *s.id == record.subscription)
            .cloned()
        else {
            // The subscription was removed meanwhile: the rules no longer want this event.
            self.settler.dropped(&record.subscription, ack.part());
            return;
        };
        let event = record.to_event();
        let mut event_type = record.event_type;
        let body = match record.body {
            Some(body) => body,
            None => match rules.render_for(&event, &subscription.id) {
                Some((category, Ok(body))) => {
                    event_type = category;
                    body
                }
                Some((_, Err(e))) => {
                    let letter = DeadLetter::render_failed(
                        event.origin.clone(),
                        e.to_string(),
                        &record.subscription,
                        record.webhook_id.clone(),
                        &event.payload,
                    );
                    self.settler.render_failed(letter, ack.part()).await;
                    return;
                }
                None => unreachable!("the subscription was found above"),
            },
        };
        let job = Job {
            subscription,
            webhook_id: record.webhook_id,
            event_type,
            body: Some(body),
            event,
            ack: ack.part(),
            retry_round: record.round,
            from: JobFrom::Retry,
            dedup: Vec::new(),
        };
        self.dispatcher.submit(job).await;
    }
}

impl Handler for RetryReader {
    async fn handle(&self, message: Record<'_>, ack: MessageAck) -> Flow {
        match record::decode(message.payload.unwrap_or_default()) {
            Ok(record) if record.due_ms > Utc::now().timestamp_millis() => Flow::Later {
                until: record.due(),
                ack,
            },
            Ok(record) => {
                self.redeliver(record, &ack).await;
                ack.finish();
                Flow::Next
            }
            Err(e) => {
                // Not written by hookline (or damaged): keep it, with the reason, rather than
                // drop it or let a malformed id reach a header.
                let origin = Origin {
                    topic: message.topic.clone(),
                    partition: message.partition,
                    offset: message.offset,
                    index: 0,
                };
                let letter = DeadLetter::input(
                    origin,
                    Reason::InvalidRecord,
                    e.to_string(),
                    message.payload.unwrap_or_default().to_vec(),
                );
                self.settler.dead_letter(letter, ack.part()).await;
                ack.finish();
                Flow::Next
            }
        }
    }
}
