//! The innermost service: one HTTP POST per call, through a per-subscription `reqwest` client
//! (its own connection pool and TLS settings, HTTP/2 when the server offers it via ALPN).
//! Redirects are not followed (a redirect could lead past the SSRF guard). Environment
//! proxies are ignored; only `[delivery] proxy` is used ([`super::proxy`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use tower::Service;

use super::proxy::ProxiedCheck;
use super::request::{parse_retry_after, Delivery, Response};
use super::ssrf::{find_refused, Guard, GuardedResolver, Refused};
use super::tls::TlsSettings;

/// Response bytes read (and discarded) so the connection can go back to the pool; a receiver
/// that sends more gets its connection closed instead.
const DRAIN_LIMIT: usize = 64 * 1024;

/// One attempt failed without an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The destination is refused by the SSRF guard.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// No connection could be made (refused, unreachable, TLS handshake, DNS).
    #[error("cannot connect")]
    Connect(#[source] reqwest::Error),
    /// The connection broke or the exchange failed.
    #[error("request failed")]
    Request(#[source] reqwest::Error),
}

impl Error {
    fn from_reqwest(e: reqwest::Error) -> Self {
        // without_url: a query-string token is part of the URL and must not reach logs or
        // dead-letter headers.
        let e = e.without_url();
        if let Some(refused) = find_refused(&e) {
            return Error::Refused(refused.clone());
        }
        if e.is_connect() {
            Error::Connect(e)
        } else {
            Error::Request(e)
        }
    }
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client")]
pub struct BuildError(#[source] pub reqwest::Error);

/// Builds the client for one subscription.
pub fn build_client(
    tls: &TlsSettings,
    guard: Arc<Guard>,
    pool_size: usize,
) -> Result<reqwest::Client, BuildError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // Never from the environment; only the configured proxy.
        .no_proxy();
    if let Some(proxy) = guard.proxy() {
        builder = builder.proxy(proxy.reqwest());
    }
    let builder = builder
        .dns_resolver(GuardedResolver::new(guard))
        .user_agent(concat!("hookline/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(pool_size)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true);
    tls.apply(builder)
        .and_then(|b| b.build())
        .map_err(BuildError)
}

/// POSTs a [`Delivery`] to one URL.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    url: Arc<Url>,
    headers: Arc<HeaderMap>,
    guard: Arc<Guard>,
    proxied: ProxiedCheck,
}

impl HttpClient {
    /// A service posting to `url` with `client`, adding the subscription's static `headers`.
    pub fn new(client: reqwest::Client, url: Url, headers: HeaderMap, guard: Arc<Guard>) -> Self {
        HttpClient {
            client,
            url: Arc::new(url),
            headers: Arc::new(headers),
            guard,
            proxied: ProxiedCheck::default(),
        }
    }

    fn request(&self, delivery: Delivery) -> Result<reqwest::RequestBuilder, Refused> {
        // A literal IP never goes through the resolver, so the guard looks at it here.
        let host = self.url.host_str().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            self.guard.check(host, ip)?;
        }
        let mut url = (*self.url).clone();
        if !delivery.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &delivery.query {
                pairs.append_pair(name, value.expose());
            }
        }
        let mut headers = (*self.headers).clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.extend(delivery.headers);
        Ok(self.client.post(url).headers(headers).body(delivery.body))
    }
}

impl Service<Delivery> for HttpClient {
    type Response = Response;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, delivery: Delivery) -> Self::Future {
        let request = self.request(delivery);
        // Through a proxy the resolver never sees the destination: check it before sending.
        let preflight = self.guard.proxy().is_some().then(|| {
            let (guard, check, url) = (self.guard.clone(), self.proxied.clone(), self.url.clone());
            async move {
                // Literal addresses were checked by `request` already.
                let host = url.host_str().unwrap_or_default();
                if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
                    return Ok(());
                }
                check.check(&guard, host).await
            }
        });
        Box::pin(async move {
            let request = request?;
            if let Some(preflight) = preflight {
                preflight.await?;
            }
            let mut response = request.send().await.map_err(Error::from_reqwest)?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let mut drained = 0;
            while drained < DRAIN_LIMIT {
                match response.chunk().await {
                    Ok(Some(chunk)) => drained += chunk.len(),
                    // The status is what counts; a broken body only costs the connection.
                    Ok(None) | Err(_) => break,
                }
            }
            Ok(Response {
                status,
                retry_after,
            })
        })
    }
}

/// `error: cause: cause ...`, for logs and dead-letter headers.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cur = error.source();
    while let Some(e) = cur {
        let text = e.to_string();
        // reqwest repeats its inner error's text; skip exact repeats.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}
