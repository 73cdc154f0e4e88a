//! [`RateLimit`]: `poll_ready` waits for a token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::time::{Instant, Sleep};
use tower::Service;

use super::Bucket;
use crate::deliver::events::Observer;

/// The rate-limited service.
pub struct RateLimit<S> {
    inner: S,
    bucket: Option<Arc<Bucket>>,
    observer: Option<Observer>,
    /// A token taken for the next `call`.
    has_token: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> RateLimit<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, bucket: Option<Arc<Bucket>>, observer: Option<Observer>) -> Self {
        RateLimit {
            inner,
            bucket,
            observer,
            has_token: false,
            sleep: None,
        }
    }
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        RateLimit::new(
            self.inner.clone(),
            self.bucket.clone(),
            self.observer.clone(),
        )
    }
}

impl<S: Service<Req>, Req> Service<Req> for RateLimit<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(bucket) = &self.bucket {
            while !self.has_token {
                if let Some(sleep) = &mut self.sleep {
                    ready!(sleep.as_mut().poll(cx));
                    self.sleep = None;
                }
                let now = Instant::now();
                match bucket.try_acquire(now) {
                    Ok(()) => self.has_token = true,
                    Err(at) => {
                        if let Some(observer) = &self.observer {
                            observer.rate_limited(at - now);
                        }
                        self.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
                    }
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> S::Future {
        self.has_token = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::deliver::rate_limit::RateLimitLayer;

    /// A sustained run on the paused clock: R = 50/s, burst 10, 1000 requests.
    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_over_a_sustained_run() {
        let metrics = crate::metrics::Metrics::new();
        let observer = Observer::new("s".into(), metrics.clone());
        let layer = RateLimitLayer::new(Some(Arc::new(Bucket::new(50.0, 10))), Some(observer));
        let mut svc = layer.layer(tower::service_fn(|()| async {
            Ok::<_, ()>(Instant::now())
        }));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..1000 {
            times.push(svc.ready().await.unwrap().call(()).await.unwrap());
        }
        // The bucket starts empty: one every 20 ms from the start, 1000 / 50 s.
        let elapsed = times.last().unwrap().duration_since(start);
        assert_eq!(elapsed, Duration::from_millis(20_000));
        // No one-second window anywhere holds more than per_second + burst.
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 60, "{in_window} requests in one second");
        }
        // The rate measured over the run is R within 1%.
        let rate = 1000.0 / elapsed.as_secs_f64();
        assert!((rate - 50.0).abs() / 50.0 < 0.01, "rate {rate}");
        assert_eq!(metrics.rate_limited.with_label_values(&["s"]).get(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_without_a_bucket() {
        let mut svc = RateLimitLayer::new(None, None)
            .layer(tower::service_fn(|()| async { Ok::<_, ()>(()) }));
        let start = Instant::now();
        for _ in 0..1000 {
            svc.ready().await.unwrap().call(()).await.unwrap();
        }
        assert_eq!(Instant::now(), start);
    }
}
