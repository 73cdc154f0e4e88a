//! Severity and band parsing: any text or number a vendor sends normalises to a level (known,
//! or the default), never a panic; the canonical names and the numbers inside a band are
//! always understood.
#![no_main]

use std::str::FromStr;

use hookline::rules::aliases::{self, Normalised, Scale, PRESETS};
use hookline::rules::severity::Severity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(level) = Severity::from_str(&text) {
        assert_eq!(Severity::from_str(level.as_str()), Ok(level));
    }
    let _ = aliases::builtin(&text);
    let custom = Scale::new(
        [
            ("sev-1".to_string(), Severity::Critical),
            (text.to_string(), Severity::Low),
        ],
        Vec::new(),
        Severity::Info,
    );
    if !text.trim().is_empty() {
        assert_eq!(
            custom.text(&text),
            Normalised::Known(Severity::Low),
            "{text:?}"
        );
    }
    let number = text.trim().parse::<f64>().ok();
    for preset in PRESETS {
        let bands = aliases::preset(preset).expect("a preset");
        let scale = Scale::new(Vec::new(), bands, Severity::Medium);
        let normalised = scale.text(&text);
        for level in Severity::ALL {
            assert_eq!(scale.text(level.as_str()), Normalised::Known(level));
        }
        if let Some(n) = number {
            assert_eq!(
                scale.number(n).severity(),
                normalised.severity(),
                "{text:?}"
            );
        }
    }
});
