//! The backlog under a subscription that cannot keep up (issue 7):
//!
//! - [`commits`]: events to a receiver that refuses connections. How long after the router
//!   read the last event its source commits reach the end; then a receiver comes up on that
//!   port, and every event must arrive (nothing lost on the way through the backlog and the
//!   retry tiers).
//! - [`memory`]: a million events behind a subscription limited to 1 request/s: the router's
//!   peak memory while the backlog builds, then a reload lifts the limit and every event must
//!   arrive, in each source partition's order.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::{Options, Variant, TOPIC};
use crate::bench::broker::TopicSpec;
use crate::bench::producer::{EventShape, Pace, Producer};
use crate::bench::rules::{RuleSet, Subscription};
use crate::bench::{free_port, BrokerProcess, Harness, ReceiverProcess, RouterProcess};

/// What the commits scenario measured.
#[derive(Clone, Debug, Serialize)]
pub struct CommitFigures {
    /// The router variant.
    pub variant: String,
    /// Events produced.
    pub events: u64,
    /// Seconds from the last event read to the source committed to the end.
    pub commit_lag_s: f64,
    /// Written to the backlog.
    pub spilled: f64,
    /// Moved to a retry tier (their first attempts failed).
    pub to_retry_tiers: f64,
    /// Distinct events the receiver got once it came up.
    pub delivered: u64,
    /// Of which more than once.
    pub duplicates: u64,
    /// Seconds from the receiver coming up to the last event arriving.
    pub drain_s: f64,
}

/// Events to a receiver that refuses connections, then the receiver comes up.
pub async fn commits(
    harness: &Harness,
    events: u64,
    partitions: i32,
    backlog_partitions: i32,
    options: &Options,
) -> anyhow::Result<Vec<CommitFigures>> {
    let mut out = Vec::new();
    for variant in &options.variants {
        let topics = [
            TopicSpec::new(TOPIC, partitions),
            TopicSpec::new("hookline.sub.down", backlog_partitions),
        ];
        let broker = BrokerProcess::start(harness, 1, &topics, true).await?;
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}/down");
        let rules = RuleSet::new(TOPIC)
            .subscription(Subscription::new("down", url))
            .route("all", "{min_severity: low}", &["down"])
            .to_yaml();
        let mut spec = variant.spec(
            &format!("commits-{}", variant.label),
            broker.bootstrap(),
            "commits",
            rules,
        );
        spec.env.push((
            "HOOKLINE_KAFKA__BACKLOG_PARTITIONS".into(),
            backlog_partitions.to_string(),
        ));
        let mut router = RouterProcess::start(harness, &spec).await?;
        router.wait_ready(options.timeout).await?;
        let producer = Producer::new(broker.bootstrap(), TOPIC, 20)?;
        tokio::task::spawn_blocking(move || {
            producer.produce(0, events, EventShape::SMALL, Pace::Max);
            producer.flush()
        })
        .await??;

        let deadline = Instant::now() + options.timeout;
        let mut last_read = None;
        let commit_lag = loop {
            let metrics = router.metrics().await?;
            let now = Instant::now();
            if metrics.sum("hookline_events_consumed_total", &[]) >= events as f64 {
                last_read.get_or_insert(now);
            }
            let committed = metrics.sum("hookline_committed_offset", &[("role", "source")]);
            if let (Some(read), true) = (last_read, committed >= events as f64) {
                break now.saturating_duration_since(read);
            }
            if now >= deadline {
                bail!(
                    "the source was not committed to the end in {:?}",
                    options.timeout
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let metrics = router.metrics().await?;
        let spilled = metrics.sum("hookline_backlog_spilled_total", &[]);
        let to_retry_tiers = metrics.sum("hookline_retry_topic_writes_total", &[]);

        // The receiver comes up where the subscription points: its circuit's next probe
        // succeeds, and the backlog and retry tiers drain.
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let receiver = ReceiverProcess::start_on(harness, Some(addr), &[]).await?;
        let up = Instant::now();
        let (stats, complete) = receiver
            .wait_for(options.timeout, |s| s.path("/down").distinct >= events)
            .await?;
        let down = stats.path("/down");
        let figures = CommitFigures {
            variant: variant.label.clone(),
            events,
            commit_lag_s: commit_lag.as_secs_f64(),
            spilled,
            to_retry_tiers,
            delivered: down.distinct,
            duplicates: down.duplicates,
            drain_s: up.elapsed().as_secs_f64(),
        };
        println!(
            "commits {}: {events} events to a receiver refusing connections; source committed to the end {:.1} s after the last read ({:.0} to the backlog, {:.0} to the retry tiers); receiver up: {} of {events} arrived ({} twice) in {:.1} s",
            variant.label,
            figures.commit_lag_s,
            spilled,
            to_retry_tiers,
            figures.delivered,
            figures.duplicates,
            figures.drain_s
        );
        router.terminate().await;
        receiver.stop().await;
        broker.stop().await;
        if !complete {
            bail!("only {} of {events} events arrived", down.distinct);
        }
        out.push(figures);
    }
    Ok(out)
}

/// What the memory scenario measured.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryFigures {
    /// The router variant.
    pub variant: String,
    /// Events produced.
    pub events: u64,
    /// The router's peak resident memory while the backlog built up, MiB.
    pub peak_rss_backlogging_mib: f64,
    /// Its peak over the whole run (draining included), MiB.
    pub peak_rss_mib: f64,
    /// Seconds the router took to read every event into the backlog.
    pub backlog_s: f64,
    /// Distinct events delivered after the limit was lifted.
    pub delivered: u64,
    /// Of which more than once.
    pub duplicates: u64,
    /// First arrivals out of their source partition's order.
    pub out_of_order: u64,
    /// Events per second while draining.
    pub drain_per_s: f64,
}

fn slow_rules(limited: bool, url: String) -> String {
    let mut sub = Subscription::new("slow", url).set("concurrency", "1");
    if limited {
        sub = sub.set("rate_limit", "{per_second: 1}");
    } else {
        // Lifted: batches keep the order and drain a million events in minutes.
        sub = sub.set("batch", "{max_events: 500, max_wait: 50ms}");
    }
    RuleSet::new(TOPIC)
        .subscription(sub)
        .route("all", "{min_severity: low}", &["slow"])
        .to_yaml()
}

/// A million events behind a 1/s subscription, then the limit is lifted.
pub async fn memory(
    harness: &Harness,
    events: u64,
    partitions: i32,
    backlog_partitions: i32,
    options: &Options,
) -> anyhow::Result<Vec<MemoryFigures>> {
    let mut out = Vec::new();
    for variant in &options.variants {
        let run = memory_run(
            harness,
            events,
            (partitions, backlog_partitions),
            options,
            variant,
        );
        out.push(run.await?);
    }
    Ok(out)
}

async fn memory_run(
    harness: &Harness,
    events: u64,
    (partitions, backlog_partitions): (i32, i32),
    options: &Options,
    variant: &Variant,
) -> anyhow::Result<MemoryFigures> {
    let topics = [
        TopicSpec::new(TOPIC, partitions),
        TopicSpec::new("hookline.sub.slow", backlog_partitions),
    ];
    let broker = BrokerProcess::start(harness, 1, &topics, true).await?;
    let receiver = ReceiverProcess::start(harness, &[]).await?;
    receiver.check_order("/slow", partitions as u64).await?;
    let mut spec = variant.spec(
        &format!("memory-{}", variant.label),
        broker.bootstrap(),
        "memory",
        slow_rules(true, receiver.url("/slow")),
    );
    spec.env.push((
        "HOOKLINE_KAFKA__BACKLOG_PARTITIONS".into(),
        backlog_partitions.to_string(),
    ));
    let mut router = RouterProcess::start(harness, &spec).await?;
    router.wait_ready(options.timeout).await?;
    // Produced while the router reads: the order check needs event i on partition i % P.
    let producer = Producer::new(broker.bootstrap(), TOPIC, 20)?.partitioned(partitions);
    let started = Instant::now();
    let producing = tokio::task::spawn_blocking(move || {
        producer.produce(0, events, EventShape::SMALL, Pace::Max);
        producer.flush()
    });
    let deadline = started + options.timeout.max(Duration::from_secs(1800));
    loop {
        let metrics = router.metrics().await?;
        if metrics.sum("hookline_committed_offset", &[("role", "source")]) >= events as f64 {
            break;
        }
        if let Some(status) = router.child().exited() {
            bail!(
                "the router exited ({status}); see {}",
                router.child().log().display()
            );
        }
        if Instant::now() >= deadline {
            bail!("the router did not read the events into the backlog in time");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    producing.await??;
    let backlog_s = started.elapsed().as_secs_f64();
    let peak_backlogging = router.memory()?.peak_mib();
    let kept = broker.retained("hookline.sub.slow").await?;
    if kept.dropped() > 0 {
        bail!(
            "the mock broker dropped {} backlog records (it keeps ~5 MB per partition): use more --backlog-partitions",
            kept.dropped()
        );
    }
    println!(
        "memory {}: {events} events in the backlog of a 1/s subscription after {backlog_s:.0} s; router peak RSS {peak_backlogging:.0} MiB; lifting the limit",
        variant.label
    );

    router
        .replace_rules(&slow_rules(false, receiver.url("/slow")))
        .await?;
    let lifted = Instant::now();
    let (stats, complete) = receiver
        .wait_for(deadline.saturating_duration_since(Instant::now()), |s| {
            s.path("/slow").distinct >= events
        })
        .await?;
    let slow = stats.path("/slow");
    let figures = MemoryFigures {
        variant: variant.label.clone(),
        events,
        peak_rss_backlogging_mib: peak_backlogging,
        peak_rss_mib: router.memory()?.peak_mib(),
        backlog_s,
        delivered: slow.distinct,
        duplicates: slow.duplicates,
        out_of_order: slow.out_of_order,
        drain_per_s: slow.distinct as f64 / lifted.elapsed().as_secs_f64(),
    };
    println!(
        "memory {}: limit lifted: {} of {events} delivered ({} twice, {} out of order) at {:.0}/s; router peak RSS over the run {:.0} MiB",
        variant.label,
        figures.delivered,
        figures.duplicates,
        figures.out_of_order,
        figures.drain_per_s,
        figures.peak_rss_mib
    );
    router.terminate().await;
    receiver.stop().await;
    broker.stop().await;
    if !complete {
        bail!("only {} of {events} events arrived", slow.distinct);
    }
    Ok(figures)
}
