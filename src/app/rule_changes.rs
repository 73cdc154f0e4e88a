//! Following rule changes: reload on SIGHUP (when files are not watched), start the lanes of
//! new subscriptions before the rules naming them go live, retire removed ones after, create
//! new backlog topics, and follow topic changes.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::backlog::BacklogWriter;
use crate::deliver::Dispatcher;
use crate::metrics::Metrics;
use crate::rules::{reload, Router};
use crate::source::Source;

/// Has `router` start new subscriptions' lanes before a rule set naming them goes live.
pub(super) fn prepare_lanes(router: &Router, dispatcher: &Dispatcher) {
    let dispatcher = dispatcher.clone();
    router.set_prepare(Arc::new(move |rules| {
        dispatcher.prepare(rules.subscriptions())
    }));
}

/// With `rules.watch = false`: reload on SIGHUP only (the admin API works either way).
pub(super) async fn reload_on_hangup(
    dir: PathBuf,
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

/// After every rule set that went live: retire removed subscriptions' lanes, create new
/// backlog topics, and subscribe to the new topics.
pub(super) async fn follow(
    router: Router,
    dispatcher: Dispatcher,
    backlog: BacklogWriter,
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
        dispatcher.retire_absent(rules.subscriptions());
        backlog
            .ensure_topics(rules.subscriptions().iter().map(|s| &*s.id))
            .await;
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
