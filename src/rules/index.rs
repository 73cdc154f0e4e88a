//! The route index: which routes could match an event of a given topic and category, so that
//! most routes are never evaluated.
//!
//! Each route's top-level category test is lifted out of its condition (see
//! [`Cond::take_category`](super::matcher::Cond::take_category)) and filed under its literal
//! names (a hash lookup) or its globs (one `GlobSet` for all routes). Routes without a category
//! test are candidates for every category. An event with several categories is looked up
//! under each: its candidates are every route that any of them admits. One such category index is kept per topic, holding
//! only the routes whose `topics` admit it; it is built the first time the topic is seen.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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

/// Topics whose index is kept; past this (glob topics can be many), indexes of new topics
/// are built for each event instead of kept.
pub const MAX_TOPICS: usize = 1024;

/// Category indexes by topic.
#[derive(Debug)]
pub struct Index {
    topics: Vec<Option<NameMatch>>,
    categories: Vec<Option<NameMatch>>,
    by_topic: RwLock<HashMap<String, Arc<RouteIndex>>>,
}

impl Index {
    /// Indexes routes (in rule order) given their topic filters and category tests.
    pub fn new(
        topics: Vec<Option<NameMatch>>,
        categories: Vec<Option<NameMatch>>,
    ) -> Result<Index, globset::Error> {
        // Build once to report bad globs now rather than at the first event.
        RouteIndex::new(categories.iter().enumerate())?;
        Ok(Index {
            topics,
            categories,
            by_topic: RwLock::new(HashMap::new()),
        })
    }

    /// The topic filter and category test the index applies for route `route` (a position
    /// in rule order); `None` where the route has none.
    pub fn filters(&self, route: usize) -> (Option<&NameMatch>, Option<&NameMatch>) {
        (
            self.topics.get(route).and_then(Option::as_ref),
            self.categories.get(route).and_then(Option::as_ref),
        )
    }

    /// Whether route `route`'s topic filter admits `topic` (a route without one admits every
    /// topic).
    pub fn admits_topic(&self, route: usize, topic: &str) -> bool {
        self.topics
            .get(route)
            .and_then(Option::as_ref)
            .is_none_or(|t| t.is_match(topic))
    }

    /// A new index over the same filters (its cache of topics starts empty).
    pub fn clone_filters(&self) -> Index {
        Index::new(self.topics.clone(), self.categories.clone()).expect("built once already")
    }

    /// This index with route `route`'s filters replaced (a draft with an edited route).
    pub fn with_route(
        &self,
        route: usize,
        topics: Option<NameMatch>,
        category: Option<NameMatch>,
    ) -> Result<Index, globset::Error> {
        let (mut all_topics, mut categories) = (self.topics.clone(), self.categories.clone());
        all_topics[route] = topics;
        categories[route] = category;
        Index::new(all_topics, categories)
    }

    /// The category index of `topic`.
    pub fn for_topic(&self, topic: &str) -> Arc<RouteIndex> {
        if let Some(idx) = self.by_topic.read().expect("index lock").get(topic) {
            return idx.clone();
        }
        let routes = self
            .categories
            .iter()
            .enumerate()
            .filter(|(i, _)| self.topics[*i].as_ref().is_none_or(|t| t.is_match(topic)));
        let idx = Arc::new(RouteIndex::new(routes).expect("globs checked in Index::new"));
        let mut map = self.by_topic.write().expect("index lock");
        if map.len() < MAX_TOPICS {
            map.insert(topic.to_string(), idx.clone());
        }
        idx
    }
}

impl RouteIndex {
    /// Indexes routes given their numbers and category tests, in rule order.
    pub fn new<'a>(
        categories: impl IntoIterator<Item = (usize, &'a Option<NameMatch>)>,
    ) -> Result<RouteIndex, globset::Error> {
        let mut idx = RouteIndex::default();
        let mut builder = GlobSetBuilder::new();
        for (i, c) in categories {
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

    /// Routes that may match an event of these `categories` (any of them), in rule order,
    /// each once, into `out` (cleared).
    pub fn candidates(&self, categories: &[String], out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.any);
        for category in categories {
            if let Some(r) = self.exact.get(category.as_str()) {
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
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn m(p: &[&str]) -> Option<NameMatch> {
        Some(NameMatch::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap())
    }

    #[test]
    fn candidates_are_ordered_and_unique() {
        let cats = [
            m(&["vuln"]),
            None,
            m(&["ATTACK_*", "ATTACK_ALERT"]),
            m(&["new_hits"]),
            m(&["*"]),
        ];
        let idx = RouteIndex::new(cats.iter().enumerate()).unwrap();
        let mut out = Vec::new();
        idx.candidates(&c(&["ATTACK_ALERT"]), &mut out);
        assert_eq!(out, vec![1, 2, 4]);
        idx.candidates(&c(&["vuln"]), &mut out);
        assert_eq!(out, vec![0, 1, 4]);
        idx.candidates(&c(&["other"]), &mut out);
        assert_eq!(out, vec![1, 4]);
    }

    #[test]
    fn several_categories_find_every_route_any_of_them_admits() {
        let cats = [
            m(&["authentication_failures"]),
            m(&["syslog"]),
            None,
            m(&["intrusion_*"]),
            m(&["web"]),
            m(&["sshd", "syslog"]),
        ];
        let idx = RouteIndex::new(cats.iter().enumerate()).unwrap();
        let mut out = Vec::new();
        idx.candidates(&c(&["syslog", "sshd", "authentication_failures"]), &mut out);
        assert_eq!(out, vec![0, 1, 2, 5], "ordered, each once");
        idx.candidates(&c(&["network", "intrusion_detection"]), &mut out);
        assert_eq!(out, vec![2, 3]);
        idx.candidates(&[], &mut out);
        assert_eq!(out, vec![2]);
    }

    #[test]
    fn most_routes_are_ruled_out() {
        let cats: Vec<_> = (0..1000).map(|i| m(&[&format!("cat-{i}")])).collect();
        let idx = RouteIndex::new(cats.iter().enumerate()).unwrap();
        let mut out = Vec::new();
        idx.candidates(&c(&["cat-500"]), &mut out);
        assert_eq!(out, vec![500]);
    }

    #[test]
    fn topics_narrow_the_candidates() {
        let topics = vec![m(&["a"]), None, m(&["b.*"]), m(&["a", "c"])];
        let cats = vec![None, m(&["x"]), None, m(&["x", "y"])];
        let idx = Index::new(topics, cats).unwrap();
        let mut out = Vec::new();
        idx.for_topic("a").candidates(&c(&["x"]), &mut out);
        assert_eq!(out, vec![0, 1, 3]);
        idx.for_topic("b.1").candidates(&c(&["x"]), &mut out);
        assert_eq!(out, vec![1, 2]);
        idx.for_topic("c").candidates(&c(&["z"]), &mut out);
        assert!(out.is_empty());
        assert_eq!(idx.by_topic.read().unwrap().len(), 3);
        assert!(
            Arc::ptr_eq(&idx.for_topic("a"), &idx.for_topic("a")),
            "kept"
        );
    }
}
