//! `hookline run`: the router against the configured Kafka cluster, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::signal::Shutdown;
use crate::config::Config;

/// How long a stop may take beyond `delivery.shutdown_grace`: the final commit and closing
/// the consumers.
pub const STOP_BOUND: Duration = Duration::from_secs(15);

/// Runs until a shutdown signal.
pub async fn run(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut shutdown = Shutdown::listen();
    let settings = match Config::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hookline: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let grace = settings.shutdown_grace;
    // A stop while starting ends the start: nothing has been committed yet, so whatever was
    // read is read again by the next router.
    let started = tokio::select! {
        started = super::start_or_report(settings) => started?,
        _ = shutdown.received() => {
            tracing::info!("shutdown signal received while starting; stopping");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let Some(running) = started else {
        return Ok(ExitCode::from(2));
    };
    shutdown.received().await;
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
