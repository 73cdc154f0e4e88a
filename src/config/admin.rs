//! `[admin]`: where the admin server listens, who may use it, and how much.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::deliver::Secret;

/// `[admin]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`, `/api/v1` and `/playground/`.
    pub listen: String,
    /// Serve the routing playground page at `/playground/` (a dry run of the rules in force;
    /// it shows rule texts and rendered bodies). Behind the read token when tokens are set.
    pub playground: bool,
    /// Bearer token for every `/api/v1` endpoint (changes and reads). Unset: the API is open.
    pub write_token: Option<String>,
    /// Bearer token that may only read (`GET`); the write token reads too.
    pub read_token: Option<String>,
    /// `/metrics` needs the read (or write) token too.
    pub protect_metrics: bool,
    /// `/healthz` and `/readyz` need the read (or write) token too.
    pub protect_probes: bool,
    /// Admin requests per second, sustained, from all clients together; beyond, 429.
    pub rate_limit: f64,
    /// Admin requests at once beyond the sustained rate.
    pub rate_limit_burst: u32,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9464".into(),
            playground: true,
            write_token: None,
            read_token: None,
            protect_metrics: false,
            protect_probes: false,
            rate_limit: 50.0,
            rate_limit_burst: 100,
            max_body_bytes: 256 * 1024,
        }
    }
}

/// The admin server's validated settings.
#[derive(Clone, Debug)]
pub struct AdminSettings {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Serve the playground.
    pub playground: bool,
    /// Token for everything under `/api/v1`.
    pub write_token: Option<Secret>,
    /// Token for reading only.
    pub read_token: Option<Secret>,
    /// `/metrics` needs a token.
    pub protect_metrics: bool,
    /// The probes need a token.
    pub protect_probes: bool,
    /// Sustained requests per second.
    pub rate_limit: f64,
    /// Burst.
    pub rate_limit_burst: u32,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
}

/// The shortest token accepted: a guessable admin token is worse than none, since it looks
/// like protection.
pub const MIN_TOKEN_LEN: usize = 16;

fn token(key: &'static str, value: &Option<String>) -> Result<Option<Secret>, ConfigError> {
    match value {
        None => Ok(None),
        Some(t) if t.trim().chars().count() < MIN_TOKEN_LEN => Err(ConfigError::Invalid {
            key,
            reason: format!("must have at least {MIN_TOKEN_LEN} characters"),
        }),
        Some(t) => Ok(Some(Secret::new(t.trim()))),
    }
}

impl AdminConfig {
    /// Validates into [`AdminSettings`].
    pub fn validate(&self) -> Result<AdminSettings, ConfigError> {
        let listen = self.listen.parse().map_err(|e| ConfigError::Invalid {
            key: "admin.listen",
            reason: format!("{:?} is not host:port ({e})", self.listen),
        })?;
        let write_token = token("admin.write_token", &self.write_token)?;
        let read_token = token("admin.read_token", &self.read_token)?;
        if read_token.is_some() && write_token.is_none() {
            return Err(ConfigError::Invalid {
                key: "admin.read_token",
                reason: "needs admin.write_token too (else changes would be open to anyone)".into(),
            });
        }
        if (self.protect_metrics || self.protect_probes) && write_token.is_none() {
            return Err(ConfigError::Invalid {
                key: if self.protect_metrics {
                    "admin.protect_metrics"
                } else {
                    "admin.protect_probes"
                },
                reason: "needs admin.write_token (and, for scrapers, admin.read_token)".into(),
            });
        }
        if !(self.rate_limit.is_finite() && self.rate_limit > 0.0) {
            return Err(ConfigError::Invalid {
                key: "admin.rate_limit",
                reason: "must be a number greater than zero".into(),
            });
        }
        if self.rate_limit_burst == 0 {
            return Err(ConfigError::Invalid {
                key: "admin.rate_limit_burst",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "admin.max_body_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        Ok(AdminSettings {
            listen,
            playground: self.playground,
            write_token,
            read_token,
            protect_metrics: self.protect_metrics,
            protect_probes: self.protect_probes,
            rate_limit: self.rate_limit,
            rate_limit_burst: self.rate_limit_burst,
            max_body_bytes: self.max_body_bytes,
        })
    }
}
