//! The category index: which routes could match an event of a given category, so that most
//! routes are never evaluated.
//!
//! Each route's top-level category test is lifted out of its condition (see
//! [`Cond::take_category`](super::matcher::Cond::take_category)) and filed here under its
//! literal names (a hash lookup) or its globs (one `GlobSet` for all routes). Routes without a
//! category test are candidates for every event.

use std::collections::HashMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::matcher::NameMatch;

/// Candidate routes by category. Route numbers are positions in rule order.
#[derive(Debug, Default)]
pub struct RouteIndex {
    exact: HashMap<String, Vec<u32>>,
    globs: GlobSet,
    glob_route: Vec<u32>,
    any: Vec<u32>,
}

impl RouteIndex {
    /// Indexes routes given their category tests, in rule order.
    pub fn new(categories: &[Option<NameMatch>]) -> Result<RouteIndex, globset::Error> {
        let mut idx = RouteIndex::default();
        let mut builder = GlobSetBuilder::new();
        for (i, c) in categories.iter().enumerate() {
            let i = i as u32;
            match c {
                None => idx.any.push(i),
                Some(m) => {
                    for name in &m.exact {
                        let routes = idx.exact.entry(name.clone()).or_default();
                        if routes.last() != Some(&i) {
                            routes.push(i);
                        }
                    }
                    for p in &m.patterns {
                        builder.add(Glob::new(p)?);
                        idx.glob_route.push(i);
                    }
                }
            }
        }
        idx.globs = builder.build()?;
        Ok(idx)
    }

    /// Routes that may match `category`, in rule order, each once, into `out` (cleared).
    pub fn candidates(&self, category: &str, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.any);
        if let Some(r) = self.exact.get(category) {
            out.extend_from_slice(r);
        }
        if !self.glob_route.is_empty() {
            out.extend(
                self.globs
                    .matches(category)
                    .into_iter()
                    .map(|g| self.glob_route[g]),
            );
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[&str]) -> Option<NameMatch> {
        Some(NameMatch::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap())
    }

    #[test]
    fn candidates_are_ordered_and_unique() {
        let idx = RouteIndex::new(&[
            m(&["vuln"]),
            None,
            m(&["ATTACK_*", "ATTACK_ALERT"]),
            m(&["new_hits"]),
            m(&["*"]),
        ])
        .unwrap();
        let mut out = Vec::new();
        idx.candidates("ATTACK_ALERT", &mut out);
        assert_eq!(out, vec![1, 2, 4]);
        idx.candidates("vuln", &mut out);
        assert_eq!(out, vec![0, 1, 4]);
        idx.candidates("other", &mut out);
        assert_eq!(out, vec![1, 4]);
    }

    #[test]
    fn most_routes_are_ruled_out() {
        let cats: Vec<_> = (0..1000).map(|i| m(&[&format!("cat-{i}")])).collect();
        let idx = RouteIndex::new(&cats).unwrap();
        let mut out = Vec::new();
        idx.candidates("cat-500", &mut out);
        assert_eq!(out, vec![500]);
    }
}
