//! `hookline check DIR` (issue 3).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `hookline check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The rules directory.
    pub dir: PathBuf,
}

/// Validates the directory; prints every problem as `file:line:col: message`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("issue 3: hookline check")
}
