//! Secrets at rest: every password, token and signing secret of an API subscription is sealed
//! with AES-256-GCM under the key of `subscriptions.secret_key` before it is written to the
//! subscriptions topic, so reading the topic (or a backup of it) gives no credentials. The
//! subscription id and the field name are the associated data, so a sealed value copied into
//! another record or field does not open.
//!
//! A sealed value reads `v1:<key id>:<base64(nonce ‖ ciphertext)>`; the key id (the first
//! bytes of the key's SHA-256) lets a wrong key be told apart from a damaged value.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use sha2::Digest;

use crate::config::SecretKey;
use crate::deliver::Secret;

/// Why a value cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No key is configured.
    #[error("no secret key is configured: set subscriptions.secret_key (best as HOOKLINE_SUBSCRIPTIONS__SECRET_KEY_FILE, a file holding `openssl rand -base64 32`) to store or read API subscriptions' secrets")]
    NoKey,
    /// The value was sealed under another key.
    #[error("sealed with key {sealed_with}, but the configured key is {configured}: configure the key this topic was written with")]
    OtherKey {
        /// The id in the value.
        sealed_with: String,
        /// The configured key's id.
        configured: String,
    },
    /// The value is not a sealed value, or was changed.
    #[error("a sealed value is damaged or belongs to another subscription or field")]
    Damaged,
}

/// Seals and opens secrets. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    key: Option<(Aes256Gcm, String)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some((_, id)) => write!(f, "SecretBox(key {id})"),
            None => f.write_str("SecretBox(no key)"),
        }
    }
}

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

impl SecretBox {
    /// A box for `key` (`None`: every seal and open fails with [`SealError::NoKey`]).
    pub fn new(key: Option<&SecretKey>) -> SecretBox {
        SecretBox {
            key: key.map(|k| {
                let id = hex(&sha2::Sha256::digest(k.0)[..4]);
                (Aes256Gcm::new(&k.0.into()), id)
            }),
        }
    }

    /// Whether a key is configured.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Seals `secret`, bound to `subscription` and `field`.
    pub fn seal(
        &self,
        subscription: &str,
        field: &str,
        secret: &Secret,
    ) -> Result<String, SealError> {
        let (cipher, id) = self.key.as_ref().ok_or(SealError::NoKey)?;
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = format!("{subscription}/{field}");
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Damaged)?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok(format!("{VERSION}:{id}:{text}"))
    }

    /// Opens what [`SecretBox::seal`] made for the same `subscription` and `field`.
    pub fn open(&self, subscription: &str, field: &str, sealed: &str) -> Result<Secret, SealError> {
        let (cipher, id) = self.key.as_ref().ok_or(SealError::NoKey)?;
        let mut parts = sealed.splitn(3, ':');
        let (Some(VERSION), Some(key_id), Some(text)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Damaged);
        };
        if key_id != id {
            return Err(SealError::OtherKey {
                sealed_with: key_id.into(),
                configured: id.clone(),
            });
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| SealError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let aad = format!("{subscription}/{field}");
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Damaged)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_subscription_and_field() {
        let key = SecretKey([7u8; 32]);
        let b = SecretBox::new(Some(&key));
        let sealed = b.seal("s1", "token", &Secret::new("hunter2")).unwrap();
        assert!(!sealed.contains("hunter2") && sealed.starts_with("v1:"));
        assert_eq!(b.open("s1", "token", &sealed).unwrap().expose(), "hunter2");
        assert_eq!(b.open("s2", "token", &sealed), Err(SealError::Damaged));
        assert_eq!(b.open("s1", "password", &sealed), Err(SealError::Damaged));
        let other = SecretBox::new(Some(&SecretKey([8u8; 32])));
        assert!(matches!(
            other.open("s1", "token", &sealed),
            Err(SealError::OtherKey { .. })
        ));
        let none = SecretBox::new(None);
        assert_eq!(
            none.seal("s", "t", &Secret::new("x")),
            Err(SealError::NoKey)
        );
        assert!(none
            .open("s1", "token", &sealed)
            .unwrap_err()
            .to_string()
            .contains("HOOKLINE_SUBSCRIPTIONS__SECRET_KEY_FILE"));
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(
            sealed,
            b.seal("s1", "token", &Secret::new("hunter2")).unwrap()
        );
    }
}
