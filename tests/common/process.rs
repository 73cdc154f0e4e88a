//! `hookline run` as a separate process, as deployed: started on the harness's broker and
//! rules, stopped with SIGTERM or SIGKILL, its `/metrics` scraped over HTTP.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{metric_sum, Harness, DLQ};

/// A running `hookline run`. Dropping it kills it (SIGKILL).
pub struct RouterProcess {
    child: Child,
    /// Where its admin API listens.
    pub admin_port: u16,
}

/// How to start a [`RouterProcess`].
pub struct RouterCommand {
    command: Command,
    admin_port: u16,
}

impl RouterCommand {
    /// `hookline run` in consumer group `group`, on the harness's broker and rules: no file
    /// watcher, commits every 200 ms, loopback allowed, topics made by the harness.
    pub fn new(h: &Harness, group: &str) -> Self {
        let admin_port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookline"));
        command
            .arg("run")
            .env("HOOKLINE_KAFKA__BROKERS", h.broker.bootstrap_servers())
            .env("HOOKLINE_KAFKA__GROUP_ID", group)
            .env("HOOKLINE_KAFKA__DEAD_LETTER_TOPIC", DLQ)
            .env("HOOKLINE_KAFKA__CREATE_TOPICS", "false")
            .env("HOOKLINE_KAFKA__COMMIT_INTERVAL", "200ms")
            .env("HOOKLINE_RULES__DIR", h.rules.path())
            .env("HOOKLINE_RULES__WATCH", "false")
            .env("HOOKLINE_ADMIN__LISTEN", format!("127.0.0.1:{admin_port}"))
            .env("HOOKLINE_DELIVERY__ALLOW_NETWORKS", "[\"127.0.0.0/8\"]")
            .env(
                "HOOKLINE_LOG",
                std::env::var("HOOKLINE_TEST_ROUTER_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        RouterCommand {
            command,
            admin_port,
        }
    }

    /// Sets a configuration variable (`HOOKLINE_...`).
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Starts it.
    pub fn spawn(mut self) -> RouterProcess {
        let child = self.command.spawn().expect("start hookline run");
        RouterProcess {
            child,
            admin_port: self.admin_port,
        }
    }
}

impl RouterProcess {
    /// [`RouterCommand::new`] with nothing changed, started.
    pub fn start(h: &Harness, group: &str) -> Self {
        RouterCommand::new(h, group).spawn()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its `/metrics` page ("" while it does not answer).
    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.admin_port);
        match reqwest::get(url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The sum of the metric lines starting with `line_start` (0 while it does not answer).
    pub async fn metric(&self, line_start: &str) -> f64 {
        metric_sum(&self.metrics().await, line_start)
    }

    /// Whether `/readyz` answers 200 (it holds source partitions).
    pub async fn ready(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/readyz", self.admin_port);
        reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Sends SIGTERM (a graceful stop).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// SIGKILL, and waits for the process to go.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit; how long it took and how it ended, or
    /// `None` if it is still running (it is then killed).
    pub fn wait_exit(mut self, timeout: Duration) -> Option<(Duration, ExitStatus)> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((started.elapsed(), status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
