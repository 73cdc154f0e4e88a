//! Latency below saturation: each router variant runs in turn in one consumer group (a rolling
//! restart: each continues where the previous one committed). Once it is ready, it first idles
//! (its idle CPU is measured), then a warm-up second of events is produced and delivered, the
//! receiver's counts are reset, and events are produced at a fixed rate for the measured
//! duration. The percentiles are produce-to-receive, by one clock (one machine).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::{Options, TOPIC};
use crate::bench::broker::TopicSpec;
use crate::bench::producer::{EventShape, Pace, Produced, Producer};
use crate::bench::report::RunFigures;
use crate::bench::rules::{RuleSet, Subscription};
use crate::bench::{BrokerProcess, Harness, ReceiverProcess, RouterProcess};

const PATH: &str = "/s0";

/// One latency scenario.
#[derive(Clone, Debug)]
pub struct LatencySpec {
    /// Its name in reports.
    pub name: String,
    /// Events produced per second.
    pub rate: f64,
    /// How long the measured phase produces.
    pub duration: Duration,
    /// How long the router idles first (its idle CPU is measured); zero skips it.
    pub idle: Duration,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Event size and width.
    pub shape: EventShape,
    /// The subscription's `concurrency`.
    pub concurrency: usize,
}

impl LatencySpec {
    /// 1,000 events/s of ~250 B for 10 s on 32 partitions, concurrency 64, after 3 s idle.
    pub fn default_rate() -> Self {
        LatencySpec {
            name: "latency".into(),
            rate: 1000.0,
            duration: Duration::from_secs(10),
            idle: Duration::from_secs(3),
            partitions: 32,
            shape: EventShape::SMALL,
            concurrency: 64,
        }
    }
}

/// Runs the scenario; prints a line per run and returns every run's figures.
pub async fn run(
    harness: &Harness,
    spec: &LatencySpec,
    options: &Options,
) -> anyhow::Result<Vec<RunFigures>> {
    let broker =
        BrokerProcess::start(harness, 1, &[TopicSpec::new(TOPIC, spec.partitions)], true).await?;
    let receiver = ReceiverProcess::start(harness, &[]).await?;
    let rules = RuleSet::new(TOPIC)
        .subscription(
            Subscription::new("s0", receiver.url(PATH))
                .set("concurrency", spec.concurrency.to_string()),
        )
        .high_to_all()
        .to_yaml();
    // Sent at once (linger 0): the producer's own batching is not what is measured.
    let producer = Arc::new(Producer::new(broker.bootstrap(), TOPIC, 0)?);
    let mut next = 0;
    let mut runs = Vec::new();
    for round in 1..=options.rounds {
        for variant in &options.variants {
            let label = format!("{}-{}-{round}", spec.name, variant.label);
            let group = format!("bench-{}", spec.name);
            let mut router = RouterProcess::start(
                harness,
                &variant.spec(&label, broker.bootstrap(), &group, rules.clone()),
            )
            .await?;
            router.wait_ready(options.timeout).await?;
            let connections_before = receiver.stats().await?.connections;
            let idle_cpu_ms_per_s = if spec.idle.is_zero() {
                None
            } else {
                let before = router.cpu_seconds()?;
                tokio::time::sleep(spec.idle).await;
                Some((router.cpu_seconds()? - before) * 1e3 / spec.idle.as_secs_f64())
            };

            // Warm-up: a second's worth, all delivered, then forgotten.
            let warm = produce(&producer, next, spec.rate as u64, spec).await?;
            next += warm.events;
            await_deliveries(&receiver, warm.high, options.timeout, &label).await?;
            receiver.reset().await?;

            let cpu_before = router.cpu_seconds()?;
            let count = (spec.rate * spec.duration.as_secs_f64()) as u64;
            let measured = produce(&producer, next, count, spec).await?;
            next += measured.events;
            let complete = await_deliveries(&receiver, measured.high, options.timeout, &label)
                .await
                .is_ok();
            let cpu_seconds = router.cpu_seconds()? - cpu_before;
            let memory = router.memory()?;
            router.terminate().await;
            let stats = receiver.stats().await?;
            let path = stats.path(PATH);
            let figures = RunFigures {
                scenario: spec.name.clone(),
                variant: variant.label.clone(),
                round,
                paced: true,
                events_read: measured.events,
                delivered: path.events,
                requests: path.requests,
                seconds: path.span_seconds(),
                cpu_seconds,
                peak_rss_mib: memory.peak_mib(),
                connections: stats.connections - connections_before,
                latency: Some(path.latency),
                idle_cpu_ms_per_s,
                complete,
                ..Default::default()
            };
            println!("{}", figures.line());
            runs.push(figures);
        }
    }
    // A client outliving its broker logs connection errors.
    drop(producer);
    receiver.stop().await;
    broker.stop().await;
    Ok(runs)
}

async fn produce(
    producer: &Arc<Producer>,
    first: u64,
    count: u64,
    spec: &LatencySpec,
) -> anyhow::Result<Produced> {
    let producer = producer.clone();
    let (shape, rate) = (spec.shape, spec.rate);
    Ok(tokio::task::spawn_blocking(move || {
        let produced = producer.produce(first, count, shape, Pace::PerSecond(rate));
        producer.flush().map(|()| produced)
    })
    .await??)
}

async fn await_deliveries(
    receiver: &ReceiverProcess,
    expected: u64,
    timeout: Duration,
    label: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (stats, done) = receiver
        .wait_for(timeout, |s| s.path(PATH).events >= expected)
        .await?;
    if !done {
        bail!(
            "router {label}: {} of {expected} deliveries after {:.0?}",
            stats.path(PATH).events,
            started.elapsed()
        );
    }
    Ok(())
}
