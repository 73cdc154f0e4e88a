//! What operators write: the serde model of one rule file's sections.
//!
//! Each list entry is deserialised on its own (see `load.rs`), so one bad entry does not hide
//! the problems of the others. Expressions are `Spanned` so a JMESPath error can point inside
//! them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use marked_yaml::Spanned;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

/// The top-level sections a rule file may have.
pub const SECTIONS: &[&str] = &[
    "sources",
    "severity",
    "subscriptions",
    "templates",
    "routes",
];

/// A `sources:` entry: how events of some topics are classified.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique id (the `source` label of `severity_unknown`).
    pub id: Spanned<String>,
    /// Topic names or globs (`security.*`).
    pub topics: Vec<Spanned<String>>,
    /// JMESPath giving the category: a string, or a list of them.
    #[serde(default)]
    pub category: Option<Spanned<String>>,
    /// JMESPath giving the primary category, when it is not the first.
    #[serde(default)]
    pub primary_category: Option<Spanned<String>>,
    /// JMESPath giving the severity (a string or a number).
    #[serde(default)]
    pub severity: Option<Spanned<String>>,
    /// JMESPath giving the event id.
    #[serde(default)]
    pub event_id: Option<Spanned<String>>,
    /// Extra derived fields: name -> JMESPath.
    #[serde(default)]
    pub fields: BTreeMap<String, Spanned<String>>,
    /// Category when the extractor finds none.
    #[serde(default)]
    pub default_category: Option<String>,
    /// Severity when the event's cannot be understood.
    #[serde(default)]
    pub default_severity: Option<Spanned<String>>,
    /// Extra aliases for this source: vendor word -> canonical level.
    #[serde(default)]
    pub aliases: BTreeMap<String, Spanned<String>>,
    /// Numeric bands: a preset name or a list.
    #[serde(default)]
    pub bands: Option<Spanned<BandsConfig>>,
}

/// Numeric severity bands.
#[derive(Debug, Clone, PartialEq)]
pub enum BandsConfig {
    /// A named preset (`cvss`, `score15`, `syslog`, `priority5`).
    Preset(String),
    /// Bands tried in order; the first that holds the value wins.
    List(Vec<BandConfig>),
}

/// One band: `min <= value <= max` (either bound may be absent).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandConfig {
    /// Lowest value, inclusive.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest value, inclusive.
    #[serde(default)]
    pub max: Option<f64>,
    /// The canonical level.
    pub severity: String,
}

impl<'de> Deserialize<'de> for BandsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BandsConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a preset name or a list of {min, max, severity}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BandsConfig, E> {
                Ok(BandsConfig::Preset(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BandsConfig, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(BandsConfig::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `severity:` section: settings for every source.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    /// Extra aliases for every source.
    #[serde(default)]
    pub aliases: BTreeMap<String, Spanned<String>>,
    /// Default severity for sources that set none.
    #[serde(default)]
    pub default: Option<Spanned<String>>,
}

/// A `templates:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Unique id; subscriptions name it in `template:`.
    pub id: Spanned<String>,
    /// The JMESPath, inline.
    #[serde(default)]
    pub expression: Option<Spanned<String>>,
    /// Or a file holding it, relative to the rule file.
    #[serde(default)]
    pub file: Option<Spanned<String>>,
    /// Or a built-in template, given other `vars`.
    #[serde(default)]
    pub builtin: Option<Spanned<String>>,
    /// Values the expression sees as `vars` (read from the node, see `load.rs`).
    #[serde(default)]
    pub vars: Option<IgnoredAny>,
}

/// A `routes:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique id.
    pub id: Spanned<String>,
    /// For people.
    #[serde(default)]
    pub description: Option<String>,
    /// Only events of these topics (names or globs); all topics when absent.
    #[serde(default)]
    pub topics: Vec<String>,
    /// The condition; every event when absent.
    #[serde(default, rename = "match")]
    pub when: Option<ConditionConfig>,
    /// Subscriptions that receive matching events (empty: a drop rule, with `stop`).
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// Later routes are not evaluated once this one matched.
    #[serde(default)]
    pub stop: bool,
    /// Suppress repeats within a window.
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
}

/// A condition: every key present must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    /// The category is one of these (globs allowed).
    #[serde(default, deserialize_with = "one_or_many")]
    pub category: Vec<String>,
    /// The severity is at least this.
    #[serde(default)]
    pub min_severity: Option<Spanned<String>>,
    /// The severity is one of these.
    #[serde(default, deserialize_with = "one_or_many")]
    pub severity: Vec<String>,
    /// A JMESPath predicate over `{event, hookline}`; holds when truthy.
    #[serde(default)]
    pub expr: Option<Spanned<String>>,
    /// The inner condition does not hold.
    #[serde(default)]
    pub not: Option<Box<ConditionConfig>>,
    /// Every inner condition holds.
    #[serde(default)]
    pub all: Vec<ConditionConfig>,
    /// At least one inner condition holds.
    #[serde(default)]
    pub any: Vec<ConditionConfig>,
}

/// A route's dedup window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// JMESPath over `{event, hookline}` giving the key.
    pub key: Spanned<String>,
    /// How long a delivered key suppresses repeats.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

/// A string or a list of strings (`category: ATTACK_*` or `category: [a, b]`).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}
