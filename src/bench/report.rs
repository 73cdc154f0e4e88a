//! The figures of one measured run, and how they are printed: one line per run as it finishes,
//! then Markdown tables (ranges over rounds) ready for `docs/performance.md`.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::ceiling::ConsumerCeiling;
use super::receiver::LatencySummary;
use super::wrk::WrkResult;

/// What one run of one variant measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunFigures {
    /// Scenario name (`single`, `batched`, `large`, `latency`, ...).
    pub scenario: String,
    /// Variant label.
    pub variant: String,
    /// Round, from 1.
    pub round: usize,
    /// Produced at a fixed rate while the router ran (a latency run), rather than preloaded.
    pub paced: bool,
    /// Events the router read (`hookline_events_consumed_total`).
    pub events_read: u64,
    /// Events that reached the receiver (a batch counts each).
    pub delivered: u64,
    /// Requests that reached the receiver.
    pub requests: u64,
    /// Seconds from the first delivery to the last, by the receiver's clock.
    pub seconds: f64,
    /// Router CPU seconds (user + system) spent on the measured work.
    pub cpu_seconds: f64,
    /// Router peak resident memory.
    pub peak_rss_mib: f64,
    /// Connections the receiver accepted during the run.
    pub connections: u64,
    /// Produce-to-receive latency (meaningful below saturation).
    pub latency: Option<LatencySummary>,
    /// Router CPU while idle, in milliseconds per second.
    pub idle_cpu_ms_per_s: Option<f64>,
    /// `wrk` against the same receiver, same connections, in the same round.
    pub wrk: Option<WrkResult>,
    /// Events in each body `wrk` posted (to compare event rates when batched).
    pub wrk_events_per_request: u64,
    /// A bare consumer reading the same topic from the same broker, in the same round.
    pub consumer: Option<ConsumerCeiling>,
    /// Whether everything expected arrived before the timeout.
    pub complete: bool,
}

impl RunFigures {
    /// Events delivered per second.
    pub fn deliveries_per_s(&self) -> f64 {
        ratio(self.delivered as f64, self.seconds)
    }
    /// Events read per second (over the same window).
    pub fn events_read_per_s(&self) -> f64 {
        ratio(self.events_read as f64, self.seconds)
    }
    /// Router CPU microseconds per delivered event.
    pub fn cpu_us_per_delivery(&self) -> f64 {
        ratio(self.cpu_seconds * 1e6, self.delivered as f64)
    }
    /// Router CPU microseconds per event read.
    pub fn cpu_us_per_event_read(&self) -> f64 {
        ratio(self.cpu_seconds * 1e6, self.events_read as f64)
    }
    /// The `wrk` ceiling in events per second.
    pub fn wrk_events_per_s(&self) -> Option<f64> {
        self.wrk
            .map(|w| w.requests_per_s * self.wrk_events_per_request.max(1) as f64)
    }
    /// Deliveries per second as a share of the `wrk` ceiling.
    pub fn wrk_ratio(&self) -> Option<f64> {
        self.wrk_events_per_s()
            .map(|c| ratio(self.deliveries_per_s(), c))
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{:<9} round {} {:<12} ",
            self.scenario, self.round, self.variant
        );
        if !self.complete {
            s.push_str("INCOMPLETE (timed out) ");
        }
        let _ = write!(
            s,
            "delivered/s {:>8.0}  read/s {:>8.0}  CPU {:.2} s ({:.1} µs/delivery, {:.1} µs/read)  peak RSS {:.0} MiB  conns {}",
            self.deliveries_per_s(),
            self.events_read_per_s(),
            self.cpu_seconds,
            self.cpu_us_per_delivery(),
            self.cpu_us_per_event_read(),
            self.peak_rss_mib,
            self.connections,
        );
        if let Some(l) = &self.latency {
            let _ = write!(
                s,
                "  latency p50 {:.2} ms p99 {:.2} ms max {:.1} ms",
                l.p50_us as f64 / 1e3,
                l.p99_us as f64 / 1e3,
                l.max_us as f64 / 1e3
            );
        }
        if let Some(idle) = self.idle_cpu_ms_per_s {
            let _ = write!(s, "  idle CPU {idle:.1} ms/s");
        }
        s
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// `lo–hi` of the values, with `digits` decimals (one value when they agree).
fn range(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (a, b) = (format!("{lo:.digits$}"), format!("{hi:.digits$}"));
    if a == b {
        a
    } else {
        format!("{a}–{b}")
    }
}

/// Markdown tables of every run, one per scenario, one row per variant (ranges over rounds).
pub fn summary(runs: &[RunFigures]) -> String {
    let mut groups: BTreeMap<(&str, &str), Vec<&RunFigures>> = BTreeMap::new();
    let mut order: Vec<(&str, &str)> = Vec::new();
    for r in runs {
        let key = (r.scenario.as_str(), r.variant.as_str());
        if !groups.contains_key(&key) {
            order.push(key);
        }
        groups.entry(key).or_default().push(r);
    }
    let mut out = String::new();
    let mut scenario = "";
    for key in order {
        let rows = &groups[&key];
        let latency = rows[0].paced;
        if key.0 != scenario {
            scenario = key.0;
            let _ = writeln!(out, "\n{scenario} ({} round(s))\n", rows.len());
            if latency {
                out.push_str("| variant | delivered/s | p50 ms | p99 ms | p99.9 ms | max ms | µs CPU/event read | idle CPU ms/s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n");
            } else {
                out.push_str("| variant | delivered/s | events read/s | router CPU s | µs CPU/delivery | µs CPU/event read | peak RSS MiB | wrk ceiling events/s | ratio | bare consumer msg/s |\n|---|---|---|---|---|---|---|---|---|---|\n");
            }
        }
        let col = |f: &dyn Fn(&RunFigures) -> Option<f64>, digits: usize| {
            let v: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
            range(&v, digits)
        };
        let lat = |f: fn(&LatencySummary) -> u64| {
            move |r: &RunFigures| r.latency.as_ref().map(|l| f(l) as f64 / 1e3)
        };
        if latency {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                key.1,
                col(&|r| Some(r.deliveries_per_s()), 0),
                col(&lat(|l| l.p50_us), 2),
                col(&lat(|l| l.p99_us), 2),
                col(&lat(|l| l.p999_us), 2),
                col(&lat(|l| l.max_us), 1),
                col(&|r| Some(r.cpu_us_per_event_read()), 1),
                col(&|r| r.idle_cpu_ms_per_s, 1),
                col(&|r| Some(r.peak_rss_mib), 0),
            );
        } else {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                key.1,
                col(&|r| Some(r.deliveries_per_s()), 0),
                col(&|r| Some(r.events_read_per_s()), 0),
                col(&|r| Some(r.cpu_seconds), 2),
                col(&|r| Some(r.cpu_us_per_delivery()), 1),
                col(&|r| Some(r.cpu_us_per_event_read()), 1),
                col(&|r| Some(r.peak_rss_mib), 0),
                col(&|r| r.wrk_events_per_s(), 0),
                col(&|r| r.wrk_ratio(), 2),
                col(&|r| r.consumer.map(|c| c.per_second()), 0),
            );
        }
        if rows.iter().any(|r| !r.complete) {
            let _ = writeln!(out, "| ({} incomplete: timed out) |", key.1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_figures() {
        let r = RunFigures {
            delivered: 150_000,
            events_read: 300_000,
            seconds: 5.0,
            cpu_seconds: 3.0,
            wrk: Some(WrkResult {
                requests_per_s: 120_000.0,
                ..Default::default()
            }),
            wrk_events_per_request: 1,
            complete: true,
            ..Default::default()
        };
        assert_eq!(r.deliveries_per_s(), 30_000.0);
        assert_eq!(r.events_read_per_s(), 60_000.0);
        assert_eq!(r.cpu_us_per_delivery(), 20.0);
        assert_eq!(r.cpu_us_per_event_read(), 10.0);
        assert_eq!(r.wrk_ratio(), Some(0.25));
    }

    #[test]
    fn ranges_over_rounds() {
        assert_eq!(range(&[1.0, 3.0, 2.0], 1), "1.0–3.0");
        assert_eq!(range(&[2.0, 2.0], 0), "2");
        assert_eq!(range(&[], 0), "–");
    }
}
