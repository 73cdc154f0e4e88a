//! The routing playground in a real browser: runs `tests/browser/playground.test.mjs` (Node's
//! test runner, playwright-core driving Debian's chromium) against the page `hookline dev`
//! serves. It refreshes `docs/playground.png`.
//!
//! Needs node, /usr/bin/chromium and `tests/browser/node_modules`, which
//! `scripts/setup-browser.sh` installs. Without them the test is skipped with a note, unless
//! `HOOKLINE_REQUIRE_BROWSER=1` (set by `scripts/test`, so CI always runs it).

use std::path::Path;
use std::process::Command;

#[test]
fn the_playground_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (
            "node",
            Command::new("node").arg("--version").output().is_err(),
        ),
        (chromium.as_str(), !Path::new(&chromium).exists()),
        (
            "tests/browser/node_modules (npm ci)",
            !root
                .join("tests/browser/node_modules/playwright-core")
                .exists(),
        ),
    ]
    .into_iter()
    .filter_map(|(what, absent)| absent.then_some(what))
    .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var("HOOKLINE_REQUIRE_BROWSER").is_err(),
            "HOOKLINE_REQUIRE_BROWSER is set but {missing:?} missing: run scripts/setup-browser.sh"
        );
        eprintln!("skipping the browser test: {missing:?} missing (scripts/setup-browser.sh)");
        return;
    }
    let out = Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "tests/browser/playground.test.mjs",
        ])
        .current_dir(root)
        .env("HOOKLINE_BIN", env!("CARGO_BIN_EXE_hookline"))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
}
