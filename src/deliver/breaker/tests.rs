//! Breaker behaviour on tokio's paused clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tower::{BoxError, Service, ServiceExt};

use super::*;

#[derive(Clone)]
struct ErrIsFailure;
impl<R> IsFailure<R> for ErrIsFailure {
    fn is_failure(&self, result: &Result<R, BoxError>) -> bool {
        result.is_err()
    }
}

type Transitions = Arc<Mutex<Vec<(CircuitState, CircuitState)>>>;

fn config() -> BreakerConfig {
    BreakerConfig {
        enabled: true,
        failure_ratio: 0.5,
        min_requests: 10,
        window: Duration::from_secs(10),
        consecutive_failures: 3,
        open_for: Duration::from_secs(5),
    }
}

/// A breaker over a service that fails while `failing` is set.
fn breaker(
    config: BreakerConfig,
) -> (
    impl Service<(), Response = (), Error = BoxError> + Clone,
    Arc<AtomicBool>,
    Transitions,
    Arc<Circuit>,
) {
    let failing = Arc::new(AtomicBool::new(false));
    let transitions: Transitions = Arc::default();
    let seen = transitions.clone();
    let circuit = Arc::new(Circuit::new(
        config,
        Arc::new(move |from, to| seen.lock().unwrap().push((from, to))),
    ));
    let f = failing.clone();
    let inner = tower::service_fn(move |()| {
        let fail = f.load(Ordering::SeqCst);
        async move {
            if fail {
                Err::<(), BoxError>("boom".into())
            } else {
                Ok(())
            }
        }
    });
    let svc = BreakerLayer::new(circuit.clone(), ErrIsFailure).layer(inner);
    (svc, failing, transitions, circuit)
}

use tower::Layer;

async fn send<S: Service<(), Response = (), Error = BoxError>>(svc: &mut S) -> bool {
    svc.ready().await.unwrap().call(()).await.is_ok()
}

/// Whether the service becomes ready without time passing.
fn ready_now<S: Service<(), Error = BoxError>>(svc: &mut S) -> bool {
    svc.ready().now_or_never().is_some()
}

#[tokio::test(start_paused = true)]
async fn opens_after_consecutive_failures_and_probes_after_open_for() {
    let (mut svc, failing, transitions, circuit) = breaker(config());
    failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(!send(&mut svc).await);
    }
    assert_eq!(circuit.state(), CircuitState::Open);
    // Open: readiness waits, it does not fail.
    assert!(!ready_now(&mut svc));
    tokio::time::advance(Duration::from_millis(4_900)).await;
    assert!(!ready_now(&mut svc));
    tokio::time::advance(Duration::from_millis(100)).await;
    // Half-open: exactly one probe.
    assert!(ready_now(&mut svc));
    assert_eq!(circuit.state(), CircuitState::HalfOpen);
    let mut other = svc.clone();
    assert!(
        !ready_now(&mut other),
        "a second request must wait for the probe"
    );
    failing.store(false, Ordering::SeqCst);
    assert!(svc.call(()).await.is_ok());
    assert_eq!(circuit.state(), CircuitState::Closed);
    assert!(ready_now(&mut other), "closing wakes the waiters");
    use CircuitState::*;
    assert_eq!(
        *transitions.lock().unwrap(),
        vec![(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed)]
    );
}

#[tokio::test(start_paused = true)]
async fn failed_probe_opens_again() {
    let (mut svc, failing, _, circuit) = breaker(config());
    failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        send(&mut svc).await;
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(!send(&mut svc).await);
    assert_eq!(circuit.state(), CircuitState::Open);
    // A full open_for again from the failed probe.
    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert!(!ready_now(&mut svc));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(ready_now(&mut svc));
}

#[tokio::test(start_paused = true)]
async fn opens_on_failure_ratio_over_min_requests() {
    let mut cfg = config();
    cfg.consecutive_failures = 100;
    let (mut svc, failing, _, circuit) = breaker(cfg);
    // Alternate: 50% failures, never 3 in a row. Below min_requests nothing happens.
    for i in 0..9 {
        failing.store(i % 2 == 1, Ordering::SeqCst);
        send(&mut svc).await;
    }
    assert_eq!(circuit.state(), CircuitState::Closed);
    failing.store(true, Ordering::SeqCst);
    send(&mut svc).await; // 10th request, 5 failures of 10
    assert_eq!(circuit.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn old_outcomes_leave_the_window() {
    let mut cfg = config();
    cfg.consecutive_failures = 100;
    let (mut svc, failing, _, circuit) = breaker(cfg);
    failing.store(true, Ordering::SeqCst);
    for _ in 0..6 {
        send(&mut svc).await;
    }
    // The failures age out of the 10 s window before enough requests arrive.
    tokio::time::advance(Duration::from_secs(11)).await;
    failing.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        send(&mut svc).await;
    }
    failing.store(true, Ordering::SeqCst);
    send(&mut svc).await;
    assert_eq!(circuit.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn successes_reset_the_consecutive_count() {
    let (mut svc, failing, _, circuit) = breaker(config());
    for i in 0..8 {
        failing.store(i % 3 != 2, Ordering::SeqCst); // fail, fail, ok, ...
        send(&mut svc).await;
    }
    assert_eq!(circuit.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn disabled_breaker_never_opens() {
    let mut cfg = config();
    cfg.enabled = false;
    let (mut svc, failing, transitions, _) = breaker(cfg);
    failing.store(true, Ordering::SeqCst);
    for _ in 0..50 {
        send(&mut svc).await;
    }
    assert!(ready_now(&mut svc));
    assert!(transitions.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stale_readiness_is_refused_and_a_cancelled_probe_frees_the_slot() {
    let (mut svc, failing, _, circuit) = breaker(config());
    let mut early = svc.clone();
    assert!(ready_now(&mut early));
    failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        send(&mut svc).await;
    }
    let e = early.call(()).await.unwrap_err();
    let open = e.downcast_ref::<CircuitOpen>().expect("CircuitOpen");
    assert_eq!(open.retry_in, Duration::from_secs(5));

    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(ready_now(&mut svc));
    let probe = svc.call(());
    drop(probe);
    assert_eq!(circuit.state(), CircuitState::HalfOpen);
    assert!(
        ready_now(&mut early),
        "the cancelled probe's slot is free again"
    );
}
