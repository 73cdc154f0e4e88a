//! `hookline bench`: the end-to-end benchmark. The broker, the receiver and each router under
//! test are separate processes, as in a deployment (see [`crate::bench`]); this process only
//! produces events and measures. Prints a line per run, then Markdown tables.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::bench::report::{summary, RunFigures};
use crate::bench::scenarios::latency::{self, LatencySpec};
use crate::bench::scenarios::throughput::{self, ThroughputSpec};
use crate::bench::scenarios::{Options, Variant};
use crate::bench::{wrk, Harness};

/// A measurement `hookline bench` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One event per request: 300k events of ~250 B, 32 partitions, concurrency 64.
    Single,
    /// As single, `batch.max_events: 500`.
    Batched,
    /// One event per request, 80k events of ~2.3 KB with 60 extra fields, 64 partitions.
    Large,
    /// As single with a receiver answering 503: the circuit opens and events are diverted to
    /// the durable retry topic (the figure is events settled per second).
    Divert,
    /// 1k events/s for 10 s below saturation: produce-to-receive p50/p99, idle CPU.
    Latency,
    /// A healthy subscription beside each neighbour that cannot keep up, over alone runs
    /// just before and after: 300k events, 32 partitions.
    Isolation,
    /// 20k events to a receiver refusing connections: source commits after the last read,
    /// then the receiver comes up and every event must arrive.
    Commits,
    /// A million events behind a 1/s subscription: peak memory, then the limit is lifted and
    /// every event must arrive in order.
    BacklogMemory,
    /// Three instances in keyed mode, a 50/s subscription, the owner SIGKILLed mid-run.
    Fleet,
}

/// Arguments of `hookline bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure (default: single).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Rounds; each runs every variant once, alternating.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// A router under test, as `LABEL [bin=PATH] [NAME=VALUE ...]` (a binary and environment,
    /// e.g. `fw5 HOOKLINE_KAFKA__OPTIONS__FETCH_WAIT_MAX_MS=5`). Repeatable; default: this
    /// binary as it is configured by default.
    #[arg(long = "variant", value_name = "SPEC")]
    pub variants: Vec<Variant>,
    /// Events to preload (throughput scenarios; default per scenario).
    #[arg(long)]
    pub events: Option<u64>,
    /// Partitions of the topic (default per scenario).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Partitions of each backlog topic (isolation, commits, backlog-memory; default per
    /// scenario). The mock broker keeps about 5 MB per partition, and a delivery takes about
    /// 20 bytes of a backlog, or the event's size with `delivery.backlog_events = "copy"`: give
    /// a copying variant enough (e.g. 32 for isolation).
    #[arg(long)]
    pub backlog_partitions: Option<i32>,
    /// The subscription's concurrency and wrk's connections.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Events per second in the latency scenario.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long the latency scenario produces.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How long the latency scenario lets the router idle first (its idle CPU is measured).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// How long wrk measures the HTTP ceiling each round.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub wrk_duration: Duration,
    /// Skip the wrk ceiling (no ratio is printed).
    #[arg(long)]
    pub no_wrk: bool,
    /// Longest one run may take.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Also write every run's figures to this file as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the run directory (configurations, rules, every process's log).
    #[arg(long)]
    pub keep: bool,
    /// Isolation: only these neighbours (repeatable; default: all of them).
    #[arg(long = "neighbour", value_enum)]
    pub neighbours: Vec<NeighbourArg>,
}

/// A neighbour of the isolation scenario, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NeighbourArg {
    /// Rate-limited to 1 request per second.
    Rate1,
    /// Rate-limited to 5 requests per second.
    Rate5,
    /// A receiver that never answers.
    Hangs,
    /// A receiver answering 503.
    Fails,
    /// A paused subscription.
    Paused,
    /// Ten subscriptions whose receivers refuse connections.
    DeadTen,
}

impl From<NeighbourArg> for crate::bench::scenarios::isolation::Neighbour {
    fn from(arg: NeighbourArg) -> Self {
        use crate::bench::scenarios::isolation::Neighbour;
        match arg {
            NeighbourArg::Rate1 => Neighbour::RateLimited(1.0),
            NeighbourArg::Rate5 => Neighbour::RateLimited(5.0),
            NeighbourArg::Hangs => Neighbour::Hangs,
            NeighbourArg::Fails => Neighbour::Fails,
            NeighbourArg::Paused => Neighbour::Paused,
            NeighbourArg::DeadTen => Neighbour::DeadTen,
        }
    }
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if !args.no_wrk && !wrk::available() {
        bail!("wrk is not installed: run scripts/install-wrk.sh (or pass --no-wrk)");
    }
    let dir = tempfile::Builder::new()
        .prefix("hookline-bench-")
        .tempdir()?;
    let harness = Harness::new(
        std::env::current_exe().context("cannot find this binary")?,
        dir.path(),
    );
    let options = Options {
        rounds: args.rounds.max(1),
        variants: if args.variants.is_empty() {
            vec![Variant::this("this")]
        } else {
            args.variants.clone()
        },
        wrk: (!args.no_wrk).then_some(args.wrk_duration),
        timeout: args.timeout,
    };
    let scenarios = if args.scenarios.is_empty() {
        vec![Scenario::Single]
    } else {
        args.scenarios.clone()
    };
    println!(
        "hookline bench: {} round(s) of {} variant(s); run directory {}",
        options.rounds,
        options.variants.len(),
        dir.path().display()
    );
    let mut runs: Vec<RunFigures> = Vec::new();
    let mut others: Vec<serde_json::Value> = Vec::new();
    let mut failed = None;
    for scenario in scenarios {
        let result = match scenario {
            Scenario::Isolation | Scenario::Commits | Scenario::BacklogMemory | Scenario::Fleet => {
                match backlog_scenario(scenario, &harness, &args, &options).await {
                    Ok(figures) => {
                        others.push(figures);
                        Ok(Vec::new())
                    }
                    Err(e) => Err(e),
                }
            }
            Scenario::Latency => {
                let mut spec = LatencySpec::default_rate();
                spec.rate = args.rate;
                spec.duration = args.duration;
                spec.idle = args.idle;
                spec.concurrency = args.concurrency;
                if let Some(p) = args.partitions {
                    spec.partitions = p;
                }
                latency::run(&harness, &spec, &options).await
            }
            _ => {
                let mut spec = match scenario {
                    Scenario::Batched => ThroughputSpec::batched(),
                    Scenario::Large => ThroughputSpec::large(),
                    Scenario::Divert => ThroughputSpec::divert(),
                    _ => ThroughputSpec::single(),
                };
                spec.concurrency = args.concurrency;
                spec.events = args.events.unwrap_or(spec.events);
                spec.partitions = args.partitions.unwrap_or(spec.partitions);
                throughput::run(&harness, &spec, &options).await
            }
        };
        match result {
            Ok(r) => runs.extend(r),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    println!("{}", summary(&runs));
    if let Some(path) = &args.json {
        let json = if others.is_empty() {
            serde_json::to_vec_pretty(&runs)?
        } else {
            serde_json::to_vec_pretty(&serde_json::json!({"runs": runs, "scenarios": others}))?
        };
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(e) = failed {
        let kept = dir.keep();
        eprintln!("hookline bench: the logs are kept in {}", kept.display());
        return Err(e);
    }
    if args.keep || runs.iter().any(|r| !r.complete) {
        println!("run directory kept: {}", dir.keep().display());
    }
    Ok(if runs.iter().all(|r| r.complete) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The issue-7 scenarios (isolation, commits, memory, fleet); their figures as JSON.
async fn backlog_scenario(
    scenario: Scenario,
    harness: &Harness,
    args: &BenchArgs,
    options: &Options,
) -> anyhow::Result<serde_json::Value> {
    use crate::bench::scenarios::{backlog, fleet, isolation};
    Ok(match scenario {
        Scenario::Isolation => {
            let mut spec = isolation::IsolationSpec::default();
            spec.events = args.events.unwrap_or(spec.events);
            spec.partitions = args.partitions.unwrap_or(spec.partitions);
            spec.backlog_partitions = args.backlog_partitions.unwrap_or(spec.backlog_partitions);
            if !args.neighbours.is_empty() {
                spec.neighbours = args.neighbours.iter().map(|&n| n.into()).collect();
            }
            let figures = isolation::run(harness, &spec, options).await?;
            serde_json::json!({"isolation": figures})
        }
        Scenario::Commits => {
            let events = args.events.unwrap_or(20_000);
            let partitions = args.partitions.unwrap_or(16);
            let backlog_partitions = args.backlog_partitions.unwrap_or(1);
            let figures =
                backlog::commits(harness, events, partitions, backlog_partitions, options).await?;
            serde_json::json!({"commits": figures})
        }
        Scenario::BacklogMemory => {
            let events = args.events.unwrap_or(1_000_000);
            let partitions = args.partitions.unwrap_or(128);
            let backlog_partitions = args.backlog_partitions.unwrap_or(8);
            let figures =
                backlog::memory(harness, events, partitions, backlog_partitions, options).await?;
            serde_json::json!({"backlog_memory": figures})
        }
        Scenario::Fleet => {
            let events = args.events.unwrap_or(6_000);
            let figures = fleet::run(harness, events, 50.0, options).await?;
            serde_json::json!({"fleet": figures})
        }
        _ => unreachable!("not an issue-7 scenario"),
    })
}
