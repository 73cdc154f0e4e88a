//! `hookline receive`: a webhook receiver that answers 200 and prints every request, for the
//! compose demo (`deploy/compose.yaml`) and for trying rules by hand. It keeps what it got in
//! memory, so it is for demos, not for production traffic.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::dev::receiver::Receiver;

/// Arguments of `hookline receive`.
#[derive(Debug, clap::Args)]
pub struct ReceiveArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(args: ReceiveArgs) -> anyhow::Result<ExitCode> {
    let mut shutdown = super::signal::Shutdown::listen();
    let receiver = Receiver::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    receiver.observe(|r| {
        println!(
            "POST {} webhook-id={} {}",
            r.path,
            r.header("webhook-id").unwrap_or("-"),
            String::from_utf8_lossy(&r.body)
        );
    });
    println!("receiving webhooks on http://{}/", receiver.addr());
    shutdown.received().await;
    Ok(ExitCode::SUCCESS)
}
