//! Dedup windows: a delivery whose key a route already delivered to the same subscription within
//! the route's window is suppressed.
//!
//! Routing only computes the keys ([`DedupKey`]); the decision is taken where the delivery
//! happens (the subscription's lane), so that it holds for whoever delivers: in fleet mode that
//! is the one instance owning the subscription. The window runs from the last *delivery*, not
//! the last sighting, so an event that Netography re-sends as "ongoing" every few minutes is
//! re-notified once per window rather than silenced for as long as it keeps coming, and a key
//! whose delivery failed does not suppress anything.
//!
//! A key is claimed when its delivery starts, with the delivery's `webhook-id`; a second
//! delivery of the same key meanwhile is a repeat. The same `webhook-id` is never a repeat of
//! itself: an event read again after a rebalance or a restart (same topic, partition, offset,
//! index) is delivered again, never suppressed by its own earlier attempt.
//!
//! The memory is per process and bounded ([`MAX_KEYS`]); a restart or a rebalance forgets it
//! (receivers still get stable `webhook-id`s to dedupe on).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Keys remembered at most; beyond this, new keys are not remembered (events are delivered
/// rather than risking unbounded memory).
pub const MAX_KEYS: usize = 100_000;

/// One dedup key of a delivery: the route whose window applies, the key it computed, and the
/// window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupKey {
    /// The route's id.
    pub route: Arc<str>,
    /// The key (the JSON text of what the route's key expression gave).
    pub key: String,
    /// How long a delivered key suppresses repeats.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

/// What to do with a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it (its keys are now claimed by it).
    Deliver,
    /// Every one of its keys was delivered, or is being delivered, by another delivery within
    /// the window: settle it as suppressed.
    Repeat,
}

type Slot = (Arc<str>, Arc<str>, String);

#[derive(Debug)]
struct Entry {
    webhook_id: String,
    /// `None` while the delivery that claimed the key is in flight.
    until: Option<Instant>,
}

/// Remembered deliveries: (subscription, route, key) -> who delivered it, until when.
#[derive(Debug, Default)]
pub struct DedupStore {
    entries: Mutex<HashMap<Slot, Entry>>,
}

fn slot(subscription: &str, key: &DedupKey) -> Slot {
    (subscription.into(), key.route.clone(), key.key.clone())
}

impl DedupStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides on the delivery `webhook_id` to `subscription` with `keys` (none: never a
    /// repeat). When it is to be delivered, claims its keys for it.
    pub fn claim(
        &self,
        subscription: &str,
        keys: &[DedupKey],
        webhook_id: &str,
        now: Instant,
    ) -> Verdict {
        if keys.is_empty() {
            return Verdict::Deliver;
        }
        let mut map = self.entries.lock().expect("dedup lock");
        let held_by_other =
            |e: &Entry| e.webhook_id != webhook_id && e.until.is_none_or(|u| now < u);
        let repeat = keys
            .iter()
            .all(|k| map.get(&slot(subscription, k)).is_some_and(held_by_other));
        if repeat {
            return Verdict::Repeat;
        }
        for key in keys {
            let slot = slot(subscription, key);
            if map.get(&slot).is_some_and(held_by_other) {
                continue;
            }
            if !map.contains_key(&slot) && map.len() >= MAX_KEYS {
                map.retain(|_, e| e.until.is_none_or(|u| now < u));
                if map.len() >= MAX_KEYS {
                    continue;
                }
            }
            map.insert(
                slot,
                Entry {
                    webhook_id: webhook_id.to_string(),
                    until: None,
                },
            );
        }
        Verdict::Deliver
    }

    /// The delivery `webhook_id` reached the receiver at `now`: its window starts.
    pub fn delivered(&self, subscription: &str, keys: &[DedupKey], webhook_id: &str, now: Instant) {
        let mut map = self.entries.lock().expect("dedup lock");
        for key in keys {
            if let Some(e) = map.get_mut(&slot(subscription, key)) {
                if e.webhook_id == webhook_id {
                    e.until = Some(now + key.window);
                }
            }
        }
    }

    /// The delivery `webhook_id` did not reach the receiver (it went to a retry tier, the
    /// dead-letter topic or back to the backlog): its keys suppress nothing.
    pub fn released(&self, subscription: &str, keys: &[DedupKey], webhook_id: &str) {
        let mut map = self.entries.lock().expect("dedup lock");
        for key in keys {
            let slot = slot(subscription, key);
            if map
                .get(&slot)
                .is_some_and(|e| e.webhook_id == webhook_id && e.until.is_none())
            {
                map.remove(&slot);
            }
        }
    }

    /// Keys remembered now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.entries.lock().expect("dedup lock").len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(route: &str, key: &str, secs: u64) -> DedupKey {
        DedupKey {
            route: route.into(),
            key: key.into(),
            window: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_window_runs_from_the_delivery() {
        let store = DedupStore::new();
        let k = [key("net", "k", 600)];
        let t0 = Instant::now();
        assert_eq!(store.claim("soar", &k, "a", t0), Verdict::Deliver);
        // In flight: a second delivery of the key is a repeat.
        assert_eq!(store.claim("soar", &k, "b", t0), Verdict::Repeat);
        let delivered_at = t0 + Duration::from_secs(30);
        store.delivered("soar", &k, "a", delivered_at);
        let s = |secs| delivered_at + Duration::from_secs(secs);
        assert_eq!(store.claim("soar", &k, "c", s(599)), Verdict::Repeat);
        // A suppressed repeat does not extend the window.
        assert_eq!(store.claim("soar", &k, "d", s(600)), Verdict::Deliver);
    }

    #[test]
    fn a_delivery_is_never_a_repeat_of_itself() {
        let store = DedupStore::new();
        let k = [key("net", "k", 600)];
        let t0 = Instant::now();
        assert_eq!(store.claim("soar", &k, "a", t0), Verdict::Deliver);
        // The same event read again (rebalance, restart) while the first is still in flight.
        assert_eq!(store.claim("soar", &k, "a", t0), Verdict::Deliver);
        store.delivered("soar", &k, "a", t0);
        assert_eq!(store.claim("soar", &k, "a", t0), Verdict::Deliver);
    }

    #[test]
    fn a_failed_delivery_suppresses_nothing() {
        let store = DedupStore::new();
        let k = [key("net", "k", 600)];
        let t0 = Instant::now();
        assert_eq!(store.claim("soar", &k, "a", t0), Verdict::Deliver);
        store.released("soar", &k, "a");
        assert_eq!(store.claim("soar", &k, "b", t0), Verdict::Deliver);
        // Releasing someone else's claim does nothing.
        store.released("soar", &k, "a");
        assert_eq!(store.claim("soar", &k, "c", t0), Verdict::Repeat);
    }

    #[test]
    fn keys_are_per_subscription_and_route_and_all_must_repeat() {
        let store = DedupStore::new();
        let t0 = Instant::now();
        let a = [key("r", "k", 60)];
        assert_eq!(store.claim("x", &a, "1", t0), Verdict::Deliver);
        store.delivered("x", &a, "1", t0);
        assert_eq!(store.claim("y", &a, "2", t0), Verdict::Deliver);
        assert_eq!(
            store.claim("x", &[key("r2", "k", 60)], "3", t0),
            Verdict::Deliver
        );
        // Reached by two routes: a repeat only when both keys are.
        let both = [key("r", "k", 60), key("r3", "k", 60)];
        assert_eq!(store.claim("x", &both, "4", t0), Verdict::Deliver);
        store.delivered("x", &both, "4", t0);
        assert_eq!(store.claim("x", &both, "5", t0), Verdict::Repeat);
        assert_eq!(store.claim("x", &[], "6", t0), Verdict::Deliver);
    }

    #[test]
    fn full_store_sweeps_expired_keys() {
        let store = DedupStore::new();
        let t0 = Instant::now();
        for i in 0..MAX_KEYS {
            let k = [key("r", &i.to_string(), 1)];
            store.claim("s", &k, &i.to_string(), t0);
            store.delivered("s", &k, &i.to_string(), t0);
        }
        let later = t0 + Duration::from_secs(2);
        let new = [key("r", "new", 1)];
        assert_eq!(store.claim("s", &new, "n", later), Verdict::Deliver);
        assert_eq!(store.len(), 1);
    }
}
