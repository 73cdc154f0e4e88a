//! The playground's sub-router over HTTP (the page itself is driven in a browser by
//! `playground_browser.rs`): its switch, its assets, and its API's dry runs, which never change
//! the rules in force nor the live router's dedup memory.

use std::path::Path;
use std::sync::Arc;

use hookline::admin::{self, AdminState};
use hookline::event::{Event, Origin};
use hookline::metrics::Metrics;
use hookline::rules::{Router, RuleSet};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Admin {
    base: String,
    router: Router,
    stop: CancellationToken,
    http: reqwest::Client,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn env(name: &str) -> Option<String> {
    (name == "HOOKLINE_DEV_RECEIVER").then(|| "http://127.0.0.1:9".into())
}

async fn admin(playground: bool) -> Admin {
    let rules = RuleSet::load_dir_with_env(Path::new("rules/examples"), &env).unwrap();
    let metrics = Metrics::new();
    let router = Router::with_metrics(rules, metrics.clone());
    let state = AdminState {
        metrics,
        router: router.clone(),
        rules_dir: "rules/examples".into(),
        settings: hookline::config::AdminConfig {
            playground,
            ..Default::default()
        }
        .validate()
        .unwrap(),
        webhooks: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    tokio::spawn(admin::serve_on(listener, state, stop.clone()));
    Admin {
        base,
        router,
        stop,
        http: reqwest::Client::new(),
    }
}

impl Admin {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn run(&self, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}/playground/api/run", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(format!("rules/examples/events/{name}")).unwrap()
}

#[tokio::test]
async fn the_switch_turns_the_whole_playground_off() {
    let off = admin(false).await;
    for path in [
        "/playground",
        "/playground/",
        "/playground/app.js",
        "/playground/api/rules",
    ] {
        assert_eq!(off.get(path).await.status(), 404, "{path}");
    }
    assert_eq!(off.get("/healthz").await.status(), 200);
    let on = admin(true).await;
    let page = on.get("/playground/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("routing playground"));
    for (path, kind) in [
        ("/playground/app.js", "text/javascript"),
        ("/playground/style.css", "text/css"),
    ] {
        let res = on.get(path).await;
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
    }
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/playground", on.base))
        .send()
        .await
        .unwrap();
    assert!(redirect.status().is_redirection());
    assert_eq!(redirect.headers()["location"], "playground/");
}

#[tokio::test]
async fn the_rules_answer_lists_topics_examples_and_editable_texts_without_vars() {
    let a = admin(true).await;
    let res = a.get("/playground/api/rules").await;
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("dev-routing-key"),
        "template vars (credentials) are never shown"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let topics: Vec<&str> = v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for t in [
        "security.contrast",
        "security.wazuh",
        "security.ecs",
        "security.netography.*",
    ] {
        assert!(topics.contains(&t), "{topics:?}");
    }
    let route = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "auth-failures")
        .unwrap();
    assert_eq!(route["place"], "examples/routes.yaml:61");
    assert_eq!(
        route["text"],
        "id: auth-failures\ntopics: [security.wazuh]\nmatch:\n  category: [\"authentication_fail*\"]\n  min_severity: medium\nto: [slack]\n"
    );
    let pd = v["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "pagerduty-oncall")
        .unwrap();
    assert_eq!(pd["subscriptions"], json!(["pagerduty"]));
    assert!(pd["text"].as_str().unwrap().contains("vars.routing_key"));
    let examples = v["examples"].as_array().unwrap();
    assert!(examples
        .iter()
        .any(|e| e["group"] == "samples" && e["name"] == "wazuh-sshd"));
    assert!(examples.iter().any(|e| e["group"] == "cases.yaml"));
}

#[tokio::test]
async fn a_run_is_the_dry_run_of_the_admin_api_plus_a_case() {
    let a = admin(true).await;
    let event = sample("wazuh-sshd.json");
    let run = a
        .run(json!({"topic": "security.wazuh", "event": event}))
        .await;
    assert_eq!(run["problems"], json!([]));
    assert_eq!(run["draft"], false);
    let api: Value = a
        .http
        .post(format!("{}/api/v1/rules/test", a.base))
        .json(&json!({"topic": "security.wazuh", "event": serde_json::from_str::<Value>(&event).unwrap()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (ours, theirs) = (&run["events"][0], &api["events"][0]);
    for key in [
        "category",
        "categories",
        "severity",
        "source",
        "routes",
        "not_matched",
        "suppressed",
    ] {
        assert_eq!(ours[key], theirs[key], "{key}");
    }
    assert_eq!(
        ours["deliveries"][0]["body"]["text"],
        theirs["deliveries"][0]["body"]["text"]
    );
    assert!(run["case"].as_str().unwrap().starts_with(
        "  - name: \"security.wazuh: authentication_failures\"\n    topic: \"security.wazuh\"\n"
    ));
}

#[tokio::test]
async fn edits_are_dry_runs_that_leave_the_rules_in_force_and_the_dedup_memory_alone() {
    let a = admin(true).await;
    let before = a.router.current();
    let run = a
        .run(json!({
            "topic": "security.contrast",
            "event": sample("contrast.json"),
            "edits": {
                "templates": {"pagerduty-oncall": "{sev: hookline.severity, cats: hookline.categories}"},
                "routes": {"soar-catch-all": "id: soar-catch-all\nmatch: {min_severity: critical, category: NOPE}\nto: [soar]\n"}
            }
        }))
        .await;
    assert_eq!(run["draft"], true);
    let e = &run["events"][0];
    assert_eq!(
        e["deliveries"][0]["body"],
        json!({"sev": "critical", "cats": ["ATTACK_ALERT"]})
    );
    assert_eq!(e["routes"], json!(["contrast-attacks"]));
    let why = e["not_matched"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["route"] == "soar-catch-all")
        .unwrap();
    assert_eq!(why["reason"], "category ATTACK_ALERT does not match [NOPE]");
    assert!(
        Arc::ptr_eq(&before, &a.router.current()),
        "the rules in force are the same set"
    );

    // Two runs of a repeated Netography event: each run has its own dedup memory, and the live
    // router's memory is untouched.
    let ongoing = sample("netography-ongoing.json");
    for _ in 0..2 {
        let run = a
            .run(json!({"topic": "security.netography", "event": ongoing}))
            .await;
        assert_eq!(run["events"][0]["suppressed"], json!([]));
    }
    let origin = Origin {
        topic: "security.netography".into(),
        partition: 0,
        offset: 0,
        index: 0,
    };
    let live = a
        .router
        .route(&Event::new(origin, serde_json::from_str(&ongoing).unwrap()));
    assert!(live.suppressed.is_empty(), "{:?}", live.suppressed);
    assert_eq!(
        a.router
            .metrics()
            .render()
            .matches("hookline_render_errors_total{")
            .count(),
        0
    );
}

#[tokio::test]
async fn problems_come_back_with_their_positions() {
    let a = admin(true).await;
    let run = a
        .run(json!({"topic": "t", "event": "{\"a\": 1,\n \"b\": }"}))
        .await;
    assert_eq!(run["events"], json!([]));
    assert_eq!(run["case"], Value::Null);
    assert_eq!(
        run["problems"],
        json!([{"kind": "event", "id": "", "line": 2, "col": 7, "message": "invalid JSON: expected value"}])
    );
    let run = a
        .run(json!({
            "topic": " ",
            "event": "{}",
            "edits": {
                "templates": {"slack": "{text: event.x", "ghost": "event"},
                "routes": {"intrusions": "id: intrusions\nmatch:\n  min_severity: urgent\nto: [pagerduty]\n"}
            }
        }))
        .await;
    let got: Vec<(String, String, u64, u64)> = run["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["id"].as_str().unwrap().to_string(),
                p["line"].as_u64().unwrap(),
                p["col"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("topic".into(), "".into(), 0, 0),
            ("template".into(), "ghost".into(), 0, 0),
            ("template".into(), "slack".into(), 1, 15),
            ("route".into(), "intrusions".into(), 3, 17),
        ]
    );
    let many: Vec<Value> = (0..1001).map(|i| json!({"id": i})).collect();
    let run = a
        .run(json!({"topic": "t", "event": serde_json::to_string(&many).unwrap()}))
        .await;
    assert_eq!(
        run["problems"][0]["message"],
        "1001 events; a run takes at most 1000"
    );
}
