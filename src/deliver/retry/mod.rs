//! In-memory retries: tower's `Retry` driven by [`RetryPolicy`], which asks
//! [`policy::classify`] whether an outcome is worth another attempt and [`backoff::Backoff`]
//! how long to wait.

pub mod backoff;
pub mod policy;

use std::sync::Arc;

use tower::BoxError;

use self::backoff::Backoff;
use self::policy::{attempt_label, classify, Class};
use super::breaker::Circuit;
use super::config::RetryConfig;
use super::events::{CircuitState, Observer};
use super::request::{Delivery, Response};

/// The tower retry policy of one subscription. Cloned per request by `Retry`.
#[derive(Clone)]
pub struct RetryPolicy {
    attempts: u32,
    backoff: Arc<Backoff>,
    observer: Observer,
    /// Once this circuit is open the receiver is known to be down: a delivery in flight stops
    /// retrying in memory (where it holds its event's offset) and goes to the durable retry
    /// tiers at once.
    circuit: Option<Arc<Circuit>>,
    /// Once the subscription spills to its backlog (it cannot keep up, or its receiver is
    /// failing or hanging), a delivery that holds a source offset stops retrying in memory
    /// too: the retry tiers take it, and the source's commits move on.
    spilling: Option<Arc<crate::deliver::lane::SpillLedger>>,
}

impl RetryPolicy {
    /// A policy for a subscription's `retry` block, reporting attempts through `observer`.
    pub fn new(config: &RetryConfig, observer: Observer) -> Self {
        RetryPolicy {
            attempts: config.attempts,
            backoff: Arc::new(Backoff::new(config)),
            observer,
            circuit: None,
            spilling: None,
        }
    }

    /// Stops retrying deliveries that hold a source offset while `ledger` spills.
    pub fn until_spilling(mut self, ledger: Arc<crate::deliver::lane::SpillLedger>) -> Self {
        self.spilling = Some(ledger);
        self
    }

    /// Stops retrying while `circuit` is open.
    pub fn until_open(mut self, circuit: Arc<Circuit>) -> Self {
        self.circuit = Some(circuit);
        self
    }
}

impl tower::retry::Policy<Delivery, Response, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Delivery,
        result: &mut Result<Response, BoxError>,
    ) -> Option<Self::Future> {
        // Called once after every attempt, the last included: the one place that counts them.
        let attempt = req.count_attempt();
        let open = self
            .circuit
            .as_ref()
            .is_some_and(|c| c.state() == CircuitState::Open)
            || (req.holds_source && self.spilling.as_ref().is_some_and(|l| l.spilling()));
        let wait = match classify(result) {
            Class::Transient { retry_after } if attempt < self.attempts && !open => {
                Some(self.backoff.delay(attempt, retry_after, &mut rand::rng()))
            }
            _ => None,
        };
        self.observer
            .attempt_finished(&req.webhook_id, attempt, attempt_label(result), wait);
        wait.map(tokio::time::sleep)
    }

    fn clone_request(&mut self, req: &Delivery) -> Option<Delivery> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::time::Instant;
    use tower::{Service, ServiceBuilder, ServiceExt};

    use super::*;
    use crate::metrics::Metrics;

    /// A retry + per-attempt timeout stack over a scripted service that records when each
    /// attempt started.
    fn stack(
        config: RetryConfig,
        script: impl Fn(usize) -> (Duration, Response) + Send + Sync + 'static,
    ) -> (
        impl Service<Delivery, Response = Response, Error = BoxError>,
        Arc<Mutex<Vec<Instant>>>,
        Metrics,
    ) {
        let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let seen = times.clone();
        let script = Arc::new(script);
        let inner = tower::service_fn(move |_: Delivery| {
            let n = {
                let mut t = seen.lock().unwrap();
                t.push(Instant::now());
                t.len() - 1
            };
            let (delay, response) = script(n);
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, BoxError>(response)
            }
        });
        let metrics = Metrics::new();
        let observer = Observer::new("s".into(), metrics.clone());
        let svc = ServiceBuilder::new()
            .retry(RetryPolicy::new(&config, observer))
            .timeout(Duration::from_secs(1))
            .service(inner);
        (svc, times, metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_circuit_stops_retries_in_memory() {
        use crate::deliver::breaker::Permit;
        use crate::deliver::config::BreakerConfig;
        let circuit = Arc::new(Circuit::new(
            BreakerConfig {
                consecutive_failures: 1,
                ..BreakerConfig::default()
            },
            Arc::new(|_, _| {}),
        ));
        let observer = Observer::new("s".into(), Metrics::new());
        let mut policy = RetryPolicy::new(&config(4), observer).until_open(circuit.clone());
        let mut req = Delivery::new("msg_1", "{}");
        let mut failed: Result<Response, BoxError> = Ok(Response::status(503));
        use tower::retry::Policy;
        assert!(
            policy.retry(&mut req, &mut failed).is_some(),
            "closed: retried"
        );
        circuit.record(Permit::Normal { epoch: 0 }, true, Instant::now());
        assert_eq!(circuit.state(), CircuitState::Open);
        assert!(
            policy.retry(&mut req, &mut failed).is_none(),
            "open: no more attempts"
        );
        assert_eq!(req.attempts(), 2);
    }

    fn config(attempts: u32) -> RetryConfig {
        RetryConfig {
            attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_retry_after: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_sets_the_wait_exactly() {
        let (svc, times, _) = stack(config(4), |n| {
            let mut r = Response::status(if n < 2 { 429 } else { 200 });
            r.retry_after = Some(Duration::from_secs(if n == 0 { 7 } else { 3 }));
            (Duration::ZERO, r)
        });
        let d = Delivery::new("msg_1", "{}");
        let r = svc.oneshot(d.clone()).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(d.attempts(), 3);
        let t = times.lock().unwrap();
        assert_eq!(t[1] - t[0], Duration::from_secs(7));
        assert_eq!(t[2] - t[1], Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_beyond_the_cap_waits_the_cap() {
        let mut cfg = config(2);
        cfg.max_retry_after = Duration::from_secs(10);
        let (svc, times, _) = stack(cfg, |n| {
            let mut r = Response::status(if n == 0 { 503 } else { 200 });
            r.retry_after = Some(Duration::from_secs(3600));
            (Duration::ZERO, r)
        });
        svc.oneshot(Delivery::new("msg_1", "{}")).await.unwrap();
        let t = times.lock().unwrap();
        assert_eq!(t[1] - t[0], Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_with_full_jitter_under_the_ceiling() {
        // Many deliveries, each failing 4 times: every wait is within its ceiling and the
        // waits are spread (not all at the ceiling, not all zero).
        let mut waits: Vec<Vec<Duration>> = vec![Vec::new(); 4];
        for _ in 0..50 {
            let (svc, times, _) = stack(config(5), |n| {
                (
                    Duration::ZERO,
                    Response::status(if n < 4 { 500 } else { 200 }),
                )
            });
            svc.oneshot(Delivery::new("msg_1", "{}")).await.unwrap();
            let t = times.lock().unwrap();
            for i in 0..4 {
                waits[i].push(t[i + 1] - t[i]);
            }
        }
        for (i, ceiling) in [100u64, 200, 400, 400].into_iter().enumerate() {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                waits[i].iter().all(|w| *w <= ceiling),
                "retry {}: {:?}",
                i + 1,
                waits[i]
            );
            let distinct: std::collections::HashSet<_> = waits[i].iter().collect();
            assert!(distinct.len() > 25, "retry {} waits are jittered", i + 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_are_retried_then_given_up_and_4xx_is_not_retried() {
        let (svc, times, metrics) = stack(config(3), |_| {
            (Duration::from_secs(60), Response::status(200))
        });
        let d = Delivery::new("msg_1", "{}");
        let start = Instant::now();
        let e = svc.oneshot(d.clone()).await.unwrap_err();
        assert!(e.is::<tower::timeout::error::Elapsed>());
        assert_eq!(d.attempts(), 3);
        assert_eq!(times.lock().unwrap().len(), 3);
        // Three 1 s timeouts plus two waits of at most 100 and 200 ms.
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_secs(3) && took <= Duration::from_millis(3300),
            "{took:?}"
        );
        assert_eq!(
            metrics
                .delivery_attempts
                .with_label_values(&["s", "timeout"])
                .get(),
            3
        );

        let (svc, times, _) = stack(config(5), |_| (Duration::ZERO, Response::status(404)));
        let d = Delivery::new("msg_2", "{}");
        assert_eq!(svc.oneshot(d.clone()).await.unwrap().status, 404);
        assert_eq!(d.attempts(), 1);
        assert_eq!(times.lock().unwrap().len(), 1);
    }
}
