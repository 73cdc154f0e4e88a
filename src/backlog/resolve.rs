//! Turning a backlog record's deliveries back into events: a copied event is parsed from the
//! record, a referred-to one read from its source topic ([`SourceFetcher`]) and split out of
//! its message, each parsed for what the rules in force read.

use std::collections::HashMap;
use std::sync::Arc;

use super::fetch::{FetchError, Fetched, SourceFetcher};
use super::record::{BacklogRecord, Stored};
use crate::dlq::Reason;
use crate::event::{Payload, Wanted};
use crate::source::split::{split, Element};

/// One delivery's event, or why it cannot be had.
pub enum Resolved {
    /// The event, and the Kafka timestamp of its message when it was read from there.
    Event {
        /// The event, parsed for what the rules read.
        payload: Payload,
        /// The source message's Kafka timestamp (for a referred-to event).
        kafka_timestamp_ms: Option<i64>,
    },
    /// Not to be had: dead-letter it.
    Unavailable {
        /// The dead letter's reason.
        reason: Reason,
        /// For humans.
        error: String,
        /// What of the event there is (empty when it is gone).
        payload: Vec<u8>,
    },
}

/// Each delivery of `record` resolved, in order. Fails (try the record again later) only
/// when the source topic cannot be read now.
pub async fn resolve(
    record: &BacklogRecord,
    fetcher: &SourceFetcher,
    wanted: &(dyn Fn(&str) -> Arc<Wanted> + Sync),
) -> Result<Vec<Resolved>, FetchError> {
    let mut messages = fetch_referred(record, fetcher).await?;
    let mut split_at: Option<(i64, Vec<Option<Element>>)> = None;
    let mut out = Vec::with_capacity(record.deliveries.len());
    for waiting in &record.deliveries {
        let origin = &waiting.origin;
        let resolved = match &waiting.event {
            Stored::Copied(event) => match Payload::parse(event.get(), &wanted(&origin.topic)) {
                Ok(payload) => Resolved::Event {
                    payload,
                    kafka_timestamp_ms: None,
                },
                // Only possible for an event whose skipped parts the rules now read.
                Err(e) => Resolved::Unavailable {
                    reason: Reason::InvalidRecord,
                    error: format!("the event cannot be parsed: {e}"),
                    payload: event.get().as_bytes().to_vec(),
                },
            },
            Stored::InSource { timestamp_ms } => {
                let gone = |why: &str| Resolved::Unavailable {
                    reason: Reason::SourceGone,
                    error: format!(
                        "the event at {}/{} offset {} index {} {why}",
                        origin.topic, origin.partition, origin.offset, origin.index
                    ),
                    payload: Vec::new(),
                };
                match messages.get_mut(&origin.offset) {
                    None | Some(Fetched::Gone) => gone(
                        "is no longer in its source topic (retention or compaction removed it before its subscription took it)",
                    ),
                    Some(Fetched::Found {
                        timestamp_ms: found_ts,
                        payload,
                    }) => {
                        if found_ts != timestamp_ms {
                            gone("is not the message the event was read from (its timestamp differs: the topic was created again)")
                        } else {
                            let element = take_element(
                                &mut split_at,
                                origin.offset,
                                origin.index,
                                payload.as_deref(),
                                &wanted(&origin.topic),
                            );
                            match element {
                                Some(Ok(payload)) => Resolved::Event {
                                    payload,
                                    kafka_timestamp_ms: *found_ts,
                                },
                                _ => gone("is not in the message now at its offset (the topic was created again)"),
                            }
                        }
                    }
                }
            }
        };
        out.push(resolved);
    }
    Ok(out)
}

/// Element `index` of the message at `offset`, split once for every delivery of it that
/// follows (a record's deliveries are in order); split again if that element was taken.
fn take_element(
    cache: &mut Option<(i64, Vec<Option<Element>>)>,
    offset: i64,
    index: u32,
    message: Option<&[u8]>,
    wanted: &Wanted,
) -> Option<Element> {
    let split_now = |cache: &mut Option<(i64, Vec<Option<Element>>)>| {
        // Refused only if larger than the limit then, which a routed message was not.
        let elements = split(message, usize::MAX, wanted)
            .map(|e| e.into_iter().map(Some).collect())
            .unwrap_or_default();
        *cache = Some((offset, elements));
    };
    if cache.as_ref().is_none_or(|(at, _)| *at != offset) {
        split_now(cache);
    }
    let take = |cache: &mut Option<(i64, Vec<Option<Element>>)>| {
        cache
            .as_mut()
            .and_then(|(_, e)| e.get_mut(index as usize))
            .and_then(Option::take)
    };
    take(cache).or_else(|| {
        split_now(cache);
        take(cache)
    })
}

/// The source messages `record` refers to, by offset.
async fn fetch_referred(
    record: &BacklogRecord,
    fetcher: &SourceFetcher,
) -> Result<HashMap<i64, Fetched>, FetchError> {
    let offsets: Vec<i64> = record
        .deliveries
        .iter()
        .filter(|d| matches!(d.event, Stored::InSource { .. }))
        .map(|d| d.origin.offset)
        .collect();
    let Some(first) = record.deliveries.first() else {
        return Ok(HashMap::new());
    };
    if offsets.is_empty() {
        return Ok(HashMap::new());
    }
    // A record's deliveries are all of one source partition.
    let (topic, partition) = (&first.origin.topic, first.origin.partition);
    Ok(fetcher
        .fetch(topic, partition, offsets)
        .await?
        .into_iter()
        .collect())
}
