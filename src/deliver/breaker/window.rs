//! Outcome counts over a sliding window, kept in ten buckets so memory does not grow with
//! the request rate.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

const BUCKETS: u32 = 10;

#[derive(Debug)]
struct Bucket {
    start: Instant,
    total: u32,
    failures: u32,
}

/// Requests and failures in the last `window`, to a tenth of the window's precision.
#[derive(Debug)]
pub(super) struct Window {
    window: Duration,
    width: Duration,
    buckets: VecDeque<Bucket>,
}

impl Window {
    pub(super) fn new(window: Duration) -> Self {
        Window {
            window,
            width: (window / BUCKETS).max(Duration::from_millis(1)),
            buckets: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start + self.window <= now)
        {
            self.buckets.pop_front();
        }
    }

    pub(super) fn record(&mut self, now: Instant, failure: bool) {
        self.prune(now);
        match self.buckets.back_mut() {
            Some(b) if now < b.start + self.width => {
                b.total += 1;
                b.failures += u32::from(failure);
            }
            _ => self.buckets.push_back(Bucket {
                start: now,
                total: 1,
                failures: u32::from(failure),
            }),
        }
    }

    /// `(requests, failures)` in the window.
    pub(super) fn counts(&mut self, now: Instant) -> (u32, u32) {
        self.prune(now);
        self.buckets
            .iter()
            .fold((0, 0), |(t, f), b| (t + b.total, f + b.failures))
    }

    pub(super) fn clear(&mut self) {
        self.buckets.clear();
    }
}
