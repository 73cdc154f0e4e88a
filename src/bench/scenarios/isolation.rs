//! Isolation (issue 7): how much of its throughput a healthy subscription keeps beside a
//! neighbour that cannot keep up, in the same run. Every event of a preloaded topic goes to
//! `healthy` (concurrency 64, a receiver answering at once) and, in a "beside" run, to the
//! neighbour(s) as well; the figure is `healthy`'s deliveries per second over its first-to-last
//! delivery at the receiver, beside the neighbour divided by alone. Each run gets a fresh
//! broker, so no neighbour's backlog or retry records carry over. Neighbours: a subscription
//! rate-limited to 1/s and to 5/s, a receiver that never answers, one that answers 503, a
//! paused subscription, and ten subscriptions whose receivers refuse connections (default
//! queues).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use super::{Options, Variant, TOPIC};
use crate::bench::broker::TopicSpec;
use crate::bench::producer::{EventShape, Pace, Producer};
use crate::bench::rules::{RuleSet, Subscription};
use crate::bench::{
    closed_port_url, Behaviour, BrokerProcess, Harness, ReceiverProcess, RouterProcess,
};

/// The healthy subscription's receiver path.
const HEALTHY: &str = "/healthy";

/// What sits beside the healthy subscription.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Neighbour {
    /// Its receiver answers at once, but the subscription may send `per_second` requests.
    RateLimited(f64),
    /// Its receiver reads the request and never answers.
    Hangs,
    /// Its receiver answers 503.
    Fails,
    /// The subscription is paused.
    Paused,
    /// Ten subscriptions whose receivers refuse connections, default queues.
    DeadTen,
}

impl Neighbour {
    /// Every neighbour the issue names.
    pub const ALL: [Neighbour; 6] = [
        Neighbour::RateLimited(1.0),
        Neighbour::RateLimited(5.0),
        Neighbour::Hangs,
        Neighbour::Fails,
        Neighbour::Paused,
        Neighbour::DeadTen,
    ];

    /// Its name in reports.
    pub fn label(&self) -> String {
        match self {
            Neighbour::RateLimited(r) => format!("rate-limited {r}/s"),
            Neighbour::Hangs => "never answers".into(),
            Neighbour::Fails => "answers 503".into(),
            Neighbour::Paused => "paused".into(),
            Neighbour::DeadTen => "ten refusing connections".into(),
        }
    }

    fn subscriptions(&self, receiver: &ReceiverProcess) -> anyhow::Result<Vec<Subscription>> {
        Ok(match self {
            Neighbour::RateLimited(r) => {
                vec![Subscription::new("limited", receiver.url("/limited"))
                    .set("rate_limit", format!("{{per_second: {r}}}"))]
            }
            Neighbour::Hangs => vec![Subscription::new("hangs", receiver.url("/hangs"))],
            Neighbour::Fails => vec![Subscription::new("fails", receiver.url("/fails"))],
            Neighbour::Paused => {
                vec![Subscription::new("paused", receiver.url("/paused")).set("status", "paused")]
            }
            Neighbour::DeadTen => (0..10)
                .map(|i| {
                    Ok(Subscription::new(
                        format!("dead{i}"),
                        closed_port_url("/dead")?,
                    ))
                })
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

/// The isolation scenario.
#[derive(Clone, Debug)]
pub struct IsolationSpec {
    /// Events preloaded per run (every one goes to every subscription).
    pub events: u64,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Partitions of each neighbour's backlog topic: enough for the mock broker (about 5 MB
    /// per partition) to keep what the neighbour spills.
    pub backlog_partitions: i32,
    /// The neighbours, each measured against a run alone in the same round.
    pub neighbours: Vec<Neighbour>,
}

impl Default for IsolationSpec {
    fn default() -> Self {
        IsolationSpec {
            events: 300_000,
            partitions: 32,
            backlog_partitions: 2,
            neighbours: Neighbour::ALL.to_vec(),
        }
    }
}

/// One beside-versus-alone comparison.
#[derive(Clone, Debug, Serialize)]
pub struct IsolationFigures {
    /// Round.
    pub round: usize,
    /// The router variant.
    pub variant: String,
    /// The neighbour.
    pub neighbour: String,
    /// `healthy`'s deliveries per second alone: the mean of the alone runs just before and
    /// just after the beside run.
    pub alone_per_s: f64,
    /// Beside the neighbour.
    pub beside_per_s: f64,
    /// `beside / alone`.
    pub ratio: f64,
    /// Deliveries the router wrote to backlogs in the beside run.
    pub spilled: f64,
    /// Seconds from the last event read to the source committed to the end (beside run).
    pub commit_lag_s: Option<f64>,
    /// The router's peak resident memory in the beside run, MiB.
    pub peak_rss_mib: f64,
    /// The router's CPU per event read, µs: alone (the mean of the runs before and after).
    pub alone_cpu_us_per_event: f64,
    /// Beside the neighbour. The difference over the neighbours' deliveries per event is
    /// what one spilled delivery costs, a figure the machine's noise moves less than rates.
    pub beside_cpu_us_per_event: f64,
}

/// What one run measured.
struct Run {
    per_s: f64,
    cpu_us_per_event: f64,
    spilled: f64,
    commit_lag_s: Option<f64>,
    peak_rss_mib: f64,
}

/// Runs every neighbour against an alone run, per round and variant; prints a line each.
pub async fn run(
    harness: &Harness,
    spec: &IsolationSpec,
    options: &Options,
) -> anyhow::Result<Vec<IsolationFigures>> {
    let receiver_process = ReceiverProcess::start(
        harness,
        &[
            ("/hangs", Behaviour::hang()),
            ("/fails", Behaviour::status(503)),
        ],
    )
    .await?;
    let mut out = Vec::new();
    let receiver = &receiver_process;
    for round in 1..=options.rounds {
        for variant in &options.variants {
            // Alone runs bracket every beside run, and its ratio is over their mean: on a
            // shared machine, one alone run per round made the ratios swing by a third.
            let alone = |n: usize| async move {
                let run = one_run(harness, spec, options, variant, receiver, None, round).await?;
                println!(
                    "isolation round {round} {}: healthy alone ({n}) {:.0} deliveries/s, router CPU {:.1} µs/event, peak RSS {:.0} MiB",
                    variant.label, run.per_s, run.cpu_us_per_event, run.peak_rss_mib
                );
                anyhow::Ok(run)
            };
            let mut before = alone(0).await?;
            for (n, neighbour) in spec.neighbours.iter().enumerate() {
                let beside = one_run(
                    harness,
                    spec,
                    options,
                    variant,
                    receiver,
                    Some(*neighbour),
                    round,
                )
                .await?;
                let after = alone(n + 1).await?;
                let alone_per_s = (before.per_s + after.per_s) / 2.0;
                let figures = IsolationFigures {
                    round,
                    variant: variant.label.clone(),
                    neighbour: neighbour.label(),
                    alone_per_s,
                    beside_per_s: beside.per_s,
                    ratio: beside.per_s / alone_per_s,
                    spilled: beside.spilled,
                    commit_lag_s: beside.commit_lag_s,
                    peak_rss_mib: beside.peak_rss_mib,
                    alone_cpu_us_per_event: (before.cpu_us_per_event + after.cpu_us_per_event)
                        / 2.0,
                    beside_cpu_us_per_event: beside.cpu_us_per_event,
                };
                println!(
                    "isolation round {round} {}: beside {:<26} {:>7.0}/s  ratio {:.3} (alone {:.0}/s, the mean of the runs before and after)  router CPU {:.1} µs/event (alone {:.1})  spilled {:>7.0}  source committed {} after the last read  peak RSS {:.0} MiB",
                    variant.label,
                    figures.neighbour,
                    figures.beside_per_s,
                    figures.ratio,
                    alone_per_s,
                    figures.beside_cpu_us_per_event,
                    figures.alone_cpu_us_per_event,
                    figures.spilled,
                    figures
                        .commit_lag_s
                        .map_or("(never)".to_string(), |s| format!("{s:.1} s")),
                    figures.peak_rss_mib,
                );
                out.push(figures);
                before = after;
            }
        }
    }
    receiver_process.stop().await;
    summarise(&out);
    Ok(out)
}

/// One line per variant and neighbour over the rounds: the median ratio and its range, and
/// the median of what the neighbour added to the router's CPU per event. Single runs on a
/// shared two-core machine swing by ±15%; the median of several is the figure to quote.
fn summarise(figures: &[IsolationFigures]) {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for f in figures {
        let key = (f.variant.as_str(), f.neighbour.as_str());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (variant, neighbour) in keys {
        let runs: Vec<&IsolationFigures> = figures
            .iter()
            .filter(|f| f.variant == variant && f.neighbour == neighbour)
            .collect();
        let ratios: Vec<f64> = runs.iter().map(|f| f.ratio).collect();
        let added: Vec<f64> = runs
            .iter()
            .map(|f| f.beside_cpu_us_per_event - f.alone_cpu_us_per_event)
            .collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        println!(
            "isolation {variant}: beside {neighbour:<26} median ratio {:.3} over {} round(s) ({low:.3}–{high:.3}); router CPU added {:+.1} µs/event (median)",
            median(&ratios),
            ratios.len(),
            median(&added),
        );
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One run: a fresh broker preloaded with the events, a router routing every event to
/// `healthy` (and the neighbour), until `healthy` received every event.
async fn one_run(
    harness: &Harness,
    spec: &IsolationSpec,
    options: &Options,
    variant: &Variant,
    receiver: &ReceiverProcess,
    neighbour: Option<Neighbour>,
    round: usize,
) -> anyhow::Result<Run> {
    let neighbours = match neighbour {
        Some(n) => n.subscriptions(receiver)?,
        None => Vec::new(),
    };
    // The mock cluster does not create topics on request: the neighbours' backlogs are made
    // here, with enough partitions to hold what they receive.
    let mut topics = vec![TopicSpec::new(TOPIC, spec.partitions)];
    for sub in &neighbours {
        topics.push(TopicSpec::new(
            format!("hookline.sub.{}", sub.id()),
            spec.backlog_partitions,
        ));
    }
    let broker = BrokerProcess::start(harness, 1, &topics, true).await?;
    let producer = Producer::new(broker.bootstrap(), TOPIC, 20)?;
    let events = spec.events;
    tokio::task::spawn_blocking(move || {
        producer.produce(0, events, EventShape::SMALL, Pace::Max);
        producer.flush()
    })
    .await??;
    let retention = broker.retained(TOPIC).await?;
    if retention.dropped() > 0 {
        bail!("the broker dropped events: use more partitions");
    }

    let mut rules = RuleSet::new(TOPIC)
        .subscription(Subscription::new("healthy", receiver.url(HEALTHY)).set("concurrency", "64"));
    let mut ids = vec!["healthy".to_string()];
    for sub in neighbours {
        ids.push(sub.id().to_string());
        rules = rules.subscription(sub);
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let rules = rules.route("all", "{min_severity: low}", &ids).to_yaml();
    receiver.reset().await?;
    let name = neighbour.map_or("alone".to_string(), |n| n.label().replace([' ', '/'], "-"));
    let label = format!("iso-{round}-{}-{name}", variant.label);
    let mut router_spec = variant.spec(&label, broker.bootstrap(), "isolation", rules);
    router_spec.env.push((
        "HOOKLINE_KAFKA__BACKLOG_PARTITIONS".into(),
        spec.backlog_partitions.to_string(),
    ));
    let mut router = RouterProcess::start(harness, &router_spec).await?;
    router.wait_ready(options.timeout).await?;

    // Until healthy has every event, watching when the router read the last event and when
    // its source commits reached the end.
    let deadline = Instant::now() + options.timeout;
    let (mut last_read, mut committed) = (None, None);
    loop {
        let metrics = router.metrics().await?;
        let read = metrics.sum("hookline_events_consumed_total", &[]);
        let at = metrics.sum("hookline_committed_offset", &[("role", "source")]);
        let now = Instant::now();
        if read >= events as f64 {
            last_read.get_or_insert(now);
        }
        if at >= events as f64 {
            committed.get_or_insert(now);
        }
        let stats = receiver.stats().await?;
        let healthy = stats.path(HEALTHY);
        if healthy.distinct >= events && committed.is_some() {
            break;
        }
        if let Some(status) = router.child().exited() {
            bail!(
                "router {label} exited ({status}); see {}",
                router.child().log().display()
            );
        }
        if now >= deadline {
            bail!(
                "{label}: healthy received {} of {events} in {:?}",
                healthy.distinct,
                options.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = receiver.stats().await?;
    let healthy = stats.path(HEALTHY);
    let metrics = router.metrics().await.context("final scrape")?;
    let run = Run {
        per_s: healthy.distinct as f64 / healthy.span_seconds().max(1e-3),
        cpu_us_per_event: router.cpu_seconds()? * 1e6 / events as f64,
        spilled: metrics.sum("hookline_backlog_spilled_total", &[]),
        commit_lag_s: match (last_read, committed) {
            (Some(r), Some(c)) => Some(c.saturating_duration_since(r).as_secs_f64()),
            _ => None,
        },
        peak_rss_mib: router.memory()?.peak_mib(),
    };
    router.terminate().await;
    broker.stop().await;
    Ok(run)
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(super::median(&[]).is_nan());
    }
}
