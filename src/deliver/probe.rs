//! One delivery sent now, outside the subscription's lane: no queue, no rate limit, no
//! breaker, no retry (the API's "test" of a subscription). It goes through the same
//! authentication, signing, SSRF guard, proxy and TLS settings as every delivery.

use std::sync::Arc;

use bytes::Bytes;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use super::auth::AuthLayer;
use super::client::{build_client, HttpClient};
use super::request::{Delivery, Response};
use super::signing::SignLayer;
use super::ssrf::Guard;
use super::SubscriptionSettings;

/// Sends `body` as `webhook_id` to `sub` once, within its per-attempt timeout.
pub async fn send_once(
    sub: &SubscriptionSettings,
    guard: Arc<Guard>,
    webhook_id: &str,
    body: Bytes,
) -> Result<Response, BoxError> {
    let client = build_client(&sub.tls, guard.clone(), 1)?;
    let http = HttpClient::new(client, sub.url.clone(), sub.headers.clone(), guard);
    let service = ServiceBuilder::new()
        .timeout(sub.config.timeout)
        .layer(AuthLayer::new(sub.auth.clone()))
        .layer(SignLayer::new(sub.signer.clone()))
        .service(http);
    service.oneshot(Delivery::new(webhook_id, body)).await
}
