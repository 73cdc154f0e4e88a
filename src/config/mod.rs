//! Configuration: embedded defaults, then `hookline.toml` (or `--config PATH`), then
//! `HOOKLINE_*` environment variables (`HOOKLINE_KAFKA__BROKERS=...`; `__` nests). A variable
//! ending in `_FILE` holds the path of a file with the value, for secrets mounted as files
//! (`HOOKLINE_KAFKA__OPTIONS__SASL_PASSWORD_FILE=/run/secrets/kafka`; see [`crate::env_file`]).
//!
//! [`Config`] is what users write; [`Config::validate`] turns it into [`Settings`], what the
//! code runs on, so a bad value fails at start-up with the key that holds it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod admin;
mod subscriptions;

pub use admin::{AdminConfig, AdminSettings};
pub use subscriptions::{SecretKey, SubscriptionsConfig, SubscriptionsSettings};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka connection and consumer behaviour.
    pub kafka: KafkaConfig,
    /// Where the rule files are.
    pub rules: RulesConfig,
    /// The admin HTTP server.
    pub admin: AdminConfig,
    /// Delivery-wide settings.
    pub delivery: DeliveryConfig,
    /// Subscriptions created through the API.
    pub subscriptions: SubscriptionsConfig,
}

/// `[kafka]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group id; instances with the same id share partitions.
    pub group_id: String,
    /// Where undeliverable and invalid events go.
    pub dead_letter_topic: String,
    /// How often settled offsets are committed.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Durable retry tiers are `<retry_topic_prefix>.<delay>` (`hookline.retry.5m`).
    pub retry_topic_prefix: String,
    /// Each subscription's backlog is `<backlog_topic_prefix>.sub.<subscription id>`.
    pub backlog_topic_prefix: String,
    /// Partitions of the backlog topics hookline creates. One keeps a subscription's order
    /// and gives it to one instance in fleet mode; more spread a subscription's backlog over
    /// instances (order then holds per source partition).
    pub backlog_partitions: i32,
    /// Create the dead-letter and retry topics at start-up when they are missing.
    pub create_topics: bool,
    /// Partitions of the topics hookline creates.
    pub topic_partitions: i32,
    /// Messages larger than this are dead-lettered as `too-large`.
    pub max_message_bytes: usize,
    /// Messages read but not yet settled, at most; the consumer waits beyond it.
    pub max_inflight_messages: usize,
    /// Passed to librdkafka as is (SASL, TLS, ...). `_` in a key is read as `.`, so
    /// `HOOKLINE_KAFKA__OPTIONS__SECURITY_PROTOCOL` sets `security.protocol`. Numbers and
    /// booleans are taken as their text (`HOOKLINE_KAFKA__OPTIONS__FETCH_WAIT_MAX_MS=100`).
    #[serde(deserialize_with = "options_as_text")]
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "localhost:9092".into(),
            group_id: "hookline".into(),
            dead_letter_topic: "hookline.dlq".into(),
            retry_topic_prefix: "hookline.retry".into(),
            backlog_topic_prefix: "hookline".into(),
            backlog_partitions: 1,
            create_topics: true,
            topic_partitions: 3,
            commit_interval: Duration::from_secs(1),
            max_message_bytes: 1024 * 1024,
            max_inflight_messages: 10_000,
            options: BTreeMap::new(),
        }
    }
}

/// librdkafka takes every value as text, but TOML and figment's reading of `HOOKLINE_*`
/// variables give numbers and booleans their own types: accept those and keep their text.
fn options_as_text<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    let options = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(options
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Scalar::Text(s) => s,
                Scalar::Integer(n) => n.to_string(),
                Scalar::Float(x) => x.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (key, text)
        })
        .collect())
}

/// librdkafka options that only consumers understand; producers and admin clients are not
/// given them (librdkafka would warn about each).
const CONSUMER_ONLY: &[&str] = &[
    "group.",
    "auto.offset.reset",
    "enable.auto.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "isolation.level",
    "fetch.",
    "queued.",
];

/// Settings of the dead-letter and retry producer hookline chooses unless `kafka.options` sets
/// them (measured in docs/performance.md; documented in docs/configuration.md).
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    // Dead letters and retry records carry whole events: JSON that lz4 shrinks several times
    // for little CPU, which matters when a receiver is down for hours and its backlog waits
    // in the retry topics.
    ("compression.type", "lz4"),
    // Records waiting for the broker, at most (librdkafka: 1 GiB); past it a write waits.
    ("queue.buffering.max.kbytes", "32768"),
];

impl KafkaConfig {
    /// Brokers plus the shared options (security, SASL, TLS, client id): the configuration
    /// for producers and admin clients.
    pub fn client_config(&self) -> rdkafka::config::ClientConfig {
        let mut config = rdkafka::config::ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.options {
            if !CONSUMER_ONLY.iter().any(|c| key.starts_with(c)) {
                config.set(key, value);
            }
        }
        config
    }

    /// The configuration of a producer of dead letters and retry records: the shared options,
    /// [`PRODUCER_DEFAULTS`] where they say nothing, and `acks=all` always.
    pub fn producer_config(&self) -> rdkafka::config::ClientConfig {
        let mut config = self.client_config();
        for (key, value) in PRODUCER_DEFAULTS {
            if !self.options.contains_key(*key) {
                config.set(*key, *value);
            }
        }
        // Every acknowledged record must be on all in-sync replicas before its offset settles.
        config.set("acks", "all");
        // A dead letter or retry record carries the event (and a rendered body): room for
        // both; a record the broker still refuses takes the fallbacks of `crate::produce`.
        if !self.options.contains_key("message.max.bytes") {
            let limit = crate::produce::record_limit(self.max_message_bytes);
            config.set("message.max.bytes", limit.to_string());
        }
        config
    }
}

/// `[rules]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// The directory whose YAML files make up the rule set.
    pub dir: PathBuf,
    /// Reload when a file in it changes.
    pub watch: bool,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            dir: "rules".into(),
            watch: true,
        }
    }
}

/// `[delivery]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Networks that destinations may resolve to although they are private, loopback or
    /// link-local (refused otherwise), e.g. `["10.20.0.0/16"]`.
    pub allow_networks: Vec<String>,
    /// On shutdown, how long in-flight deliveries may finish before the rest is left to be
    /// re-delivered after restart.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Move deliveries whose receiver is down to the durable retry topic (else they wait in
    /// memory, and are dead-lettered once their in-memory retries are spent).
    pub durable_retries: bool,
    /// Delays of the durable retry rounds; dead-lettered after the last.
    pub retry_schedule: Vec<String>,
    /// `direct`: deliver from memory while a subscription keeps up, and through its backlog
    /// when it does not. `keyed` (fleet mode): every delivery goes through its
    /// subscription's backlog, read by one instance of the group at a time.
    pub mode: DeliveryMode,
    /// A subscription whose oldest queued event waited longer than this sends its deliveries
    /// to its backlog until it catches up.
    #[serde(with = "humantime_serde")]
    pub spill_after: Duration,
    /// How long the backlog of a subscription no rule set has any more is kept before its
    /// events are dead-lettered (reason `subscription-removed`).
    #[serde(with = "humantime_serde")]
    pub orphan_after: Duration,
    /// `reference`: a backlog record refers to each event where it already is, in its source
    /// topic. `copy`: it carries a copy of the event, so a backlog outlives the source topic's
    /// retention.
    pub backlog_events: crate::backlog::BacklogEvents,
    /// HTTP(S) proxy every delivery goes through (`http://host:3128`), except to `no_proxy`
    /// hosts. Unset: direct connections; `HTTPS_PROXY` and friends are never read.
    pub proxy: Option<String>,
    /// Hosts, domains (`.corp.example`) and networks (`10.0.0.0/8`) reached directly although
    /// `proxy` is set.
    pub no_proxy: Vec<String>,
}

/// `[delivery] mode`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// Deliver from memory; spill to the backlog when a subscription cannot keep up.
    #[default]
    Direct,
    /// Every delivery through its subscription's backlog (fleet mode).
    Keyed,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            allow_networks: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            durable_retries: true,
            retry_schedule: crate::retry_topic::schedule::DEFAULT
                .iter()
                .map(|d| humantime::format_duration(*d).to_string())
                .collect(),
            mode: DeliveryMode::Direct,
            spill_after: Duration::from_secs(1),
            orphan_after: Duration::from_secs(600),
            backlog_events: crate::backlog::BacklogEvents::Reference,
            proxy: None,
            no_proxy: Vec::new(),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read as configuration.
    #[error("invalid configuration: {0}")]
    Load(String),
    /// A `HOOKLINE_*_FILE` variable could not be used.
    #[error("invalid configuration: {0}")]
    EnvFile(#[from] crate::env_file::EnvFileError),
    /// A value is out of range.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `kafka.brokers`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Validated settings the router runs on.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Kafka settings; `options` keys already normalised to librdkafka's dotted names.
    pub kafka: KafkaConfig,
    /// Rules directory and watch flag.
    pub rules: RulesConfig,
    /// Admin listen address.
    pub admin_listen: SocketAddr,
    /// The admin server: tokens, limits.
    pub admin: AdminSettings,
    /// The subscription catalogue.
    pub subscriptions: SubscriptionsSettings,
    /// Delivery-wide settings.
    pub delivery: crate::deliver::DeliverySettings,
    /// Shutdown grace for deliveries.
    pub shutdown_grace: Duration,
    /// The durable retry schedule, when durable retries are on.
    pub retry_schedule: Option<crate::retry_topic::RetrySchedule>,
    /// Backlog naming and mode.
    pub backlog: crate::backlog::BacklogSettings,
}

impl Config {
    /// Defaults, then `file` (when given; `hookline.toml` in the working directory when it
    /// exists otherwise), then `HOOKLINE_*` variables, `HOOKLINE_*_FILE` ones read from their
    /// files.
    pub fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("hookline.toml")),
        }
        // Only `HOOKLINE_<SECTION>__<KEY>` is configuration; other HOOKLINE_* variables
        // (HOOKLINE_LOG, secrets referenced from rule files) are not.
        let is_file = |key: &str| key.to_ascii_uppercase().ends_with(crate::env_file::SUFFIX);
        figment = figment.merge(
            Env::prefixed("HOOKLINE_")
                .filter(move |key| key.as_str().contains("__") && !is_file(key.as_str()))
                .split("__"),
        );
        for (name, path) in std::env::vars() {
            let Some(key) = name.strip_prefix("HOOKLINE_") else {
                continue;
            };
            if !key.contains("__") || !is_file(key) {
                continue;
            }
            let var = &name[..name.len() - crate::env_file::SUFFIX.len()];
            if std::env::var_os(var).is_some() {
                return Err(crate::env_file::EnvFileError::Both { name: var.into() }.into());
            }
            let value = crate::env_file::read(var, path.into())?;
            let key = &key[..key.len() - crate::env_file::SUFFIX.len()];
            // Kept a string, never parsed: a password of digits stays a password.
            figment = figment.merge(Serialized::default(
                &key.to_ascii_lowercase().replace("__", "."),
                value,
            ));
        }
        Ok(figment)
    }

    /// Loads and validates in one step.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let config: Config = Self::figment(file)?
            .extract()
            .map_err(|e| ConfigError::Load(one_line(e)))?;
        config.validate()
    }

    /// Checks ranges and parses addresses into [`Settings`].
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let invalid = |key: &'static str, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_string(),
        };
        let mut kafka = self.kafka;
        if kafka.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must name at least one broker"));
        }
        if kafka.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        if kafka.dead_letter_topic.trim().is_empty() {
            return Err(invalid("kafka.dead_letter_topic", "must not be empty"));
        }
        if kafka.commit_interval.is_zero() {
            return Err(invalid("kafka.commit_interval", "must be longer than zero"));
        }
        if kafka.max_message_bytes == 0 {
            return Err(invalid("kafka.max_message_bytes", "must be at least 1"));
        }
        if kafka.max_inflight_messages == 0 {
            return Err(invalid("kafka.max_inflight_messages", "must be at least 1"));
        }
        kafka.options = kafka
            .options
            .into_iter()
            .map(|(k, v)| (k.replace('_', "."), v))
            .collect();
        let admin = self.admin.validate()?;
        let admin_listen = admin.listen;
        let subscriptions = self.subscriptions.validate()?;
        let allow_networks = self
            .delivery
            .allow_networks
            .iter()
            .map(|n| {
                n.parse().map_err(|e| ConfigError::Invalid {
                    key: "delivery.allow_networks",
                    reason: format!("{n:?} is not a network like 10.0.0.0/8 ({e})"),
                })
            })
            .collect::<Result<_, _>>()?;
        let proxy = match &self.delivery.proxy {
            Some(url) => Some(
                crate::deliver::proxy::ProxySettings::parse(url, &self.delivery.no_proxy).map_err(
                    |e| ConfigError::Invalid {
                        key: "delivery.proxy",
                        reason: e.to_string(),
                    },
                )?,
            ),
            None => None,
        };
        if kafka.topic_partitions < 1 {
            return Err(invalid("kafka.topic_partitions", "must be at least 1"));
        }
        let retry_schedule = if self.delivery.durable_retries {
            if self.delivery.retry_schedule.is_empty() {
                return Err(invalid(
                    "delivery.retry_schedule",
                    "must list at least one delay (or set durable_retries = false)",
                ));
            }
            let delays = self
                .delivery
                .retry_schedule
                .iter()
                .map(|d| {
                    humantime::parse_duration(d).map_err(|e| ConfigError::Invalid {
                        key: "delivery.retry_schedule",
                        reason: format!("{d:?} is not a duration like 5m ({e})"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(crate::retry_topic::RetrySchedule::new(
                kafka.retry_topic_prefix.clone(),
                delays,
            ))
        } else {
            None
        };
        let prefix = &kafka.backlog_topic_prefix;
        if prefix.is_empty() || !prefix.chars().all(crate::backlog::topic::is_topic_char) {
            return Err(invalid(
                "kafka.backlog_topic_prefix",
                "must be letters, digits, '.', '_' or '-' (it starts topic names)",
            ));
        }
        if kafka.backlog_partitions < 1 {
            return Err(invalid("kafka.backlog_partitions", "must be at least 1"));
        }
        if self.delivery.spill_after.is_zero() {
            return Err(invalid("delivery.spill_after", "must be longer than zero"));
        }
        let keyed = self.delivery.mode == DeliveryMode::Keyed;
        let backlog = crate::backlog::BacklogSettings {
            prefix: prefix.clone(),
            partitions: kafka.backlog_partitions,
            keyed,
            orphan_after: self.delivery.orphan_after,
            events: self.delivery.backlog_events,
        };
        Ok(Settings {
            retry_schedule,
            backlog,
            rules: self.rules,
            admin_listen,
            admin,
            subscriptions,
            delivery: crate::deliver::DeliverySettings {
                allow_networks,
                spill_after: self.delivery.spill_after,
                source_limit: (kafka.max_inflight_messages / 2).max(1),
                keyed,
                proxy,
            },
            kafka,
            shutdown_grace: self.delivery.shutdown_grace,
        })
    }
}

fn one_line(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests;
