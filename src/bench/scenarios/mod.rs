//! The measurements `hookline bench` runs, each a function over the harness:
//!
//! - [`throughput`]: a preloaded topic read by a fresh consumer group, delivered as fast as the
//!   router can (one event per request, batched, small or large events), next to the same-run
//!   ceilings (`wrk` against the same receiver; a bare consumer on the same broker).
//! - [`latency`]: events produced at a fixed rate below saturation while the router runs;
//!   produce-to-receive percentiles, CPU per event and idle CPU.
//! - [`isolation`]: a healthy subscription's throughput beside one that cannot keep up,
//!   divided by its throughput alone (issue 7).
//! - [`backlog`]: source commits beside a receiver refusing connections, and memory with a
//!   million events behind a 1/s subscription (issue 7).
//! - [`fleet`]: three instances in keyed mode share one rate-limited subscription; one is
//!   killed (issue 7).
//!
//! Every scenario runs each [`Variant`] (a router binary and its environment) once per round,
//! alternating, so a before/after comparison shares the machine's noise.

pub mod backlog;
pub mod fleet;
pub mod isolation;
pub mod latency;
pub mod throughput;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::router::RouterSpec;

/// The benchmark topic.
pub const TOPIC: &str = "bench.events";

/// A router under test: a label, a binary (default: this one), and environment (usually
/// `HOOKLINE_*` configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The label in reports.
    pub label: String,
    /// The `hookline` binary to run as the router.
    pub bin: Option<PathBuf>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl Variant {
    /// This binary, default configuration.
    pub fn this(label: &str) -> Self {
        Variant {
            label: label.into(),
            bin: None,
            env: Vec::new(),
        }
    }

    /// A router spec for this variant.
    pub fn spec(&self, label: &str, brokers: &str, group: &str, rules: String) -> RouterSpec {
        let mut spec = RouterSpec::new(label, brokers, group, rules);
        spec.bin = self.bin.clone();
        spec.env = self.env.clone();
        spec
    }
}

/// `LABEL [bin=PATH] [NAME=VALUE ...]`, e.g.
/// `fw5 HOOKLINE_KAFKA__OPTIONS__FETCH_WAIT_MAX_MS=5` or `main bin=/tmp/hookline-main`.
impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut words = s.split_whitespace();
        let label = words
            .next()
            .filter(|l| !l.contains('='))
            .ok_or_else(|| format!("{s:?}: a variant starts with its label"))?;
        let mut variant = Variant::this(label);
        for word in words {
            match word.split_once('=') {
                Some(("bin", path)) => variant.bin = Some(PathBuf::from(path)),
                Some((name, value)) if !name.is_empty() => {
                    variant.env.push((name.to_string(), value.to_string()))
                }
                _ => return Err(format!("{word:?}: expected bin=PATH or NAME=VALUE")),
            }
        }
        Ok(variant)
    }
}

/// What every scenario shares.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rounds; each runs every variant once.
    pub rounds: usize,
    /// The routers under test.
    pub variants: Vec<Variant>,
    /// How long `wrk` runs for the ceiling; `None` skips it.
    pub wrk: Option<Duration>,
    /// Longest one run may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 2,
            variants: vec![Variant::this("this")],
            wrk: Some(Duration::from_secs(5)),
            timeout: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_from_text() {
        let v: Variant = "fw5 HOOKLINE_KAFKA__OPTIONS__FETCH_WAIT_MAX_MS=5 bin=/tmp/h"
            .parse()
            .unwrap();
        assert_eq!(v.label, "fw5");
        assert_eq!(v.bin, Some(PathBuf::from("/tmp/h")));
        assert_eq!(
            v.env,
            vec![(
                "HOOKLINE_KAFKA__OPTIONS__FETCH_WAIT_MAX_MS".to_string(),
                "5".to_string()
            )]
        );
        assert_eq!("base".parse::<Variant>().unwrap(), Variant::this("base"));
        assert!("".parse::<Variant>().is_err());
        assert!("a=b".parse::<Variant>().is_err());
        assert!("x =1".parse::<Variant>().is_err());
    }
}
