//! The `hookline` commands. `main.rs` only parses and calls [`main`].

pub mod bench;
pub mod broker;
pub mod check;
pub mod dev;
pub mod health;
pub mod receive;
pub mod receiver;
pub mod replay;
pub mod run;
pub mod signal;
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
    /// Run the router against the configured Kafka cluster until SIGINT/SIGTERM.
    Run {
        /// Configuration file (default: ./hookline.toml when it exists).
        #[arg(long, short, env = "HOOKLINE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Ask a running router's admin API whether it is alive (or ready); exit 0 if so. For
    /// container health checks: no curl needed in the image.
    Health(health::HealthArgs),
    /// A webhook receiver that prints every request it gets (for the compose demo and manual
    /// tests).
    Receive(receive::ReceiveArgs),
    /// Run everything in-process (broker, receiver, router) on the example rules and events.
    Dev(dev::DevArgs),
    /// Re-inject dead-lettered events (by subscription, time range, reason).
    Replay(replay::ReplayArgs),
    /// Benchmark: broker, receiver and router as separate processes; throughput, CPU, memory,
    /// latency, and the same-run ceilings.
    Bench(bench::BenchArgs),
    /// Run librdkafka's mock cluster as a process until SIGTERM; prints its bootstrap address.
    Broker(broker::BrokerArgs),
    /// Run a counting HTTP receiver with scripted per-path answers until SIGTERM (`GET /_stats`).
    Receiver(receiver::ReceiverArgs),
    /// Validate a rules directory; prints `file:line:col: message` per problem, exit 1 if any.
    Check(check::CheckArgs),
    /// Dry-run rules against events, or run a routing test-cases file. No Kafka involved.
    Test(test::TestArgs),
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            init_logging("info");
            runtime()?.block_on(run::run(config))
        }
        Command::Health(args) => runtime()?.block_on(health::run(args)),
        Command::Receive(args) => runtime()?.block_on(receive::run(args)),
        Command::Dev(args) => {
            // Quieter by default: the receiver's lines are what a newcomer wants to see.
            init_logging("warn,hookline=warn");
            runtime()?.block_on(dev::run(args))
        }
        Command::Replay(args) => {
            init_logging("warn");
            runtime()?.block_on(replay::run(args))
        }
        Command::Bench(args) => {
            init_logging("warn");
            runtime()?.block_on(bench::run(args))
        }
        Command::Broker(args) => {
            init_logging("warn");
            runtime()?.block_on(broker::run(args))
        }
        Command::Receiver(args) => {
            init_logging("warn");
            runtime()?.block_on(receiver::run(args))
        }
        Command::Check(args) => check::run(args),
        Command::Test(args) => test::run(args),
    }
}

/// Starts the router; invalid rules are printed one problem a line and give `None` (the
/// caller exits with status 2), other failures are errors.
async fn start_or_report(
    settings: crate::config::Settings,
) -> anyhow::Result<Option<crate::app::Running>> {
    use anyhow::Context;
    match crate::app::start(settings).await {
        Ok(running) => {
            if running.router.current().topic_patterns().is_empty() {
                tracing::warn!(
                    "no source names a topic, so nothing is consumed until the rules gain one"
                );
            }
            Ok(Some(running))
        }
        Err(crate::app::StartError::Rules { dir, source }) => {
            eprintln!("hookline: rules in {dir} are invalid:");
            source.problems.iter().for_each(|p| eprintln!("{p}"));
            Ok(None)
        }
        Err(e) => Err(e).context("cannot start the router"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs to stderr; `HOOKLINE_LOG` (or `RUST_LOG`) filters (else `default`),
/// `HOOKLINE_LOG_FORMAT=json` for JSON.
fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("HOOKLINE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if std::env::var("HOOKLINE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
