//! `hookline run`: the router against the configured Kafka cluster, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

/// Runs until a shutdown signal.
pub async fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = match Config::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hookline: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let Some(running) = super::start_or_report(settings).await? else {
        return Ok(ExitCode::from(2));
    };
    shutdown_signal().await;
    tracing::info!("shutdown signal received");
    running.stop();
    running.wait().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
