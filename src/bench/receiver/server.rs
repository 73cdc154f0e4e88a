//! The receiver's HTTP server. It is the reference `wrk` measures the ceiling against, so it
//! must stay cheap per request: atomic counters and one histogram record per path, never a
//! copy of the request (unlike `crate::dev::receiver`, which keeps every request for tests).
//!
//! Control endpoints (not counted): `GET /_stats` (JSON [`ReceiverStats`]), `POST /_reset`
//! (zero the per-path counts), `POST /_respond` with a `PATH=BEHAVIOUR` body (change how a path
//! answers), `POST /_order` with a `PATH=PARTITIONS` body (check that each partition's events
//! arrive in order; see [`super::seen`]). Every other path is a webhook endpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use hdrhistogram::Histogram;
use memchr::memmem::Finder;

use super::behaviour::{parse_route, Behaviour};
use super::seen::Seen;
use super::stats::{LatencySummary, PathStats, ReceiverStats};

/// The body field events carry their produce time in (microseconds since the Unix epoch); a
/// template copies it into the request body, so the receiver can measure latency without
/// parsing JSON.
pub const PRODUCED_FIELD: &str = "produced_us";

static MARKER: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(format!("\"{PRODUCED_FIELD}\"").as_bytes()).into_owned());

/// Counters of one path.
struct PathCounters {
    requests: AtomicU64,
    events: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    hung: AtomicU64,
    first_us: AtomicU64,
    last_us: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    seen: Mutex<Seen>,
}

impl PathCounters {
    fn new(order: u64) -> Self {
        let mut seen = Seen::default();
        seen.check_order(order);
        PathCounters {
            requests: AtomicU64::new(0),
            events: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            first_us: AtomicU64::new(u64::MAX),
            last_us: AtomicU64::new(0),
            // 1 µs to 1 hour, 3 significant digits.
            latency: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            ),
            seen: Mutex::new(seen),
        }
    }

    fn snapshot(&self) -> PathStats {
        let first = self.first_us.load(Ordering::Relaxed);
        let last = self.last_us.load(Ordering::Relaxed);
        let seen = self.seen.lock().expect("seen lock");
        PathStats {
            requests: self.requests.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            hung: self.hung.load(Ordering::Relaxed),
            first_us: (first != u64::MAX).then_some(first),
            last_us: (last != 0).then_some(last),
            latency: LatencySummary::of(&self.latency.lock().expect("histogram lock")),
            distinct: seen.distinct,
            duplicates: seen.duplicates,
            out_of_order: seen.out_of_order,
        }
    }
}

/// The receiver's shared state.
#[derive(Default)]
pub struct Counters {
    behaviours: RwLock<HashMap<String, Behaviour>>,
    paths: RwLock<HashMap<String, Arc<PathCounters>>>,
    /// Paths whose order is checked, and over how many partitions.
    orders: RwLock<HashMap<String, u64>>,
    connections: AtomicU64,
}

impl Counters {
    /// State answering `routes` as scripted and 200 elsewhere.
    pub fn new(routes: impl IntoIterator<Item = (String, Behaviour)>) -> Arc<Self> {
        let counters = Counters::default();
        counters.behaviours.write().expect("lock").extend(routes);
        Arc::new(counters)
    }

    fn path(&self, path: &str) -> Arc<PathCounters> {
        if let Some(c) = self.paths.read().expect("lock").get(path) {
            return c.clone();
        }
        self.paths
            .write()
            .expect("lock")
            .entry(path.to_string())
            .or_insert_with(|| {
                let order = self.orders.read().expect("lock").get(path).copied();
                Arc::new(PathCounters::new(order.unwrap_or(0)))
            })
            .clone()
    }

    fn behaviour(&self, path: &str) -> Behaviour {
        self.behaviours
            .read()
            .expect("lock")
            .get(path)
            .cloned()
            .unwrap_or_else(Behaviour::ok)
    }

    /// Everything counted since the last reset.
    pub fn snapshot(&self) -> ReceiverStats {
        ReceiverStats {
            connections: self.connections.load(Ordering::Relaxed),
            paths: self
                .paths
                .read()
                .expect("lock")
                .iter()
                .map(|(path, c)| (path.clone(), c.snapshot()))
                .collect(),
        }
    }
}

/// Serves on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    counters: Arc<Counters>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/_stats", get(stats))
        .route("/_reset", post(reset))
        .route("/_respond", post(respond))
        .route("/_order", post(order))
        .fallback(webhook)
        .with_state(counters.clone());
    let listener = listener.tap_io(move |tcp| {
        counters.connections.fetch_add(1, Ordering::Relaxed);
        // Small answers must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}

async fn stats(State(counters): State<Arc<Counters>>) -> Response {
    axum::Json(counters.snapshot()).into_response()
}

async fn reset(State(counters): State<Arc<Counters>>) -> StatusCode {
    counters.paths.write().expect("lock").clear();
    StatusCode::NO_CONTENT
}

async fn respond(State(counters): State<Arc<Counters>>, body: String) -> Response {
    match parse_route(body.trim()) {
        Ok((path, behaviour)) => {
            counters
                .behaviours
                .write()
                .expect("lock")
                .insert(path, behaviour);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

async fn order(State(counters): State<Arc<Counters>>, body: String) -> Response {
    let parsed = body
        .trim()
        .split_once('=')
        .and_then(|(path, n)| Some((path.to_string(), n.trim().parse::<u64>().ok()?)));
    let Some((path, partitions)) = parsed else {
        return (StatusCode::BAD_REQUEST, "expected PATH=PARTITIONS").into_response();
    };
    counters
        .orders
        .write()
        .expect("lock")
        .insert(path.clone(), partitions);
    if let Some(c) = counters.paths.read().expect("lock").get(&path) {
        c.seen.lock().expect("seen lock").check_order(partitions);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn webhook(State(counters): State<Arc<Counters>>, uri: Uri, body: Bytes) -> Response {
    let now = crate::bench::now_micros();
    let path = counters.path(uri.path());
    path.requests.fetch_add(1, Ordering::Relaxed);
    path.first_us.fetch_min(now, Ordering::Relaxed);
    path.last_us.fetch_max(now, Ordering::Relaxed);
    let events = record_latencies(&path.latency, &body, now);
    path.events.fetch_add(events, Ordering::Relaxed);
    path.seen.lock().expect("seen lock").record_body(&body);
    match counters.behaviour(uri.path()) {
        Behaviour::Hang => {
            path.hung.fetch_add(1, Ordering::Relaxed);
            std::future::pending().await
        }
        Behaviour::Answer {
            status,
            delay,
            retry_after,
        } => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_success() {
                path.accepted.fetch_add(1, Ordering::Relaxed);
            } else {
                path.refused.fetch_add(1, Ordering::Relaxed);
            }
            match retry_after {
                Some(seconds) => {
                    (status, [(header::RETRY_AFTER, seconds.to_string())]).into_response()
                }
                None => status.into_response(),
            }
        }
    }
}

/// Records `now - produced` for every produce timestamp in `body`; returns how many it found.
fn record_latencies(histogram: &Mutex<Histogram<u64>>, body: &[u8], now: u64) -> u64 {
    let mut found = 0;
    let mut latencies = [0u64; 64];
    let flush = |latencies: &[u64]| {
        let mut h = histogram.lock().expect("histogram lock");
        for l in latencies {
            h.saturating_record(*l);
        }
    };
    let mut pending = 0;
    for at in MARKER.find_iter(body) {
        if let Some(produced) = number_after_colon(&body[at + MARKER.needle().len()..]) {
            latencies[pending] = now.saturating_sub(produced).max(1);
            pending += 1;
            found += 1;
            if pending == latencies.len() {
                flush(&latencies);
                pending = 0;
            }
        }
    }
    flush(&latencies[..pending]);
    found
}

/// The unsigned integer after `:` (JSON whitespace allowed around the colon).
fn number_after_colon(rest: &[u8]) -> Option<u64> {
    let rest = trim_start(rest).strip_prefix(b":")?;
    let rest = trim_start(rest);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &bytes[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram() -> Mutex<Histogram<u64>> {
        Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap())
    }

    #[test]
    fn finds_every_timestamp_of_a_batch() {
        let h = histogram();
        let body = br#"[{"id":"a","produced_us":1000},{"produced_us" : 1500,"x":1},{"id":"c"}]"#;
        assert_eq!(record_latencies(&h, body, 2000), 2);
        let h = h.lock().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h.max(), 1000);
        assert_eq!(h.min(), 500);
    }

    #[test]
    fn a_body_without_timestamps_counts_no_events() {
        let h = histogram();
        assert_eq!(record_latencies(&h, br#"{"produced_us":"soon"}"#, 5), 0);
        assert_eq!(record_latencies(&h, b"", 5), 0);
        assert_eq!(h.lock().unwrap().len(), 0);
    }

    #[test]
    fn a_large_batch_is_recorded_whole() {
        let h = histogram();
        let body: String = (0..500)
            .map(|i| format!(r#"{{"produced_us":{}}}"#, 1000 + i))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(record_latencies(&h, body.as_bytes(), 10_000), 500);
        assert_eq!(h.lock().unwrap().len(), 500);
    }
}
