//! The HTTP ceiling: `wrk` (a Debian package; `scripts/install-wrk.sh`) posting the body the
//! router would send to the same receiver process, with the same number of connections.

use std::path::Path;
use std::time::Duration;

use super::HarnessError;

/// What one `wrk` run measured.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WrkResult {
    /// Requests per second.
    pub requests_per_s: f64,
    /// Requests completed.
    pub requests: u64,
    /// Requests answered with a status other than 2xx or 3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors.
    pub socket_errors: u64,
}

/// How to run `wrk`.
#[derive(Clone, Debug)]
pub struct WrkSpec {
    /// Threads (`-t`).
    pub threads: usize,
    /// Connections (`-c`): the subscription's concurrency.
    pub connections: usize,
    /// Duration (`-d`).
    pub duration: Duration,
    /// The body each request posts.
    pub body: String,
}

/// Whether `wrk` is on the PATH.
pub fn available() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok()
}

/// Runs `wrk` against `url`; its Lua script goes into `dir`.
pub async fn run(url: &str, spec: &WrkSpec, dir: &Path) -> Result<WrkResult, HarnessError> {
    let script = dir.join("post.lua");
    std::fs::write(&script, lua_script(&spec.body))
        .map_err(HarnessError::io("cannot write the wrk script"))?;
    let output = tokio::process::Command::new("wrk")
        .arg(format!("-t{}", spec.threads))
        .arg(format!("-c{}", spec.connections))
        .arg(format!("-d{}s", spec.duration.as_secs().max(1)))
        .arg("-s")
        .arg(&script)
        .arg(url)
        .output()
        .await
        .map_err(|source| HarnessError::Spawn {
            what: "wrk (install it with scripts/install-wrk.sh)".into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse(&text).ok_or_else(|| HarnessError::Output {
        tool: "wrk".into(),
        reason: format!(
            "no Requests/sec line in {text:?} (stderr: {:?})",
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

fn lua_script(body: &str) -> String {
    // A long bracket string needs no escaping as long as the body does not contain `]==]`.
    format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{body}]==]\n"
    )
}

fn parse(text: &str) -> Option<WrkResult> {
    let number_after = |label: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
        line.trim_start()[label.len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let socket_errors = text
        .lines()
        .find(|l| l.contains("Socket errors:"))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Some(WrkResult {
        requests_per_s: number_after("Requests/sec:")?,
        requests,
        non_2xx: number_after("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64,
        socket_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let text = "Running 5s test @ http://127.0.0.1:4321/_wrk
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   480.12us  201.33us   9.87ms   88.21%
    Req/Sec    66.12k     3.10k   71.40k    80.00%
  658123 requests in 5.00s, 48.32MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec: 131612.45
Transfer/sec:      9.66MB
";
        let r = parse(text).unwrap();
        assert_eq!(r.requests_per_s, 131612.45);
        assert_eq!(r.requests, 658123);
        assert_eq!(r.non_2xx, 17);
        assert_eq!(r.socket_errors, 3);
        assert!(parse("wrk: connection refused").is_none());
    }

    #[test]
    fn the_script_posts_the_body() {
        let s = lua_script(r#"{"a":"it's \"quoted\""}"#);
        assert!(
            s.contains(r#"wrk.body = [==[{"a":"it's \"quoted\""}]==]"#),
            "{s}"
        );
    }
}
