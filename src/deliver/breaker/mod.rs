//! A per-subscription circuit breaker, as a tower layer.
//!
//! Closed: requests flow; outcomes are counted in a sliding window. The circuit opens when the
//! share of failures in the window reaches `failure_ratio` over at least `min_requests`
//! requests, or after `consecutive_failures` failures in a row. Open: `poll_ready` waits (the
//! subscription's events wait in its queue instead of being spent on a receiver that is down)
//! until `open_for` has passed. HalfOpen: exactly one probe request goes through; its success
//! closes the circuit, its failure opens it again.
//!
//! The breaker sits outside retry, so it judges whole deliveries (after their retries), and it
//! counts only what [`IsFailure`] says is the receiver failing; a 4xx is the receiver working
//! and saying no, not a failure.

mod error;
mod future;
mod layer;
mod service;
mod window;

pub use error::CircuitOpen;
pub use future::ResponseFuture;
pub use layer::BreakerLayer;
pub use service::CircuitBreaker;

use std::sync::{Arc, Mutex};
use std::task::Waker;

use tokio::time::Instant;
use tower::BoxError;

use self::window::Window;
use super::config::BreakerConfig;
use super::events::CircuitState;

/// Decides whether a result counts as a failure of the receiver.
pub trait IsFailure<R>: Clone {
    /// `true` when `result` shows the receiver failing.
    fn is_failure(&self, result: &Result<R, BoxError>) -> bool;
}

/// Called on every state change with `(from, to)`.
pub type OnTransition = Arc<dyn Fn(CircuitState, CircuitState) + Send + Sync>;

/// Which admission a request got; its outcome is recorded against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Admitted while closed, in closed period `epoch`.
    Normal { epoch: u64 },
    /// The half-open probe of period `epoch`.
    Probe { epoch: u64 },
}

pub(crate) enum Admission {
    Ready(Permit),
    /// Wait until the instant (open), or until woken (a probe is in flight).
    Wait(Option<Instant>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl State {
    fn public(self) -> CircuitState {
        match self {
            State::Closed => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

struct Inner {
    state: State,
    /// Bumped on every transition, so outcomes of requests admitted in an earlier period
    /// (still in flight when the circuit opened) do not count in the new one.
    epoch: u64,
    window: Window,
    consecutive: u32,
    waiters: Vec<Waker>,
}

/// The shared state machine behind every clone of one breaker.
pub struct Circuit {
    config: BreakerConfig,
    inner: Mutex<Inner>,
    on_transition: OnTransition,
}

impl Circuit {
    /// A closed circuit with `config`'s thresholds.
    pub fn new(config: BreakerConfig, on_transition: OnTransition) -> Self {
        Circuit {
            inner: Mutex::new(Inner {
                state: State::Closed,
                epoch: 0,
                window: Window::new(config.window),
                consecutive: 0,
                waiters: Vec::new(),
            }),
            config,
            on_transition,
        }
    }

    /// Its thresholds.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        self.lock().state.public()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("breaker lock")
    }

    fn transition(&self, inner: &mut Inner, to: State) -> (CircuitState, CircuitState) {
        let from = inner.state.public();
        inner.state = to;
        inner.epoch += 1;
        inner.window.clear();
        inner.consecutive = 0;
        for waker in inner.waiters.drain(..) {
            waker.wake();
        }
        (from, to.public())
    }

    fn notify(&self, change: Option<(CircuitState, CircuitState)>) {
        if let Some((from, to)) = change {
            (self.on_transition)(from, to);
        }
    }

    pub(crate) fn admit(&self, now: Instant, waker: &Waker) -> Admission {
        if !self.config.enabled {
            return Admission::Ready(Permit::Normal { epoch: 0 });
        }
        let mut inner = self.lock();
        let mut change = None;
        if let State::Open { until } = inner.state {
            if now < until {
                return Admission::Wait(Some(until));
            }
            change = Some(self.transition(&mut inner, State::HalfOpen { probing: false }));
        }
        let admission = match inner.state {
            State::Closed => Admission::Ready(Permit::Normal { epoch: inner.epoch }),
            State::HalfOpen { probing: false } => {
                inner.state = State::HalfOpen { probing: true };
                Admission::Ready(Permit::Probe { epoch: inner.epoch })
            }
            _ => {
                if !inner.waiters.iter().any(|w| w.will_wake(waker)) {
                    inner.waiters.push(waker.clone());
                }
                Admission::Wait(None)
            }
        };
        drop(inner);
        self.notify(change);
        admission
    }

    /// Time left until an open circuit lets a probe through (zero when not open).
    pub fn open_remaining(&self, now: Instant) -> std::time::Duration {
        match self.lock().state {
            State::Open { until } => until.saturating_duration_since(now),
            _ => std::time::Duration::ZERO,
        }
    }

    /// Whether a request admitted with `permit` would now be stale (the circuit opened since).
    pub(crate) fn is_stale(&self, permit: Permit) -> bool {
        let inner = self.lock();
        match permit {
            Permit::Normal { epoch } | Permit::Probe { epoch } => {
                epoch != inner.epoch && matches!(inner.state, State::Open { .. })
            }
        }
    }

    /// Records the outcome of a request admitted with `permit`.
    pub(crate) fn record(&self, permit: Permit, failure: bool, now: Instant) {
        if !self.config.enabled {
            return;
        }
        let mut inner = self.lock();
        let open = State::Open {
            until: now + self.config.open_for,
        };
        let change = match (permit, inner.state) {
            (Permit::Normal { epoch }, State::Closed) if epoch == inner.epoch => {
                inner.window.record(now, failure);
                inner.consecutive = if failure { inner.consecutive + 1 } else { 0 };
                let (total, failures) = inner.window.counts(now);
                let ratio_tripped = total >= self.config.min_requests
                    && failures as f64 >= self.config.failure_ratio * total as f64;
                let run_tripped = inner.consecutive >= self.config.consecutive_failures;
                (failure && (ratio_tripped || run_tripped))
                    .then(|| self.transition(&mut inner, open))
            }
            (Permit::Probe { epoch }, State::HalfOpen { .. }) if epoch == inner.epoch => {
                Some(self.transition(&mut inner, if failure { open } else { State::Closed }))
            }
            _ => None,
        };
        drop(inner);
        self.notify(change);
    }

    /// A request admitted with `permit` ended without an outcome (cancelled): a probe's slot
    /// is given back so another request can probe.
    pub(crate) fn release(&self, permit: Permit) {
        let mut inner = self.lock();
        if let (Permit::Probe { epoch }, State::HalfOpen { probing: true }) = (permit, inner.state)
        {
            if epoch == inner.epoch {
                inner.state = State::HalfOpen { probing: false };
                for waker in inner.waiters.drain(..) {
                    waker.wake();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
