//! The receiver process (`hookline receiver`) and its handle: an HTTP receiver on loopback that
//! answers each path as scripted ([`Behaviour`]) and counts what arrives per path, with the
//! produce-to-receive latency of every event.

pub mod behaviour;
pub mod seen;
pub mod server;
pub mod stats;

use std::time::{Duration, Instant};

pub use behaviour::Behaviour;
pub use stats::{LatencySummary, PathRate, PathStats, ReceiverStats};

use super::child::Child;
use super::{Harness, HarnessError};

/// What `hookline receiver` prints first: `listening http://HOST:PORT`.
pub const ANNOUNCE: &str = "listening ";

/// How often [`ReceiverProcess::wait_for`] looks.
const POLL: Duration = Duration::from_millis(20);

/// A running `hookline receiver`.
pub struct ReceiverProcess {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl ReceiverProcess {
    /// Starts a receiver answering `routes` as scripted and 200 on every other path.
    pub async fn start(
        harness: &Harness,
        routes: &[(&str, Behaviour)],
    ) -> Result<ReceiverProcess, HarnessError> {
        Self::start_on(harness, None, routes).await
    }

    /// [`ReceiverProcess::start`] on `listen` (a port a subscription was already pointed at,
    /// say) instead of a free port.
    pub async fn start_on(
        harness: &Harness,
        listen: Option<std::net::SocketAddr>,
        routes: &[(&str, Behaviour)],
    ) -> Result<ReceiverProcess, HarnessError> {
        let dir = harness.subdir("receiver")?;
        let mut command = tokio::process::Command::new(harness.bin());
        command.arg("receiver");
        if let Some(addr) = listen {
            command.arg("--listen").arg(addr.to_string());
        }
        for (path, behaviour) in routes {
            command.arg("--respond").arg(format!("{path}={behaviour}"));
        }
        let (child, base) = Child::spawn(
            "the receiver",
            &mut command,
            dir.join("receiver.log"),
            Some(ANNOUNCE),
        )
        .await?;
        Ok(ReceiverProcess {
            child,
            base,
            http: super::http_client(),
        })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process (CPU, memory, stop).
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// What it counted since the last reset.
    pub async fn stats(&self) -> Result<ReceiverStats, HarnessError> {
        let url = self.url("/_stats");
        let body = super::get_body(&self.http, &url, "the receiver's /_stats").await?;
        serde_json::from_slice(&body).map_err(|e| HarnessError::Output {
            tool: "the receiver's /_stats".into(),
            reason: e.to_string(),
        })
    }

    /// Zeroes the per-path counts and latencies (requests already arriving may still count).
    pub async fn reset(&self) -> Result<(), HarnessError> {
        self.post("/_reset", String::new()).await
    }

    /// Changes how `path` answers from now on.
    pub async fn respond(&self, path: &str, behaviour: &Behaviour) -> Result<(), HarnessError> {
        self.post("/_respond", format!("{path}={behaviour}")).await
    }

    /// Checks, from now on, that events numbered `n` arrive on `path` in order per `n %
    /// partitions` (how [`crate::bench::producer::Producer::partitioned`] spreads them).
    pub async fn check_order(&self, path: &str, partitions: u64) -> Result<(), HarnessError> {
        self.post("/_order", format!("{path}={partitions}")).await
    }

    /// Polls the counts until `done` holds or `timeout` passes; returns the last counts and
    /// whether `done` held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&ReceiverStats) -> bool,
    ) -> Result<(ReceiverStats, bool), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.stats().await?;
            if done(&stats) {
                return Ok((stats, true));
            }
            if Instant::now() >= deadline {
                return Ok((stats, false));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the receiver.
    pub async fn stop(mut self) {
        self.child.terminate(Duration::from_secs(10)).await;
    }

    async fn post(&self, path: &str, body: String) -> Result<(), HarnessError> {
        self.http
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map(|_| ())
            .map_err(|source| HarnessError::Http {
                what: format!("the receiver's {path}"),
                source,
            })
    }
}
