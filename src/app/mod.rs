//! One running router: every role built from [`Settings`], started, and stopped in the order
//! that keeps the delivery guarantee (stop reading, let deliveries finish, commit, leave).
//!
//! - [`delivery`](self::delivery): settler, dispatcher, backlog and retry writers.
//! - [`readers`](self::readers): the consumers of the retry tiers and the backlogs.
//! - [`rule_changes`](self::rule_changes): lanes, topics and subscriptions following reloads.
//! - [`subscriptions`](self::subscriptions): the subscription catalogue: loaded before the
//!   rules, followed after, status changes and auto-disable.
//! - [`topics`](self::topics): creating hookline's own topics.

mod delivery;
mod readers;
mod rule_changes;
mod subscriptions;
mod topics;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::config::Settings;
use crate::deliver::BuildError;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::rules::{reload, LoadError, Router, RuleSet};
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
    /// The backlog producer could not be created.
    #[error(transparent)]
    Backlog(crate::backlog::writer::WriterError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] BuildError),
    /// The subscriptions topic could not be read, or a subscription's secrets do not open.
    #[error("cannot load the API subscriptions")]
    Catalogue(#[from] crate::subscription::CatalogueError),
    /// The subscriptions topic's writer could not be created.
    #[error(transparent)]
    Store(#[from] crate::subscription::StoreError),
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

/// How long a stop waits for the Kafka consumers to leave their groups.
const CLOSE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

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

/// Once `stop` is cancelled, cancels `hard_stop` when `grace` has passed, whatever the stop
/// sequence is waiting for then (a dead-letter topic that does not answer, a reader handing
/// over a record): every wait for Kafka ends, and what is unsettled stays uncommitted.
/// Resolves to that deadline.
fn hard_stop_after_grace(
    stop: &CancellationToken,
    hard_stop: &CancellationToken,
    grace: std::time::Duration,
) -> JoinHandle<Instant> {
    let (stop, hard_stop) = (stop.clone(), hard_stop.clone());
    tokio::spawn(async move {
        stop.cancelled().await;
        let deadline = Instant::now() + grace;
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline).await;
            hard_stop.cancel();
        });
        deadline
    })
}

/// Loads the rules, builds every role and starts reading.
///
/// Roles: delivery (dispatcher, lanes, backlog and retry writers), the source (the consumer
/// group of the rules' topics and the routing pipeline), and the readers of hookline's own
/// topics (retry tiers, backlogs). Stopping goes in the order that keeps the delivery
/// guarantee: stop reading, let deliveries and writes in flight finish, commit, leave.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let metrics = Metrics::new();
    let rules_invalid = |source| StartError::Rules {
        dir: settings.rules.dir.display().to_string(),
        source,
    };
    // The files alone first: invalid rules are reported at once, before Kafka is asked.
    RuleSet::load_dir(&settings.rules.dir).map_err(rules_invalid)?;
    let catalogue = subscriptions::load(&settings).await?;
    let (inputs, _) = catalogue.catalogue.inputs(chrono::Utc::now());
    let rules = reload::load_initial_with(&settings.rules.dir, Arc::new(inputs), &metrics)
        .map_err(rules_invalid)?;
    metrics.rule_reloads.with_label_values(&["ok"]).inc();
    let topics = rules.topic_patterns();
    let subscriptions = rules.subscriptions().to_vec();
    let router = Router::with_metrics(rules, metrics.clone());
    let stop = CancellationToken::new();

    let delivery = delivery::start(&settings, &metrics, &subscriptions).await?;
    rule_changes::prepare_lanes(&router, &delivery.dispatcher);
    let readers = readers::Readers::new(&settings, &metrics)?;
    let pipeline = Pipeline::new(
        router.clone(),
        delivery.dispatcher.clone(),
        delivery.settler.clone(),
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
    let webhooks = subscriptions::start(catalogue, &settings, &metrics, &router, &delivery, &stop)?;
    let admin_state = AdminState {
        metrics: metrics.clone(),
        router: router.clone(),
        rules_dir: settings.rules.dir.clone(),
        settings: settings.admin.clone(),
        webhooks: Some(webhooks),
    };
    tokio::spawn(admin::serve_on(listener, admin_state, stop.clone()));
    if settings.admin.playground {
        tracing::info!(url = %format!("http://{admin_addr}/playground/"), "routing playground");
    }
    if !admin_addr.ip().is_loopback() && settings.admin.write_token.is_none() {
        tracing::warn!(
            admin = %admin_addr,
            "the admin API (and the playground, when on) is reachable beyond this host without a \
             token: anyone can change subscriptions and see rule texts and rendered bodies; set \
             admin.write_token (and admin.read_token), or bind admin.listen to loopback"
        );
    }
    let (dir, watch) = (settings.rules.dir.clone(), settings.rules.watch);
    if watch {
        // File changes and SIGHUP.
        let task = reload::watch(dir, router.clone(), metrics.clone(), stop.clone());
        tokio::spawn(task);
    } else {
        let task =
            rule_changes::reload_on_hangup(dir, router.clone(), metrics.clone(), stop.clone());
        tokio::spawn(task);
    }
    tokio::spawn(rule_changes::follow(
        router.clone(),
        delivery.dispatcher.clone(),
        delivery.backlog.clone(),
        source.clone(),
        stop.clone(),
    ));
    tracing::info!(topics = ?topics, subscriptions = subscriptions.len(), admin = %admin_addr, mode = if settings.backlog.keyed { "keyed" } else { "direct" }, "hookline started");

    let reading = readers.spawn(&settings, &router, &delivery, &stop);
    let deadline = hard_stop_after_grace(&stop, &delivery.hard_stop, settings.shutdown_grace);
    let task = {
        let stop = stop.clone();
        let router = router.clone();
        tokio::spawn(async move {
            source.run(&pipeline, stop).await;
            for reader in reading {
                let _ = reader.await;
            }
            // Every step below shares the one grace that started with the stop.
            let deadline = deadline.await.unwrap_or_else(|_| Instant::now());
            let left = || deadline.saturating_duration_since(Instant::now());
            tracing::info!(grace = ?left(), "stopping: finishing deliveries in flight");
            // The rules must no longer start lanes (and the hook holds the dispatcher).
            router.clear_prepare();
            delivery.dispatcher.shutdown(left()).await;
            pipeline.drain(left()).await;
            let backlog = delivery.backlog.clone();
            let grace = left();
            let _ = tokio::task::spawn_blocking(move || backlog.flush(grace)).await;
            delivery.hard_stop.cancel();
            source.commit().await;
            readers.commit().await;
            tracing::info!(
                unsettled = source.offsets().pending(),
                "stopped; unsettled events will be re-delivered"
            );
            // Leave the consumer groups, so the partitions move to other instances at once,
            // but never wait on librdkafka's close for long (see `ClosingConsumer`).
            let mut closed = readers.closed();
            closed.push(source.closed());
            drop((source, readers));
            let all = futures::future::join_all(closed.iter().map(|c| c.cancelled()));
            if tokio::time::timeout(CLOSE_WITHIN, all).await.is_err() {
                tracing::warn!(within = ?CLOSE_WITHIN, "a Kafka consumer did not close in time; leaving it");
            }
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
