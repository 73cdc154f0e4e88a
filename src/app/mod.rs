//! One running router: every stage built from [`Settings`], started, and stopped in the order
//! that keeps the delivery guarantee (stop reading, let deliveries finish, commit, leave).

use std::net::SocketAddr;
use std::sync::Arc;

use rdkafka::producer::FutureProducer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
mod topics;
use crate::config::Settings;
use crate::deliver::{BuildError, Dispatcher};
use crate::dlq::DeadLetterProducer;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::retry_topic::{RetryReader, RetryWriter};
use crate::rules::{reload, LoadError, Router};
use crate::settle::Settler;
use crate::source::consumer::tier_reader_config;
use crate::source::{Source, SourceError};

/// The router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The rule files are invalid.
    #[error("rules in {dir} are invalid")]
    Rules {
        /// The rules directory.
        dir: String,
        /// Every problem.
        #[source]
        source: LoadError,
    },
    /// The Kafka consumer could not be created or subscribed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The dead-letter producer could not be created.
    #[error("cannot create the dead-letter producer")]
    Producer(#[source] rdkafka::error::KafkaError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] BuildError),
    /// The admin address could not be bound.
    #[error("cannot listen on {addr} for the admin API")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A started router.
pub struct Running {
    /// Its metrics.
    pub metrics: Metrics,
    /// The live rules.
    pub router: Router,
    /// Where the admin API listens (useful with port 0).
    pub admin_addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// Asks the router to stop; [`Running::wait`] returns when it has.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// A token that stops the router when cancelled.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the router has stopped (after [`Running::stop`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Loads the rules, builds every stage and starts reading.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let metrics = Metrics::new();
    let rules = reload::load_initial(&settings.rules.dir, &metrics).map_err(|source| {
        StartError::Rules {
            dir: settings.rules.dir.display().to_string(),
            source,
        }
    })?;
    metrics.rule_reloads.with_label_values(&["ok"]).inc();
    let topics = rules.topic_patterns();
    let subscriptions = rules.subscriptions().to_vec();
    let router = Router::with_metrics(rules, metrics.clone());

    let stop = CancellationToken::new();
    // Cancelled only after the shutdown grace: until then dead-letter writes keep retrying.
    let hard_stop = CancellationToken::new();
    let producer: FutureProducer = settings
        .kafka
        .producer_config()
        .create()
        .map_err(StartError::Producer)?;
    let dlq = DeadLetterProducer::new(producer.clone(), settings.kafka.dead_letter_topic.clone());
    let settler = Settler::new(dlq, metrics.clone(), hard_stop.clone());
    let dispatcher = Dispatcher::new(settler.clone(), settings.delivery.clone())?;
    if settings.kafka.create_topics {
        topics::ensure(&settings).await;
    }
    let mut retry_readers = Vec::new();
    if let Some(schedule) = &settings.retry_schedule {
        let writer = RetryWriter::new(producer.clone(), schedule.clone(), settler.clone());
        dispatcher.set_divert(Arc::new(writer));
        for topic in schedule.topics() {
            let group = format!("{}.retry", settings.kafka.group_id);
            let config = tier_reader_config(&settings.kafka, &group);
            let reader = Source::with_config(config, &settings.kafka, metrics.clone())?;
            reader.subscribe(std::slice::from_ref(&topic))?;
            retry_readers.push(Arc::new(reader));
        }
    }
    dispatcher.apply(&subscriptions);
    let pipeline = Pipeline::new(
        router.clone(),
        dispatcher.clone(),
        settler.clone(),
        settings.kafka.max_message_bytes,
    );
    let source = Arc::new(Source::new(&settings.kafka, metrics.clone())?);
    source.subscribe(&topics)?;

    let listener = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .map_err(|source| StartError::Admin {
            addr: settings.admin_listen,
            source,
        })?;
    let admin_addr = listener.local_addr().map_err(|source| StartError::Admin {
        addr: settings.admin_listen,
        source,
    })?;
    let admin_state = AdminState {
        metrics: metrics.clone(),
        router: router.clone(),
        rules_dir: settings.rules.dir.clone(),
    };
    tokio::spawn(admin::serve_on(listener, admin_state, stop.clone()));
    if settings.rules.watch {
        // File changes and SIGHUP.
        tokio::spawn(reload::watch(
            settings.rules.dir.clone(),
            router.clone(),
            metrics.clone(),
            stop.clone(),
        ));
    } else {
        tokio::spawn(reload_on_hangup(
            settings.rules.dir.clone(),
            router.clone(),
            metrics.clone(),
            stop.clone(),
        ));
    }
    tokio::spawn(follow_rule_changes(
        router.clone(),
        dispatcher.clone(),
        source.clone(),
        stop.clone(),
    ));
    tracing::info!(topics = ?topics, subscriptions = subscriptions.len(), admin = %admin_addr, "hookline started");

    let readers: Vec<_> = retry_readers
        .iter()
        .map(|reader| {
            let reader = reader.clone();
            let handler = RetryReader::new(router.clone(), dispatcher.clone(), settler.clone());
            let stop = stop.clone();
            tokio::spawn(async move { reader.run(&handler, stop).await })
        })
        .collect();
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            source.run(&pipeline, stop).await;
            for reader in readers {
                let _ = reader.await;
            }
            tracing::info!(grace = ?settings.shutdown_grace, "stopping: finishing deliveries in flight");
            dispatcher.shutdown(settings.shutdown_grace).await;
            pipeline.drain(settings.shutdown_grace).await;
            hard_stop.cancel();
            source.commit().await;
            for reader in &retry_readers {
                reader.commit().await;
            }
            tracing::info!(
                unsettled = source.offsets().pending(),
                "stopped; unsettled events will be re-delivered"
            );
        })
    };
    Ok(Running {
        metrics,
        router,
        admin_addr,
        stop,
        task,
    })
}

/// With `rules.watch = false`: reload on SIGHUP only (the admin API works either way).
async fn reload_on_hangup(
    dir: std::path::PathBuf,
    router: Router,
    metrics: Metrics,
    stop: CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                // Rejections are logged and counted by the reload itself.
                let _ = reload::reload_now(&dir, &router, &metrics).await;
            }
            _ = stop.cancelled() => return,
        }
    }
}

/// After every rule reload: start and stop subscription queues, and follow topic changes.
async fn follow_rule_changes(
    router: Router,
    dispatcher: Dispatcher,
    source: Arc<Source>,
    stop: CancellationToken,
) {
    let mut changes = router.watch();
    let mut topics = router.current().topic_patterns();
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = stop.cancelled() => return,
        }
        let rules = changes.borrow_and_update().clone();
        dispatcher.apply(rules.subscriptions());
        let now = rules.topic_patterns();
        if now != topics {
            match source.subscribe(&now) {
                Ok(()) => tracing::info!(topics = ?now, "subscribed to the new rules' topics"),
                Err(e) => tracing::error!(error = %e, "cannot subscribe to the new rules' topics"),
            }
            topics = now;
        }
    }
}
