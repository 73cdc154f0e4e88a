//! SSRF guard: a destination may not reach loopback, private, link-local, multicast or
//! reserved addresses unless an operator allowed the network (`[delivery] allow_networks`).
//!
//! The check runs on the addresses DNS returned, at connect time (a custom resolver), so a
//! name that resolves differently later (DNS rebinding) is still caught; a URL whose host is
//! an IP literal never reaches the resolver and is checked by the client before sending.
//! IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 forms are judged by the IPv4 address
//! they carry. With an egress proxy ([`super::proxy`]) the proxy's own name is trusted and
//! destinations are checked before sending instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::proxy::ProxySettings;

/// A destination refused by the guard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination {host} resolves to {addr}, a {kind} address, which is refused (allow it with [delivery] allow_networks)")]
pub struct Refused {
    /// The host as written in the URL.
    pub host: String,
    /// The first refused address.
    pub addr: IpAddr,
    /// Why it is special: `loopback`, `private`, ...
    pub kind: &'static str,
}

/// Which addresses destinations may use, and the proxy (if any) they are reached through.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guard {
    allow: Vec<IpNet>,
    proxy: Option<ProxySettings>,
}

impl Guard {
    /// A guard that lets `allow` through although they are special.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Guard { allow, proxy: None }
    }

    /// Deliveries go through `proxy` (when `Some`).
    pub fn with_proxy(mut self, proxy: Option<ProxySettings>) -> Self {
        self.proxy = proxy;
        self
    }

    /// The egress proxy, if one is configured.
    pub fn proxy(&self) -> Option<&ProxySettings> {
        self.proxy.as_ref()
    }

    /// The configured proxy's own host is trusted (it is usually on a private network).
    fn is_proxy(&self, host: &str) -> bool {
        self.proxy
            .as_ref()
            .is_some_and(|p| p.host().eq_ignore_ascii_case(host))
    }

    /// `Err` when `addr` is special and not allowed.
    pub fn check(&self, host: &str, addr: IpAddr) -> Result<(), Refused> {
        let canonical = canonical(addr);
        if self
            .allow
            .iter()
            .any(|net| net.contains(&addr) || net.contains(&canonical))
        {
            return Ok(());
        }
        match special(canonical) {
            None => Ok(()),
            Some(kind) => Err(Refused {
                host: host.to_string(),
                addr,
                kind,
            }),
        }
    }
}

/// The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), or itself.
fn canonical(addr: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = addr else { return addr };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let tail = |a: u16, b: u16| {
        IpAddr::V4(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        ))
    };
    // ::a.b.c.d (deprecated IPv4-compatible), but not :: and ::1 themselves.
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return tail(s[6], s[7]);
    }
    // 64:ff9b::/96, the NAT64 well-known prefix.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return tail(s[6], s[7]);
    }
    // 2002::/16, 6to4: the IPv4 address is in bits 16..48.
    if s[0] == 0x2002 {
        return tail(s[1], s[2]);
    }
    addr
}

fn special(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(a: Ipv4Addr) -> Option<&'static str> {
    let o = a.octets();
    Some(match o {
        _ if a.is_loopback() => "loopback",
        _ if a.is_private() => "private",
        [100, b, ..] if (64..128).contains(&b) => "private",
        _ if a.is_link_local() => "link-local",
        _ if a.is_multicast() => "multicast",
        _ if a.is_broadcast() => "reserved",
        [0, ..] => "reserved",
        [192, 0, 0, _] | [192, 0, 2, _] | [192, 88, 99, _] => "reserved",
        [198, b, ..] if b == 18 || b == 19 => "reserved",
        [198, 51, 100, _] | [203, 0, 113, _] => "reserved",
        [b, ..] if b >= 240 => "reserved",
        _ => return None,
    })
}

fn special_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    Some(match s {
        _ if a.is_loopback() => "loopback",
        _ if a.is_unspecified() => "reserved",
        _ if a.is_multicast() => "multicast",
        [x, ..] if x & 0xfe00 == 0xfc00 => "private",
        [x, ..] if x & 0xffc0 == 0xfe80 => "link-local",
        [x, ..] if x & 0xffc0 == 0xfec0 => "private",
        [0x2001, 0xdb8, ..] => "reserved",
        [0x100, 0, 0, 0, ..] => "reserved",
        // 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...) and 64:ff9b:1::/48.
        [0x2001, x, ..] if x < 0x200 => "reserved",
        [0x64, 0xff9b, 1, ..] => "private",
        _ => return None,
    })
}

/// A DNS resolver that drops refused addresses and fails when none is left.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
}

impl GuardedResolver {
    /// Resolves with the system resolver and filters through `guard`.
    pub fn new(guard: Arc<Guard>) -> Self {
        GuardedResolver { guard }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if guard.is_proxy(&host) {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match guard.check(&host, a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(e)) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// Finds a [`Refused`] anywhere in an error's source chain (reqwest wraps resolver errors).
pub fn find_refused<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cur = Some(error);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(addr: &str) -> Option<&'static str> {
        Guard::default()
            .check("h", addr.parse().unwrap())
            .err()
            .map(|e| e.kind)
    }

    #[test]
    fn refuses_special_ranges() {
        for (addr, want) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("224.0.0.1", "multicast"),
            ("0.0.0.0", "reserved"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
            ("192.0.2.1", "reserved"),
            ("198.18.0.1", "reserved"),
            ("::1", "loopback"),
            ("::", "reserved"),
            ("fc00::1", "private"),
            ("fd12::1", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "reserved"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::a00:1", "private"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            assert_eq!(kind(addr), Some(want), "{addr}");
        }
    }

    #[test]
    fn lets_public_addresses_through() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(kind(addr), None, "{addr}");
        }
    }

    #[test]
    fn allow_list_covers_mapped_forms() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(guard.check("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(guard
            .check("h", "::ffff:127.0.0.1".parse().unwrap())
            .is_ok());
        assert!(guard.check("h", "::1".parse().unwrap()).is_err());
        assert!(guard.check("h", "10.0.0.1".parse().unwrap()).is_err());
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_loopback() {
        let resolver = GuardedResolver::new(Arc::new(Guard::default()));
        let Err(e) = resolver.resolve("localhost".parse().unwrap()).await else {
            panic!("localhost resolved through the guard");
        };
        let refused = find_refused(&*e).expect("a Refused error");
        assert_eq!(refused.kind, "loopback");
        assert!(e.to_string().contains("allow_networks"), "{e}");

        let allowing = GuardedResolver::new(Arc::new(Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])));
        let addrs: Vec<_> = allowing
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
    }
}
