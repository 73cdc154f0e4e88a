//! The `hookline` commands. `main.rs` only parses and calls [`main`].

pub mod check;
pub mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Routes security events from Kafka to webhooks.
#[derive(Debug, Parser)]
#[command(name = "hookline", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router against the configured Kafka cluster.
    Run {
        /// Configuration file (default: ./hookline.toml when it exists).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a rules directory; prints `file:line:col: message` per problem, exit 1 if any.
    Check(check::CheckArgs),
    /// Dry-run rules against events, or run a routing test-cases file. No Kafka involved.
    Test(test::TestArgs),
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let _ = config;
            anyhow::bail!("not yet")
        }
        Command::Check(args) => check::run(args),
        Command::Test(args) => test::run(args),
    }
}
