//! `hookline test` (issue 3): a dry run of the rules, no Kafka.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `hookline test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The rules directory.
    #[arg(long)]
    pub rules: PathBuf,
    /// Topic the event is read from.
    #[arg(long, requires = "event")]
    pub topic: Option<String>,
    /// A file holding the event (a JSON object or array).
    #[arg(long)]
    pub event: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the dry run.
pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("issue 3: hookline test")
}
