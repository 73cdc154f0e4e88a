//! Checking hookline's signatures with an independent implementation: the `standardwebhooks`
//! package from PyPI, run by `scripts/verify_signatures.py` over captured requests.

use std::process::Command;

use base64::Engine;
use hookline::dev::receiver::Recorded;
use serde_json::{json, Value};

/// Whether python3 can import `standardwebhooks`; why not otherwise.
pub fn python_ready() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .map_err(|e| format!("python3 cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python3 cannot import standardwebhooks: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One case for the script: `secret` alone must verify request `r`.
pub fn case(secret: &str, r: &Recorded) -> Value {
    let headers: serde_json::Map<_, _> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|k| (k.to_string(), json!(r.header(k).unwrap())))
        .collect();
    json!({
        "secret": secret,
        "headers": headers,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&r.body),
    })
}

/// What the script said of `cases`.
pub struct Verified {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the script over `cases` (one JSON object per line).
pub fn verify(cases: &[Value]) -> Verified {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signed.jsonl");
    let mut lines = String::new();
    for case in cases {
        lines.push_str(&case.to_string());
        lines.push('\n');
    }
    std::fs::write(&path, lines).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify_signatures.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    Verified {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
