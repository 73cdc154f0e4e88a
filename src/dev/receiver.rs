//! A real HTTP webhook receiver on loopback that records every request (path, query, headers,
//! body) and answers as scripted per path: status, delay, `Retry-After`. One harness for
//! `hookline dev`, the integration tests and the benchmarks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How the receiver answers one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Respond {
    /// HTTP status.
    pub status: u16,
    /// Wait this long before answering (a long delay simulates a hung receiver).
    pub delay: Duration,
    /// A `Retry-After` header value.
    pub retry_after: Option<String>,
}

impl Respond {
    /// `status` at once.
    pub fn status(status: u16) -> Self {
        Respond {
            status,
            delay: Duration::ZERO,
            retry_after: None,
        }
    }
    /// 200 at once.
    pub fn ok() -> Self {
        Self::status(200)
    }
    /// Adds a delay.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    /// Adds `Retry-After`.
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }
}

/// Decides the answer to the n-th request (0-based) on a path.
pub type Responder = Arc<dyn Fn(usize) -> Respond + Send + Sync>;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Request method.
    pub method: Method,
    /// Path, e.g. `/pagerduty`.
    pub path: String,
    /// Raw query string.
    pub query: Option<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Observer = Arc<dyn Fn(&Recorded) + Send + Sync>;

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    counts: HashMap<String, usize>,
    responders: HashMap<String, Responder>,
    observer: Option<Observer>,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    arrived: Notify,
}

/// A running receiver. Dropping it stops the server.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Receiver {
    /// Binds `127.0.0.1` on a free port and starts serving.
    pub async fn start() -> std::io::Result<Receiver> {
        Self::bind("127.0.0.1:0".parse().expect("address")).await
    }

    /// Binds `addr` and starts serving.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Ok(Receiver { addr, shared, stop })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Scripts the answers on `path` (exact match); other paths answer 200.
    pub fn respond(
        &self,
        path: &str,
        responder: impl Fn(usize) -> Respond + Send + Sync + 'static,
    ) {
        self.lock()
            .responders
            .insert(path.to_string(), Arc::new(responder));
    }

    /// Calls `observer` for every request, after it is answered.
    pub fn observe(&self, observer: impl Fn(&Recorded) + Send + Sync + 'static) {
        self.lock().observer = Some(Arc::new(observer));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Requests on `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Requests answered with 2xx on `path`.
    pub fn accepted(&self, path: &str) -> Vec<Recorded> {
        self.requests_to(path)
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until `done` holds for the recorded requests, or `timeout` passes. Returns
    /// whether it held.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&[Recorded]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            if done(&self.lock().requests) {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return done(&self.lock().requests);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().expect("receiver lock")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let respond = {
        let mut inner = shared.inner.lock().expect("receiver lock");
        let n = inner.counts.entry(path.clone()).or_default();
        let nth = *n;
        *n += 1;
        inner
            .responders
            .get(&path)
            .map(|r| r(nth))
            .unwrap_or_else(Respond::ok)
    };
    if !respond.delay.is_zero() {
        tokio::time::sleep(respond.delay).await;
    }
    let recorded = Recorded {
        method,
        path,
        query: uri.query().map(str::to_string),
        headers,
        body,
        status: respond.status,
        at: Instant::now(),
    };
    let observer = {
        let mut inner = shared.inner.lock().expect("receiver lock");
        inner.requests.push(recorded.clone());
        inner.observer.clone()
    };
    if let Some(observer) = observer {
        observer(&recorded);
    }
    shared.arrived.notify_waiters();
    let status = StatusCode::from_u16(respond.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, "").into_response();
    if let Some(value) = respond.retry_after.and_then(|v| v.parse().ok()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}
