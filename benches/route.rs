//! classify + match + render per event, with 1, 100 and 1,000 routes.
//!
//! Each rule set has one route per category (`cat-0`, `cat-1`, ...; every tenth a glob),
//! a severity floor on each and a JMESPath predicate on every fifth. The event (the Contrast
//! seed, classified by a source with JMESPath extractors) matches one route, whose
//! subscription renders it with `minimal` (`{id: hookline.event_id}`: the engine's own cost),
//! `raw` (a copy of the event) or the built-in `slack` template. `categories4` gives the event
//! a list of four categories (like Wazuh's `rule.groups`), the third of which the route names:
//! the index is asked once per category.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hookline::event::{Event, Origin};
use hookline::rules::{Router, RuleSet};

const SUBS: usize = 10;

fn rules(routes: usize, template: &str) -> (tempfile::TempDir, RuleSet) {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "sources:\n  - id: contrast\n    topics: [security.contrast]\n    category: category\n    severity: level\n    event_id: id\n    fields: {summary: subject}\nsubscriptions:\n",
    );
    for s in 0..SUBS {
        writeln!(
            text,
            "  - id: s{s}\n    url: http://127.0.0.1:9/{s}\n    template: {template}"
        )
        .unwrap();
    }
    text.push_str("templates:\n  - id: minimal\n    expression: \"{id: hookline.event_id}\"\n");
    text.push_str("routes:\n");
    for r in 0..routes {
        let category = if r % 10 == 9 {
            format!("\"glob{r}-*\"")
        } else {
            format!("cat-{r}")
        };
        writeln!(text, "  - id: r{r}\n    to: [s{}]\n    match:\n      category: {category}\n      min_severity: medium", r % SUBS).unwrap();
        if r % 5 == 0 {
            text.push_str("      expr: \"event.level != 'LOW'\"\n");
        }
    }
    std::fs::write(tmp.path().join("rules.yaml"), text).unwrap();
    let set = RuleSet::load_dir(tmp.path()).unwrap();
    (tmp, set)
}

fn event(category: impl Into<serde_json::Value>) -> Event {
    let text = std::fs::read_to_string("rules/examples/events/contrast.json").unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut e = v[0].take();
    e["category"] = category.into();
    Event::new(
        Origin {
            topic: "security.contrast".into(),
            partition: 0,
            offset: 1,
            index: 0,
        },
        e,
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    for template in ["minimal", "raw", "slack"] {
        for n in [1usize, 100, 1000] {
            let (_tmp, set) = rules(n, template);
            let router = Router::new(set);
            // Route n/2 (or 0): a predicate-carrying route for every n, so the worst kind
            // of match is measured.
            let target = (n / 2) / 5 * 5;
            let ev = event(format!("cat-{target}"));
            let out = router.route(&ev);
            assert_eq!(out.routes, vec![format!("r{target}")]);
            assert!(out.deliveries[0].body.as_ref().is_some_and(Result::is_ok));
            g.bench_with_input(BenchmarkId::new(template, n), &ev, |b, ev| {
                b.iter(|| black_box(router.route(black_box(ev))))
            });
        }
    }
    for n in [1usize, 100, 1000] {
        let (_tmp, set) = rules(n, "minimal");
        let router = Router::new(set);
        let target = (n / 2) / 5 * 5;
        let ev = event(serde_json::json!([
            "syslog",
            "sshd",
            format!("cat-{target}"),
            "x"
        ]));
        let out = router.route(&ev);
        assert_eq!(out.routes, vec![format!("r{target}")]);
        assert_eq!(out.categories.len(), 4);
        g.bench_with_input(BenchmarkId::new("categories4", n), &ev, |b, ev| {
            b.iter(|| black_box(router.route(black_box(ev))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
