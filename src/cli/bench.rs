//! `hookline bench`: the end-to-end harness. Pushes N events through the whole path (an
//! in-process Kafka-protocol broker, the router, a local HTTP receiver) and prints throughput,
//! latency percentiles and peak memory.
//!
//! Events are produced while the router consumes, over many partitions: librdkafka's mock
//! cluster keeps only about 5 MB per partition and silently drops older messages beyond that.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::config::Config;
use crate::dev::broker::DevBroker;
use crate::dev::receiver::{Receiver, Respond};

/// Arguments of `hookline bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Events to push through.
    #[arg(long, default_value_t = 50_000)]
    pub events: usize,
    /// Partitions of the source topic.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Subscriptions every event is delivered to (paths /s0, /s1, ...).
    #[arg(long, default_value_t = 1)]
    pub subscriptions: usize,
    /// Requests in flight per subscription.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Bound of each subscription's in-memory queue.
    #[arg(long, default_value_t = 1024)]
    pub queue: usize,
    /// Approximate size of each event in bytes.
    #[arg(long, default_value_t = 250)]
    pub event_bytes: usize,
    /// Produce at most this many events per second (0: as fast as possible). At full speed
    /// latency measures the backlog; below capacity it measures the path.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Make subscription s0's receiver hang (an endpoint that is down), to measure isolation.
    #[arg(long)]
    pub blackhole: bool,
    /// Give up after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// Peak resident memory of this process (the broker and receiver run inside it too).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    const TOPIC: &str = "bench.events";
    let broker = DevBroker::start(1).context("cannot start the in-process broker")?;
    broker.create_topic(TOPIC, args.partitions)?;
    let receiver = Receiver::start().await?;
    if args.blackhole {
        receiver.respond("/s0", |_| Respond::ok().after(Duration::from_secs(3600)));
    }
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        args.events * args.subscriptions,
    )));
    {
        let latencies = latencies.clone();
        receiver.observe(move |r| {
            if r.path == "/s0" && r.status != 200 {
                return;
            }
            let sent = r.json()["sent_us"].as_u64().unwrap_or(0);
            latencies
                .lock()
                .expect("lock")
                .push(now_micros().saturating_sub(sent));
        });
    }

    let rules = tempfile::tempdir()?;
    let subscriptions: String = (0..args.subscriptions)
        .map(|i| {
            format!(
                "  - id: s{i}\n    url: \"{}/s{i}\"\n    concurrency: {}\n    queue: {}\n    timeout: 2s\n",
                receiver.url(""),
                args.concurrency,
                args.queue
            )
        })
        .collect();
    let to: Vec<String> = (0..args.subscriptions).map(|i| format!("s{i}")).collect();
    std::fs::write(
        rules.path().join("bench.yaml"),
        format!(
            "sources:\n  - id: bench\n    topics: [{TOPIC}]\n    category: category\n    severity: severity\n    event_id: id\nsubscriptions:\n{subscriptions}routes:\n  - id: all\n    match: {{ min_severity: low }}\n    to: [{}]\n",
            to.join(", ")
        ),
    )?;

    let mut config = Config::default();
    config.kafka.brokers = broker.bootstrap_servers();
    config.kafka.group_id = "bench".into();
    config.rules.dir = rules.path().to_path_buf();
    config.rules.watch = false;
    config.admin.listen = "127.0.0.1:0".into();
    config.delivery.allow_networks = vec!["127.0.0.0/8".into()];
    config.kafka.create_topics = false;
    config.delivery.shutdown_grace = Duration::from_secs(1);
    let settings = config.validate()?;
    broker.create_router_topics(&settings)?;
    let running = crate::app::start(settings).await?;

    let padding = "x".repeat(args.event_bytes.saturating_sub(120));
    let healthy = if args.blackhole {
        args.subscriptions - 1
    } else {
        args.subscriptions
    };
    let expected = args.events * healthy;
    let started = Instant::now();
    let producer = broker.producer().clone();
    let events = args.events;
    let rate = args.rate;
    let produce = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for i in 0..events {
            if let Some(micros) = (i as u64 * 1_000_000).checked_div(rate) {
                tokio::time::sleep_until(start + Duration::from_micros(micros)).await;
            }
            let event = format!(
                r#"{{"id":"b{i}","category":"bench","severity":"high","sent_us":{},"pad":"{padding}"}}"#,
                now_micros()
            );
            let key = i.to_string();
            loop {
                // Keyed, so events spread over every partition.
                let record = FutureRecord::<str, str>::to(TOPIC)
                    .key(&key)
                    .payload(&event);
                match producer.send_result(record) {
                    Ok(_) => break,
                    // The local queue is full: let the broker catch up.
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        }
        let _ = producer.flush(Timeout::After(Duration::from_secs(30)));
    });

    let done = receiver
        .wait_until(args.timeout, |r| {
            r.iter().filter(|r| r.status == 200).count() >= expected
        })
        .await;
    let elapsed = started.elapsed();
    produce.await?;
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort_unstable();
    let delivered = lat.len();
    println!(
        "hookline bench: {} events x {} subscription(s){}, {} partitions, concurrency {}",
        args.events,
        args.subscriptions,
        if args.blackhole {
            " (s0 black-holed)"
        } else {
            ""
        },
        args.partitions,
        args.concurrency
    );
    println!(
        "  delivered      : {delivered} of {expected}{}",
        if done { "" } else { " (TIMED OUT)" }
    );
    println!("  elapsed        : {:.2} s", elapsed.as_secs_f64());
    println!(
        "  throughput     : {:.0} deliveries/s, {:.0} per healthy subscription",
        delivered as f64 / elapsed.as_secs_f64(),
        delivered as f64 / healthy.max(1) as f64 / elapsed.as_secs_f64()
    );
    println!("  latency p50    : {:.1} ms", percentile(&lat, 0.50));
    println!("  latency p99    : {:.1} ms", percentile(&lat, 0.99));
    if let Some(mib) = peak_rss_mib() {
        println!("  peak RSS       : {mib:.0} MiB (router, broker and receiver in one process)");
    }
    running.stop();
    running.wait().await;
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
