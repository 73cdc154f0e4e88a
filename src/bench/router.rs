//! The router process: `hookline run` (this binary or another, for before/after comparisons)
//! with a generated `hookline.toml` and rules directory, and what the harness reads off it:
//! readiness, `/metrics`, CPU time and peak memory from `/proc`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::child::Child;
use super::procfs::Memory;
use super::prom::Samples;
use super::{free_port, Harness, HarnessError};

/// How to start one router.
#[derive(Clone, Debug)]
pub struct RouterSpec {
    /// A name for its directory and messages.
    pub label: String,
    /// The binary to run (default: the harness's).
    pub bin: Option<PathBuf>,
    /// Extra environment: `HOOKLINE_*` configuration (`HOOKLINE_KAFKA__OPTIONS__FETCH_WAIT_MAX_MS`)
    /// or anything else the variant under test needs.
    pub env: Vec<(String, String)>,
    /// `kafka.brokers`.
    pub brokers: String,
    /// `kafka.group_id`: routers with the same one share the partitions.
    pub group: String,
    /// The rule file.
    pub rules: String,
}

impl RouterSpec {
    /// A router on `brokers` in consumer group `group`, routing with `rules` (YAML).
    pub fn new(label: &str, brokers: &str, group: &str, rules: String) -> Self {
        RouterSpec {
            label: label.into(),
            bin: None,
            env: Vec::new(),
            brokers: brokers.into(),
            group: group.into(),
            rules,
        }
    }
}

/// A running `hookline run`.
pub struct RouterProcess {
    child: Child,
    admin: SocketAddr,
    http: reqwest::Client,
    /// Its rules directory.
    rules: PathBuf,
}

impl RouterProcess {
    /// Writes the configuration and rules under the run directory and starts the router. It
    /// has not necessarily joined its group yet: see [`RouterProcess::wait_ready`].
    pub async fn start(
        harness: &Harness,
        spec: &RouterSpec,
    ) -> Result<RouterProcess, HarnessError> {
        let dir = harness.subdir(&format!("router-{}", spec.label))?;
        let rules = dir.join("rules");
        std::fs::create_dir(&rules)
            .map_err(HarnessError::io("cannot create the rules directory"))?;
        std::fs::write(rules.join("bench.yaml"), &spec.rules)
            .map_err(HarnessError::io("cannot write the rules"))?;
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = dir.join("hookline.toml");
        std::fs::write(&config, config_toml(spec, &rules, admin))
            .map_err(HarnessError::io("cannot write hookline.toml"))?;
        let mut command =
            tokio::process::Command::new(spec.bin.as_deref().unwrap_or(harness.bin()));
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .envs(spec.env.iter().cloned());
        let what = format!("router {}", spec.label);
        let (child, _) = Child::spawn(&what, &mut command, dir.join("router.log"), None).await?;
        Ok(RouterProcess {
            child,
            admin,
            http: super::http_client(),
            rules,
        })
    }

    /// Replaces its rules with `yaml` and has it reload them (`POST /api/v1/rules/reload`).
    pub async fn replace_rules(&self, yaml: &str) -> Result<(), HarnessError> {
        std::fs::write(self.rules.join("bench.yaml"), yaml)
            .map_err(HarnessError::io("cannot rewrite the rules"))?;
        self.http
            .post(self.admin_url("/api/v1/rules/reload"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map(|_| ())
            .map_err(|source| HarnessError::Http {
                what: "the router's /api/v1/rules/reload".into(),
                source,
            })
    }

    /// Waits until `/readyz` answers 200 (partitions assigned).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self
                .http
                .get(self.admin_url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if let Some(status) = self.child.exited() {
                return Err(self.child.startup_error(&format!("it exited ({status})")));
            }
            if Instant::now() >= deadline {
                return Err(self.child.startup_error("it was not ready in time"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://ADMIN` followed by `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// One scrape of `/metrics`.
    pub async fn metrics(&self) -> Result<Samples, HarnessError> {
        let url = self.admin_url("/metrics");
        let body = super::get_body(&self.http, &url, "the router's /metrics").await?;
        Ok(Samples::parse(&String::from_utf8_lossy(&body)))
    }

    /// CPU seconds it has used so far.
    pub fn cpu_seconds(&self) -> Result<f64, HarnessError> {
        self.child.cpu_seconds()
    }

    /// Its resident and peak resident memory.
    pub fn memory(&self) -> Result<Memory, HarnessError> {
        self.child.memory()
    }

    /// The process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// SIGTERM: the router finishes what is in flight, commits and leaves.
    pub async fn terminate(mut self) {
        self.child.terminate(Duration::from_secs(30)).await;
    }

    /// SIGKILL: a crash, nothing committed after the last interval.
    pub async fn kill(mut self) {
        self.child.kill().await;
    }
}

fn config_toml(spec: &RouterSpec, rules: &std::path::Path, admin: SocketAddr) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    format!(
        "[kafka]\nbrokers = {}\ngroup_id = {}\n# The broker process creates the router's topics.\ncreate_topics = false\n\n\
         [rules]\ndir = {}\nwatch = false\n\n\
         [admin]\nlisten = \"{admin}\"\n\n\
         [delivery]\nallow_networks = [\"127.0.0.0/8\"]\nshutdown_grace = \"2s\"\n",
        quote(&spec.brokers),
        quote(&spec.group),
        quote(&rules.display().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_valid() {
        let spec = RouterSpec::new("a", "127.0.0.1:9", "g", String::new());
        let toml = config_toml(
            &spec,
            std::path::Path::new("/tmp/r"),
            "127.0.0.1:7".parse().unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookline.toml");
        std::fs::write(&path, toml).unwrap();
        let settings = crate::config::Config::load(Some(&path)).unwrap();
        assert_eq!(settings.kafka.group_id, "g");
        assert!(!settings.kafka.create_topics);
        assert_eq!(settings.admin_listen.port(), 7);
    }
}
