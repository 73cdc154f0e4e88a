//! TLS per subscription against a real HTTPS receiver on loopback: verification is on by
//! default, `skip_verify` turns it off, `ca_file` trusts a private CA, a client certificate
//! loads and is used. Certificates are made with the `openssl` command.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::deliver::{fast_retry, DeliveryHarness};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_native_tls::native_tls;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian package openssl) is needed for TLS tests");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A self-signed certificate for 127.0.0.1 and localhost, plus a client certificate.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "server.key",
            "-out",
            "server.pem",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "client.key",
            "-out",
            "client.pem",
            "-subj",
            "/CN=hookline-client",
        ],
    );
}

/// An HTTPS server answering 200 to every request; counts complete requests.
async fn https_server(dir: &Path) -> (u16, Arc<AtomicUsize>) {
    let cert = std::fs::read(dir.join("server.pem")).unwrap();
    let key = std::fs::read(dir.join("server.key")).unwrap();
    let identity = native_tls::Identity::from_pkcs8(&cert, &key).unwrap();
    let acceptor =
        tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(identity).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            count.fetch_add(1, Ordering::SeqCst);
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            let _ = tls.shutdown().await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, served)
}

fn subscription(
    id: &str,
    port: u16,
    tls: serde_json::Value,
) -> Arc<hookline::deliver::SubscriptionSettings> {
    let config: hookline::deliver::SubscriptionConfig = serde_json::from_value(json!({
        "id": id, "url": format!("https://127.0.0.1:{port}/hook"), "tls": tls, "retry": fast_retry(1)
    }))
    .unwrap();
    Arc::new(config.validate().expect("valid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_is_on_by_default_and_configurable() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (port, served) = https_server(dir.path()).await;
    let h = DeliveryHarness::start().await;
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let strict = subscription("strict", port, json!({}));
    let skip = subscription("skip", port, json!({"skip_verify": true}));
    let ca = subscription("ca", port, json!({"ca_file": p("server.pem")}));
    let mtls = subscription(
        "mtls",
        port,
        json!({"ca_file": p("server.pem"), "client_cert": p("client.pem"), "client_key": p("client.key")}),
    );
    let subs = [strict.clone(), skip.clone(), ca.clone(), mtls.clone()];
    h.dispatcher.apply(&subs);
    for (i, sub) in subs.iter().enumerate() {
        h.dispatcher
            .submit(h.job(sub, i as i64, json!({"i": i})))
            .await;
    }
    assert_eq!(h.wait_settled(4, Duration::from_secs(15)).await.len(), 4);
    for id in ["skip", "ca", "mtls"] {
        assert_eq!(h.deliveries(id, "delivered"), 1, "{id}");
    }
    assert_eq!(served.load(Ordering::SeqCst), 3);
    let letters = h.dead_letters(1, Duration::from_secs(10)).await;
    assert_eq!(
        letters[0].header_opt("hookline-subscription"),
        Some("strict")
    );
    assert_eq!(
        letters[0].header_opt("hookline-reason"),
        Some("retries-exhausted")
    );
    let error = letters[0]
        .header_opt("hookline-error")
        .unwrap()
        .to_lowercase();
    assert!(
        error.contains("certificate") || error.contains("tls") || error.contains("ssl"),
        "{error}"
    );
}
