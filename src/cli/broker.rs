//! `hookline broker`: librdkafka's mock cluster as a process of its own, until SIGTERM or
//! SIGINT. It prints `bootstrap HOST:PORT[,...]` as its first line, for scripts and the
//! benchmark harness (`hookline::bench::broker`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::bench::broker::ANNOUNCE;
use crate::config::Config;
use crate::dev::broker::DevBroker;

/// Arguments of `hookline broker`.
#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// Brokers in the cluster.
    #[arg(long, default_value_t = 1)]
    pub brokers: i32,
    /// A topic to create, as NAME:PARTITIONS (NAME alone: 1 partition). Repeatable.
    #[arg(long = "topic", value_name = "NAME:PARTITIONS", value_parser = parse_topic)]
    pub topics: Vec<(String, i32)>,
    /// Also create the dead-letter and retry-tier topics of a router on the default
    /// configuration (the mock cluster does not answer the admin API's CreateTopics).
    #[arg(long)]
    pub router_topics: bool,
}

fn parse_topic(s: &str) -> Result<(String, i32), String> {
    let (name, partitions) = match s.rsplit_once(':') {
        Some((name, n)) => (
            name,
            n.parse()
                .map_err(|_| format!("{n:?} is not a number of partitions"))?,
        ),
        None => (s, 1),
    };
    if name.is_empty() || partitions < 1 {
        return Err(format!(
            "{s:?}: expected NAME:PARTITIONS with at least 1 partition"
        ));
    }
    Ok((name.to_string(), partitions))
}

/// Runs the broker until a shutdown signal.
pub async fn run(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    let mut shutdown = super::signal::Shutdown::listen();
    let broker = DevBroker::start(args.brokers).context("cannot start the mock cluster")?;
    for (name, partitions) in &args.topics {
        broker
            .create_topic(name, *partitions)
            .with_context(|| format!("cannot create topic {name}"))?;
    }
    if args.router_topics {
        let settings = Config::default().validate()?;
        broker
            .create_router_topics(&settings)
            .context("cannot create the router's topics")?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{ANNOUNCE}{}", broker.bootstrap_servers())?;
    stdout.flush()?;
    shutdown.received().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arguments() {
        assert_eq!(parse_topic("a.b:32"), Ok(("a.b".into(), 32)));
        assert_eq!(parse_topic("a.b"), Ok(("a.b".into(), 1)));
        assert!(parse_topic("a:0").is_err());
        assert!(parse_topic(":3").is_err());
        assert!(parse_topic("a:x").is_err());
    }
}
