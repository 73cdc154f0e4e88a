//! Status changes: pause, resume and disable, written to the subscriptions topic so that
//! every instance follows; and auto-disable.
//!
//! The lanes already do what each status means (`crate::deliver::lane`): paused, new events
//! wait in the backlog and resume delivers them in order; disabled, routes send nothing new
//! and the backlog waits until resumed or deleted. Here is only who decides:
//!
//! - **`410 Gone`**: the lane that got it stops at once and keeps the delivery in its backlog
//!   ([`Gone`]); the subscription is disabled through the topic, so every instance stops.
//! - **Failing without a success** for `subscriptions.disable_after` (default 5 days): each
//!   instance reports, every [`TICK`], the outcomes its lanes saw. A failure streak is kept
//!   fleet-wide in the topic (`health:<id>`: when it began), written only when a streak
//!   begins or ends, so it costs nothing per delivery and survives restarts. Any instance
//!   that sees a streak older than the limit disables the subscription.
//! - **Resume** clears the reason, the time and the streak.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::catalogue::Catalogue;
use super::model::{keys, HealthRecord, StatusRecord, RECORD_VERSION};
use super::store::{StoreError, StoreWriter};
use crate::deliver::health::DeliveryHealth;
use crate::deliver::{Gone, SubscriptionStatus};
use crate::metrics::Metrics;
use crate::rules::Router;

/// How often outcomes are reported and streaks checked.
pub const TICK: Duration = Duration::from_secs(10);

/// A status change.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Deliveries wait in the backlog.
    Pause,
    /// Active again; a disable reason and the failure streak are cleared.
    Resume,
    /// Nothing new is routed to it; its backlog waits.
    Disable {
        /// Why, for people.
        reason: String,
        /// The `reason` label of `hookline_subscriptions_disabled_total`.
        cause: &'static str,
    },
}

/// A status change could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No subscription has that id.
    #[error("no subscription {0:?}")]
    NotFound(String),
    /// The topic could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes status changes. Cheap to clone.
#[derive(Clone)]
pub struct StatusChanges {
    /// What the topic says.
    pub catalogue: Catalogue,
    /// Where changes go.
    pub writer: StoreWriter,
    /// The rules in force (for rule-file subscriptions).
    pub router: Router,
    /// Counters.
    pub metrics: Metrics,
    /// What the lanes saw.
    pub health: Arc<DeliveryHealth>,
    /// Failing this long without a success disables.
    pub disable_after: Option<Duration>,
}

impl StatusChanges {
    /// Applies `action` to subscription `id`; returns the offset of the record written (the
    /// caller may wait until it is in force), or `None` when nothing had to change.
    pub async fn apply(&self, id: &str, action: Action) -> Result<Option<i64>, StatusError> {
        let now = Utc::now();
        if let Some(mut w) = self.catalogue.webhook(id) {
            let before = (w.status, w.disable_reason.clone());
            match &action {
                Action::Pause => w.status = SubscriptionStatus::Paused,
                Action::Resume => {
                    w.status = SubscriptionStatus::Active;
                    w.disable_reason = None;
                    w.disabled_at = None;
                }
                Action::Disable { reason, .. } => {
                    if w.status == SubscriptionStatus::Disabled {
                        return Ok(None);
                    }
                    w.status = SubscriptionStatus::Disabled;
                    w.disable_reason = Some(reason.clone());
                    w.disabled_at = Some(now);
                }
            }
            if (w.status, w.disable_reason.clone()) == before && action != Action::Resume {
                return Ok(None);
            }
            w.last_modified_at = now;
            if action == Action::Resume {
                self.writer
                    .write::<HealthRecord>(&keys::health(id), None)
                    .await?;
            }
            let offset = self.writer.write(&keys::webhook(id), Some(&w)).await?;
            self.changed(id, &action);
            return Ok(Some(offset));
        }
        let rules = self.router.current();
        let Some(sub) = rules.subscriptions().iter().find(|s| &*s.id == id) else {
            return Err(StatusError::NotFound(id.to_string()));
        };
        let record = |status, disable_reason| StatusRecord {
            version: RECORD_VERSION,
            id: id.to_string(),
            status,
            disable_reason,
            changed_at: now,
        };
        let offset = match &action {
            Action::Resume => {
                self.writer
                    .write::<HealthRecord>(&keys::health(id), None)
                    .await?;
                // Back to what the rule file says.
                self.writer
                    .write::<StatusRecord>(&keys::status(id), None)
                    .await?
            }
            Action::Pause => {
                let r = record(SubscriptionStatus::Paused, None);
                self.writer.write(&keys::status(id), Some(&r)).await?
            }
            Action::Disable { reason, .. } => {
                if sub.config.status == SubscriptionStatus::Disabled {
                    return Ok(None);
                }
                let r = record(SubscriptionStatus::Disabled, Some(reason.clone()));
                self.writer.write(&keys::status(id), Some(&r)).await?
            }
        };
        self.changed(id, &action);
        Ok(Some(offset))
    }

    /// `SubscriptionStatusChanged`: logs and counts one change.
    fn changed(&self, id: &str, action: &Action) {
        match action {
            Action::Disable { reason, cause } => {
                self.metrics
                    .subscriptions_disabled
                    .with_label_values(&[cause])
                    .inc();
                tracing::warn!(subscription = %id, %reason, "subscription disabled; its backlog waits until it is resumed or deleted");
            }
            Action::Pause => tracing::info!(subscription = %id, "subscription paused"),
            Action::Resume => tracing::info!(subscription = %id, "subscription resumed"),
        }
    }

    /// Reports outcomes and checks failure streaks every [`TICK`] until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            self.report().await;
            self.disable_failing(Utc::now()).await;
            self.count();
        }
    }

    /// Writes a streak's start or end when this instance's outcomes change it.
    async fn report(&self) {
        let rules = self.router.current();
        for (id, seen) in self.health.take() {
            if !rules.subscriptions().iter().any(|s| s.id == id) {
                continue;
            }
            let stored = self.catalogue.health(&id).unwrap_or_default();
            let failing_since = match seen.last_success {
                Some(_) => seen.failing_since,
                None => stored.failing_since.or(seen.failing_since),
            };
            if failing_since == stored.failing_since {
                continue;
            }
            let record = HealthRecord {
                version: RECORD_VERSION,
                id: id.to_string(),
                failing_since,
                last_success_at: seen.last_success.or(stored.last_success_at),
            };
            if let Err(e) = self.writer.write(&keys::health(&id), Some(&record)).await {
                self.metrics
                    .subscription_store_errors
                    .with_label_values(&["write"])
                    .inc();
                tracing::error!(subscription = %id, error = %e, "cannot record delivery health");
            }
        }
    }

    /// Disables active subscriptions whose failure streak is older than the limit.
    async fn disable_failing(&self, now: DateTime<Utc>) {
        let Some(limit) = self.disable_after else {
            return;
        };
        let limit_chrono = chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX);
        let rules = self.router.current();
        let health: HashMap<String, HealthRecord> =
            self.catalogue.state().health.into_iter().collect();
        for sub in rules.subscriptions() {
            if sub.config.status != SubscriptionStatus::Active {
                continue;
            }
            let Some(since) = health.get(&*sub.id).and_then(|h| h.failing_since) else {
                continue;
            };
            if now - since < limit_chrono {
                continue;
            }
            let reason = format!(
                "no successful delivery since {} ({} without a success)",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                humantime::format_duration(limit)
            );
            let action = Action::Disable {
                reason,
                cause: "failing",
            };
            if let Err(e) = self.apply(&sub.id, action).await {
                tracing::error!(subscription = %sub.id, error = %e, "cannot disable a failing subscription");
            }
        }
    }

    /// Sets the `hookline_subscriptions` gauge.
    fn count(&self) {
        let rules = self.router.current();
        self.metrics.subscriptions.reset();
        for sub in rules.subscriptions() {
            let source = if rules.is_catalogue_subscription(&sub.id) {
                "api"
            } else {
                "file"
            };
            let status = match sub.config.status {
                SubscriptionStatus::Active => "active",
                SubscriptionStatus::Paused => "paused",
                SubscriptionStatus::Disabled => "disabled",
            };
            self.metrics
                .subscriptions
                .with_label_values(&[source, status])
                .inc();
        }
    }
}

impl Gone for StatusChanges {
    fn gone(&self, subscription: &str, webhook_id: &str) {
        let this = self.clone();
        let id = subscription.to_string();
        let reason = format!(
            "{} (delivery {webhook_id})",
            crate::deliver::lane::GONE_REASON
        );
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            for _ in 0..10 {
                let action = Action::Disable {
                    reason: reason.clone(),
                    cause: "gone",
                };
                match this.apply(&id, action).await {
                    Ok(_) | Err(StatusError::NotFound(_)) => return,
                    Err(e) => {
                        tracing::error!(subscription = %id, error = %e, "cannot disable the subscription after 410 Gone; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
    }
}
