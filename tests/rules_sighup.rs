//! SIGHUP reloads the rules. Its own test binary: the signal goes to the whole process.

use std::time::Duration;

use hookline::metrics::Metrics;
use hookline::rules::reload::watch;
use hookline::rules::{Router, RuleSet};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn sighup_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("a.yaml"),
        "subscriptions:\n  - id: a\n    url: http://127.0.0.1:9/a\n",
    )
    .unwrap();
    let metrics = Metrics::new();
    let router = Router::with_metrics(RuleSet::load_dir(&dir).unwrap(), metrics.clone());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(watch(
        dir.clone(),
        router.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Let any file event from the setup settle and be counted before signalling.
    let before = metrics.rule_reloads.with_label_values(&["ok"]).get();

    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), async {
        while metrics.rule_reloads.with_label_values(&["ok"]).get() == before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("SIGHUP reloads the rules");
    shutdown.cancel();
    task.await.unwrap();
}
