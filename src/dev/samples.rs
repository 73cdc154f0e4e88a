//! The seed vendors' sample events (`rules/examples/events`): which topic each belongs to, and
//! a copy embedded in the binary so the playground offers them wherever hookline runs.

/// The topic of a sample file: `<vendor>[-anything].json` belongs to `security.<vendor>`.
pub fn topic_for(file_name: &str) -> String {
    let stem = file_name.strip_suffix(".json").unwrap_or(file_name);
    let vendor = stem.split('-').next().unwrap_or_default();
    format!("security.{vendor}")
}

macro_rules! sample {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../rules/examples/events/", $name)),
        )
    };
}

/// File name and text of every sample, as in `rules/examples/events` when this binary was
/// built (a test checks that none is missing).
pub const EMBEDDED: &[(&str, &str)] = &[
    sample!("contrast.json"),
    sample!("ecs-suricata.json"),
    sample!("netography-end.json"),
    sample!("netography-lifecycle.json"),
    sample!("netography-ongoing.json"),
    sample!("netography-start.json"),
    sample!("wallarm-hit.json"),
    sample!("wallarm-vuln.json"),
    sample!("wazuh-sshd.json"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_file_is_embedded_and_is_json() {
        let mut on_disk: Vec<String> = std::fs::read_dir("rules/examples/events")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
        assert_eq!(embedded, on_disk);
        for (name, text) in EMBEDDED {
            serde_json::from_str::<serde_json::Value>(text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert_eq!(topic_for("wazuh-sshd.json"), "security.wazuh");
        assert_eq!(topic_for("contrast.json"), "security.contrast");
    }
}
