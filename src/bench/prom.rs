//! Reads the Prometheus text format a router serves on `/metrics`, enough to sum counters and
//! gauges by label. Written here because the harness needs only `name{labels} value` lines and
//! the `prometheus` crate this project uses encodes but does not parse.

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_sum`, `_count` suffixes as written).
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// Every sample of one scrape.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Sample>);

impl Samples {
    /// Parses the text format; lines it cannot read are skipped.
    pub fn parse(text: &str) -> Samples {
        Samples(text.lines().filter_map(parse_line).collect())
    }

    /// The sum of `name` over the samples whose labels include every `(label, value)` of
    /// `filter` (0 when none does).
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, after) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, after)
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, Vec::new(), rest)
        }
    };
    // A timestamp may follow the value.
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"}` -> the pairs and what follows the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_string(), value));
        s = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP hookline_deliveries_total Settled deliveries.
# TYPE hookline_deliveries_total counter
hookline_deliveries_total{outcome="delivered",subscription="s0"} 150000
hookline_deliveries_total{outcome="retry_topic",subscription="s0"} 12
hookline_deliveries_total{outcome="delivered",subscription="s1"} 7
hookline_events_consumed_total{topic="bench.events"} 300000
hookline_inflight_messages 42
odd{label="a \"quoted\" \\ value, with } brace"} 1 1700000000000
"#;

    #[test]
    fn sums_by_label() {
        let s = Samples::parse(TEXT);
        assert_eq!(s.sum("hookline_deliveries_total", &[]), 150019.0);
        assert_eq!(
            s.sum("hookline_deliveries_total", &[("outcome", "delivered")]),
            150007.0
        );
        assert_eq!(
            s.sum(
                "hookline_deliveries_total",
                &[("subscription", "s0"), ("outcome", "delivered")]
            ),
            150000.0
        );
        assert_eq!(s.sum("hookline_inflight_messages", &[]), 42.0);
        assert_eq!(s.sum("missing", &[]), 0.0);
    }

    #[test]
    fn escaped_label_values() {
        let s = Samples::parse(TEXT);
        let odd = s.0.iter().find(|s| s.name == "odd").unwrap();
        assert_eq!(odd.labels[0].1, r#"a "quoted" \ value, with } brace"#);
        assert_eq!(odd.value, 1.0);
    }
}
