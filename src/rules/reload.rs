//! Hot reload: a new rule set is compiled from its [`Inputs`] and put in force atomically, on a
//! file change in the rules directory, on SIGHUP, or when the admin API asks ([`reload_now`]:
//! the files read again, the catalogue's part kept), and when the subscription catalogue
//! changes ([`apply_catalogue`]: the files kept, the catalogue's part replaced). An invalid
//! set is rejected with its problems logged, and the rules in force stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use super::inputs::{CatalogueInputs, Inputs};
use super::{LoadError, Problem, Router, RuleSet};
use crate::metrics::Metrics;

/// Quiet time after the last file event before reloading: editors and `git checkout` write
/// several files, and one reload of the finished state is wanted, not one per write.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Loads the rules for start-up, recording the load time like a reload does.
pub fn load_initial(dir: &Path, metrics: &Metrics) -> Result<RuleSet, LoadError> {
    load_initial_with(dir, Arc::default(), metrics)
}

/// [`load_initial`] with what the subscription catalogue adds.
pub fn load_initial_with(
    dir: &Path,
    catalogue: Arc<CatalogueInputs>,
    metrics: &Metrics,
) -> Result<RuleSet, LoadError> {
    let files = Arc::new(super::load::read_dir(dir));
    let rules = RuleSet::from_inputs(Inputs { files, catalogue })?;
    metrics.rules_loaded_timestamp.set(unix_now());
    Ok(rules)
}

/// The catalogue's part of the rules in force.
fn catalogue_of(router: &Router) -> Arc<CatalogueInputs> {
    router
        .current()
        .inputs()
        .map(|i| i.catalogue.clone())
        .unwrap_or_default()
}

/// Reloads `dir` into `router` now (file changes, SIGHUP, `POST /api/v1/rules/reload`), with
/// the catalogue's part kept as it is. Loading runs on the blocking pool; on error the rules
/// in force are untouched.
pub async fn reload_now(dir: &Path, router: &Router, metrics: &Metrics) -> Result<(), LoadError> {
    let _reloading = router.reload_lock().await;
    let owned = dir.to_path_buf();
    let catalogue = catalogue_of(router);
    let loaded = tokio::task::spawn_blocking(move || {
        let files = Arc::new(super::load::read_dir(&owned));
        RuleSet::from_inputs(Inputs { files, catalogue })
    })
    .await
    .unwrap_or_else(|e| Err(loader_failed(dir, e)));
    apply(&dir.display().to_string(), loaded, router, metrics)
}

/// Puts `catalogue` in force with the rule files in force (an API change: a subscription
/// created, changed, paused or removed), through the same compile-and-replace path as a file
/// change. The files are not read again: what was read last is what is in force.
pub async fn apply_catalogue(
    catalogue: CatalogueInputs,
    router: &Router,
    metrics: &Metrics,
) -> Result<(), LoadError> {
    let _reloading = router.reload_lock().await;
    let current = router.current();
    let Some(files) = current.inputs().map(|i| i.files.clone()) else {
        return Err(LoadError {
            problems: vec![Problem {
                file: "subscriptions".into(),
                line: 0,
                col: 0,
                message: "the rules in force were not loaded from a directory".into(),
            }],
        });
    };
    let dir = files.dir.display().to_string();
    let catalogue = Arc::new(catalogue);
    let loaded =
        tokio::task::spawn_blocking(move || RuleSet::from_inputs(Inputs { files, catalogue }))
            .await
            .unwrap_or_else(|e| Err(loader_failed(Path::new(&dir), e)));
    apply("subscription catalogue", loaded, router, metrics)
}

fn loader_failed(dir: &Path, e: tokio::task::JoinError) -> LoadError {
    LoadError {
        problems: vec![Problem {
            file: dir.display().to_string(),
            line: 0,
            col: 0,
            message: format!("the loader failed: {e}"),
        }],
    }
}

/// [`reload_now`] for callers without a runtime.
pub fn reload_blocking(dir: &Path, router: &Router, metrics: &Metrics) -> Result<(), LoadError> {
    let catalogue = catalogue_of(router);
    let files = Arc::new(super::load::read_dir(dir));
    let loaded = RuleSet::from_inputs(Inputs { files, catalogue });
    apply(&dir.display().to_string(), loaded, router, metrics)
}

/// Puts a loaded set in force, or rejects it; either way logs and counts it (one event, so
/// logs and metrics cannot disagree).
fn apply(
    from: &str,
    loaded: Result<RuleSet, LoadError>,
    router: &Router,
    metrics: &Metrics,
) -> Result<(), LoadError> {
    match loaded {
        Ok(rules) => {
            let (routes, subs) = (rules.route_ids().count(), rules.subscriptions().len());
            router.replace(rules);
            metrics.rule_reloads.with_label_values(&["ok"]).inc();
            metrics.rules_loaded_timestamp.set(unix_now());
            tracing::info!(from, routes, subscriptions = subs, "rules reloaded");
            Ok(())
        }
        Err(e) => {
            metrics.rule_reloads.with_label_values(&["rejected"]).inc();
            tracing::error!(from, problems = %e, "rule reload rejected; the previous rules stay in force");
            Err(e)
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reloads on file changes under `dir` (debounced) and on SIGHUP until `shutdown`.
/// If the directory cannot be watched, SIGHUP and the admin endpoint still work.
pub async fn watch(dir: PathBuf, router: Router, metrics: Metrics, shutdown: CancellationToken) {
    let (tx, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                // A full channel already means "reload pending".
                let _ = tx.try_send(());
            }
        }
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::Recursive).map(|()| w));
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot watch the rules directory; reload with SIGHUP or the admin API");
            None
        }
    };
    let mut hangup = hangup();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = changes.recv() => {
                // Wait for the writes to settle.
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        more = changes.recv() => if more.is_none() { break },
                        _ = tokio::time::sleep(DEBOUNCE) => break,
                    }
                }
                tracing::debug!(dir = %dir.display(), "rule files changed");
                let _ = reload_now(&dir, &router, &metrics).await;
            }
            Some(()) = recv(&mut hangup) => {
                tracing::info!(dir = %dir.display(), "SIGHUP: reloading rules");
                let _ = reload_now(&dir, &router, &metrics).await;
            }
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup() -> Hangup {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .inspect_err(|e| tracing::error!(error = %e, "cannot listen for SIGHUP"))
        .ok()
}

#[cfg(not(unix))]
fn hangup() -> Hangup {
    None
}

/// The next SIGHUP; never, without a handler.
async fn recv(h: &mut Hangup) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = h {
        return s.recv().await;
    }
    let _ = h;
    std::future::pending().await
}
