//! hookline's signatures verify with an independent implementation: the `standardwebhooks`
//! package from PyPI, run by `scripts/verify_signatures.py` on requests a real receiver
//! captured. Skipped (with a message) when python3 or the package is missing, unless
//! `HOOKLINE_REQUIRE_PYTHON=1`, in which case that is a failure.

mod common;

use std::time::Duration;

use base64::Engine;
use common::deliver::DeliveryHarness;
use common::signatures;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_the_python_reference_library() {
    if let Err(why) = signatures::python_ready() {
        if std::env::var("HOOKLINE_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("HOOKLINE_REQUIRE_PYTHON=1 but {why} (pip install standardwebhooks)");
        }
        eprintln!("SKIPPED signatures_verify_with_the_python_reference_library: {why}");
        return;
    }
    let h = DeliveryHarness::start().await;
    let old = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([1u8; 32])
    );
    let new = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([2u8; 24])
    );
    let single = h.subscription(
        "single",
        "/single",
        json!({"signing": {"secrets": [old.clone()]}}),
    );
    let rotating = h.subscription(
        "rotating",
        "/rotating",
        json!({"signing": {"secrets": [old.clone(), new.clone()]}}),
    );
    let batched = h.subscription(
        "batched",
        "/batched",
        json!({"signing": {"secrets": [new.clone()]}, "batch": {"max_events": 3, "max_wait": "50ms"}}),
    );
    h.dispatcher
        .apply(&[single.clone(), rotating.clone(), batched.clone()]);
    let bodies = [
        json!({"alert": "sqli", "severity": "high"}),
        json!({"unicode": "café ✓", "nested": {"a": [1, 2, 3]}}),
        json!("a bare string"),
        json!({"n": 12345678901234i64, "f": 1.5}),
    ];
    let mut offset = 0;
    for sub in [&single, &rotating, &batched] {
        for body in &bodies {
            h.dispatcher.submit(h.job(sub, offset, body.clone())).await;
            offset += 1;
        }
    }
    assert_eq!(h.wait_settled(12, Duration::from_secs(10)).await.len(), 12);

    // One case per (request, secret): each secret alone must verify the request.
    let mut lines = Vec::new();
    for (route, secrets) in [
        ("/single", vec![&old]),
        ("/rotating", vec![&old, &new]),
        ("/batched", vec![&new]),
    ] {
        let requests = h.receiver.requests_to(route);
        assert!(!requests.is_empty(), "{route}");
        for r in requests {
            for secret in &secrets {
                lines.push(signatures::case(secret, &r));
            }
        }
    }
    let cases = lines.len();
    // A tampered body must fail, or the script could not fail at all.
    let r = h.receiver.requests_to("/single").pop().unwrap();
    let tampered = json!({
        "secret": old,
        "headers": {
            "webhook-id": r.header("webhook-id").unwrap(),
            "webhook-timestamp": r.header("webhook-timestamp").unwrap(),
            "webhook-signature": r.header("webhook-signature").unwrap(),
        },
        "body_b64": base64::engine::general_purpose::STANDARD.encode(b"{\"tampered\":true}"),
        "expect": "invalid",
    });
    lines.push(tampered);

    let out = signatures::verify(&lines);
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(out.success, "verification failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{} verified, 1 rejected as expected", cases)),
        "{stdout}"
    );
}
