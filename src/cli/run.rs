//! `hookline run`: the router against the configured Kafka cluster, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

/// How long a stop may take beyond `delivery.shutdown_grace`: the final commit and closing
/// the consumers.
pub const STOP_BOUND: Duration = Duration::from_secs(15);

/// Runs until a shutdown signal.
pub async fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let settings = match Config::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hookline: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let grace = settings.shutdown_grace;
    let Some(running) = super::start_or_report(settings).await? else {
        return Ok(ExitCode::from(2));
    };
    shutdown_signal().await;
    tracing::info!("shutdown signal received");
    running.stop();
    // The stop sequence ends every wait at the grace; the commit and the consumers' close
    // get this much more. Past it, exit anyway: what is unsettled is not committed and is
    // re-delivered, so a stop never hangs on a broker that does not answer.
    if tokio::time::timeout(grace + STOP_BOUND, running.wait())
        .await
        .is_err()
    {
        tracing::error!(
            ?grace,
            bound = ?STOP_BOUND,
            "shutdown did not finish within the grace and its bound; exiting (unsettled events will be re-delivered)"
        );
        return Ok(ExitCode::from(1));
    }
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
