//! Subscriptions created through `/api/v1/webhooks`, on real parts: the router, a
//! Kafka-protocol broker (the mock cluster: the subscriptions topic, the backlogs) and a real
//! HTTP receiver. Create, pause, resume, delete; two instances; a restart; a `410 Gone`.

mod api_support;
mod common;

use std::time::Duration;

use api_support::{eventually_async, numbers, produce, settings, webhook, Api, TOPIC};
use base64::Engine;
use common::{eventually, signatures, Harness};
use hookline::dev::receiver::Respond;
use reqwest::StatusCode;
use serde_json::json;

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_pause_resume_delete_through_the_api() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(api_support::RULES);
    let running = hookline::app::start(settings(&h, "life")).await.unwrap();
    let api = Api::of(&running);

    // Created: events flow to it at once.
    let mut body = webhook("life", &h.receiver.url("/life"));
    body["concurrency"] = json!(1);
    let (id, secret) = api.create(body).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    produce(&h, 0..10).await;
    assert!(
        h.receiver.wait_until(LONG, |r| r.len() >= 10).await,
        "got {}",
        h.receiver.requests().len()
    );
    assert_eq!(
        numbers(&h.receiver.accepted("/life")),
        (0..10).collect::<Vec<_>>()
    );
    // Signed, with the secret returned once.
    assert!(h.receiver.requests()[0]
        .header("webhook-signature")
        .is_some());

    // Paused: the source moves on (its events wait in the backlog), nothing is sent.
    let a = api
        .post(&format!("/api/v1/webhooks/{id}/pause"), json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json()["data"]["status"], "Paused");
    produce(&h, 10..30).await;
    assert!(
        eventually(LONG, || h.committed("life", TOPIC, 1) == [30]).await,
        "source commits stuck at {:?}",
        h.committed("life", TOPIC, 1)
    );
    assert_eq!(
        h.receiver.requests().len(),
        10,
        "a paused subscription received events"
    );

    // Resumed: what waited arrives, in order.
    let a = api
        .post(&format!("/api/v1/webhooks/{id}/resume"), json!({}))
        .await;
    assert_eq!(a.json()["data"]["status"], "Active", "{}", a.text);
    assert!(
        h.receiver.wait_until(LONG, |r| r.len() >= 30).await,
        "got {}",
        h.receiver.requests().len()
    );
    assert_eq!(
        numbers(&h.receiver.accepted("/life")),
        (0..30).collect::<Vec<_>>()
    );

    // Deleted: nothing more.
    let a = api
        .call("DELETE", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(api.status_of(&id).await, None);
    produce(&h, 30..40).await;
    assert!(
        eventually(LONG, || h.committed("life", TOPIC, 1) == [40]).await,
        "source commits stuck at {:?}",
        h.committed("life", TOPIC, 1)
    );
    assert_eq!(
        h.receiver.requests().len(),
        30,
        "a deleted subscription received events"
    );
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_see_each_others_changes_within_seconds() {
    let h = Harness::new(TOPIC, 2).await;
    h.write_rules(api_support::RULES);
    // Fleet mode: one instance delivers the subscription, both route to it.
    let keyed = || {
        let mut config = api_support::config(&h, "fleet");
        config.delivery.mode = hookline::config::DeliveryMode::Keyed;
        h.finish(config)
    };
    let a = hookline::app::start(keyed()).await.unwrap();
    let b = hookline::app::start(keyed()).await.unwrap();
    let (api_a, api_b) = (Api::of(&a), Api::of(&b));
    let seconds = Duration::from_secs(10);

    let (id, _) = api_a
        .create(webhook("shared", &h.receiver.url("/shared")))
        .await;
    assert!(
        eventually_async(seconds, || async {
            api_b.status_of(&id).await.as_deref() == Some("Active")
        })
        .await,
        "instance b does not see the subscription a created"
    );
    api_b
        .post(&format!("/api/v1/webhooks/{id}/pause"), json!({}))
        .await;
    assert!(
        eventually_async(seconds, || async {
            api_a.status_of(&id).await.as_deref() == Some("Paused")
        })
        .await,
        "instance a does not see b's pause"
    );
    let patched = api_a
        .call(
            "PATCH",
            &format!("/api/v1/webhooks/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert!(
        eventually_async(seconds, || async {
            api_b.get(&format!("/api/v1/webhooks/{id}")).await.json()["data"]["name"] == "renamed"
        })
        .await
    );
    // Both route to it: events on either instance's partitions reach it once resumed.
    api_a
        .post(&format!("/api/v1/webhooks/{id}/resume"), json!({}))
        .await;
    assert!(
        eventually_async(seconds, || async {
            api_b.status_of(&id).await.as_deref() == Some("Active")
        })
        .await
    );
    for n in 0..20 {
        let event = json!({"id": format!("e{n}"), "category": "alert", "severity": "high", "n": n});
        h.produce_json(TOPIC, n % 2, &event).await;
    }
    assert!(
        h.receiver.wait_until(LONG, |r| r.len() >= 20).await,
        "got {}",
        h.receiver.requests().len()
    );
    api_b
        .call("DELETE", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert!(
        eventually_async(seconds, || async { api_a.status_of(&id).await.is_none() }).await,
        "instance a still has the subscription b deleted"
    );
    a.stop();
    b.stop();
    a.wait().await;
    b.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_every_subscription_and_its_signatures_verify() {
    let python = signatures::python_ready();
    if let Err(why) = &python {
        if std::env::var("HOOKLINE_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("HOOKLINE_REQUIRE_PYTHON=1 but {why} (pip install standardwebhooks)");
        }
    }
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(api_support::RULES);
    let running = hookline::app::start(settings(&h, "restart")).await.unwrap();
    let api = Api::of(&running);
    let (one, secret_one) = api.create(webhook("one", &h.receiver.url("/one"))).await;
    let mut two_body = webhook("two", &h.receiver.url("/two"));
    two_body["authType"] = json!("bearer");
    two_body["token"] = json!("receiver-token-2");
    let (two, secret_two) = api.create(two_body).await;
    let (three, _) = api
        .create(webhook("three", &h.receiver.url("/three")))
        .await;
    api.post(&format!("/api/v1/webhooks/{three}/pause"), json!({}))
        .await;
    api_support::ready(&running).await;
    running.stop();
    running.wait().await;

    // A new process: everything is there, secrets included.
    let running = hookline::app::start(settings(&h, "restart")).await.unwrap();
    let api = Api::of(&running);
    let list = api.get("/api/v1/webhooks?source=api").await.json();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{list}");
    assert_eq!(api.status_of(&three).await.as_deref(), Some("Paused"));
    assert_eq!(api.status_of(&one).await.as_deref(), Some("Active"));
    assert_eq!(api.status_of(&two).await.as_deref(), Some("Active"));
    produce(&h, 0..3).await;
    assert!(
        h.receiver
            .wait_until(LONG, |r| r.iter().filter(|r| r.path != "/three").count()
                >= 6)
            .await,
        "got {}",
        h.receiver.requests().len()
    );
    let to_two = h.receiver.requests_to("/two");
    assert_eq!(
        to_two[0].header("authorization"),
        Some("Bearer receiver-token-2")
    );
    assert!(h.receiver.requests_to("/three").is_empty());

    // Rotation: the new secret signs, the old one keeps signing beside it.
    let rotated = api
        .post(&format!("/api/v1/webhooks/{one}/secret/rotate"), json!({}))
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_one = rotated.json()["data"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_one, secret_one);
    assert!(rotated.json()["data"]["previousExpiresAt"].is_string());
    produce(&h, 3..4).await;
    assert!(
        h.receiver
            .wait_until(LONG, |r| r.iter().filter(|r| r.path == "/one").count() >= 4)
            .await
    );
    let to_one = h.receiver.requests_to("/one");
    let last = to_one.last().unwrap();
    assert_eq!(
        last.header("webhook-signature")
            .unwrap()
            .matches("v1,")
            .count(),
        2
    );

    match python {
        Ok(()) => {
            let mut cases = Vec::new();
            for r in &to_one[..3] {
                cases.push(signatures::case(&secret_one, r));
            }
            cases.push(signatures::case(&secret_one, last));
            cases.push(signatures::case(&new_one, last));
            for r in &to_two {
                cases.push(signatures::case(&secret_two, r));
            }
            let n = cases.len();
            let out = signatures::verify(&cases);
            assert!(
                out.success,
                "signatures verify: {}{}",
                out.stdout, out.stderr
            );
            let out = out.stdout;
            assert!(out.contains(&format!("{n} verified")), "{out}");
        }
        Err(why) => eprintln!("SKIPPED the standardwebhooks check: {why}"),
    }
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_disables_the_subscription_and_keeps_the_delivery_for_a_resume() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(api_support::RULES);
    let gone = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = gone.clone();
    h.receiver.respond("/gone", move |_| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Respond::status(410)
        } else {
            Respond::ok()
        }
    });
    let running = hookline::app::start(settings(&h, "gone")).await.unwrap();
    let api = Api::of(&running);
    let (id, _) = api.create(webhook("gone", &h.receiver.url("/gone"))).await;
    produce(&h, 0..1).await;
    assert!(
        eventually_async(LONG, || async {
            api.status_of(&id).await.as_deref() == Some("Disabled")
        })
        .await,
        "not disabled after a 410"
    );
    let w = api.get(&format!("/api/v1/webhooks/{id}")).await.json();
    assert!(
        w["data"]["disableReason"]
            .as_str()
            .unwrap()
            .contains("410 Gone"),
        "{w}"
    );
    assert!(w["data"]["disabledAt"].is_string(), "{w}");
    let metrics = running.metrics.render();
    assert!(
        metrics.contains("hookline_subscriptions_disabled_total{reason=\"gone\"} 1"),
        "{metrics}"
    );
    // Disabled: once the rules in force say so, later events are not routed to it (one read
    // before that waits in its backlog, like the 410'd one); the source moves on.
    let disabled_in_rules = || {
        running.router.current().subscriptions().iter().any(|s| {
            *s.id == *id && s.config.status == hookline::deliver::SubscriptionStatus::Disabled
        })
    };
    assert!(
        eventually(LONG, disabled_in_rules).await,
        "the rules never disabled it"
    );
    produce(&h, 1..5).await;
    assert!(eventually(LONG, || h.committed("gone", TOPIC, 1) == [5]).await);
    assert_eq!(h.receiver.requests_to("/gone").len(), 1);
    // Not dead-lettered: the 410'd delivery waits in the backlog and a resume delivers it.
    gone.store(false, std::sync::atomic::Ordering::SeqCst);
    let a = api
        .post(&format!("/api/v1/webhooks/{id}/resume"), json!({}))
        .await;
    assert_eq!(a.json()["data"]["status"], "Active");
    assert_eq!(a.json()["data"]["disableReason"], serde_json::Value::Null);
    assert!(
        h.receiver
            .wait_until(LONG, |r| r.iter().filter(|r| r.status == 200).count() >= 1)
            .await,
        "the delivery that got 410 was not delivered after the resume"
    );
    assert_eq!(numbers(&h.receiver.accepted("/gone")), vec![0]);
    assert!(h.dead_letters(1, Duration::from_millis(500)).is_empty());
    running.stop();
    running.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_without_a_success_for_the_limit_disables_the_subscription() {
    let h = Harness::new(TOPIC, 1).await;
    h.write_rules(api_support::RULES);
    h.receiver.respond("/down", |_| Respond::status(503));
    let mut config = h.config("failing");
    config.admin.write_token = Some(api_support::WRITE.into());
    config.subscriptions.secret_key =
        Some(base64::engine::general_purpose::STANDARD.encode([42u8; 32]));
    config.subscriptions.disable_after = Duration::from_secs(2);
    let running = hookline::app::start(h.finish(config)).await.unwrap();
    let api = Api::of(&running);
    let (id, _) = api.create(webhook("down", &h.receiver.url("/down"))).await;
    produce(&h, 0..3).await;
    // The streak is recorded in the subscriptions topic (shown as failingSince)...
    assert!(
        eventually_async(LONG, || async {
            api.get(&format!("/api/v1/webhooks/{id}")).await.json()["data"]["failingSince"]
                .is_string()
        })
        .await,
        "no failure streak recorded"
    );
    // ...and once it is older than the limit, the subscription is disabled, with the reason.
    assert!(
        eventually_async(LONG, || async {
            api.status_of(&id).await.as_deref() == Some("Disabled")
        })
        .await,
        "not disabled after failing past the limit"
    );
    let w = api.get(&format!("/api/v1/webhooks/{id}")).await.json();
    let reason = w["data"]["disableReason"].as_str().unwrap();
    assert!(
        reason.starts_with("no successful delivery since"),
        "{reason}"
    );
    assert!(running
        .metrics
        .render()
        .contains("hookline_subscriptions_disabled_total{reason=\"failing\"} 1"));
    // Resume clears the reason and the streak.
    let a = api
        .post(&format!("/api/v1/webhooks/{id}/resume"), json!({}))
        .await;
    assert_eq!(a.json()["data"]["status"], "Active");
    assert_eq!(
        a.json()["data"]["failingSince"],
        serde_json::Value::Null,
        "{}",
        a.text
    );
    running.stop();
    running.wait().await;
}
