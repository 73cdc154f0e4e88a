//! Fleet mode (issue 7): three `hookline run` processes in one consumer group, in keyed mode,
//! share a subscription limited to 50 requests/s. The receiver's arrivals are sampled every
//! second: the rate over the run and over every 10-second window must stay at the limit,
//! fleet-wide. Mid-run the instance that owns the subscription's backlog is SIGKILLed; every
//! event must still arrive, and the limit must hold after the rebalance.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::{Options, TOPIC};
use crate::bench::broker::TopicSpec;
use crate::bench::producer::{EventShape, Pace, Producer};
use crate::bench::rules::{RuleSet, Subscription};
use crate::bench::{BrokerProcess, Harness, ReceiverProcess, RouterProcess};

const PATH: &str = "/limited";

/// What the fleet scenario measured.
#[derive(Clone, Debug, Serialize)]
pub struct FleetFigures {
    /// The router variant.
    pub variant: String,
    /// The subscription's limit, requests per second.
    pub limit: f64,
    /// Events produced.
    pub events: u64,
    /// Distinct events that arrived.
    pub delivered: u64,
    /// Arrivals of an event that had arrived already (the kill re-delivers some).
    pub duplicates: u64,
    /// Requests per second over the run (first to last arrival).
    pub overall_per_s: f64,
    /// The highest request rate over any 10-second window.
    pub max_10s_per_s: f64,
    /// Over every 10-second window after the kill.
    pub max_10s_after_kill_per_s: f64,
    /// Seconds without any arrival around the kill (the rebalance).
    pub longest_gap_s: f64,
}

/// Runs the scenario for every variant.
pub async fn run(
    harness: &Harness,
    events: u64,
    limit: f64,
    options: &Options,
) -> anyhow::Result<Vec<FleetFigures>> {
    let mut out = Vec::new();
    for variant in &options.variants {
        let topics = [
            TopicSpec::new(TOPIC, 12),
            TopicSpec::new("hookline.sub.limited", 1),
        ];
        let broker = BrokerProcess::start(harness, 1, &topics, true).await?;
        let receiver = ReceiverProcess::start(harness, &[]).await?;
        let rules = RuleSet::new(TOPIC)
            .subscription(
                Subscription::new("limited", receiver.url(PATH))
                    .set("rate_limit", format!("{{per_second: {limit}}}")),
            )
            .route("all", "{min_severity: low}", &["limited"])
            .to_yaml();
        let mut routers = Vec::new();
        for i in 1..=3 {
            let mut spec = variant.spec(
                &format!("fleet-{}-{i}", variant.label),
                broker.bootstrap(),
                "fleet",
                rules.clone(),
            );
            spec.env
                .push(("HOOKLINE_DELIVERY__MODE".into(), "keyed".into()));
            // Quick rebalances after the kill (the mock cluster waits a session timeout).
            spec.env.push((
                "HOOKLINE_KAFKA__OPTIONS__SESSION_TIMEOUT_MS".into(),
                "6000".into(),
            ));
            routers.push(RouterProcess::start(harness, &spec).await?);
        }
        for r in &mut routers {
            r.wait_ready(options.timeout).await?;
        }
        let producer = Producer::new(broker.bootstrap(), TOPIC, 20)?;
        tokio::task::spawn_blocking(move || {
            producer.produce(0, events, EventShape::SMALL, Pace::Max);
            producer.flush()
        })
        .await??;

        // Arrivals every second; the owner of the backlog is killed a third of the way in.
        let kill_after = events / 3;
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(events as f64 / limit * 2.0 + 120.0);
        let mut samples: Vec<(f64, u64)> = Vec::new();
        let mut killed_at = None;
        loop {
            let stats = receiver.stats().await?;
            let path = stats.path(PATH);
            samples.push((started.elapsed().as_secs_f64(), path.requests));
            if path.distinct >= events {
                break;
            }
            if killed_at.is_none() && path.distinct >= kill_after {
                let mut owner = None;
                for (i, r) in routers.iter().enumerate() {
                    let m = r.metrics().await?;
                    if m.sum("hookline_assigned_partitions", &[("role", "backlog")]) > 0.0 {
                        owner = Some(i);
                    }
                }
                let Some(owner) = owner else {
                    bail!("no instance owns the subscription's backlog");
                };
                routers.remove(owner).kill().await;
                killed_at = Some(started.elapsed().as_secs_f64());
                println!(
                    "fleet {}: killed the owner of the backlog at {:.0} s",
                    variant.label,
                    killed_at.unwrap()
                );
            }
            if Instant::now() >= deadline {
                bail!("{} of {events} events arrived in time", path.distinct);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let path = receiver.stats().await?.path(PATH);
        let windows = |from: f64| {
            samples
                .iter()
                .filter(|(t, _)| *t >= from)
                .filter_map(|(t, n)| {
                    let end = samples.iter().find(|(u, _)| *u >= t + 10.0)?;
                    Some((end.1 - n) as f64 / (end.0 - t))
                })
                .fold(0.0f64, f64::max)
        };
        let (mut longest_gap_s, mut gap) = (0.0f64, 0.0f64);
        for w in samples.windows(2) {
            gap = if w[1].1 == w[0].1 {
                gap + w[1].0 - w[0].0
            } else {
                0.0
            };
            longest_gap_s = longest_gap_s.max(gap);
        }
        let figures = FleetFigures {
            variant: variant.label.clone(),
            limit,
            events,
            delivered: path.distinct,
            duplicates: path.duplicates,
            overall_per_s: path.requests_per_second(),
            max_10s_per_s: windows(0.0),
            max_10s_after_kill_per_s: windows(killed_at.unwrap_or(0.0)),
            longest_gap_s,
        };
        println!(
            "fleet {}: 3 instances, keyed, limit {limit}/s: {} of {events} delivered ({} twice); {:.1} requests/s over the run, at most {:.1}/s over any 10 s ({:.1}/s after the kill); longest pause {:.0} s",
            variant.label,
            figures.delivered,
            figures.duplicates,
            figures.overall_per_s,
            figures.max_10s_per_s,
            figures.max_10s_after_kill_per_s,
            figures.longest_gap_s,
        );
        for r in routers {
            r.terminate().await;
        }
        receiver.stop().await;
        broker.stop().await;
        out.push(figures);
    }
    Ok(out)
}
