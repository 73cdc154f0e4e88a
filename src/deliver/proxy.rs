//! The egress proxy (`[delivery] proxy`, `no_proxy`): where deliveries go out when the
//! receivers are only reachable through an HTTP(S) proxy.
//!
//! Only the configured proxy is used: `HTTPS_PROXY` and friends in the environment are never
//! read, so a variable set for some other tool cannot reroute security events.
//!
//! The SSRF guard ([`super::ssrf`]) judges the addresses a destination resolves to. Through
//! a proxy, the proxy resolves and connects, so hookline checks the destination by resolving
//! its name itself before sending ([`ProxiedCheck`]); a name that does not resolve here is left
//! to the proxy (proxy-only networks often have no public DNS). The proxy's own address is
//! trusted: an operator configured it, and it is usually private.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Url;

use super::ssrf::{Guard, Refused};

/// How long a pre-flight verdict on a proxied destination is reused.
const VERDICT_TTL: Duration = Duration::from_secs(30);

/// The proxy setting is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Not a URL.
    #[error("{url:?} is not a URL like http://proxy.internal:3128 ({reason})")]
    Url {
        /// The value, without credentials.
        url: String,
        /// Why.
        reason: String,
    },
    /// A scheme reqwest cannot proxy through.
    #[error("scheme {0:?} is not http or https")]
    Scheme(String),
}

/// A validated proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySettings {
    url: Url,
    no_proxy: Vec<String>,
}

impl ProxySettings {
    /// Parses `url` (`http://[user:pass@]host:port`; `https://` for TLS to the proxy) and the
    /// hosts, domains and networks reached directly.
    pub fn parse(url: &str, no_proxy: &[String]) -> Result<Self, ProxyError> {
        let parsed = Url::parse(url).map_err(|e| ProxyError::Url {
            url: redacted(url),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ProxyError::Scheme(parsed.scheme().into()));
        }
        Ok(ProxySettings {
            url: parsed,
            no_proxy: no_proxy.to_vec(),
        })
    }

    /// The proxy's host name or address, as written.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// For the HTTP client.
    pub fn reqwest(&self) -> reqwest::Proxy {
        let proxy = reqwest::Proxy::all(self.url.clone()).expect("validated in parse");
        proxy.no_proxy(reqwest::NoProxy::from_string(&self.no_proxy.join(",")))
    }
}

/// A URL as it may be shown: without its credentials.
fn redacted(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((_, rest)) => format!("***@{rest}"),
        None => url.to_string(),
    }
}

/// The last verdict: for which host, when, and what.
type Verdict = (String, Instant, Result<(), Refused>);

/// The pre-flight SSRF check of a proxied destination, with its last verdict cached briefly
/// (one subscription has one host, so one entry). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ProxiedCheck {
    last: Arc<Mutex<Option<Verdict>>>,
}

impl ProxiedCheck {
    /// `Err` when `host` resolves here to an address the guard refuses.
    pub async fn check(&self, guard: &Guard, host: &str) -> Result<(), Refused> {
        if let Some((h, at, verdict)) = &*self.last.lock().expect("verdict lock") {
            if h == host && at.elapsed() < VERDICT_TTL {
                return verdict.clone();
            }
        }
        let verdict = match tokio::net::lookup_host((host, 0)).await {
            Ok(addrs) => first_refused(guard, host, addrs),
            // The proxy resolves what this network cannot.
            Err(_) => Ok(()),
        };
        *self.last.lock().expect("verdict lock") =
            Some((host.to_string(), Instant::now(), verdict.clone()));
        verdict
    }
}

fn first_refused(
    guard: &Guard,
    host: &str,
    addrs: impl Iterator<Item = SocketAddr>,
) -> Result<(), Refused> {
    addrs
        .map(|a| a.ip())
        .try_for_each(|ip: IpAddr| guard.check(host, ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let p =
            ProxySettings::parse("http://u:p@proxy.internal:3128", &["10.0.0.0/8".into()]).unwrap();
        assert_eq!(p.host(), "proxy.internal");
        let e = ProxySettings::parse("socks9://x", &[]).unwrap_err();
        assert_eq!(e.to_string(), "scheme \"socks9\" is not http or https");
        let e = ProxySettings::parse("u:secret@nohost", &[]).unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[tokio::test]
    async fn refuses_a_proxied_name_that_resolves_to_loopback() {
        let check = ProxiedCheck::default();
        let refused = check
            .check(&Guard::default(), "localhost")
            .await
            .unwrap_err();
        assert_eq!(refused.kind, "loopback");
        // A name this network cannot resolve is the proxy's business.
        assert!(check
            .check(&Guard::default(), "hookline-test.invalid")
            .await
            .is_ok());
    }
}
