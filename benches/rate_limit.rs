//! Rate-limit accuracy against a real receiver: a subscription limited to R per second, fed
//! far more than R, for a sustained run. Prints the measured rate and its error.
//!
//! Run: `cargo bench --bench rate_limit`

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline::deliver::{DeliverySettings, Dispatcher, Job, JobFrom, SubscriptionConfig};
use hookline::dev::broker::DevBroker;
use hookline::dev::receiver::Receiver;
use hookline::dlq::DeadLetterProducer;
use hookline::event::{webhook_id, Event, Origin};
use hookline::metrics::Metrics;
use hookline::settle::Settler;
use hookline::source::ack::Ack;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const RATE: f64 = 200.0;
const BURST: u32 = 20;
const RUN: Duration = Duration::from_secs(10);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = DevBroker::start(1).unwrap();
        let receiver = Receiver::start().await.unwrap();
        let settler = Settler::new(
            DeadLetterProducer::new(broker.producer().clone(), "dlq"),
            Metrics::new(),
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
        let config: SubscriptionConfig = serde_json::from_value(json!({
            "id": "limited", "url": receiver.url("/limited"), "concurrency": 16, "queue": 10000,
            "rate_limit": {"per_second": RATE, "burst": BURST}
        }))
        .unwrap();
        let sub = Arc::new(config.validate().unwrap());
        dispatcher.apply(std::slice::from_ref(&sub));
        let total = (RATE * (RUN.as_secs_f64() + 2.0)) as i64;
        let start = Instant::now();
        for offset in 0..total {
            let origin = Origin {
                topic: "bench".into(),
                partition: 0,
                offset,
                index: 0,
            };
            dispatcher
                .submit(Job {
                    subscription: sub.clone(),
                    webhook_id: webhook_id(&origin, "limited"),
                    event_type: "x".into(),
                    body: Some(json!({"offset": offset})),
                    event: Event::new(origin, json!({})),
                    ack: Ack::detached(),
                    retry_round: 0,
                    from: JobFrom::Source,
                    dedup: Vec::new(),
                })
                .await;
        }
        tokio::time::sleep_until((start + RUN + Duration::from_millis(100)).into()).await;
        // Requests that arrived after the initial burst, within the run.
        let times: Vec<Duration> = receiver
            .requests_to("/limited")
            .iter()
            .map(|r| r.at - start)
            .filter(|t| *t <= RUN)
            .collect();
        let sustained = times.len() as f64 - BURST as f64;
        let measured = sustained / RUN.as_secs_f64();
        let error = (measured - RATE) / RATE * 100.0;
        println!(
            "rate limit {RATE}/s burst {BURST}: {} requests in {:?} -> {measured:.1}/s after the burst ({error:+.2}%)",
            times.len(),
            RUN
        );
        dispatcher.shutdown(Duration::from_millis(100)).await;
        if error.abs() > 3.0 {
            eprintln!("FAIL: rate off by more than 3%");
            std::process::exit(1);
        }
    });
}
