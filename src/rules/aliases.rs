//! Normalising vendor severities: built-in aliases, per-rule-set and per-source aliases,
//! numeric bands, and the default an unknown severity falls to.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::Severity;

/// Built-in aliases, lower case. Sources: Contrast notification levels (CRITICAL..NOTE),
/// Wallarm threat/risk levels and Netography severities (low/medium/high), syslog (RFC 5424)
/// and Falco priorities (emergency..debug), and common words of other tools.
pub const BUILTIN_ALIASES: &[(&str, Severity)] = &[
    ("info", Severity::Info),
    ("low", Severity::Low),
    ("medium", Severity::Medium),
    ("high", Severity::High),
    ("critical", Severity::Critical),
    // Contrast
    ("note", Severity::Info),
    // syslog / Falco, most severe first
    ("emergency", Severity::Critical),
    ("emerg", Severity::Critical),
    ("alert", Severity::Critical),
    ("crit", Severity::Critical),
    ("fatal", Severity::Critical),
    ("error", Severity::High),
    ("err", Severity::High),
    ("warning", Severity::Medium),
    ("warn", Severity::Medium),
    ("notice", Severity::Low),
    ("informational", Severity::Info),
    ("information", Severity::Info),
    ("debug", Severity::Info),
    ("trace", Severity::Info),
    // Wallarm / CVSS-style words and others
    ("moderate", Severity::Medium),
    ("severe", Severity::High),
    ("major", Severity::High),
    ("minor", Severity::Low),
    ("none", Severity::Info),
    ("p1", Severity::Critical),
    ("p2", Severity::High),
    ("p3", Severity::Medium),
    ("p4", Severity::Low),
    ("p5", Severity::Info),
];

static BUILTIN: LazyLock<HashMap<&'static str, Severity>> =
    LazyLock::new(|| BUILTIN_ALIASES.iter().copied().collect());

/// Looks up a built-in alias, case-insensitively.
pub fn builtin(word: &str) -> Option<Severity> {
    lookup(&BUILTIN, word)
}

fn lookup<K: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
    map: &HashMap<K, Severity>,
    word: &str,
) -> Option<Severity> {
    let word = word.trim();
    // Most vendors already send lower case; only allocate when they do not.
    if word.bytes().any(|b| b.is_ascii_uppercase()) {
        map.get(word.to_ascii_lowercase().as_str()).copied()
    } else {
        map.get(word).copied()
    }
}

/// One numeric band: `min <= value <= max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// Inclusive lower bound.
    pub min: f64,
    /// Inclusive upper bound.
    pub max: f64,
    /// The level.
    pub severity: Severity,
}

const fn band(min: f64, max: f64, severity: Severity) -> Band {
    Band { min, max, severity }
}

/// Named band presets.
pub fn preset(name: &str) -> Option<Vec<Band>> {
    use Severity::*;
    Some(match name {
        // CVSS v3 qualitative ratings (0-10). Bands are tried in order, so each only needs
        // its lower bound; the shared upper bound rejects out-of-scale values.
        "cvss" => vec![
            band(9.0, 10.0, Critical),
            band(7.0, 10.0, High),
            band(4.0, 10.0, Medium),
            band(0.1, 10.0, Low),
            band(0.0, 10.0, Info),
        ],
        // 0-15 scores, split evenly-ish from the top.
        "score15" => vec![
            band(13.0, 15.0, Critical),
            band(10.0, 15.0, High),
            band(6.0, 15.0, Medium),
            band(3.0, 15.0, Low),
            band(0.0, 15.0, Info),
        ],
        // syslog numeric severities: 0 (emergency) is the most severe.
        "syslog" => vec![
            band(0.0, 2.0, Critical),
            band(3.0, 3.0, High),
            band(4.0, 4.0, Medium),
            band(5.0, 5.0, Low),
            band(6.0, 7.0, Info),
        ],
        // Priorities 1..5 where 1 is the most severe.
        "priority5" => vec![
            band(1.0, 1.0, Critical),
            band(2.0, 2.0, High),
            band(3.0, 3.0, Medium),
            band(4.0, 4.0, Low),
            band(5.0, 5.0, Info),
        ],
        _ => return None,
    })
}

/// The preset names, for error messages.
pub const PRESETS: &[&str] = &["cvss", "score15", "syslog", "priority5"];

/// How one source normalises severities.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Source and rule-set aliases, lower case; consulted before the built-ins.
    aliases: HashMap<String, Severity>,
    bands: Vec<Band>,
    /// Where unknown severities fall.
    pub default: Severity,
}

/// What a raw severity normalised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalised {
    /// Understood.
    Known(Severity),
    /// Not understood: the default, to be counted.
    Unknown(Severity),
    /// The event had none: the default, not counted.
    Absent(Severity),
}

impl Normalised {
    /// The level in every case.
    pub fn severity(self) -> Severity {
        match self {
            Normalised::Known(s) | Normalised::Unknown(s) | Normalised::Absent(s) => s,
        }
    }
}

impl Scale {
    /// A scale with extra `aliases` (any case), `bands` and a `default`.
    pub fn new(
        aliases: impl IntoIterator<Item = (String, Severity)>,
        bands: Vec<Band>,
        default: Severity,
    ) -> Scale {
        Scale {
            aliases: aliases
                .into_iter()
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v))
                .collect(),
            bands,
            default,
        }
    }

    /// Normalises a textual severity (a number in text goes through the bands).
    pub fn text(&self, raw: &str) -> Normalised {
        if let Some(s) = lookup(&self.aliases, raw).or_else(|| builtin(raw)) {
            return Normalised::Known(s);
        }
        match raw.trim().parse::<f64>() {
            Ok(n) => self.number(n),
            Err(_) => Normalised::Unknown(self.default),
        }
    }

    /// Normalises a numeric severity through the bands.
    pub fn number(&self, n: f64) -> Normalised {
        self.bands
            .iter()
            .find(|b| b.min <= n && n <= b.max)
            .map_or(Normalised::Unknown(self.default), |b| {
                Normalised::Known(b.severity)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::*;

    #[test]
    fn builtin_aliases_are_case_insensitive_and_cover_vendors() {
        for (word, want) in [
            ("CRITICAL", Critical), // Contrast
            ("NOTE", Info),
            ("Medium", Medium),      // Wallarm threat
            ("high", High),          // Netography
            ("Emergency", Critical), // Falco
            ("Informational", Info),
            ("warn", Medium),
            ("err", High),
            ("notice", Low),
            ("fatal", Critical),
            ("debug", Info),
            (" crit ", Critical),
        ] {
            assert_eq!(builtin(word), Some(want), "{word}");
        }
        assert_eq!(builtin("whatever"), None);
    }

    #[test]
    fn source_aliases_win_over_builtins() {
        let s = Scale::new([("ERROR".to_string(), Critical)], vec![], Info);
        assert_eq!(s.text("error"), Normalised::Known(Critical));
        assert_eq!(s.text("warning"), Normalised::Known(Medium));
    }

    #[test]
    fn bands_and_presets() {
        let cvss = Scale::new([], preset("cvss").unwrap(), Low);
        assert_eq!(cvss.number(9.8), Normalised::Known(Critical));
        assert_eq!(cvss.number(7.0), Normalised::Known(High));
        assert_eq!(cvss.text("5.3"), Normalised::Known(Medium));
        assert_eq!(cvss.number(0.0), Normalised::Known(Info));
        assert_eq!(cvss.number(8.995), Normalised::Known(High));
        assert_eq!(cvss.number(11.0), Normalised::Unknown(Low));
        let inverted = Scale::new([], preset("priority5").unwrap(), Info);
        assert_eq!(inverted.number(1.0), Normalised::Known(Critical));
        assert_eq!(inverted.number(5.0), Normalised::Known(Info));
        let syslog = Scale::new([], preset("syslog").unwrap(), Info);
        assert_eq!(syslog.number(3.0), Normalised::Known(High));
        let s15 = Scale::new([], preset("score15").unwrap(), Info);
        assert_eq!(s15.number(14.0), Normalised::Known(Critical));
        for p in PRESETS {
            assert!(preset(p).is_some());
        }
    }

    #[test]
    fn unknown_falls_to_default() {
        let s = Scale::new([], vec![], Medium);
        assert_eq!(s.text("purple"), Normalised::Unknown(Medium));
        assert_eq!(s.number(3.0), Normalised::Unknown(Medium));
        assert_eq!(s.text("purple").severity(), Medium);
    }
}
