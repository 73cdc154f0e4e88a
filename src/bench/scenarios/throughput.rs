//! Throughput: a topic preloaded with events (half of them high or critical), one route with
//! `min_severity: high` to one subscription, and each router variant reading it all with a
//! fresh consumer group. Rates are over the receiver's first-to-last delivery (for a failing
//! receiver, over the window in which the router's counts were polled); CPU and peak memory
//! are the router process's own, from `/proc`. After each round, the ceilings: `wrk`
//! posting the same body to the same receiver with as many connections as the subscription's
//! concurrency, and a bare consumer reading the topic from the same broker.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{Options, Variant, TOPIC};
use crate::bench::broker::TopicSpec;
use crate::bench::ceiling::{self, ConsumerCeiling};
use crate::bench::producer::{EventShape, Pace, Producer};
use crate::bench::report::RunFigures;
use crate::bench::rules::{small_body, RuleSet, Subscription};
use crate::bench::wrk::{self, WrkResult, WrkSpec};
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
    /// A broker (and preload) per run rather than one for the scenario.
    pub fresh_broker: bool,
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
            fresh_broker: false,
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
            fresh_broker: true,
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
    let receiver = ReceiverProcess::start(harness, &[(PATH, spec.answer.clone())]).await?;
    let fixture = Fixture {
        harness,
        spec,
        options,
        receiver: &receiver,
        rules: spec.rules(&receiver),
    };
    // A router that writes to Kafka (diverting) leaves records a later run's retry readers
    // would read: then every run gets a broker of its own.
    let shared = match spec.fresh_broker {
        false => Some(Loaded::start(harness, spec).await?),
        true => None,
    };
    let mut runs = Vec::new();
    for round in 1..=options.rounds {
        let mut this_round = Vec::new();
        for variant in &options.variants {
            let figures = match &shared {
                Some(loaded) => fixture.one_run(loaded, variant, round).await?,
                None => {
                    let loaded = Loaded::start(harness, spec).await?;
                    let figures = fixture.one_run(&loaded, variant, round).await;
                    loaded.broker.stop().await;
                    figures?
                }
            };
            println!("{}", figures.line());
            this_round.push(figures);
        }
        let wrk = fixture.wrk().await?;
        let consumer = match &shared {
            Some(loaded) => loaded.consumer_ceiling(spec).await?,
            None => {
                let loaded = Loaded::start(harness, spec).await?;
                let ceiling = loaded.consumer_ceiling(spec).await;
                loaded.broker.stop().await;
                ceiling?
            }
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
    if let Some(loaded) = shared {
        loaded.broker.stop().await;
    }
    Ok(runs)
}

/// A broker process holding the preloaded topic.
struct Loaded {
    broker: BrokerProcess,
    /// Deliveries that complete a run.
    expected: u64,
}

impl Loaded {
    async fn start(harness: &Harness, spec: &ThroughputSpec) -> anyhow::Result<Loaded> {
        let topic = TopicSpec::new(TOPIC, spec.partitions);
        let broker = BrokerProcess::start(harness, 1, &[topic], true).await?;
        let expected = preload(&broker, spec).await?;
        Ok(Loaded { broker, expected })
    }

    /// A bare consumer reading the whole topic.
    async fn consumer_ceiling(&self, spec: &ThroughputSpec) -> anyhow::Result<ConsumerCeiling> {
        let bootstrap = self.broker.bootstrap().to_string();
        let events = spec.events;
        Ok(tokio::task::spawn_blocking(move || {
            ceiling::read_topic(&bootstrap, TOPIC, events, Duration::from_secs(120))
        })
        .await??)
    }
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
    receiver: &'a ReceiverProcess,
    rules: String,
}

impl Fixture<'_> {
    /// `wrk` posting what the router would, to the same receiver, as many connections.
    async fn wrk(&self) -> anyhow::Result<Option<WrkResult>> {
        let Some(duration) = self.options.wrk else {
            return Ok(None);
        };
        let wrk_spec = WrkSpec {
            threads: 2,
            connections: self.spec.concurrency,
            duration,
            body: self.spec.wrk_body().0,
        };
        let dir = self.harness.subdir("wrk")?;
        Ok(Some(
            wrk::run(&self.receiver.url("/_wrk"), &wrk_spec, &dir).await?,
        ))
    }

    /// One router variant reads the whole topic with a fresh consumer group.
    async fn one_run(
        &self,
        loaded: &Loaded,
        variant: &Variant,
        round: usize,
    ) -> anyhow::Result<RunFigures> {
        let expected = loaded.expected;
        let (spec, receiver) = (self.spec, self.receiver);
        receiver.reset().await?;
        let connections_before = receiver.stats().await?.connections;
        let group = format!("bench-{}-{round}-{}", spec.name, variant.label);
        let label = format!("{}-{}-{round}", spec.name, variant.label);
        let mut router = RouterProcess::start(
            self.harness,
            &variant.spec(
                &label,
                loaded.broker.bootstrap(),
                &group,
                self.rules.clone(),
            ),
        )
        .await?;
        router.wait_ready(self.options.timeout).await?;
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
            if settled >= expected as f64 && read >= spec.events as f64 {
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
        let (delivered, seconds) = if path.refused == 0 && path.hung == 0 && path.events >= expected
        {
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
            complete,
            ..Default::default()
        })
    }
}
