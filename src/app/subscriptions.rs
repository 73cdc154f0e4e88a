//! The subscription catalogue's part of a running router: the subscriptions topic read to its
//! end before the rules are compiled (so no instance serves or delivers without the API
//! subscriptions), then followed; status changes and auto-disable; the webhooks API's state.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::delivery::Delivery;
use super::{topics, StartError};
use crate::admin::webhooks::WebhooksApi;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::rules::Router;
use crate::subscription::crypto::SecretBox;
use crate::subscription::status::StatusChanges;
use crate::subscription::{follow, Catalogue, StoreReader, StoreWriter};

/// The catalogue, read to the end of the topic, and the reader positioned there.
pub(super) struct Loaded {
    pub catalogue: Catalogue,
    reader: StoreReader,
}

/// Reads the subscriptions topic to its end.
pub(super) async fn load(settings: &Settings) -> Result<Loaded, StartError> {
    if settings.kafka.create_topics {
        topics::ensure_subscriptions(settings).await;
    }
    let secrets = SecretBox::new(settings.subscriptions.secret_key.as_ref());
    if !secrets.has_key() {
        tracing::warn!("subscriptions.secret_key is not set: subscriptions cannot be created through the API (set HOOKLINE_SUBSCRIPTIONS__SECRET_KEY_FILE)");
    }
    let reader = StoreReader::new(settings)?;
    let catalogue = Catalogue::new(secrets);
    follow::load(&reader, &catalogue).await?;
    Ok(Loaded { catalogue, reader })
}

/// Follows the topic, starts status changes and auto-disable, and gives the API its state.
pub(super) fn start(
    loaded: Loaded,
    settings: &Settings,
    metrics: &Metrics,
    router: &Router,
    delivery: &Delivery,
    stop: &CancellationToken,
) -> Result<WebhooksApi, StartError> {
    let Loaded { catalogue, reader } = loaded;
    let writer = StoreWriter::new(settings)?;
    let status = StatusChanges {
        catalogue: catalogue.clone(),
        writer: writer.clone(),
        router: router.clone(),
        metrics: metrics.clone(),
        health: delivery.dispatcher.health(),
        disable_after: settings.subscriptions.disable_after,
    };
    delivery.dispatcher.set_gone(Arc::new(status.clone()));
    tokio::spawn(follow::follow(
        reader,
        catalogue.clone(),
        router.clone(),
        metrics.clone(),
        stop.clone(),
    ));
    tokio::spawn(status.clone().run(stop.clone()));
    Ok(WebhooksApi {
        catalogue,
        writer,
        status,
        router: router.clone(),
        dispatcher: delivery.dispatcher.clone(),
        metrics: metrics.clone(),
        signing_overlap: settings.subscriptions.signing_overlap,
    })
}
