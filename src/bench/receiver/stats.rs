//! What the receiver counted, as `GET /_stats` returns it: per path, requests, events, answers,
//! first and last arrival, and the produce-to-receive latency of every event.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the receiver counted since its last reset.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ReceiverStats {
    /// TCP connections accepted since the receiver started (a reset keeps this): how well
    /// clients reuse connections.
    pub connections: u64,
    /// Per request path.
    pub paths: BTreeMap<String, PathStats>,
}

/// What arrived on one path.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PathStats {
    /// Requests received.
    pub requests: u64,
    /// Events received: produce timestamps found in the bodies (a batch counts each event).
    pub events: u64,
    /// Requests answered 2xx.
    pub accepted: u64,
    /// Requests answered with another status.
    pub refused: u64,
    /// Requests held open without an answer (`hang`).
    pub hung: u64,
    /// Arrival of the first request, microseconds since the Unix epoch.
    pub first_us: Option<u64>,
    /// Arrival of the last request, microseconds since the Unix epoch.
    pub last_us: Option<u64>,
    /// Produce-to-receive latency of the events.
    pub latency: LatencySummary,
    /// Distinct benchmark events (by number) that arrived.
    #[serde(default)]
    pub distinct: u64,
    /// Arrivals of an event that had arrived already.
    #[serde(default)]
    pub duplicates: u64,
    /// First arrivals out of their partition's order (when the order is checked).
    #[serde(default)]
    pub out_of_order: u64,
}

impl PathStats {
    /// Seconds between the first and the last arrival.
    pub fn span_seconds(&self) -> f64 {
        match (self.first_us, self.last_us) {
            (Some(first), Some(last)) if last > first => (last - first) as f64 / 1e6,
            _ => 0.0,
        }
    }

    /// Events per second between the first and the last arrival.
    pub fn events_per_second(&self) -> f64 {
        per_second(self.events, self.span_seconds())
    }

    /// Requests per second between the first and the last arrival.
    pub fn requests_per_second(&self) -> f64 {
        per_second(self.requests, self.span_seconds())
    }
}

/// Latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
pub struct LatencySummary {
    /// Events measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds.
    pub fn of(histogram: &hdrhistogram::Histogram<u64>) -> Self {
        LatencySummary {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.50),
            p90_us: histogram.value_at_quantile(0.90),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        }
    }
}

/// Arrivals on one path between two snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PathRate {
    /// Requests per second.
    pub requests_per_s: f64,
    /// Events per second.
    pub events_per_s: f64,
    /// Accepted (2xx) requests per second.
    pub accepted_per_s: f64,
}

impl ReceiverStats {
    /// The counts of `path` (all zero when nothing arrived there).
    pub fn path(&self, path: &str) -> PathStats {
        self.paths.get(path).cloned().unwrap_or_default()
    }

    /// Per path, what arrived between `earlier` and this snapshot, `seconds` apart (a
    /// subscription's delivery rate over a window of a run).
    pub fn rates_since(&self, earlier: &ReceiverStats, seconds: f64) -> BTreeMap<String, PathRate> {
        self.paths
            .iter()
            .map(|(path, now)| {
                let before = earlier.path(path);
                let rate = PathRate {
                    requests_per_s: per_second(
                        now.requests.saturating_sub(before.requests),
                        seconds,
                    ),
                    events_per_s: per_second(now.events.saturating_sub(before.events), seconds),
                    accepted_per_s: per_second(
                        now.accepted.saturating_sub(before.accepted),
                        seconds,
                    ),
                };
                (path.clone(), rate)
            })
            .collect()
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}
