//! The example events the playground offers: the seed vendors' samples embedded in the binary,
//! and the cases of the routing-test files in the rules directory (the team's own events).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::dev::samples;
use crate::rules::cases;

/// One example.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// Shown in the list.
    pub name: String,
    /// Where it comes from: `samples`, or the cases file's name.
    pub group: String,
    /// The topic it belongs to.
    pub topic: String,
    /// The event, or an array of events.
    pub event: Value,
}

/// Every example: the samples, then the cases of `rules_dir`.
pub fn all(rules_dir: &Path) -> Vec<Example> {
    let mut out: Vec<Example> = samples::EMBEDDED
        .iter()
        .filter_map(|(name, text)| {
            Some(Example {
                name: name.trim_end_matches(".json").to_string(),
                group: "samples".into(),
                topic: samples::topic_for(name),
                event: serde_json::from_str(text).ok()?,
            })
        })
        .collect();
    out.extend(cases::examples_in(rules_dir).into_iter().map(|c| {
        let file = c.place.split(':').next().unwrap_or_default().to_string();
        Example {
            name: format!("{} ({})", c.name, c.place),
            group: file,
            topic: c.topic,
            event: c.event,
        }
    }));
    out
}
