//! Docs move with the code: every metric defined in src/metrics.rs is documented.

#[test]
fn every_metric_is_documented() {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics.rs")).unwrap();
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let names: Vec<&str> = source
        .split('"')
        .filter(|s| s.starts_with("hookline_") && !s.contains(' '))
        .collect();
    assert!(names.len() >= 25, "found only {names:?}");
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !docs.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics missing from docs/metrics.md: {missing:?}"
    );
}
