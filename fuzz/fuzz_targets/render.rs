//! Classification and template rendering: any JSON a producer writes is classified (category,
//! severity), matched and rendered by the example rules (every built-in template and the
//! custom ones), never a panic; a template that cannot render says why.
#![no_main]

use std::sync::OnceLock;

use hookline::event::{Event, Origin};
use hookline::rules::{Router, RuleSet};
use libfuzzer_sys::fuzz_target;

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/examples");
        // The examples read secrets and URLs from the environment: any value will do (and
        // no `NAME_FILE` beside `NAME`).
        let env =
            |name: &str| (!name.ends_with("_FILE")).then(|| "https://example.com/x".to_string());
        let rules = RuleSet::load_dir_with_env(&dir, &env).expect("the example rules load");
        Router::new(rules)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if !payload.is_object() {
        return;
    }
    for topic in [
        "security.contrast",
        "security.wallarm",
        "security.netography",
        "other",
    ] {
        let origin = Origin {
            topic: topic.into(),
            partition: 0,
            offset: 1,
            index: 0,
        };
        let routing = router().route_dry(&Event::new(origin, payload.clone()));
        for delivery in routing.deliveries {
            if let Some(Err(e)) = delivery.body {
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
