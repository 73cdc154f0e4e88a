//! Isolation: with ten subscriptions and one receiver black-holed (accepts connections, never
//! answers), the other nine keep their throughput.
//!
//! One submitting loop feeds all subscriptions round-robin, as the Kafka consumer does. The
//! black-holed subscription's queue fills; a `Spill` hook stands in for the subscription's
//! backlog (it takes what the lane cannot hold), so the loop never blocks on it. The
//! end-to-end version, through Kafka with separate processes, is `hookline bench isolation`.
//!
//! Run: `cargo bench --bench isolation` (prints the nine subscriptions' deliveries per second
//! alone and next to the black hole, and the ratio; exits non-zero below 0.90).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline::deliver::lane::SpillLedger;
use hookline::deliver::{
    DeliverySettings, Dispatcher, Job, JobFrom, Spill, SpillCause, SubscriptionConfig,
    SubscriptionSettings, Written,
};
use hookline::dev::broker::DevBroker;
use hookline::dev::receiver::{Receiver, Respond};
use hookline::dlq::DeadLetterProducer;
use hookline::event::{webhook_id, Event, Origin};
use hookline::metrics::Metrics;
use hookline::settle::Settler;
use hookline::source::ack::Ack;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const HEALTHY: usize = 9;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(4);
const ROUNDS: usize = 5;

/// Counts and settles what a lane hands over (the backlog's stand-in).
#[derive(Default)]
struct CountingSpill(AtomicU64);

impl Spill for CountingSpill {
    fn spill(&self, job: Job, _cause: SpillCause, lane: &Arc<SpillLedger>) -> Result<(), Box<Job>> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Written::new(lane).at(0, n as i64);
        job.ack.settle();
        Ok(())
    }
}

fn subscription(id: &str, url: String, extra: serde_json::Value) -> Arc<SubscriptionSettings> {
    let mut v = json!({"id": id, "url": url, "concurrency": 8, "queue": 256});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let config: SubscriptionConfig = serde_json::from_value(v).unwrap();
    Arc::new(config.validate().unwrap())
}

fn job(sub: &Arc<SubscriptionSettings>, offset: i64) -> Job {
    let origin = Origin {
        topic: "bench".into(),
        partition: 0,
        offset,
        index: 0,
    };
    let body = json!({"offset": offset, "category": "ATTACK_ALERT", "level": "CRITICAL"});
    Job {
        subscription: sub.clone(),
        webhook_id: webhook_id(&origin, &sub.id),
        event_type: "ATTACK_ALERT".into(),
        body: Some(body.clone()),
        event: Event::new(origin, body),
        ack: Ack::detached(),
        retry_round: 0,
        from: JobFrom::Source,
        dedup: Vec::new(),
    }
}

/// Deliveries per second of the healthy nine, measured after a warm-up.
async fn run(broker: &DevBroker, with_black_hole: bool) -> (f64, u64) {
    let receiver = Receiver::start().await.unwrap();
    receiver.respond("/hole", |_| Respond::ok().after(Duration::from_secs(3600)));
    let metrics = Metrics::new();
    let settler = Settler::new(
        DeadLetterProducer::new(broker.producer().clone(), "dlq"),
        metrics.clone(),
        CancellationToken::new(),
    );
    let dispatcher = Dispatcher::new(
        settler,
        DeliverySettings {
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..DeliverySettings::default()
        },
    )
    .unwrap();
    let divert = Arc::new(CountingSpill::default());
    dispatcher.set_spill(divert.clone());
    let mut subs: Vec<_> = (0..HEALTHY)
        .map(|i| subscription(&format!("s{i}"), receiver.url(&format!("/s{i}")), json!({})))
        .collect();
    if with_black_hole {
        subs.push(subscription(
            "hole",
            receiver.url("/hole"),
            json!({"timeout": "2s", "retry": {"attempts": 2}}),
        ));
    }
    dispatcher.apply(&subs);
    let delivered = || -> u64 {
        (0..HEALTHY)
            .map(|i| {
                metrics
                    .deliveries
                    .with_label_values(&[&format!("s{i}"), "delivered"])
                    .get()
            })
            .sum()
    };
    let start = Instant::now();
    let (mut before, mut t0) = (None, start);
    let mut offset = 0;
    while start.elapsed() < WARMUP + MEASURE {
        if before.is_none() && start.elapsed() >= WARMUP {
            before = Some(delivered());
            t0 = Instant::now();
        }
        for sub in &subs {
            dispatcher.submit(job(sub, offset)).await;
        }
        offset += 1;
    }
    let rate = (delivered() - before.unwrap()) as f64 / t0.elapsed().as_secs_f64();
    dispatcher.shutdown(Duration::from_millis(100)).await;
    (rate, divert.0.load(Ordering::Relaxed))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = DevBroker::start(1).unwrap();
        broker.create_topic("dlq", 1).unwrap();
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let (alone, _) = run(&broker, false).await;
            let (beside, diverted) = run(&broker, true).await;
            let ratio = beside / alone;
            println!(
                "round {round}: nine alone {alone:.0}/s, nine beside a black hole {beside:.0}/s, ratio {ratio:.3} ({diverted} black-hole events spilled)"
            );
            ratios.push(ratio);
        }
        ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = ratios[ratios.len() / 2];
        println!("isolation ratio (median of {ROUNDS}): {median:.3}");
        if median < 0.90 {
            eprintln!("FAIL: the nine kept less than 90% of their throughput");
            std::process::exit(1);
        }
    });
}
