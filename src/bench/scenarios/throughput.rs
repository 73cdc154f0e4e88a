//! Throughput: a topic preloaded with events (half of them high or critical), one route with
//! `min_severity: high` to one subscription, and each router variant reading it all with a
//! fresh consumer group. Rates are over the receiver's first-to-last delivery; CPU and peak
//! memory are the router process's own, from `/proc`. After each round, the ceilings: `wrk`
//! posting the same body to the same receiver with as many connections as the subscription's
//! concurrency, and a bare consumer reading the topic from the same broker.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{Options, Variant, TOPIC};
use crate::bench::broker::TopicSpec;
use crate::bench::ceiling;
use crate::bench::producer::{EventShape, Pace, Producer};
use crate::bench::report::RunFigures;
use crate::bench::rules::{small_body, RuleSet, Subscription};
use crate::bench::wrk::{self, WrkSpec};
use crate::bench::{Behaviour, BrokerProcess, Harness, ReceiverProcess, RouterProcess};

/// The receiver path of the one subscription.
const PATH: &str = "/s0";

/// One throughput scenario.
#[derive(Clone, Debug)]
pub struct ThroughputSpec {
    /// Its name in reports.
    pub name: String,
    /// Events preloaded.
    pub events: u64,
    /// Partitions of the topic (mind the mock cluster's ~5 MB per partition).
    pub partitions: i32,
    /// Event size and width.
    pub shape: EventShape,
    /// The subscription's `concurrency` (and `wrk`'s connections).
    pub concurrency: usize,
    /// `batch.max_events`, when batching.
    pub batch: Option<usize>,
    /// How the receiver answers (a 503 measures diverting to the durable retry topic).
    pub answer: Behaviour,
}

impl ThroughputSpec {
    /// One event per request: 300,000 events of ~250 B on 32 partitions, concurrency 64.
    pub fn single() -> Self {
        ThroughputSpec {
            name: "single".into(),
            events: 300_000,
            partitions: 32,
            shape: EventShape::SMALL,
            concurrency: 64,
            batch: None,
            answer: Behaviour::ok(),
        }
    }
    /// As [`ThroughputSpec::single`], 500 events per request.
    pub fn batched() -> Self {
        ThroughputSpec {
            name: "batched".into(),
            batch: Some(500),
            ..Self::single()
        }
    }
    /// As [`ThroughputSpec::single`] with a receiver that answers 503: its circuit opens and
    /// the events go to the durable retry topic (what the retry producer's settings change).
    pub fn divert() -> Self {
        ThroughputSpec {
            name: "divert".into(),
            answer: Behaviour::status(503),
            ..Self::single()
        }
    }
    /// One event per request, 80,000 events of ~2.3 KB (60 extra fields) on 64 partitions.
    pub fn large() -> Self {
        ThroughputSpec {
            name: "large".into(),
            events: 80_000,
            partitions: 64,
            shape: EventShape::LARGE,
            ..Self::single()
        }
    }

    fn rules(&self, receiver: &ReceiverProcess) -> String {
        let mut sub = Subscription::new("s0", receiver.url(PATH))
            .set("concurrency", self.concurrency.to_string());
        if let Some(n) = self.batch {
            sub = sub.set("batch", format!("{{max_events: {n}}}"));
        }
        RuleSet::new(TOPIC)
            .subscription(sub)
            .high_to_all()
            .to_yaml()
    }

    /// The body `wrk` posts: what the router sends per request.
    fn wrk_body(&self) -> (String, u64) {
        let n = self.batch.unwrap_or(1);
        let one = small_body(crate::bench::now_micros());
        if self.batch.is_some() {
            (format!("[{}]", vec![one; n].join(",")), n as u64)
        } else {
            (one, 1)
        }
    }
}

/// Runs the scenario; prints a line per run and returns every run's figures.
pub async fn run(
    harness: &Harness,
    spec: &ThroughputSpec,
    options: &Options,
) -> anyhow::Result<Vec<RunFigures>> {
    let topic = TopicSpec::new(TOPIC, spec.partitions);
    let broker = BrokerProcess::start(harness, 1, &[topic], true).await?;
    let receiver = ReceiverProcess::start(harness, &[(PATH, spec.answer.clone())]).await?;
    let expected = preload(&broker, spec).await?;
    let rules = spec.rules(&receiver);
    let fixture = Fixture {
        harness,
        spec,
        options,
        broker: &broker,
        receiver: &receiver,
        rules,
        expected,
    };
    let mut runs = Vec::new();
    for round in 1..=options.rounds {
        let mut this_round = Vec::new();
        for variant in &options.variants {
            let figures = fixture.one_run(variant, round).await?;
            println!("{}", figures.line());
            this_round.push(figures);
        }
        let wrk = match options.wrk {
            Some(duration) => {
                let (body, _) = spec.wrk_body();
                let wrk_spec = WrkSpec {
                    threads: 2,
                    connections: spec.concurrency,
                    duration,
                    body,
                };
                let dir = harness.subdir("wrk")?;
                Some(wrk::run(&receiver.url("/_wrk"), &wrk_spec, &dir).await?)
            }
            None => None,
        };
        let consumer = {
            let bootstrap = broker.bootstrap().to_string();
            let events = spec.events;
            tokio::task::spawn_blocking(move || {
                ceiling::read_topic(&bootstrap, TOPIC, events, Duration::from_secs(120))
            })
            .await??
        };
        println!(
            "{:<9} round {round} ceilings: wrk {} requests/s, bare consumer {:.0} messages/s",
            spec.name,
            wrk.map(|w| format!("{:.0}", w.requests_per_s))
                .unwrap_or_else(|| "(skipped)".into()),
            consumer.per_second()
        );
        for mut figures in this_round {
            figures.wrk = wrk;
            figures.wrk_events_per_request = spec.wrk_body().1;
            figures.consumer = Some(consumer);
            runs.push(figures);
        }
    }
    receiver.stop().await;
    broker.stop().await;
    Ok(runs)
}

/// Produces the events, checks the broker kept them all, and returns how many deliveries to
/// expect.
async fn preload(broker: &BrokerProcess, spec: &ThroughputSpec) -> anyhow::Result<u64> {
    let producer = Producer::new(broker.bootstrap(), TOPIC, 20)?;
    let (events, shape) = (spec.events, spec.shape);
    let started = Instant::now();
    let produced = tokio::task::spawn_blocking(move || {
        let produced = producer.produce(0, events, shape, Pace::Max);
        producer.flush().map(|()| produced)
    })
    .await??;
    let seconds = started.elapsed().as_secs_f64();
    let retention = broker.retained(TOPIC).await?;
    if retention.dropped() > 0 || retention.produced() != spec.events as i64 {
        bail!(
            "the broker holds {} of the {} events produced (it keeps about 5 MB per partition): use more partitions",
            retention.produced() - retention.dropped(),
            spec.events
        );
    }
    let (least, most) = retention.spread();
    println!(
        "{:<9} preloaded {} events of ~{} B on {} partitions ({least}–{most} per partition) in {:.1} s; {} are high or critical",
        spec.name,
        spec.events,
        spec.shape.bytes,
        spec.partitions,
        seconds,
        produced.high
    );
    Ok(produced.high)
}

/// What every run of a scenario shares.
struct Fixture<'a> {
    harness: &'a Harness,
    spec: &'a ThroughputSpec,
    options: &'a Options,
    broker: &'a BrokerProcess,
    receiver: &'a ReceiverProcess,
    rules: String,
    /// Deliveries that complete a run.
    expected: u64,
}

impl Fixture<'_> {
    /// One router variant reads the whole topic with a fresh consumer group.
    async fn one_run(&self, variant: &Variant, round: usize) -> anyhow::Result<RunFigures> {
        let (spec, receiver) = (self.spec, self.receiver);
        receiver.reset().await?;
        let connections_before = receiver.stats().await?.connections;
        let group = format!("bench-{}-{round}-{}", spec.name, variant.label);
        let label = format!("{}-{}-{round}", spec.name, variant.label);
        let mut router = RouterProcess::start(
            self.harness,
            &variant.spec(&label, self.broker.bootstrap(), &group, self.rules.clone()),
        )
        .await?;
        // Settled (delivered, diverted or dead-lettered) by the router's count; every 100 ms.
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        let mut first_settled = None;
        let complete = loop {
            let metrics = router.metrics().await?;
            let settled = metrics.sum("hookline_deliveries_total", &[("subscription", "s0")]);
            let read = metrics.sum("hookline_events_consumed_total", &[]);
            if settled > 0.0 {
                first_settled.get_or_insert_with(Instant::now);
            }
            if settled >= self.expected as f64 && read >= spec.events as f64 {
                break true;
            }
            if let Some(status) = router.child().exited() {
                bail!(
                    "router {label} exited ({status}); see {}",
                    router.child().log().display()
                );
            }
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let polled_seconds = first_settled.map_or(0.0, |f| f.elapsed().as_secs_f64());
        let cpu_seconds = router.cpu_seconds()?;
        let memory = router.memory()?;
        let metrics = router.metrics().await.context("final scrape")?;
        router.terminate().await;
        let stats = receiver.stats().await?;
        let path = stats.path(PATH);
        // The receiver's clock is exact when it got everything; otherwise (a failing receiver)
        // the window is from the first settled delivery to the poll that saw the last.
        let (delivered, seconds) =
            if path.refused == 0 && path.hung == 0 && path.events >= self.expected {
                (path.events, path.span_seconds())
            } else {
                let settled = metrics.sum("hookline_deliveries_total", &[("subscription", "s0")]);
                (settled as u64, polled_seconds)
            };
        Ok(RunFigures {
            scenario: spec.name.clone(),
            variant: variant.label.clone(),
            round,
            paced: false,
            events_read: metrics.sum("hookline_events_consumed_total", &[]) as u64,
            delivered,
            requests: path.requests,
            seconds,
            cpu_seconds,
            peak_rss_mib: memory.peak_mib(),
            connections: stats.connections - connections_before,
            latency: Some(path.latency),
            complete,
            ..Default::default()
        })
    }
}
