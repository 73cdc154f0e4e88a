//! Standard Webhooks signing: every attempt carries `webhook-id`, `webhook-timestamp` and, when
//! the subscription has secrets, `webhook-signature: v1,<base64 HMAC-SHA256(id.timestamp.body)>`
//! with one `v1,` entry per secret, so a receiver can rotate secrets without a gap.
//!
//! Each attempt is signed with its own timestamp: receivers reject stale timestamps (the
//! reference libraries allow five minutes), and a retry may come minutes after the first try.
//! The `webhook-id` does not change, so receivers can dedupe.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderValue;
use sha2::Sha256;
use tower::{Layer, Service};

use super::request::Delivery;
use super::secret::Secret;

/// `webhook-id`.
pub const WEBHOOK_ID: &str = "webhook-id";
/// `webhook-timestamp`: seconds since the Unix epoch.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// `webhook-signature`: space-separated `v1,<base64>` entries.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret that does not decode.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidSecret {
    /// The part after `whsec_` is not base64.
    #[error("secret #{index} is not whsec_ followed by base64")]
    NotBase64 {
        /// 1-based position in `signing.secrets`.
        index: usize,
        /// The decoder's complaint (never the secret).
        #[source]
        source: base64::DecodeError,
    },
    /// It decodes to too few bytes to be a key worth having.
    #[error("secret #{index} decodes to {len} bytes; at least {MIN_KEY_BYTES} are required")]
    TooShort {
        /// 1-based position in `signing.secrets`.
        index: usize,
        /// Decoded length.
        len: usize,
    },
    /// `signing` is present with an empty list.
    #[error("at least one secret is required when signing is configured")]
    Empty,
}

/// The shortest key accepted; the specification recommends 24 to 64 bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// Decoded signing keys. `Debug` never shows them.
#[derive(Clone, Default, PartialEq)]
pub struct Signer {
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({} key(s))", self.keys.len())
    }
}

impl Signer {
    /// Decodes `whsec_<base64>` secrets (the prefix is optional, as in the reference libraries).
    pub fn from_secrets(secrets: &[Secret]) -> Result<Signer, InvalidSecret> {
        if secrets.is_empty() {
            return Err(InvalidSecret::Empty);
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let text = s.expose().trim();
                let text = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
                let key = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|source| InvalidSecret::NotBase64 {
                        index: i + 1,
                        source,
                    })?;
                if key.len() < MIN_KEY_BYTES {
                    return Err(InvalidSecret::TooShort {
                        index: i + 1,
                        len: key.len(),
                    });
                }
                Ok(key)
            })
            .collect::<Result<_, _>>()?;
        Ok(Signer { keys })
    }

    /// Whether there is any key (without one, no signature header is sent).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `webhook-signature` value for `id`, `timestamp` and `body`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mut out = String::new();
        for key in &self.keys {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("v1,");
            out.push_str(
                &base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()),
            );
        }
        out
    }
}

/// The `webhook-id` header. Ids are hookline's own (`msg_` and hex), and records read back
/// from Kafka are checked before they become deliveries; should one still carry a byte no
/// header may hold, it is replaced rather than panicking the subscription's lane.
fn id_header(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).unwrap_or_else(|_| {
        tracing::error!("a webhook-id with bytes no header may hold; sending it sanitised");
        let clean: String = id
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        HeaderValue::from_str(&clean).expect("visible ASCII is a valid header value")
    })
}

/// Adds the Standard Webhooks headers to every attempt.
#[derive(Clone, Debug)]
pub struct SignLayer {
    signer: Arc<Signer>,
}

impl SignLayer {
    /// A layer signing with `signer` (an empty one adds only id and timestamp).
    pub fn new(signer: Signer) -> Self {
        SignLayer {
            signer: Arc::new(signer),
        }
    }
}

impl<S> Layer<S> for SignLayer {
    type Service = Sign<S>;
    fn layer(&self, inner: S) -> Sign<S> {
        Sign {
            inner,
            signer: self.signer.clone(),
        }
    }
}

/// The service [`SignLayer`] produces.
#[derive(Clone, Debug)]
pub struct Sign<S> {
    inner: S,
    signer: Arc<Signer>,
}

impl<S: Service<Delivery>> Service<Delivery> for Sign<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Delivery) -> S::Future {
        // Wall-clock time: receivers compare it with theirs.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        req.headers.insert(WEBHOOK_ID, id_header(&req.webhook_id));
        req.headers
            .insert(WEBHOOK_TIMESTAMP, HeaderValue::from(now));
        if !self.signer.is_empty() {
            let signature = self.signer.sign(&req.webhook_id, now, &req.body);
            let mut value = HeaderValue::from_str(&signature).expect("base64 is ASCII");
            value.set_sensitive(true);
            req.headers.insert(WEBHOOK_SIGNATURE, value);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vector published with the Standard Webhooks reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: u64 = 1614265330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn an_id_no_header_may_hold_is_sanitised_not_a_panic() {
        assert_eq!(id_header("msg_ok"), "msg_ok");
        assert_eq!(id_header("msg_\r\nX-Injected: 1"), "msg___X-Injected:_1");
    }

    #[test]
    fn matches_the_specification_vector() {
        let signer = Signer::from_secrets(&[SPEC_SECRET.into()]).unwrap();
        assert_eq!(signer.sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        // The prefix is optional.
        let bare = Signer::from_secrets(&[SPEC_SECRET[6..].into()]).unwrap();
        assert_eq!(bare.sign(SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        // Any change to id, timestamp or body changes it.
        assert_ne!(signer.sign("msg_other", SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        assert_ne!(signer.sign(SPEC_ID, SPEC_TS + 1, SPEC_BODY), SPEC_SIGNATURE);
        assert_ne!(signer.sign(SPEC_ID, SPEC_TS, b"{}"), SPEC_SIGNATURE);
    }

    #[test]
    fn one_entry_per_secret_for_rotation() {
        let other = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        );
        let signer = Signer::from_secrets(&[other.as_str().into(), SPEC_SECRET.into()]).unwrap();
        let sig = signer.sign(SPEC_ID, SPEC_TS, SPEC_BODY);
        let entries: Vec<&str> = sig.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].starts_with("v1,") && entries[0] != SPEC_SIGNATURE);
        assert_eq!(entries[1], SPEC_SIGNATURE);
    }

    #[test]
    fn bad_secrets_are_reported_without_their_value() {
        assert_eq!(Signer::from_secrets(&[]), Err(InvalidSecret::Empty));
        let e = Signer::from_secrets(&[SPEC_SECRET.into(), "whsec_not*base64".into()]).unwrap_err();
        assert!(
            matches!(e, InvalidSecret::NotBase64 { index: 2, .. }),
            "{e:?}"
        );
        assert!(!e.to_string().contains("not*base64"));
        let e = Signer::from_secrets(&["whsec_c2hvcnQ=".into()]).unwrap_err();
        assert_eq!(e, InvalidSecret::TooShort { index: 1, len: 5 });
        assert_eq!(
            format!("{:?}", Signer::from_secrets(&[SPEC_SECRET.into()]).unwrap()),
            "Signer(1 key(s))"
        );
    }
}
