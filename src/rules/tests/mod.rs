//! Tests that need whole rule sets: loading problems and routing behaviour.

mod load;
mod route;
mod wanted;

use std::path::PathBuf;

use super::{LoadError, RuleSet};

/// A temporary `rules/` directory holding `files`.
pub struct RulesDir {
    _tmp: tempfile::TempDir,
    /// The `rules` directory.
    pub path: PathBuf,
}

pub fn rules_dir(files: &[(&str, &str)]) -> RulesDir {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rules");
    std::fs::create_dir(&path).unwrap();
    for (name, text) in files {
        let p = path.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    RulesDir { _tmp: tmp, path }
}

/// Variables the test rule files may use.
pub fn env(name: &str) -> Option<String> {
    match name {
        "RECV" => Some("http://127.0.0.1:9".into()),
        "PD_KEY" => Some("k-123".into()),
        _ => None,
    }
}

pub fn load(files: &[(&str, &str)]) -> Result<RuleSet, LoadError> {
    let d = rules_dir(files);
    RuleSet::load_dir_with_env(&d.path, &env)
}

/// The problems of loading `files`, as printed.
pub fn problems(files: &[(&str, &str)]) -> Vec<String> {
    match load(files) {
        Ok(_) => vec![],
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// A subscription list for tests.
pub const SUBS: &str = "\
subscriptions:
  - id: a
    url: ${RECV}/a
  - id: b
    url: ${RECV}/b
    template: standard-webhooks
  - id: c
    url: ${RECV}/c
    template: slack
";
