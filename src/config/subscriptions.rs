//! `[subscriptions]`: the catalogue of subscriptions created through the API, kept in a
//! compacted Kafka topic, and what happens to them over time.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[subscriptions]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionsConfig {
    /// The compacted topic that holds API subscriptions (key = id, tombstone on delete).
    pub topic: String,
    /// Key (base64 of 32 random bytes) that encrypts the secrets of API subscriptions at
    /// rest in the topic. Best given as `HOOKLINE_SUBSCRIPTIONS__SECRET_KEY_FILE`.
    pub secret_key: Option<String>,
    /// After a secret rotation, how long the previous signing secret keeps signing beside
    /// the new one.
    #[serde(with = "humantime_serde")]
    pub signing_overlap: Duration,
    /// A subscription whose deliveries failed for this long without a single success is
    /// disabled. `0s`: never.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
}

impl Default for SubscriptionsConfig {
    fn default() -> Self {
        SubscriptionsConfig {
            topic: "hookline.subscriptions".into(),
            secret_key: None,
            signing_overlap: Duration::from_secs(24 * 3600),
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// The 32 bytes of the secret key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub [u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(********)")
    }
}

impl SecretKey {
    /// Decodes base64 of exactly 32 bytes.
    pub fn parse(text: &str) -> Result<SecretKey, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("is not base64 ({e}); make one with `openssl rand -base64 32`"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "decodes to {} bytes, not 32; make one with `openssl rand -base64 32`",
                b.len()
            )
        })?;
        Ok(SecretKey(key))
    }
}

/// Validated `[subscriptions]`.
#[derive(Clone, Debug)]
pub struct SubscriptionsSettings {
    /// The compacted topic.
    pub topic: String,
    /// The key for secrets at rest, if configured.
    pub secret_key: Option<SecretKey>,
    /// How long a rotated-out signing secret keeps signing.
    pub signing_overlap: Duration,
    /// Failing this long without a success disables a subscription (`None`: never).
    pub disable_after: Option<Duration>,
}

impl Default for SubscriptionsSettings {
    fn default() -> Self {
        SubscriptionsConfig::default()
            .validate()
            .expect("the defaults are valid")
    }
}

impl SubscriptionsConfig {
    /// Validates into [`SubscriptionsSettings`].
    pub fn validate(&self) -> Result<SubscriptionsSettings, ConfigError> {
        if self.topic.is_empty() || !self.topic.chars().all(crate::backlog::topic::is_topic_char) {
            return Err(ConfigError::Invalid {
                key: "subscriptions.topic",
                reason: "must be letters, digits, '.', '_' or '-'".into(),
            });
        }
        let secret_key = match &self.secret_key {
            Some(k) => Some(SecretKey::parse(k).map_err(|reason| ConfigError::Invalid {
                key: "subscriptions.secret_key",
                reason,
            })?),
            None => None,
        };
        Ok(SubscriptionsSettings {
            topic: self.topic.clone(),
            secret_key,
            signing_overlap: self.signing_overlap,
            disable_after: (!self.disable_after.is_zero()).then_some(self.disable_after),
        })
    }
}
