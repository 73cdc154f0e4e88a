//! Dedup windows: an event whose key was already routed to the same subscription (by the same
//! route) within the route's window is suppressed.
//!
//! The window runs from the last delivery, not the last sighting, so an event that Netography
//! re-sends as "ongoing" every few minutes is re-notified once per window rather than silenced
//! for as long as it keeps coming. The state lives in the [`Router`](super::Router), so it
//! survives rule reloads. It is in memory: a restart forgets it (receivers still get stable
//! `webhook-id`s to dedupe on).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Keys remembered at most; beyond this, new keys are not remembered (events are delivered
/// rather than risking unbounded memory).
pub const MAX_KEYS: usize = 100_000;

type Key = (Arc<str>, Arc<str>, String);

/// Remembered deliveries: (subscription, route, key) -> until when repeats are suppressed.
#[derive(Debug, Default)]
pub struct DedupStore {
    until: Mutex<HashMap<Key, Instant>>,
}

impl DedupStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this delivery is a repeat within the window; if not, remembers it until
    /// `now + window`.
    pub fn is_repeat(
        &self,
        subscription: &Arc<str>,
        route: &Arc<str>,
        key: String,
        window: Duration,
        now: Instant,
    ) -> bool {
        let mut map = self.until.lock().expect("dedup lock");
        let k = (subscription.clone(), route.clone(), key);
        if let Some(until) = map.get(&k) {
            if now < *until {
                return true;
            }
        }
        if map.len() >= MAX_KEYS {
            map.retain(|_, until| now < *until);
            if map.len() >= MAX_KEYS {
                return false;
            }
        }
        map.insert(k, now + window);
        false
    }

    /// Keys remembered now (expired ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.until.lock().expect("dedup lock").len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_window_are_suppressed() {
        let store = DedupStore::new();
        let (s, r) = (Arc::from("soar"), Arc::from("net"));
        let t0 = Instant::now();
        let w = Duration::from_secs(600);
        assert!(!store.is_repeat(&s, &r, "k".into(), w, t0));
        assert!(store.is_repeat(&s, &r, "k".into(), w, t0 + Duration::from_secs(599)));
        // A suppressed repeat does not extend the window.
        assert!(!store.is_repeat(&s, &r, "k".into(), w, t0 + Duration::from_secs(600)));
        assert!(store.is_repeat(&s, &r, "k".into(), w, t0 + Duration::from_secs(601)));
    }

    #[test]
    fn keys_are_per_subscription_and_route() {
        let store = DedupStore::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let (a, b, r) = (Arc::from("a"), Arc::from("b"), Arc::from("r"));
        assert!(!store.is_repeat(&a, &r, "k".into(), w, t0));
        assert!(!store.is_repeat(&b, &r, "k".into(), w, t0));
        assert!(!store.is_repeat(&a, &Arc::from("r2"), "k".into(), w, t0));
        assert!(!store.is_repeat(&a, &r, "k2".into(), w, t0));
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn full_store_sweeps_expired_keys() {
        let store = DedupStore::new();
        let t0 = Instant::now();
        let (s, r) = (Arc::from("s"), Arc::from("r"));
        for i in 0..MAX_KEYS {
            store.is_repeat(&s, &r, i.to_string(), Duration::from_secs(1), t0);
        }
        let later = t0 + Duration::from_secs(2);
        assert!(!store.is_repeat(&s, &r, "new".into(), Duration::from_secs(1), later));
        assert_eq!(store.len(), 1);
    }
}
