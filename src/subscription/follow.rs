//! Keeping the rule set in step with the subscriptions topic: read it to its end before the
//! router starts, then follow it, and compile and replace the rules after each batch of
//! changes (and when a rotated-out signing secret stops signing). Every instance does the
//! same, the one that took an API request included, so they all converge on the same set.

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::catalogue::Catalogue;
use super::store::StoreReader;
use super::CatalogueError;
use crate::metrics::Metrics;
use crate::rules::{reload, Router};

/// How long start-up waits to read the subscriptions topic to its end.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the topic to its end into `catalogue`. A subscription whose secrets do not open
/// with the configured key stops start-up: delivering without them would be wrong, and
/// leaving it out would, after `delivery.orphan_after`, dead-letter its backlog.
pub async fn load(reader: &StoreReader, catalogue: &Catalogue) -> Result<(), CatalogueError> {
    let changes = reader.read_to_end(LOAD_TIMEOUT).await?;
    let mut next = 0;
    for (offset, change) in changes {
        catalogue.take(change);
        next = offset + 1;
    }
    catalogue.applied(next);
    let (_, failed) = catalogue.inputs(Utc::now());
    if let Some((id, source)) = failed.into_iter().next() {
        return Err(CatalogueError::Seal { id, source });
    }
    Ok(())
}

/// Follows the topic until `stop`, putting each batch of changes in force.
pub async fn follow(
    reader: StoreReader,
    catalogue: Catalogue,
    router: Router,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        let now = Utc::now();
        let expiry = catalogue
            .next_expiry(now)
            .map(|e| (e - now).to_std().unwrap_or_default() + Duration::from_millis(10));
        let mut dirty = false;
        let mut next = None;
        tokio::select! {
            (offset, change) = reader.next() => {
                dirty |= change.is_some_and(|c| catalogue.take(c));
                next = Some(offset + 1);
                // Whatever else is there already goes into the same compile.
                while let Ok((offset, change)) =
                    tokio::time::timeout(Duration::from_millis(20), reader.next()).await
                {
                    dirty |= change.is_some_and(|c| catalogue.take(c));
                    next = Some(offset + 1);
                }
            }
            _ = tokio::time::sleep(expiry.unwrap_or(Duration::from_secs(3600))) => {
                dirty = expiry.is_some();
            }
            _ = stop.cancelled() => return,
        }
        if dirty {
            let (inputs, failed) = catalogue.inputs(Utc::now());
            for (id, e) in failed {
                metrics
                    .subscription_store_errors
                    .with_label_values(&["seal"])
                    .inc();
                tracing::error!(subscription = %id, error = %e, "an API subscription's secrets do not open; it is left out");
            }
            // A rejection is logged and counted by the reload itself; the files are the
            // only part that can be rejected, and they were in force already.
            let _ = reload::apply_catalogue(inputs, &router, &metrics).await;
        }
        if let Some(next) = next {
            catalogue.applied(next);
        }
    }
}
