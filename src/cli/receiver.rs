//! `hookline receiver`: an HTTP receiver as a process of its own, until SIGTERM or SIGINT. It
//! answers each path as scripted, counts what arrives and measures produce-to-receive latency
//! (`GET /_stats`); see `hookline::bench::receiver`. It prints `listening http://HOST:PORT` as
//! its first line.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::bench::receiver::behaviour::{parse_route, Behaviour};
use crate::bench::receiver::server::{serve, Counters};
use crate::bench::receiver::ANNOUNCE;

/// Arguments of `hookline receiver`.
#[derive(Debug, clap::Args)]
pub struct ReceiverArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// How a path answers, as PATH=BEHAVIOUR: `200`, `503`, `200,delay=50ms`,
    /// `429,retry-after=2` or `hang` (never answers). Other paths answer 200. Repeatable.
    #[arg(long = "respond", value_name = "PATH=BEHAVIOUR", value_parser = parse_route)]
    pub routes: Vec<(String, Behaviour)>,
}

/// Serves until a shutdown signal.
pub async fn run(args: ReceiverArgs) -> anyhow::Result<ExitCode> {
    let mut shutdown = super::signal::Shutdown::listen();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let counters = Counters::new(args.routes);
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{ANNOUNCE}http://{addr}")?;
    stdout.flush()?;
    // Stop at once on a signal: a graceful shutdown would wait for hung requests forever.
    tokio::select! {
        served = serve(listener, counters, std::future::pending()) => served?,
        _ = shutdown.received() => {}
    }
    Ok(ExitCode::SUCCESS)
}
