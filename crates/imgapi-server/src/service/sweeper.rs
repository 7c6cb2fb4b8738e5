//! The lifecycle sweeper (docs/lifecycle.md): every `[lifecycle]
//! sweep_interval_secs` it purges expired recycle-bin entries and removes
//! abandoned uploads (images never activated, older than
//! `abandoned_upload_hours`, with their resumable upload sessions), and
//! purges change-log events older than `[changes] retention_hours`.
//!
//! Several instances may share one database: each sweep runs under the
//! database's run lock `lifecycle-sweep` (a PostgreSQL session advisory
//! lock), and an instance that finds it held skips that sweep, so every
//! removal happens once. All its state is in the database (expiry and
//! creation times), so a restart loses nothing: the next sweep finds what
//! is due.

use std::time::Duration;

use imgapi_meta::RunLockAttempt;
use metrics::Label;

use super::images::{delete_image, Removal};
use super::lifecycle::now_ms;
use super::recycle_bin::purge_entry;
use super::uploads::discard_all_of;
use super::ServiceError;
use crate::app::{App, AppState};
use crate::telemetry::{LIFECYCLE_ABANDONED_REMOVED, LIFECYCLE_PURGED, LIFECYCLE_SWEEPS};

/// The run lock's name.
const RUN_LOCK: &str = "lifecycle-sweep";

/// Entries or images handled per batch; a sweep goes on while batches
/// come back full.
const BATCH: u32 = 100;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired recycle-bin entries purged.
    pub purged: u64,
    /// Abandoned uploads removed.
    pub abandoned: u64,
    /// Removals that failed (logged; tried again next sweep).
    pub failed: u64,
    /// Change-log events purged (older than `[changes] retention_hours`).
    pub changes_purged: u64,
}

/// What [`sweep`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepOutcome {
    Ran(SweepReport),
    /// Another instance was sweeping.
    Skipped,
}

/// One sweep, if no other instance is sweeping.
pub async fn sweep(app: &AppState) -> Result<SweepOutcome, ServiceError> {
    let lock = app
        .meta
        .try_run_lock(RUN_LOCK)
        .await
        .map_err(ServiceError::meta("error taking the lifecycle sweep lock"))?;
    // Held until the end of this function.
    let _held = match lock {
        RunLockAttempt::Taken(lock) => Some(lock),
        RunLockAttempt::NotShared => None,
        RunLockAttempt::Held { holder } => {
            tracing::debug!(%holder, "lifecycle sweep skipped: another instance is sweeping");
            return Ok(SweepOutcome::Skipped);
        }
    };
    let mut report = SweepReport::default();
    // Also with `recycle_days = 0`: entries binned while it was larger
    // still expire.
    purge_expired(app, &mut report).await?;
    if app.config.lifecycle.abandoned_upload_hours > 0.0 {
        remove_abandoned(app, &mut report).await?;
    }
    let before = now_ms().saturating_sub(app.config.changes.retention_ms());
    report.changes_purged = app
        .meta
        .purge_changes_before(before)
        .await
        .map_err(ServiceError::meta("error purging the change log"))?;
    Ok(SweepOutcome::Ran(report))
}

async fn purge_expired(app: &AppState, report: &mut SweepReport) -> Result<(), ServiceError> {
    let now = now_ms();
    loop {
        let due = app
            .meta
            .expired_bin_entries(now, BATCH)
            .await
            .map_err(ServiceError::meta(
                "error listing expired recycle bin entries",
            ))?;
        let mut progressed = false;
        for entry in &due {
            match purge_entry(app, entry, "expired").await {
                Ok(removed) => {
                    progressed = true;
                    if removed {
                        report.purged += 1;
                        app.metrics.counter(LIFECYCLE_PURGED, vec![]).increment(1);
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(image = %entry.image.uuid, error = %e, "could not purge expired recycle bin entry");
                }
            }
        }
        if due.len() < BATCH as usize || !progressed {
            return Ok(());
        }
    }
}

async fn remove_abandoned(app: &AppState, report: &mut SweepReport) -> Result<(), ServiceError> {
    let before = now_ms().saturating_sub(app.config.lifecycle.abandoned_ms());
    loop {
        let due = app
            .meta
            .abandoned_images(before, BATCH)
            .await
            .map_err(ServiceError::meta("error listing abandoned uploads"))?;
        let mut progressed = false;
        for uuid in &due {
            let stored = app
                .meta
                .get(*uuid)
                .await
                .map_err(ServiceError::meta(format!("error loading image {uuid}")))?;
            // Activated or deleted since it was listed.
            let Some(stored) = stored.filter(|s| !s.image.activated) else {
                continue;
            };
            let owner = stored.image.owner;
            match delete_image(app, stored, None, None, Removal::Immediate).await {
                Ok(()) => {
                    discard_all_of(app, *uuid).await;
                    progressed = true;
                    report.abandoned += 1;
                    app.metrics
                        .counter(LIFECYCLE_ABANDONED_REMOVED, vec![])
                        .increment(1);
                    tracing::info!(image = %uuid, %owner, "abandoned upload removed (never activated)");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(image = %uuid, error = %e, "could not remove abandoned upload");
                }
            }
        }
        if due.len() < BATCH as usize || !progressed {
            return Ok(());
        }
    }
}

/// The periodic sweeping task; stops when dropped or [`Sweeper::stop`]ped.
pub struct Sweeper(tokio::task::JoinHandle<()>);

impl Sweeper {
    pub fn stop(self) {
        self.0.abort();
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sweep now (start-up) and then every `sweep_interval_secs`.
pub fn start_sweeper(app: App) -> Sweeper {
    let every = Duration::from_secs(app.config.lifecycle.sweep_interval_secs.max(1));
    Sweeper(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = match sweep(&app).await {
                Ok(SweepOutcome::Ran(report)) => {
                    if report != SweepReport::default() {
                        tracing::info!(
                            purged = report.purged,
                            abandoned = report.abandoned,
                            failed = report.failed,
                            changes_purged = report.changes_purged,
                            "lifecycle sweep"
                        );
                    }
                    "ran"
                }
                Ok(SweepOutcome::Skipped) => "skipped",
                Err(e) => {
                    tracing::warn!(error = %e, "lifecycle sweep failed");
                    "failed"
                }
            };
            app.metrics
                .counter(LIFECYCLE_SWEEPS, vec![Label::new("result", result)])
                .increment(1);
        }
    }))
}
