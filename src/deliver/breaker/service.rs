//! [`CircuitBreaker`]: waits in `poll_ready` while the circuit is open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};
use tower::{BoxError, Service};

use super::{Admission, Circuit, CircuitOpen, IsFailure, Permit, ResponseFuture};

/// The breaker service. Clones share the circuit but not their readiness.
pub struct CircuitBreaker<S, C> {
    inner: S,
    circuit: Arc<Circuit>,
    classifier: C,
    /// Admission obtained by `poll_ready`, used by the next `call`.
    permit: Option<Permit>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S, C> CircuitBreaker<S, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, circuit: Arc<Circuit>, classifier: C) -> Self {
        CircuitBreaker {
            inner,
            circuit,
            classifier,
            permit: None,
            sleep: None,
        }
    }

    /// The shared circuit.
    pub fn circuit(&self) -> &Arc<Circuit> {
        &self.circuit
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        CircuitBreaker::new(
            self.inner.clone(),
            self.circuit.clone(),
            self.classifier.clone(),
        )
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: IsFailure<S::Response> + Unpin,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        ready!(self.inner.poll_ready(cx)).map_err(Into::into)?;
        if self.permit.is_some() {
            return Poll::Ready(Ok(()));
        }
        loop {
            match self.circuit.admit(Instant::now(), cx.waker()) {
                Admission::Ready(permit) => {
                    self.permit = Some(permit);
                    self.sleep = None;
                    return Poll::Ready(Ok(()));
                }
                Admission::Wait(None) => return Poll::Pending,
                Admission::Wait(Some(until)) => {
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    if sleep.deadline() != until {
                        sleep.as_mut().reset(until);
                    }
                    ready!(sleep.as_mut().poll(cx));
                    self.sleep = None;
                }
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let permit = self
            .permit
            .take()
            .expect("CircuitBreaker::call without poll_ready");
        if self.circuit.is_stale(permit) {
            let retry_in = self.circuit.open_remaining(Instant::now());
            return ResponseFuture::open(CircuitOpen { retry_in });
        }
        ResponseFuture::new(
            self.inner.call(req),
            self.circuit.clone(),
            permit,
            self.classifier.clone(),
        )
    }
}
