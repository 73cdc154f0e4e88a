//! Routes one event a given number of times, for counting instructions with callgrind, which
//! gives the same count run after run on a busy machine (timings do not):
//!
//! ```sh
//! cargo build --release --example route_repeat
//! for n in 0 2000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/route_repeat 1000 minimal $n [list]
//! done   # (second total - first total) / 2000 = instructions per routed event
//! ```
//!
//! The rule set is `benches/route.rs`'s: ROUTES routes (one per category, every tenth a glob),
//! ten subscriptions rendering TEMPLATE (`minimal`, `raw`, `slack`, ...), and the Contrast
//! sample whose category matches the middle route; with `list`, its category is a list of four
//! of which the third matches.

use std::fmt::Write as _;
use std::hint::black_box;

use hookline::event::{Event, Origin};
use hookline::rules::{Router, RuleSet};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: route_repeat ROUTES TEMPLATE TIMES [list]";
    let routes: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let template = args.get(2).expect(usage);
    let times: usize = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let list = args.get(4).is_some_and(|a| a == "list");

    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "sources:\n  - id: contrast\n    topics: [security.contrast]\n    category: category\n    severity: level\n    event_id: id\n    fields: {summary: subject}\nsubscriptions:\n",
    );
    for s in 0..10 {
        writeln!(
            text,
            "  - id: s{s}\n    url: http://127.0.0.1:9/{s}\n    template: {template}"
        )
        .unwrap();
    }
    text.push_str(
        "templates:\n  - id: minimal\n    expression: \"{id: hookline.event_id}\"\nroutes:\n",
    );
    for r in 0..routes {
        let category = if r % 10 == 9 {
            format!("\"glob{r}-*\"")
        } else {
            format!("cat-{r}")
        };
        writeln!(text, "  - id: r{r}\n    to: [s{}]\n    match:\n      category: {category}\n      min_severity: medium", r % 10).unwrap();
        if r % 5 == 0 {
            text.push_str("      expr: \"event.level != 'LOW'\"\n");
        }
    }
    std::fs::write(dir.path().join("rules.yaml"), text).unwrap();
    let router = Router::new(RuleSet::load_dir(dir.path()).unwrap());

    let sample = std::fs::read_to_string("rules/examples/events/contrast.json").unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&sample).unwrap();
    let mut payload = v[0].take();
    let target = (routes / 2) / 5 * 5;
    payload["category"] = if list {
        serde_json::json!(["syslog", "sshd", format!("cat-{target}"), "x"])
    } else {
        format!("cat-{target}").into()
    };
    let origin = Origin {
        topic: "security.contrast".into(),
        partition: 0,
        offset: 1,
        index: 0,
    };
    let event = Event::new(origin, payload);
    assert_eq!(router.route(&event).routes, vec![format!("r{target}")]);
    for _ in 0..times {
        black_box(router.route(black_box(&event)));
    }
}
