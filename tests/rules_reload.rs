//! Hot reload: rules change under load without losing, duplicating or half-applying anything;
//! invalid sets are rejected and the rules in force stay; file changes trigger reloads.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookline::event::{Event, Origin};
use hookline::metrics::Metrics;
use hookline::rules::reload::{load_initial, reload_blocking, reload_now, watch};
use hookline::rules::{Router, Routing, RuleSet};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A rule set whose every part names its version: route ids, the rendered body, and which
/// subscriptions exist (version 2 and up add `s4`).
fn write_version(dir: &Path, v: u32) {
    let extra = if v >= 2 {
        "  - id: s4\n    url: http://127.0.0.1:9/s4\n    template: t\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("a-subs.yaml"),
        format!(
            "templates:
  - id: t
    expression: \"{{version: 'v{v}', id: event.id}}\"
subscriptions:
  - id: s1
    url: http://127.0.0.1:9/s1
    template: t
  - id: s2
    url: http://127.0.0.1:9/s2
    template: t
{extra}"
        ),
    )
    .unwrap();
    let last = if v >= 2 { "[s1, s4]" } else { "[s1]" };
    std::fs::write(
        dir.join("b-routes.yaml"),
        format!(
            "routes:
  - id: v{v}-first
    match: {{category: alert}}
    to: [s1, s2]
  - id: v{v}-second
    to: {last}
"
        ),
    )
    .unwrap();
}

fn event(i: usize) -> Event {
    Event::new(
        Origin {
            topic: "t".into(),
            partition: 0,
            offset: i as i64,
            index: 0,
        },
        json!({"type": "alert", "id": i}),
    )
}

/// The version a routing was made with, checking that every part agrees on it.
fn consistent_version(r: &Routing, i: usize) -> u32 {
    assert_eq!(r.routes.len(), 2, "{:?}", r.routes);
    let v: u32 = r.routes[0][1..r.routes[0].find('-').unwrap()]
        .parse()
        .unwrap();
    assert_eq!(
        r.routes,
        vec![format!("v{v}-first"), format!("v{v}-second")]
    );
    let mut subs: Vec<&str> = r.deliveries.iter().map(|d| &*d.subscription.id).collect();
    subs.sort();
    let want: &[&str] = if v >= 2 {
        &["s1", "s2", "s4"]
    } else {
        &["s1", "s2"]
    };
    assert_eq!(
        subs, want,
        "each subscription exactly once, the set of version {v}"
    );
    for d in &r.deliveries {
        let body = d.body.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            body["version"],
            format!("v{v}"),
            "body from another rule set"
        );
        assert_eq!(body["id"], i);
    }
    v
}

#[test]
fn reload_under_load_is_atomic_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    write_version(&dir, 1);
    let metrics = Metrics::new();
    let router = Router::with_metrics(load_initial(&dir, &metrics).unwrap(), metrics.clone());
    assert!(metrics.rules_loaded_timestamp.get() > 0.0);

    let stop = Arc::new(AtomicBool::new(false));
    let routed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (router, stop, routed) = (router.clone(), stop.clone(), routed.clone());
            std::thread::spawn(move || {
                let mut seen = [0usize; 4];
                let mut last = 1;
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let v = consistent_version(&router.route(&event(i)), i);
                    assert!(v >= last, "went back from v{last} to v{v}");
                    last = v;
                    seen[v as usize] += 1;
                    routed.fetch_add(1, Ordering::Relaxed);
                    i += 3;
                }
                seen
            })
        })
        .collect();

    let wait_for_traffic = |n: usize| {
        let target = routed.load(Ordering::Relaxed) + n;
        while routed.load(Ordering::Relaxed) < target {
            std::thread::yield_now();
        }
    };
    wait_for_traffic(200);
    write_version(&dir, 2);
    reload_blocking(&dir, &router, &metrics).unwrap();
    wait_for_traffic(200);
    // An invalid set: rejected, version 2 stays in force.
    std::fs::write(
        dir.join("b-routes.yaml"),
        "routes:\n  - id: broken\n    to: [nobody]\n",
    )
    .unwrap();
    let err = reload_blocking(&dir, &router, &metrics).unwrap_err();
    assert_eq!(
        err.problems[0].to_string(),
        "rules/b-routes.yaml:3:10: route \"broken\": unknown subscription \"nobody\""
    );
    wait_for_traffic(200);
    write_version(&dir, 3);
    reload_blocking(&dir, &router, &metrics).unwrap();
    wait_for_traffic(200);
    stop.store(true, Ordering::Relaxed);

    let mut total = [0usize; 4];
    for w in workers {
        for (t, s) in total
            .iter_mut()
            .zip(w.join().expect("no routing thread failed"))
        {
            *t += s;
        }
    }
    assert!(total[1] > 0 && total[2] > 0 && total[3] > 0, "{total:?}");
    assert_eq!(total.iter().sum::<usize>(), routed.load(Ordering::Relaxed));
    assert_eq!(metrics.rule_reloads.with_label_values(&["ok"]).get(), 2);
    assert_eq!(
        metrics.rule_reloads.with_label_values(&["rejected"]).get(),
        1
    );
}

#[tokio::test]
async fn reload_now_rejects_and_keeps_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    write_version(&dir, 1);
    let metrics = Metrics::new();
    let router = Router::with_metrics(RuleSet::load_dir(&dir).unwrap(), metrics.clone());
    std::fs::write(dir.join("c.yaml"), "routes: [").unwrap();
    let err = reload_now(&dir, &router, &metrics).await.unwrap_err();
    assert!(
        err.problems[0].to_string().starts_with("rules/c.yaml:"),
        "{err}"
    );
    assert_eq!(consistent_version(&router.route(&event(1)), 1), 1);
    std::fs::remove_file(dir.join("c.yaml")).unwrap();
    write_version(&dir, 2);
    reload_now(&dir, &router, &metrics).await.unwrap();
    assert_eq!(consistent_version(&router.route(&event(1)), 1), 2);
    assert_eq!(
        metrics.rule_reloads.with_label_values(&["rejected"]).get(),
        1
    );
    assert_eq!(metrics.rule_reloads.with_label_values(&["ok"]).get(), 1);
}

#[tokio::test]
async fn file_changes_reload_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    std::fs::create_dir(&dir).unwrap();
    write_version(&dir, 1);
    let metrics = Metrics::new();
    let router = Router::with_metrics(RuleSet::load_dir(&dir).unwrap(), metrics.clone());
    let mut changes = router.watch();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(watch(
        dir.clone(),
        router.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    // Give the watcher time to start before writing.
    tokio::time::sleep(Duration::from_millis(200)).await;

    write_version(&dir, 2);
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("a reload after the change")
        .unwrap();
    assert_eq!(consistent_version(&router.route(&event(1)), 1), 2);

    std::fs::write(dir.join("b-routes.yaml"), "routes: [").unwrap();
    let rejected = || metrics.rule_reloads.with_label_values(&["rejected"]).get();
    tokio::time::timeout(Duration::from_secs(10), async {
        while rejected() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the invalid change is noticed and rejected");
    assert_eq!(consistent_version(&router.route(&event(1)), 1), 2);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
