//! The benchmark harness: every part of a deployment as its own process, driven and measured
//! from outside, so the figures show what a deployment would see (one machine's cores shared by
//! a broker, receivers and the router, each with its own allocator and runtime).
//!
//! # Layout
//!
//! - [`Harness`]: where the processes come from (the `hookline` binary) and where their
//!   configuration and logs go (a run directory, kept when something fails).
//! - [`broker`]: `hookline broker`, a mock-cluster process, and its handle (bootstrap address,
//!   watermarks).
//! - [`receiver`]: `hookline receiver`, a cheap HTTP receiver with scripted per-path behaviour,
//!   counters and a latency histogram, and its handle (`GET /_stats`).
//! - [`router`]: `hookline run` with a generated configuration and rules directory, and its
//!   handle (readiness, `/metrics`, CPU and memory from `/proc`, SIGTERM, SIGKILL).
//! - [`rules`]: the rule file a scenario routes with (subscriptions, a template, routes).
//! - [`producer`]: events of a chosen shape, produced as fast as possible or at a rate.
//! - [`wrk`] and [`ceiling`]: the same-run references (HTTP requests/s against the same
//!   receiver; messages/s a bare consumer reads from the same broker).
//! - [`procfs`] and [`prom`]: small readers for `/proc/<pid>` and the Prometheus text format.
//! - [`scenarios`]: the measurements `hookline bench` runs, built on the above; [`report`]
//!   prints them.
//!
//! The handles return [`HarnessError`]; scenarios are programs at the edge and use `anyhow`.

pub mod broker;
pub mod ceiling;
mod child;
pub mod procfs;
pub mod producer;
pub mod prom;
pub mod receiver;
pub mod report;
pub mod router;
pub mod rules;
pub mod scenarios;
pub mod wrk;

use std::path::{Path, PathBuf};

pub use broker::BrokerProcess;
pub use child::Child;
pub use receiver::{Behaviour, ReceiverProcess};
pub use router::{RouterProcess, RouterSpec};

/// A harness operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A process could not be started.
    #[error("cannot start {what}")]
    Spawn {
        /// Which process.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A process started but did not come up; its log says why.
    #[error("{what} did not start: {reason} (log: {log})")]
    Startup {
        /// Which process.
        what: String,
        /// What went wrong.
        reason: String,
        /// Its log file.
        log: String,
    },
    /// A file in the run directory could not be written or read.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP exchange with a harness process failed.
    #[error("cannot reach {what}")]
    Http {
        /// Which endpoint.
        what: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// A Kafka client call failed.
    #[error("{what}")]
    Kafka {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// An external tool's output could not be understood.
    #[error("cannot read the output of {tool}: {reason}")]
    Output {
        /// The tool.
        tool: String,
        /// What was missing.
        reason: String,
    },
}

impl HarnessError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }

    fn kafka(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Kafka { what, source }
    }
}

/// Where the processes come from and where their files go. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Harness {
    bin: PathBuf,
    dir: PathBuf,
}

impl Harness {
    /// Processes are started from `bin` (a `hookline` binary); configuration and logs go under
    /// `dir`, which must exist.
    pub fn new(bin: impl Into<PathBuf>, dir: impl Into<PathBuf>) -> Self {
        Harness {
            bin: bin.into(),
            dir: dir.into(),
        }
    }

    /// The `hookline` binary the broker and receiver processes run (routers may run another).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh subdirectory `name`, `name-2`, ... of the run directory.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, HarnessError> {
        for n in 1.. {
            let dir = if n == 1 {
                self.dir.join(name)
            } else {
                self.dir.join(format!("{name}-{n}"))
            };
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(HarnessError::io(format!("cannot create {}", dir.display()))(e))
                }
            }
        }
        unreachable!("an unbounded range ends only by returning")
    }
}

/// A free TCP port on 127.0.0.1, for a process that must be told its port before it starts.
/// (Another process may take it in between; on loopback in a benchmark that is unlikely.)
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(HarnessError::io("cannot find a free port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(HarnessError::io("cannot find a free port"))
}

/// A `http://127.0.0.1:PORT/...` URL where nothing listens: a receiver whose port is closed.
pub fn closed_port_url(path: &str) -> Result<String, HarnessError> {
    Ok(format!("http://127.0.0.1:{}{path}", free_port()?))
}

/// Microseconds since the Unix epoch: the clock events carry and the receiver compares with.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// The body of a successful `GET url` (`what` names it in errors).
pub(crate) async fn get_body(
    http: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<bytes::Bytes, HarnessError> {
    let http_error = |source| HarnessError::Http {
        what: what.to_string(),
        source,
    };
    http.get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(http_error)?
        .bytes()
        .await
        .map_err(http_error)
}

/// An HTTP client for the harness's own requests to its processes on loopback (environment
/// proxies ignored: they would not reach loopback).
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds")
}
