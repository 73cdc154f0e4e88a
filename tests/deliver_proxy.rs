//! `[delivery] proxy`: deliveries go through the configured proxy (a real HTTP server on
//! loopback playing the forward proxy), `no_proxy` hosts go direct, and the SSRF guard still
//! refuses proxied destinations that resolve to special addresses.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::deliver::DeliveryHarness;
use hookline::deliver::proxy::ProxySettings;
use hookline::deliver::{DeliverySettings, SubscriptionConfig, SubscriptionSettings};
use hookline::dev::receiver::Receiver;
use serde_json::json;

fn subscription(id: &str, url: &str) -> Arc<SubscriptionSettings> {
    let config: SubscriptionConfig =
        serde_json::from_value(json!({"id": id, "url": url, "retry": {"attempts": 1}})).unwrap();
    Arc::new(config.validate().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_go_through_the_proxy_and_no_proxy_hosts_go_direct() {
    let proxy = Receiver::start().await.unwrap();
    let h = DeliveryHarness::with_settings(DeliverySettings {
        // The proxy itself needs no allowance; the direct receiver on loopback does.
        allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
        proxy: Some(ProxySettings::parse(&proxy.url(""), &["127.0.0.1".into()]).unwrap()),
        ..DeliverySettings::default()
    })
    .await;
    // `.invalid` never resolves here, so only the proxy can deliver it.
    let proxied = subscription("proxied", "http://hooks.hookline-test.invalid/in");
    let direct = h.subscription("direct", "/direct", json!({}));
    h.dispatcher.apply(&[proxied.clone(), direct.clone()]);
    h.dispatcher
        .submit(h.job(&proxied, 0, json!({"a": 1})))
        .await;
    h.dispatcher
        .submit(h.job(&direct, 1, json!({"b": 2})))
        .await;
    assert_eq!(h.wait_settled(2, Duration::from_secs(20)).await.len(), 2);

    let through = proxy.requests();
    assert_eq!(through.len(), 1, "{through:?}");
    assert_eq!(through[0].path, "/in");
    assert_eq!(
        through[0].header("host"),
        Some("hooks.hookline-test.invalid")
    );
    assert_eq!(through[0].json(), json!({"a": 1}));
    assert_eq!(h.receiver.requests_to("/direct").len(), 1);
    assert_eq!(h.deliveries("proxied", "delivered"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_destination_that_resolves_to_loopback_is_refused() {
    let proxy = Receiver::start().await.unwrap();
    let h = DeliveryHarness::with_settings(DeliverySettings {
        allow_networks: vec![],
        proxy: Some(ProxySettings::parse(&proxy.url(""), &[]).unwrap()),
        ..DeliverySettings::default()
    })
    .await;
    let sub = subscription("local", "http://localhost:9/admin");
    h.dispatcher.apply(std::slice::from_ref(&sub));
    h.dispatcher.submit(h.job(&sub, 0, json!({}))).await;
    assert_eq!(h.wait_settled(1, Duration::from_secs(20)).await.len(), 1);
    let letters = h.dead_letters(1, Duration::from_secs(20)).await;
    assert_eq!(letters[0].header_opt("hookline-reason"), Some("refused"));
    assert!(proxy.requests().is_empty(), "the proxy was asked anyway");
}
