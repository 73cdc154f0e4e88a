//! [`RateLimitLayer`].

use std::sync::Arc;

use tower::Layer;

use super::{Bucket, RateLimit};
use crate::deliver::events::Observer;

/// Limits the services it wraps to one shared [`Bucket`] (or none: unlimited).
#[derive(Clone)]
pub struct RateLimitLayer {
    bucket: Option<Arc<Bucket>>,
    observer: Option<Observer>,
}

impl RateLimitLayer {
    /// A layer taking tokens from `bucket` (`None`: no limit), reporting waits to `observer`.
    pub fn new(bucket: Option<Arc<Bucket>>, observer: Option<Observer>) -> Self {
        RateLimitLayer { bucket, observer }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::new(inner, self.bucket.clone(), self.observer.clone())
    }
}
