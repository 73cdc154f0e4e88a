//! The catalogue: every subscription, whether a rule file or the API defines it. It holds what
//! the subscriptions topic says (API subscriptions, statuses set on file subscriptions,
//! delivery health), turns it into the catalogue's part of the rule set's
//! [inputs](crate::rules::inputs), and tells API requests when their write is in force here.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::crypto::{SealError, SecretBox};
use super::model::{HealthRecord, StatusRecord, StoredWebhook};
use super::store::Change;
use crate::rules::inputs::{CatalogueInputs, StatusOverride};

/// What the topic says, by subscription id.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// API subscriptions.
    pub webhooks: BTreeMap<String, StoredWebhook>,
    /// Statuses set on rule-file subscriptions.
    pub statuses: BTreeMap<String, StatusRecord>,
    /// Delivery health.
    pub health: BTreeMap<String, HealthRecord>,
}

struct Inner {
    state: RwLock<State>,
    /// The offset after the last record whose change is in force here.
    applied: watch::Sender<i64>,
    secrets: SecretBox,
}

/// The catalogue. Cheap to clone.
#[derive(Clone)]
pub struct Catalogue {
    inner: Arc<Inner>,
}

impl Catalogue {
    /// An empty catalogue opening secrets with `secrets`.
    pub fn new(secrets: SecretBox) -> Catalogue {
        Catalogue {
            inner: Arc::new(Inner {
                state: RwLock::default(),
                applied: watch::channel(0).0,
                secrets,
            }),
        }
    }

    /// Seals and opens secrets.
    pub fn secrets(&self) -> &SecretBox {
        &self.inner.secrets
    }

    /// Takes in one change; returns whether the rule set must be compiled again (health
    /// alone changes no route).
    pub fn take(&self, change: Change) -> bool {
        let mut state = self.inner.state.write().expect("catalogue lock");
        match change {
            Change::Webhook(id, Some(w)) => {
                state.webhooks.insert(id, *w);
                true
            }
            Change::Webhook(id, None) => {
                state.health.remove(&id);
                state.webhooks.remove(&id).is_some()
            }
            Change::Status(id, Some(s)) => {
                state.statuses.insert(id, s);
                true
            }
            Change::Status(id, None) => state.statuses.remove(&id).is_some(),
            Change::Health(id, Some(h)) => {
                state.health.insert(id, h);
                false
            }
            Change::Health(id, None) => {
                state.health.remove(&id);
                false
            }
        }
    }

    /// A copy of everything.
    pub fn state(&self) -> State {
        self.inner.state.read().expect("catalogue lock").clone()
    }

    /// One API subscription.
    pub fn webhook(&self, id: &str) -> Option<StoredWebhook> {
        let state = self.inner.state.read().expect("catalogue lock");
        state.webhooks.get(id).cloned()
    }

    /// The health of one subscription.
    pub fn health(&self, id: &str) -> Option<HealthRecord> {
        let state = self.inner.state.read().expect("catalogue lock");
        state.health.get(id).cloned()
    }

    /// The status record of one rule-file subscription.
    pub fn status_of_file(&self, id: &str) -> Option<StatusRecord> {
        let state = self.inner.state.read().expect("catalogue lock");
        state.statuses.get(id).cloned()
    }

    /// The catalogue's part of the rule set at `now`, and the subscriptions left out because
    /// their secrets do not open (a key other than the one they were sealed with).
    pub fn inputs(&self, now: DateTime<Utc>) -> (CatalogueInputs, Vec<(String, SealError)>) {
        let state = self.inner.state.read().expect("catalogue lock");
        let mut webhooks: Vec<&StoredWebhook> = state.webhooks.values().collect();
        // Creation order, so positions stay put as subscriptions come and go.
        webhooks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let mut inputs = CatalogueInputs::default();
        let mut failed = Vec::new();
        for w in webhooks {
            match w.to_route(&self.inner.secrets, now) {
                Ok(route) => inputs.subscriptions.push(route),
                Err(e) => failed.push((w.id.clone(), e)),
            }
        }
        for (id, s) in &state.statuses {
            inputs.overrides.insert(
                id.clone(),
                StatusOverride {
                    status: s.status,
                    reason: s.disable_reason.clone(),
                },
            );
        }
        (inputs, failed)
    }

    /// The earliest time a rotated-out signing secret stops signing.
    pub fn next_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let state = self.inner.state.read().expect("catalogue lock");
        state
            .webhooks
            .values()
            .filter_map(|w| w.next_expiry(now))
            .min()
    }

    /// Records that every change before offset `next` is in force.
    pub fn applied(&self, next: i64) {
        self.inner.applied.send_if_modified(|at| {
            let moved = next > *at;
            *at = (*at).max(next);
            moved
        });
    }

    /// Waits until the change written at `offset` is in force here; `false` after `timeout`.
    pub async fn wait_applied(&self, offset: i64, timeout: Duration) -> bool {
        let mut applied = self.inner.applied.subscribe();
        tokio::time::timeout(timeout, applied.wait_for(|at| *at > offset))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
