//! Commands operators and containers run: `hookline health` against a live router, and the
//! librdkafka features an enterprise Kafka needs (Kerberos, OAUTHBEARER with OIDC).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, Harness};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;

fn health(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("health")
        .args(args)
        .env_remove("HOOKLINE_CONFIG")
        .output()
        .expect("run hookline");
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_asks_the_admin_api() {
    let h = Harness::new("events", 1).await;
    h.write_rules(
        "sources:\n  - id: s\n    topics: [events]\nsubscriptions:\n  - id: a\n    url: \"{receiver}/a\"\n",
    );
    let running = hookline::app::start(h.settings("health")).await.unwrap();
    let url = format!("http://{}", running.admin_addr);
    let (code, _) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || health(&["--url", &url])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    let ready = eventually(Duration::from_secs(60), || {
        health(&["--url", &url, "--ready"]).0 == Some(0)
    })
    .await;
    assert!(ready, "readyz never became 200");
    running.stop();
    running.wait().await;
    // Nothing listens any more.
    let (code, stderr) = health(&["--url", &url, "--timeout", "2s"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/healthz"), "{stderr}");
}

/// Without librdkafka's SASL (Cyrus) and curl support these configurations are refused when
/// the client is created ("No provider for SASL mechanism GSSAPI", "OIDC ... not supported").
#[test]
fn kerberos_and_oidc_are_built_in() {
    let base = || {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "127.0.0.1:9")
            .set("group.id", "features");
        c
    };
    let gssapi = base()
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "GSSAPI")
        .set("sasl.kerberos.kinit.cmd", "true")
        .create::<BaseConsumer>();
    assert!(gssapi.is_ok(), "GSSAPI: {:?}", gssapi.err());
    let oidc = base()
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "OAUTHBEARER")
        .set("sasl.oauthbearer.method", "oidc")
        .set("sasl.oauthbearer.client.id", "hookline")
        .set("sasl.oauthbearer.client.secret", "secret")
        .set(
            "sasl.oauthbearer.token.endpoint.url",
            "https://127.0.0.1:9/token",
        )
        .create::<BaseConsumer>();
    assert!(oidc.is_ok(), "OIDC: {:?}", oidc.err());
}

/// Whether `pid` catches `signal` (its bit in `SigCgt` of `/proc/<pid>/status`).
fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// SIGTERM while `hookline run` is still starting (here: waiting for a broker that is not
/// there) stops it cleanly, as an orchestrator stopping a just-scheduled pod expects. It used
/// to die of the signal, because the handler was installed only once start-up had finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_starting_stops_cleanly() {
    let h = Harness::new("events", 1).await;
    h.write_rules(
        "sources:\n  - id: s\n    topics: [events]\nsubscriptions:\n  - id: a\n    url: \"{receiver}/a\"\n",
    );
    let nobody = format!("127.0.0.1:{}", common::process::free_port());
    let router = common::process::RouterCommand::new(&h, "starting")
        .env("HOOKLINE_KAFKA__BROKERS", &nobody)
        .spawn();
    let pid = router.pid();
    assert!(
        eventually(Duration::from_secs(60), || catches(pid, libc::SIGTERM)).await,
        "hookline run never installed its SIGTERM handler"
    );
    assert!(
        !router.ready().await && router.metrics().await.is_empty(),
        "start-up finished without a broker"
    );
    router.terminate();
    let (took, status) = router
        .wait_exit(Duration::from_secs(30))
        .expect("hookline run did not stop within 30 s of SIGTERM while starting");
    assert!(
        status.success(),
        "hookline run ended with {status} after {took:?}"
    );
}
