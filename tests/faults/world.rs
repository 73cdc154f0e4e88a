//! The world every fault scenario runs in: a three-broker Kafka-protocol cluster (librdkafka's
//! mock cluster, in this test process) with fault injection, `hookline run` processes in one
//! consumer group, a receiver on loopback, events produced while the faults happen, and the
//! final account: what every subscription should have received, what it did, what was lost
//! and how many duplicates arrived.
//!
//! Sizes come from the environment so CI runs a bounded variant and a longer run is one
//! command (docs/testing.md, "The fault suite"): `HOOKLINE_FAULTS_EVENTS` (events per
//! scenario, default 1200), `HOOKLINE_FAULTS_KILLS` (SIGKILLs in the crash loop, default 10),
//! `HOOKLINE_FAULTS_SEED` (random moments; printed, so a failure can be replayed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookline::dev::receiver::Respond;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::mocking::MockCoordinator;
use serde_json::json;

use crate::common::fixtures::{ids, rules, TOPIC};
use crate::common::process::{RouterCommand, RouterProcess};
use crate::common::wait::{eventually_async, scaled};
use crate::common::{waiting, Harness, DLQ};

/// Source partitions: at least as many as instances, so each holds some.
pub const PARTITIONS: i32 = 6;
/// The consumer group of every router.
pub const GROUP: &str = "faults";
/// `delivery.shutdown_grace` of every router.
pub const GRACE: Duration = Duration::from_secs(2);
/// What a stop may take beyond the grace (`hookline run`'s bound, 15 s) plus slack for a
/// loaded machine.
pub const STOP_LIMIT: Duration = Duration::from_secs(2 + 15 + 10);

/// Every subscription, and which events it wants.
const SUBSCRIPTIONS: &str = r#"
subscriptions:
  - id: fast
    url: "{receiver}/fast"
  - id: slow
    url: "{receiver}/slow"
    concurrency: 2
    queue: 32
    rate_limit: { per_second: 30 }
  - id: dedup
    url: "{receiver}/dedup"
    concurrency: 1
  - id: flaky
    url: "{receiver}/flaky"
    retry: { attempts: 1 }
    breaker: { enabled: false }
routes:
  - id: all
    to: [fast, slow]
  - id: once
    to: [dedup]
    dedup: { key: "event.id", window: 10m }
  - id: flaky
    match: { category: flaky }
    to: [flaky]
"#;

/// Retry rounds: short, and enough of them that an unlucky event never runs out.
const SCHEDULE: &str = r#"["1s","1s","2s","2s","3s","3s","5s","5s","5s","5s"]"#;

/// A number from the environment.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One scenario's world.
pub struct World {
    pub h: Harness,
    rng: Mutex<StdRng>,
    pub seed: u64,
    /// Events to produce.
    pub events: usize,
    /// Events produced so far.
    pub produced: Arc<AtomicUsize>,
    /// Non-JSON messages produced (each must be dead-lettered).
    pub invalid: Arc<AtomicUsize>,
    /// Faults injected, by kind.
    faults: Mutex<BTreeMap<&'static str, u64>>,
    started: Instant,
}

impl World {
    /// Three brokers, the source topic, every router topic, the rules, receivers that are
    /// slow (`/slow`, `/dedup`) or fail one request in four (`/flaky`).
    pub async fn new(name: &str) -> World {
        let seed = knob("HOOKLINE_FAULTS_SEED", rand::random::<u32>() as u64);
        println!("{name}: seed {seed} (HOOKLINE_FAULTS_SEED={seed} replays these moments)");
        let h = Harness::builder()
            .brokers(3)
            .topic(TOPIC, PARTITIONS)
            .rules(&rules(SUBSCRIPTIONS))
            .build()
            .await;
        // The router's own topics, as `hookline run` will name them.
        let mut config = h.config(GROUP);
        config.delivery.retry_schedule = serde_json::from_str(SCHEDULE).unwrap();
        h.finish(config);
        // Keep the group coordinators on broker 1: the faults target the data path.
        for group in [GROUP, "faults.retry", "faults.backlog"] {
            h.broker
                .cluster()
                .coordinator(MockCoordinator::Group(group.into()), 1)
                .unwrap();
        }
        h.receiver
            .respond("/slow", |_| Respond::ok().after(Duration::from_millis(20)));
        h.receiver
            .respond("/dedup", |_| Respond::ok().after(Duration::from_millis(5)));
        h.receiver.respond("/flaky", |n| {
            if n % 4 == 1 {
                Respond::status(503)
            } else {
                Respond::ok()
            }
        });
        World {
            h,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            seed,
            events: knob("HOOKLINE_FAULTS_EVENTS", 1200) as usize,
            produced: Arc::default(),
            invalid: Arc::default(),
            faults: Mutex::default(),
            started: Instant::now(),
        }
    }

    /// Counts one injected fault of `kind`.
    pub fn fault(&self, kind: &'static str) {
        *self.faults.lock().unwrap().entry(kind).or_default() += 1;
        println!(
            "[{:>6.1}s] fault: {kind}",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Records waiting in the slow subscription's backlog (each up to 64 events) and in the
    /// retry tiers (written, not yet committed by their readers).
    pub fn waiting(&self) -> (i64, i64) {
        let bootstrap = self.h.broker.bootstrap_servers();
        let backlog = waiting(&bootstrap, "hookline.sub.slow", "faults.backlog");
        let retries = ["1s", "2s", "3s", "5s"]
            .iter()
            .map(|d| waiting(&bootstrap, &format!("hookline.retry.{d}"), "faults.retry"))
            .sum();
        (backlog, retries)
    }

    /// Starts a `hookline run` of the group.
    pub fn router(&self) -> RouterProcess {
        RouterCommand::new(&self.h, GROUP)
            .env(
                "HOOKLINE_LOG",
                // The faults make routers log errors by design; quiet unless asked.
                std::env::var("HOOKLINE_TEST_ROUTER_LOG").unwrap_or_else(|_| "off".into()),
            )
            .env("HOOKLINE_DELIVERY__RETRY_SCHEDULE", SCHEDULE)
            .env(
                "HOOKLINE_DELIVERY__SHUTDOWN_GRACE",
                format!("{}s", GRACE.as_secs()),
            )
            // A killed member's partitions move after 6 s, not librdkafka's 45 s.
            .env("HOOKLINE_KAFKA__OPTIONS__SESSION_TIMEOUT_MS", "6000")
            .env("HOOKLINE_KAFKA__OPTIONS__HEARTBEAT_INTERVAL_MS", "1000")
            .spawn()
    }

    /// Produces the events in the background, spread over `over`, one in five of category
    /// `flaky`, and every `invalid_every`-th message not JSON at all (0: none).
    pub fn produce(&self, over: Duration, invalid_every: usize) -> tokio::task::JoinHandle<()> {
        let producer = self.h.broker.producer().clone();
        let (events, produced, invalid) =
            (self.events, self.produced.clone(), self.invalid.clone());
        let pause = over / events.max(1) as u32;
        tokio::spawn(async move {
            for i in 0..events {
                let category = if i % 5 == 0 { "flaky" } else { "alert" };
                let event =
                    json!({"id": format!("e{i}"), "category": category, "severity": "high"});
                send(
                    &producer,
                    (i as i32) % PARTITIONS,
                    event.to_string().as_bytes(),
                )
                .await;
                if invalid_every > 0 && i % invalid_every == 0 {
                    send(&producer, (i as i32) % PARTITIONS, b"not json").await;
                    invalid.fetch_add(1, Ordering::SeqCst);
                }
                produced.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(pause).await;
            }
        })
    }

    /// Waits until `n` events were produced.
    pub async fn produced_at_least(&self, n: usize) {
        let produced = self.produced.clone();
        eventually_async(Duration::from_secs(600), || {
            let produced = produced.clone();
            async move { produced.load(Ordering::SeqCst) >= n }
        })
        .await;
    }

    /// A random pause between `min` and `max` milliseconds.
    pub fn pause(&self, min: u64, max: u64) -> Duration {
        Duration::from_millis(self.rng.lock().unwrap().random_range(min..=max))
    }

    /// What each subscription should receive: every event for `fast`, `slow` and `dedup`,
    /// the `flaky` ones for `flaky`.
    fn expected(&self) -> BTreeMap<&'static str, BTreeSet<String>> {
        let all: BTreeSet<String> = (0..self.events).map(|i| format!("e{i}")).collect();
        let flaky = (0..self.events)
            .filter(|i| i % 5 == 0)
            .map(|i| format!("e{i}"))
            .collect();
        BTreeMap::from([
            ("fast", all.clone()),
            ("slow", all.clone()),
            ("dedup", all),
            ("flaky", flaky),
        ])
    }

    /// Waits (up to `timeout`, scaled) until every subscription has every event it wants,
    /// then prints the account and asserts nothing was lost.
    pub async fn account(&self, name: &str, timeout: Duration) -> Account {
        let expected = self.expected();
        let complete = || {
            expected.iter().all(|(sub, want)| {
                let got: BTreeSet<String> = ids(&self.h.receiver.accepted(&format!("/{sub}")))
                    .into_iter()
                    .collect();
                want.is_subset(&got)
            })
        };
        let done = crate::common::eventually(timeout, complete).await;
        let mut account = Account {
            events: self.events,
            faults: self.faults.lock().unwrap().values().sum(),
            ..Account::default()
        };
        for (sub, want) in &expected {
            let got = ids(&self.h.receiver.accepted(&format!("/{sub}")));
            let unique: BTreeSet<String> = got.iter().cloned().collect();
            let lost: Vec<&String> = want.difference(&unique).collect();
            let duplicates = got.len() - unique.len();
            println!(
                "{name}: {sub:>5}: expected {:>6}, delivered {:>6}, lost {:>4}, duplicates {:>5} ({:.2}%)",
                want.len(),
                got.len(),
                lost.len(),
                duplicates,
                100.0 * duplicates as f64 / want.len().max(1) as f64
            );
            if !lost.is_empty() {
                println!(
                    "{name}: {sub}: first lost: {:?}",
                    &lost[..lost.len().min(10)]
                );
                self.why_lost(name, sub, &lost);
            }
            account.expected += want.len();
            account.delivered += got.len();
            account.lost += lost.len();
            account.duplicates += duplicates;
        }
        println!(
            "{name}: {} events, {} faults injected ({:?}), {} deliveries expected, {} made, lost {}, duplicates {} (ratio {:.4}), in {:.0?}",
            account.events,
            account.faults,
            self.faults.lock().unwrap(),
            account.expected,
            account.delivered,
            account.lost,
            account.duplicates,
            account.duplicates as f64 / account.expected.max(1) as f64,
            self.started.elapsed()
        );
        assert!(
            done && account.lost == 0,
            "{name}: events were lost (seed {})",
            self.seed
        );
        account
    }

    /// Prints what the dead-letter topic says of `lost` events of `sub` (a lost event may
    /// have been dead-lettered by mistake), so a failure shows where to look.
    fn why_lost(&self, name: &str, sub: &str, lost: &[&String]) {
        let letters = crate::common::read_topic(
            &self.h.broker.bootstrap_servers(),
            DLQ,
            usize::MAX,
            Duration::from_secs(3),
        );
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for letter in &letters {
            if letter.header_opt("hookline-subscription") != Some(sub) {
                continue;
            }
            let id = serde_json::from_slice::<serde_json::Value>(&letter.payload)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_string));
            let counts = id.is_none_or(|id| lost.iter().any(|l| **l == id));
            if counts {
                let why = format!(
                    "{}: {}",
                    letter.header("hookline-reason"),
                    letter.header_opt("hookline-error").unwrap_or_default()
                );
                *reasons.entry(why).or_default() += 1;
            }
        }
        println!("{name}: {sub}: dead letters of lost (or unreadable) events: {reasons:#?}");
    }

    /// Waits (up to a minute, scaled) until at least `at_least` source positions were
    /// dead-lettered with `reason`; returns how many were.
    pub fn dead_lettered(&self, reason: &str, at_least: usize) -> usize {
        let deadline = Instant::now() + scaled(Duration::from_secs(60));
        loop {
            let letters = crate::common::read_topic(
                &self.h.broker.bootstrap_servers(),
                DLQ,
                usize::MAX,
                Duration::from_secs(3),
            );
            let positions = letters
                .iter()
                .filter(|l| l.header("hookline-reason") == reason)
                .map(|l| {
                    (
                        l.header("hookline-source-partition").to_string(),
                        l.header("hookline-source-offset").to_string(),
                    )
                })
                .collect::<BTreeSet<_>>()
                .len();
            if positions >= at_least || Instant::now() > deadline {
                return positions;
            }
        }
    }
}

/// What a scenario measured.
#[derive(Debug, Default)]
pub struct Account {
    pub events: usize,
    pub faults: u64,
    pub expected: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicates: usize,
}

/// Stops `router` with SIGTERM and asserts it ended within the grace and its bound.
pub fn stop_gracefully(router: RouterProcess) -> Duration {
    router.terminate();
    let (took, status) = router
        .wait_exit(STOP_LIMIT + Duration::from_secs(30))
        .expect("hookline run did not stop after SIGTERM");
    assert!(
        took < STOP_LIMIT,
        "stopping took {took:?} (limit {STOP_LIMIT:?}; {status})"
    );
    assert!(status.success(), "hookline run ended with {status}");
    took
}

/// Produces one message, retrying until the broker takes it (faults are being injected).
async fn send(producer: &rdkafka::producer::FutureProducer, partition: i32, payload: &[u8]) {
    static FAILURES: AtomicU64 = AtomicU64::new(0);
    loop {
        let record = rdkafka::producer::FutureRecord::<(), [u8]>::to(TOPIC)
            .partition(partition)
            .payload(payload);
        match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => return,
            Err((e, _)) => {
                if FAILURES.fetch_add(1, Ordering::Relaxed).is_multiple_of(50) {
                    println!("producing an event failed ({e}); retrying");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
