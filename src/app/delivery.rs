//! The delivery role: the dead-letter producer and settler, the dispatcher with its lanes, and
//! the durable hooks behind it (the backlog writer, the retry-tier writer).

use std::sync::Arc;

use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use super::{topics, StartError};
use crate::backlog::BacklogWriter;
use crate::config::Settings;
use crate::deliver::{Dispatcher, SubscriptionSettings};
use crate::dlq::DeadLetterProducer;
use crate::metrics::Metrics;
use crate::retry_topic::RetryWriter;
use crate::settle::Settler;

/// What the delivery role is made of.
pub(super) struct Delivery {
    pub settler: Settler,
    pub dispatcher: Dispatcher,
    pub backlog: BacklogWriter,
    /// Cancelled only after the shutdown grace: until then dead-letter and backlog writes
    /// keep retrying.
    pub hard_stop: CancellationToken,
}

/// The librdkafka configuration for the dead-letter and retry producer.
fn producer_config(settings: &Settings) -> ClientConfig {
    let mut config = settings.kafka.client_config();
    // Every acknowledged record must be on all in-sync replicas before its offset settles.
    config.set("acks", "all").set(
        "message.max.bytes",
        crate::produce::record_limit(settings.kafka.max_message_bytes).to_string(),
    );
    config
}

/// Builds the delivery role, with a lane for each of `subscriptions`.
pub(super) async fn start(
    settings: &Settings,
    metrics: &Metrics,
    subscriptions: &[Arc<SubscriptionSettings>],
) -> Result<Delivery, StartError> {
    let hard_stop = CancellationToken::new();
    let producer: FutureProducer = producer_config(settings)
        .create()
        .map_err(StartError::Producer)?;
    let dlq = DeadLetterProducer::new(producer.clone(), settings.kafka.dead_letter_topic.clone());
    let settler = Settler::new(dlq, metrics.clone(), hard_stop.clone());
    let dispatcher = Dispatcher::new(settler.clone(), settings.delivery.clone())?;
    if settings.kafka.create_topics {
        topics::ensure(settings).await;
    }
    let backlog = BacklogWriter::new(
        settings.kafka.client_config(),
        settings.backlog.clone(),
        settings.kafka.create_topics,
        settings.kafka.max_message_bytes,
        settler.clone(),
    )
    .map_err(StartError::Backlog)?;
    backlog
        .ensure_topics(subscriptions.iter().map(|s| &*s.id))
        .await;
    dispatcher.set_spill(Arc::new(backlog.clone()));
    if let Some(schedule) = &settings.retry_schedule {
        let writer = RetryWriter::new(producer, schedule.clone(), settler.clone());
        dispatcher.set_divert(Arc::new(writer));
    }
    dispatcher.prepare(subscriptions);
    Ok(Delivery {
        settler,
        dispatcher,
        backlog,
        hard_stop,
    })
}
