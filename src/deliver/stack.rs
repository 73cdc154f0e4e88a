//! Builds one subscription's delivery stack, in one place, in this order (outermost first):
//!
//! 1. **concurrency limit**: at most `concurrency` deliveries in flight (retries included:
//!    a delivery keeps its slot while it backs off, so a failing receiver is not flooded);
//! 2. **rate limit**: token bucket, `rate_limit.per_second` and `burst`, per delivery;
//! 3. **circuit breaker**: waits while open, one probe when half-open; judges whole deliveries;
//! 4. **retry**: classification in `retry::policy`, backoff and `Retry-After` in
//!    `retry::backoff`;
//! 5. **timeout**: per attempt;
//! 6. **auth**, then 7. **signing** (fresh `webhook-timestamp` per attempt, same `webhook-id`);
//! 8. **HTTP client**: `reqwest`, pooled, HTTP/2 where offered, SSRF-guarded resolver, no
//!    redirects.
//!
//! Readiness flows from the outside in: a delivery waits for a concurrency slot, then a token,
//! then a closed (or probing) circuit, and only then leaves the subscription's queue.

use std::sync::Arc;

use tower::limit::ConcurrencyLimit;
use tower::retry::Retry;
use tower::timeout::Timeout;
use tower::{BoxError, ServiceBuilder};

use super::auth::{Auth, AuthLayer};
use super::breaker::{BreakerLayer, Circuit, CircuitBreaker, IsFailure};
use super::client::{build_client, BuildError, HttpClient};
use super::events::Observer;
use super::rate_limit::{Bucket, RateLimit, RateLimitLayer};
use super::request::Response;
use super::retry::policy::{classify, Class};
use super::retry::RetryPolicy;
use super::signing::{Sign, SignLayer};
use super::ssrf::Guard;
use super::SubscriptionSettings;

/// The layer order, outermost first. Changing the order means changing this alias.
pub type DeliveryStack = ConcurrencyLimit<
    RateLimit<CircuitBreaker<Retry<RetryPolicy, Timeout<Auth<Sign<HttpClient>>>>, ReceiverFailing>>,
>;

/// The breaker's notion of failure: exactly what the retry policy calls transient.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiverFailing;

impl IsFailure<Response> for ReceiverFailing {
    fn is_failure(&self, result: &Result<Response, BoxError>) -> bool {
        matches!(classify(result), Class::Transient { .. })
    }
}

/// A built stack and the handles the dispatcher keeps beside it.
pub struct Stack {
    /// The service.
    pub service: DeliveryStack,
    /// Its circuit, for inspection.
    pub circuit: Arc<Circuit>,
}

/// Builds the stack for `sub` around `circuit` and `bucket` (kept by the lane across
/// rebuilds, so a reload neither closes an open circuit nor refills the rate limit). Fails
/// only if the HTTP client cannot be built (TLS material was checked at load time, so in
/// practice not).
pub fn build(
    sub: &SubscriptionSettings,
    guard: Arc<Guard>,
    observer: Observer,
    circuit: Arc<Circuit>,
    bucket: Option<Arc<Bucket>>,
    spilling: Arc<super::lane::SpillLedger>,
) -> Result<Stack, BuildError> {
    let config = &sub.config;
    let client = build_client(&sub.tls, guard.clone(), config.concurrency)?;
    let http = HttpClient::new(client, sub.url.clone(), sub.headers.clone(), guard);

    observer
        .metrics()
        .circuit_state
        .with_label_values(&[observer.subscription()])
        .set(circuit.state().gauge());

    let service = ServiceBuilder::new()
        .concurrency_limit(config.concurrency)
        .layer(RateLimitLayer::new(bucket, Some(observer.clone())))
        .layer(BreakerLayer::new(circuit.clone(), ReceiverFailing))
        .retry(
            RetryPolicy::new(&config.retry, observer)
                .until_open(circuit.clone())
                .until_spilling(spilling),
        )
        .timeout(config.timeout)
        .layer(AuthLayer::new(sub.auth.clone()))
        .layer(SignLayer::new(sub.signer.clone()))
        .service(http);
    Ok(Stack { service, circuit })
}
