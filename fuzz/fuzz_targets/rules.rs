//! Rule-file loading: any text in a rule file is loaded or rejected with problems (file,
//! line, reason), never a panic.
#![no_main]

use hookline::rules::env::Unset;
use hookline::rules::RuleSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yaml"), data).expect("write");
    let (result, _warnings) = RuleSet::check_dir(dir.path(), &|_| None, Unset::Warn);
    if let Err(e) = result {
        assert!(!e.to_string().is_empty());
    }
});
