//! Webhook delivery: a task on every instance that watches the change log
//! (`change_log_bounds` every `[webhooks] poll_interval_ms` while any
//! endpoint exists; without one, only the endpoint list, once a second)
//! and, for each
//! live endpoint that has events after its cursor and is due (backoff),
//! takes the endpoint's lease and delivers those events one POST at a
//! time, in sequence order.
//!
//! - **One instance per endpoint**: the lease is a conditional UPDATE
//!   (`imgapi_meta::WebhookStore::claim_webhook`); only the holder
//!   advances the cursor, and each step renews the lease. A holder that
//!   dies leaves the lease to expire (`lease_secs`); the next instance
//!   resumes at the cursor, so the event in flight is sent again
//!   (at-least-once; `X-Imgapi-Delivery` identifies repeats).
//! - **Order**: the cursor moves past an event only once the receiver
//!   answered 2xx (or the endpoint's filter skips it); a failure stops the
//!   endpoint until its next attempt, so nothing overtakes a failed event.
//! - **Backoff**: 1 s after the first failure, doubling, at most 5 min;
//!   after `max_failures` consecutive failures the endpoint is dead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgapi_meta::{StoredChange, StoredWebhook, WebhookProgress};
use metrics::Label;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::client::{Failure, WebhookClient};
use crate::app::App;
use crate::service::changes::to_wire;
use crate::service::lifecycle::now_ms;
use crate::telemetry::WEBHOOK_DELIVERIES;

/// Events read per batch.
const BATCH: u32 = 100;
/// The endpoint list is read at least this often (new, resumed and due
/// endpoints), and at once when the log moves.
const RELIST_EVERY: Duration = Duration::from_secs(1);
/// First retry delay.
const BACKOFF_FIRST_MS: i64 = 1_000;
/// Longest retry delay.
pub const BACKOFF_MAX_MS: i64 = 300_000;

/// The delay before the next attempt after `failures` consecutive failures
/// (1 s, 2 s, 4 s, … at most 5 min).
pub fn backoff_ms(failures: u32) -> i64 {
    let doublings = failures.saturating_sub(1).min(30);
    BACKOFF_FIRST_MS
        .saturating_mul(1_i64 << doublings)
        .min(BACKOFF_MAX_MS)
}

/// The running delivery task; [`Delivery::stop`] ends it and hands the
/// endpoints it was delivering back at once.
pub struct Delivery {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<tokio::sync::Notify>,
}

impl Delivery {
    /// Stop delivering: deliveries in flight are abandoned (their event is
    /// sent again by whoever delivers next) and their leases released.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Start delivering (nothing to do until an endpoint exists).
pub fn start(app: App) -> Delivery {
    let stop = Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(run(app, Arc::clone(&stop)));
    Delivery { task, stop }
}

/// This run of this instance, as lease holders are named.
fn holder_name(app: &App) -> String {
    format!("{}/{}", app.hostname, Uuid::new_v4().simple())
}

async fn run(app: App, stop: Arc<tokio::sync::Notify>) {
    let client = match WebhookClient::new(&app.config) {
        Ok(client) => Arc::new(client),
        Err(e) => {
            tracing::error!(error = %e, "webhooks: cannot set up the HTTP client; no deliveries from this instance");
            return;
        }
    };
    let holder: Arc<str> = holder_name(&app).into();
    let every = Duration::from_millis(app.config.webhooks.poll_interval_ms.max(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut workers: JoinSet<()> = JoinSet::new();
    // The endpoints being delivered, by the task delivering them.
    let mut running: HashMap<tokio::task::Id, Uuid> = HashMap::new();
    let mut hooks: Vec<StoredWebhook> = Vec::new();
    let mut listed: Option<(Instant, i64)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.notified() => break,
        }
        let mut finished = false;
        while let Some(done) = workers.try_join_next_with_id() {
            finished = true;
            let task = match done {
                Ok((task, ())) => task,
                Err(e) => {
                    tracing::error!(error = %e, "webhooks: a delivery task failed");
                    e.id()
                }
            };
            running.remove(&task);
        }
        // No endpoint (the common case): re-read only the endpoint list,
        // once a second, not the log's end at every tick.
        let idle = hooks.is_empty() && running.is_empty();
        if idle && listed.is_some_and(|(at, _)| at.elapsed() < RELIST_EVERY) {
            continue;
        }
        let bounds = match app.meta.change_log_bounds().await {
            Ok(bounds) => bounds,
            Err(e) => {
                tracing::debug!(error = %e, "webhooks: cannot read the change log bounds");
                continue;
            }
        };
        let stale = match listed {
            None => true,
            Some((at, seq)) => finished || seq != bounds.last_seq || at.elapsed() >= RELIST_EVERY,
        };
        if stale {
            match app.meta.webhooks().await {
                Ok(all) => {
                    hooks = all;
                    listed = Some((Instant::now(), bounds.last_seq));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "webhooks: cannot list endpoints");
                    continue;
                }
            }
        }
        let now = now_ms();
        for hook in &hooks {
            let lease_free = hook.lease_holder.is_none()
                || hook.lease_holder.as_deref() == Some(&*holder)
                || hook.lease_expires_ms.is_none_or(|t| t < now);
            let due = !hook.dead
                && hook.next_attempt_ms <= now
                && hook.cursor != bounds.last_seq
                && lease_free;
            if due && !running.values().any(|id| *id == hook.id) {
                let worker = Worker {
                    app: app.clone(),
                    client: Arc::clone(&client),
                    holder: Arc::clone(&holder),
                    id: hook.id,
                };
                let task = workers.spawn(async move { worker.deliver().await });
                running.insert(task.id(), hook.id);
            }
        }
    }
    // Abandon deliveries in flight, then hand their endpoints back.
    workers.shutdown().await;
    for id in running.into_values() {
        if let Err(e) = app.meta.release_webhook(id, &holder).await {
            tracing::debug!(webhook = %id, error = %e, "webhooks: cannot release the lease at shutdown");
        }
    }
}

/// Delivers one endpoint while it has due events.
struct Worker {
    app: App,
    client: Arc<WebhookClient>,
    holder: Arc<str>,
    id: Uuid,
}

/// How a delivery step ended.
enum Step {
    /// Caught up, or stopped by a failure (next attempt scheduled).
    Done,
    /// The lease is gone (deleted, resumed, taken over, dead-lettered):
    /// nothing more to write.
    Lost,
}

impl Worker {
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.app.config.webhooks.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    async fn deliver(&self) {
        let now = now_ms();
        let claimed = self
            .app
            .meta
            .claim_webhook(
                self.id,
                &self.holder,
                now,
                now.saturating_add(self.lease_ms()),
            )
            .await;
        let hook = match claimed {
            Ok(Some(hook)) => hook,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(webhook = %self.id, error = %e, "webhooks: cannot claim the endpoint");
                return;
            }
        };
        let step = match self.drain(hook).await {
            Ok(step) => step,
            Err(e) => {
                tracing::warn!(webhook = %self.id, error = %e, "webhooks: delivery stopped by a database error");
                Step::Done
            }
        };
        if matches!(step, Step::Done) {
            if let Err(e) = self.app.meta.release_webhook(self.id, &self.holder).await {
                tracing::debug!(webhook = %self.id, error = %e, "webhooks: cannot release the lease");
            }
        }
    }

    /// Deliver the events after the cursor until caught up or stopped.
    async fn drain(&self, mut hook: StoredWebhook) -> Result<Step, imgapi_meta::MetaError> {
        loop {
            let log = self.app.meta.change_log_bounds().await?;
            if hook.cursor < log.purged_through {
                let error = format!(
                    "events {} to {} were purged from the change log before they could be delivered ([changes] retention_hours); resume with {{\"since\": {}}} or later to go on",
                    hook.cursor + 1,
                    log.purged_through,
                    log.purged_through
                );
                return self.dead_letter(&hook, error).await;
            }
            if hook.cursor > log.last_seq {
                let error = format!(
                    "the cursor ({}) is ahead of the change log (latest event {}): was the database replaced? Resume with {{\"since\": {}}} to go on from now",
                    hook.cursor, log.last_seq, log.last_seq
                );
                return self.dead_letter(&hook, error).await;
            }
            let batch = self.app.meta.changes_after(hook.cursor, BATCH).await?;
            if batch.is_empty() {
                return Ok(Step::Done);
            }
            let mut skipped_to = hook.cursor;
            for change in &batch {
                if !wanted(&hook, change) {
                    skipped_to = change.seq;
                    continue;
                }
                match self.send(&hook, change).await {
                    Ok(status) => {
                        let now = now_ms();
                        let progress = WebhookProgress {
                            cursor: change.seq,
                            delivered: 1,
                            failures: 0,
                            next_attempt_ms: 0,
                            last_error: hook.last_error.clone(),
                            last_status: Some(status),
                            dead_since_ms: None,
                            lease_expires_ms: now.saturating_add(self.lease_ms()),
                            last_delivered_ms: Some(now),
                        };
                        if !self.record(&progress).await? {
                            return Ok(Step::Lost);
                        }
                        self.count("delivered");
                        hook.cursor = change.seq;
                        hook.failures = 0;
                        hook.last_status = Some(status);
                        skipped_to = change.seq;
                    }
                    Err(failure) => {
                        self.count("failed");
                        return self.failed(&hook, skipped_to, failure).await;
                    }
                }
            }
            if skipped_to > hook.cursor {
                let progress = WebhookProgress {
                    cursor: skipped_to,
                    delivered: 0,
                    failures: hook.failures,
                    next_attempt_ms: hook.next_attempt_ms,
                    last_error: hook.last_error.clone(),
                    last_status: hook.last_status,
                    dead_since_ms: None,
                    lease_expires_ms: now_ms().saturating_add(self.lease_ms()),
                    last_delivered_ms: None,
                };
                if !self.record(&progress).await? {
                    return Ok(Step::Lost);
                }
                hook.cursor = skipped_to;
            }
        }
    }

    /// POST one event.
    async fn send(&self, hook: &StoredWebhook, change: &StoredChange) -> Result<u16, Failure> {
        let event = to_wire(change);
        let body = serde_json::to_vec(&event).map_err(|e| Failure {
            status: None,
            error: format!("cannot encode event {}: {e}", change.seq),
        })?;
        let delivery = format!("{}:{}", hook.id, change.seq);
        self.client
            .post(
                &hook.url,
                &hook.secret,
                change.kind.as_str(),
                &delivery,
                body,
            )
            .await
    }

    /// A failed attempt: the cursor moves past the skipped events only,
    /// the next attempt is backed off, and the endpoint dies after
    /// `max_failures`.
    async fn failed(
        &self,
        hook: &StoredWebhook,
        cursor: i64,
        failure: Failure,
    ) -> Result<Step, imgapi_meta::MetaError> {
        let now = now_ms();
        let failures = hook.failures.saturating_add(1);
        let max = self.app.config.webhooks.max_failures;
        let dead = failures >= max;
        let error = if dead {
            format!(
                "{} (dead after {failures} consecutive failures)",
                failure.error
            )
        } else {
            failure.error
        };
        let progress = WebhookProgress {
            cursor,
            delivered: 0,
            failures,
            next_attempt_ms: now.saturating_add(backoff_ms(failures)),
            last_error: Some(error.clone()),
            last_status: failure.status.or(hook.last_status),
            dead_since_ms: dead.then_some(now),
            lease_expires_ms: now.saturating_add(self.lease_ms()),
            last_delivered_ms: None,
        };
        if dead {
            tracing::warn!(webhook = %hook.id, name = %hook.name, failures, error = %error, "webhook dead-lettered: no more attempts until it is resumed (POST /webhooks/{}?action=resume)", hook.id);
        } else {
            tracing::info!(webhook = %hook.id, name = %hook.name, failures, retry_in_ms = backoff_ms(failures), error = %error, "webhook delivery failed");
        }
        Ok(if self.record(&progress).await? && !dead {
            Step::Done
        } else {
            Step::Lost
        })
    }

    /// Dead-letter the endpoint at once (events it can no longer get).
    async fn dead_letter(
        &self,
        hook: &StoredWebhook,
        error: String,
    ) -> Result<Step, imgapi_meta::MetaError> {
        let now = now_ms();
        tracing::warn!(webhook = %hook.id, name = %hook.name, error = %error, "webhook dead-lettered");
        let progress = WebhookProgress {
            cursor: hook.cursor,
            delivered: 0,
            failures: hook.failures,
            next_attempt_ms: hook.next_attempt_ms,
            last_error: Some(error),
            last_status: hook.last_status,
            dead_since_ms: Some(now),
            lease_expires_ms: now,
            last_delivered_ms: None,
        };
        self.record(&progress).await?;
        Ok(Step::Lost)
    }

    async fn record(&self, progress: &WebhookProgress) -> Result<bool, imgapi_meta::MetaError> {
        self.app
            .meta
            .record_webhook_progress(self.id, &self.holder, progress)
            .await
    }

    fn count(&self, result: &'static str) {
        self.app
            .metrics
            .counter(WEBHOOK_DELIVERIES, vec![Label::new("result", result)])
            .increment(1);
    }
}

/// Whether the endpoint's filter takes the event.
fn wanted(hook: &StoredWebhook, change: &StoredChange) -> bool {
    hook.events
        .as_ref()
        .is_none_or(|events| events.iter().any(|e| e == change.kind.as_str()))
}

/// The endpoints' states and total lag, for the scrape-time gauges:
/// `(active, retrying, dead, lag of the live ones)`.
pub fn gauges(hooks: &[StoredWebhook], last_seq: i64) -> (u64, u64, u64, i64) {
    let mut out = (0, 0, 0, 0);
    for hook in hooks {
        if hook.dead {
            out.2 += 1;
            continue;
        }
        if hook.failures > 0 {
            out.1 += 1;
        } else {
            out.0 += 1;
        }
        out.3 += last_seq.saturating_sub(hook.cursor).max(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arithmetic docs/webhooks.md and the `max_failures` default
    /// rely on.
    #[test]
    fn backoff_doubles_to_five_minutes() {
        let delays: Vec<i64> = (1..=11).map(backoff_ms).collect();
        assert_eq!(
            delays,
            vec![
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000,
                300_000
            ]
        );
        assert_eq!(backoff_ms(u32::MAX), BACKOFF_MAX_MS);
        // Failures within the first hour of an outage: attempt k+1 comes
        // sum(backoff(1..=k)) after the first.
        let mut at = 0;
        let mut failures = 0;
        while at <= 3_600_000 {
            failures += 1;
            at += backoff_ms(failures);
        }
        assert_eq!(failures, 20, "an hour down fails 20 times");
        let day: i64 = (1..=300).map(backoff_ms).sum();
        assert!(
            day > 86_400_000 && day < 90_000_000,
            "300 failures ≈ 24 h: {day}"
        );
    }
}
