//! The webhooks API's state and what every handler does with it: views, names, drafts,
//! records, signing keys, and writing a change and waiting until it is in force here.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};

use super::body::Draft;
use super::view::{Webhook, WebhookResponse};
use super::{meta, sealing, store_failed, WebhooksApi, APPLY_WAIT};
use crate::admin::problem::{ApiError, RequestId};
use crate::deliver::Secret;
use crate::subscription::model::{fields, keys, SigningKey, StoredWebhook, RECORD_VERSION};

impl WebhooksApi {
    /// Any subscription as the API shows it.
    pub(crate) fn view(&self, id: &str) -> Option<Webhook> {
        let now = Utc::now();
        let health = self.catalogue.health(id);
        if let Some(w) = self.catalogue.webhook(id) {
            return Some(Webhook::of_api(&w, health.as_ref(), now));
        }
        let rules = self.router.current();
        let sub = rules.subscriptions().iter().find(|s| &*s.id == id)?;
        let disabled_at = self
            .catalogue
            .status_of_file(id)
            .filter(|s| s.disable_reason.is_some())
            .map(|s| s.changed_at);
        Some(Webhook::of_file(sub, health.as_ref(), disabled_at))
    }

    /// The answer of a handler that shows one subscription: its view, or a 404 problem.
    pub(crate) fn respond(
        &self,
        id: &str,
        rid: &RequestId,
    ) -> Result<axum::Json<WebhookResponse>, ApiError> {
        let data = self.view(id).ok_or_else(|| ApiError::not_found(id))?;
        Ok(axum::Json(WebhookResponse {
            data,
            meta: meta(rid),
        }))
    }

    /// Every subscription, by id.
    pub(crate) fn all(&self) -> Vec<Webhook> {
        let now = Utc::now();
        let state = self.catalogue.state();
        let rules = self.router.current();
        let mut out: Vec<Webhook> = state
            .webhooks
            .values()
            .map(|w| Webhook::of_api(w, state.health.get(&w.id), now))
            .collect();
        for sub in rules.subscriptions() {
            if state.webhooks.contains_key(&*sub.id) || rules.is_catalogue_subscription(&sub.id) {
                continue;
            }
            let disabled_at = state
                .statuses
                .get(&*sub.id)
                .filter(|s| s.disable_reason.is_some())
                .map(|s| s.changed_at);
            out.push(Webhook::of_file(
                sub,
                state.health.get(&*sub.id),
                disabled_at,
            ));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// `Err(409)` when another subscription has `name`.
    pub(crate) fn unique_name(&self, name: &str, except: &str) -> Result<(), ApiError> {
        let taken = self
            .all()
            .into_iter()
            .any(|w| w.id != except && w.name.trim().eq_ignore_ascii_case(name.trim()));
        if taken {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("a subscription named {:?} exists already", name.trim()),
            ));
        }
        Ok(())
    }

    /// An API subscription, or 409 for a file one, or 404.
    pub(crate) fn stored(&self, id: &str) -> Result<StoredWebhook, ApiError> {
        if let Some(w) = self.catalogue.webhook(id) {
            return Ok(w);
        }
        if self
            .router
            .current()
            .subscriptions()
            .iter()
            .any(|s| &*s.id == id)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "read-only",
                format!("subscription {id:?} is defined in a rule file; change it there"),
            ));
        }
        Err(ApiError::not_found(id))
    }

    /// Writes `w` and waits until it is in force here.
    pub(crate) async fn put(&self, w: &StoredWebhook) -> Result<(), ApiError> {
        let offset = self
            .writer
            .write(&keys::webhook(&w.id), Some(w))
            .await
            .map_err(|e| {
                self.metrics
                    .subscription_store_errors
                    .with_label_values(&["write"])
                    .inc();
                store_failed(e)
            })?;
        self.settle(offset).await;
        Ok(())
    }

    /// Waits until the record at `offset` is in force here.
    pub(crate) async fn settle(&self, offset: i64) {
        if !self.catalogue.wait_applied(offset, APPLY_WAIT).await {
            tracing::warn!(
                offset,
                "a subscription change is stored but not yet in force here"
            );
        }
    }

    /// The stored subscription as a draft, its secrets opened.
    pub(crate) fn draft_of(&self, w: &StoredWebhook) -> Result<Draft, ApiError> {
        let secrets = self.catalogue.secrets();
        let open = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| secrets.open(&w.id, field, s))
                .transpose()
                .map_err(sealing)
        };
        Ok(Draft {
            name: w.name.clone(),
            url: w.url.clone(),
            event_types: w.event_types.clone(),
            min_severity: w.min_severity.clone(),
            topics: w.topics.clone(),
            filter: w.filter.clone(),
            template: w.template.clone(),
            headers: w.headers.clone(),
            skip_tls_verify: w.skip_tls_verify,
            concurrency: w.concurrency,
            auth_type: w.auth_type,
            user_name: open(fields::USER_NAME, &w.user_name)?,
            password: open(fields::PASSWORD, &w.password)?,
            token: open(fields::TOKEN, &w.token)?,
            token_name: w.token_name.clone(),
            signing_token: None,
        })
    }

    /// The record for `d`, secrets sealed; `signing` as it will be stored.
    pub(crate) fn record(
        &self,
        id: &str,
        d: &Draft,
        signing: Vec<SigningKey>,
        base: Option<&StoredWebhook>,
        now: DateTime<Utc>,
    ) -> Result<StoredWebhook, ApiError> {
        let secrets = self.catalogue.secrets();
        let seal = |field: &str, v: &Option<Secret>| {
            v.as_ref()
                .map(|s| secrets.seal(id, field, s))
                .transpose()
                .map_err(sealing)
        };
        Ok(StoredWebhook {
            version: RECORD_VERSION,
            id: id.to_string(),
            name: d.name.trim().to_string(),
            url: d.url.trim().to_string(),
            event_types: d.event_types.clone(),
            min_severity: d.min_severity.clone(),
            topics: d.topics.clone(),
            filter: d.filter.clone(),
            template: d.template.clone(),
            headers: d.headers.clone(),
            skip_tls_verify: d.skip_tls_verify,
            concurrency: d.concurrency,
            auth_type: d.auth_type,
            user_name: seal(fields::USER_NAME, &d.user_name)?,
            password: seal(fields::PASSWORD, &d.password)?,
            token: seal(fields::TOKEN, &d.token)?,
            token_name: d.token_name.clone(),
            signing,
            status: base.map_or(crate::deliver::SubscriptionStatus::Active, |b| b.status),
            disable_reason: base.and_then(|b| b.disable_reason.clone()),
            disabled_at: base.and_then(|b| b.disabled_at),
            created_at: base.map_or(now, |b| b.created_at),
            last_modified_at: now,
        })
    }

    /// Seals `secret` as the current signing key, the previous current one kept for the
    /// overlap; expired ones are dropped.
    pub(crate) fn rotate_keys(
        &self,
        w: &StoredWebhook,
        secret: &Secret,
        now: DateTime<Utc>,
    ) -> Result<(Vec<SigningKey>, Option<DateTime<Utc>>), ApiError> {
        let sealed = self
            .catalogue
            .secrets()
            .seal(&w.id, fields::SIGNING, secret)
            .map_err(sealing)?;
        let until = now + chrono::Duration::from_std(self.signing_overlap).unwrap_or_default();
        let mut keys = vec![SigningKey {
            secret: sealed,
            created_at: now,
            expires_at: None,
        }];
        let mut previous = None;
        for mut k in w.signing.iter().filter(|k| k.signs_at(now)).cloned() {
            if k.expires_at.is_none() {
                if self.signing_overlap.is_zero() {
                    continue;
                }
                k.expires_at = Some(until);
                previous = Some(until);
            }
            keys.push(k);
        }
        Ok((keys, previous))
    }

    /// The signing secrets of `keys` that sign at `now`, opened.
    pub(crate) fn signing_secrets(
        &self,
        id: &str,
        keys: &[SigningKey],
        now: DateTime<Utc>,
    ) -> Result<Vec<Secret>, ApiError> {
        keys.iter()
            .filter(|k| k.signs_at(now))
            .map(|k| {
                self.catalogue
                    .secrets()
                    .open(id, fields::SIGNING, &k.secret)
            })
            .collect::<Result<_, _>>()
            .map_err(sealing)
    }
}
