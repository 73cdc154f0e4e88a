//! [`ResponseFuture`]: records the outcome of an admitted request in the circuit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::BoxError;

use super::{Circuit, CircuitOpen, IsFailure, Permit};

/// The future of a [`super::CircuitBreaker`] call.
pub struct ResponseFuture<F, C> {
    kind: Kind<F, C>,
}

enum Kind<F, C> {
    Called {
        // Boxed so this future is Unpin without a pin-projection crate; one allocation per
        // delivery is nothing next to an HTTP request.
        future: Pin<Box<F>>,
        circuit: Arc<Circuit>,
        /// Taken when the outcome is recorded; still here on drop means cancelled.
        permit: Option<Permit>,
        classifier: C,
    },
    Open(Option<CircuitOpen>),
}

impl<F, C> ResponseFuture<F, C> {
    pub(super) fn new(future: F, circuit: Arc<Circuit>, permit: Permit, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future: Box::pin(future),
                circuit,
                permit: Some(permit),
                classifier,
            },
        }
    }

    pub(super) fn open(error: CircuitOpen) -> Self {
        ResponseFuture {
            kind: Kind::Open(Some(error)),
        }
    }
}

impl<F, C, R, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
    C: IsFailure<R> + Unpin,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin (the inner future is boxed).
        let this = Pin::into_inner(self);
        match &mut this.kind {
            Kind::Open(error) => Poll::Ready(Err(Box::new(
                error.take().expect("polled after completion"),
            ))),
            Kind::Called {
                future,
                circuit,
                permit,
                classifier,
            } => {
                let result = match future.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r.map_err(Into::into),
                };
                if let Some(permit) = permit.take() {
                    circuit.record(permit, classifier.is_failure(&result), Instant::now());
                }
                Poll::Ready(result)
            }
        }
    }
}

impl<F, C> Drop for ResponseFuture<F, C> {
    fn drop(&mut self) {
        if let Kind::Called {
            circuit,
            permit: Some(permit),
            ..
        } = &self.kind
        {
            circuit.release(*permit);
        }
    }
}
