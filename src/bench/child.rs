//! One harness process: spawned with its stderr (and anything it prints after its first line)
//! in a log file, stopped with SIGTERM (or SIGKILL) and killed if the harness drops it, so no
//! process outlives a failed benchmark.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::procfs::{self, Memory};
use super::HarnessError;

/// How long a process may take to print its first line.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(60);

/// A running harness process.
pub struct Child {
    what: String,
    pid: u32,
    log: PathBuf,
    child: tokio::process::Child,
}

impl Child {
    /// Spawns `command` (described as `what`), its output going to `log`. With `announce`,
    /// waits for the first stdout line, which must start with that prefix, and returns the rest
    /// of the line (an address).
    pub(crate) async fn spawn(
        what: &str,
        command: &mut tokio::process::Command,
        log: PathBuf,
        announce: Option<&str>,
    ) -> Result<(Child, String), HarnessError> {
        let file = std::fs::File::create(&log)
            .map_err(HarnessError::io(format!("cannot create {}", log.display())))?;
        let stderr = file
            .try_clone()
            .map_err(HarnessError::io("cannot share the log file"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(if announce.is_some() {
                Stdio::piped()
            } else {
                Stdio::from(file)
            })
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HarnessError::Spawn {
                what: what.to_string(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        let mut child = Child {
            what: what.to_string(),
            pid,
            log,
            child,
        };
        let Some(prefix) = announce else {
            return Ok((child, String::new()));
        };
        let stdout = child.child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(ANNOUNCE_TIMEOUT, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) | Ok(Err(_)) => return Err(child.startup_error("it exited")),
            Err(_) => return Err(child.startup_error("it printed nothing within 60 s")),
        };
        let Some(rest) = line.strip_prefix(prefix) else {
            return Err(child.startup_error(&format!("unexpected first line {line:?}")));
        };
        // Keep reading what it prints later, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((child, rest.trim().to_string()))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// CPU seconds (user + system) it has used so far.
    pub fn cpu_seconds(&self) -> Result<f64, HarnessError> {
        procfs::cpu_seconds(self.pid).map_err(HarnessError::io(format!(
            "cannot read the CPU time of {}",
            self.what
        )))
    }

    /// Its resident and peak resident memory.
    pub fn memory(&self) -> Result<Memory, HarnessError> {
        procfs::memory(self.pid).map_err(HarnessError::io(format!(
            "cannot read the memory of {}",
            self.what
        )))
    }

    /// Whether it has exited (and how).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits up to `grace` for it to exit, then kills it.
    pub async fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.exited().is_none() {
            // SAFETY: kill(2) with a pid this harness spawned and has not reaped yet.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => self.kill().await,
        }
    }

    /// Sends SIGKILL (a crash) and waits for it to be gone.
    pub async fn kill(&mut self) -> Option<ExitStatus> {
        let _ = self.child.start_kill();
        self.child.wait().await.ok()
    }

    /// A startup error carrying the end of its log.
    pub(crate) fn startup_error(&self, reason: &str) -> HarnessError {
        let tail = std::fs::read_to_string(&self.log)
            .map(|log| {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(5)..].join(" | ")
            })
            .unwrap_or_default();
        HarnessError::Startup {
            what: self.what.clone(),
            reason: if tail.is_empty() {
                reason.to_string()
            } else {
                format!("{reason}; its log ends: {tail}")
            },
            log: self.log.display().to_string(),
        }
    }
}
