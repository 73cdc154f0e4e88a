//! [`BreakerLayer`]: wraps a service in a [`CircuitBreaker`] sharing one [`Circuit`].

use std::sync::Arc;

use tower::Layer;

use super::{Circuit, CircuitBreaker};

/// Adds a circuit breaker; every service it wraps shares the same circuit.
#[derive(Clone)]
pub struct BreakerLayer<C> {
    circuit: Arc<Circuit>,
    classifier: C,
}

impl<C> BreakerLayer<C> {
    /// A layer over `circuit`, judging outcomes with `classifier`.
    pub fn new(circuit: Arc<Circuit>, classifier: C) -> Self {
        BreakerLayer {
            circuit,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.circuit.clone(), self.classifier.clone())
    }
}
