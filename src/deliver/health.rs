//! What each subscription's deliveries came to since someone last asked: the last success and
//! the first failure after it. The subscription catalogue turns this into a fleet-wide
//! failure streak (`crate::subscription::status`), which disables a subscription that fails
//! for days without a single success.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// One subscription's outcomes since the last [`DeliveryHealth::take`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// The last successful delivery.
    pub last_success: Option<DateTime<Utc>>,
    /// The first failed delivery after `last_success` (or at all, without one).
    pub failing_since: Option<DateTime<Utc>>,
}

/// Outcomes by subscription. Cheap to share.
#[derive(Debug, Default)]
pub struct DeliveryHealth {
    seen: Mutex<HashMap<Arc<str>, Outcomes>>,
}

impl DeliveryHealth {
    /// A delivery to `subscription` succeeded at `at`.
    pub fn success(&self, subscription: &Arc<str>, at: DateTime<Utc>) {
        let mut seen = self.seen.lock().expect("health lock");
        let o = seen.entry(subscription.clone()).or_default();
        o.last_success = Some(o.last_success.map_or(at, |l| l.max(at)));
        o.failing_since = None;
    }

    /// A delivery to `subscription` failed at `at` (its receiver refused it, or every attempt
    /// of its round failed).
    pub fn failure(&self, subscription: &Arc<str>, at: DateTime<Utc>) {
        let mut seen = self.seen.lock().expect("health lock");
        let o = seen.entry(subscription.clone()).or_default();
        o.failing_since.get_or_insert(at);
    }

    /// Everything seen since the last call.
    pub fn take(&self) -> HashMap<Arc<str>, Outcomes> {
        std::mem::take(&mut *self.seen.lock().expect("health lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_ends_the_streak_and_a_later_failure_starts_one() {
        let h = DeliveryHealth::default();
        let s: Arc<str> = "s".into();
        let t = |n| DateTime::<Utc>::from_timestamp(n, 0).unwrap();
        h.failure(&s, t(1));
        h.failure(&s, t(2));
        assert_eq!(h.take()[&s].failing_since, Some(t(1)));
        h.failure(&s, t(3));
        h.success(&s, t(4));
        h.failure(&s, t(5));
        let o = h.take()[&s];
        assert_eq!((o.last_success, o.failing_since), (Some(t(4)), Some(t(5))));
        assert!(h.take().is_empty());
    }
}
