//! Scheduled retention runs (`[retention] interval_hours > 0`): every
//! instance looks now and then whether a run is due, and at most one
//! retention job is queued at a time across instances. The decision is
//! taken under the `retention` run lock (PostgreSQL; an SQLite store has
//! one host, whose instance decides alone), and a run is due only when no
//! retention job is unfinished and the last one was queued at least
//! `interval_hours` ago.

use std::time::Duration;

use chrono::{DateTime, Utc};
use imgapi_meta::{JobExecution, RunLockAttempt};
use uuid::Uuid;

use super::{start_run, RETENTION_TASK};
use crate::app::{App, AppState};
use crate::service::ServiceError;

/// The longest wait between two looks.
const LOOK_EVERY_MAX: Duration = Duration::from_secs(300);

/// Whether a run is due at `now`, given when the retention jobs were
/// queued and whether one is unfinished.
fn due(
    now: DateTime<Utc>,
    interval_hours: u64,
    last: Option<DateTime<Utc>>,
    unfinished: bool,
) -> bool {
    if interval_hours == 0 || unfinished {
        return false;
    }
    let Ok(hours) = i64::try_from(interval_hours) else {
        return false;
    };
    last.is_none_or(|t| now.signed_duration_since(t).num_hours() >= hours)
}

/// Queue a retention job if one is due: the new job's uuid.
pub async fn enqueue_if_due(app: &AppState) -> Result<Option<Uuid>, ServiceError> {
    let interval = app.config.retention.interval_hours;
    if interval == 0 {
        return Ok(None);
    }
    let _lock = match app
        .meta
        .try_run_lock(RETENTION_TASK)
        .await
        .map_err(ServiceError::meta("error taking the retention run lock"))?
    {
        RunLockAttempt::Taken(lock) => Some(lock),
        RunLockAttempt::NotShared => None,
        // Another instance is deciding right now.
        RunLockAttempt::Held { .. } => return Ok(None),
    };
    let jobs = app
        .meta
        .image_jobs(Uuid::nil())
        .await
        .map_err(ServiceError::meta("error loading retention jobs"))?;
    let ours = jobs.iter().filter(|j| j.name == RETENTION_TASK);
    let mut unfinished = false;
    let mut last: Option<DateTime<Utc>> = None;
    for job in ours {
        unfinished |= matches!(job.execution, JobExecution::Queued | JobExecution::Running);
        let created = DateTime::parse_from_rfc3339(&job.created_at)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        last = last.max(created);
    }
    if !due(Utc::now(), interval, last, unfinished) {
        return Ok(None);
    }
    Ok(Some(start_run(app).await?.uuid))
}

/// The periodic task; stops when dropped or [`Scheduler::stop`]ped.
pub struct Scheduler(Option<tokio::task::JoinHandle<()>>);

impl Scheduler {
    pub fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Look now and then every `interval_hours` (at most every
/// [`LOOK_EVERY_MAX`]); nothing runs when `interval_hours` is 0.
pub fn start(app: App) -> Scheduler {
    let hours = app.config.retention.interval_hours;
    if hours == 0 {
        return Scheduler(None);
    }
    let every = Duration::from_secs(hours.saturating_mul(3600)).min(LOOK_EVERY_MAX);
    Scheduler(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match enqueue_if_due(&app).await {
                Ok(Some(job)) => tracing::info!(job = %job, "scheduled retention run queued"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot schedule a retention run"),
            }
        }
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_only_after_the_interval_and_never_beside_an_unfinished_run() {
        let now = Utc::now();
        let hours = |h: i64| Some(now - chrono::TimeDelta::hours(h));
        assert!(due(now, 24, None, false));
        assert!(!due(now, 24, hours(23), false));
        assert!(due(now, 24, hours(24), false));
        assert!(!due(now, 24, hours(48), true));
        assert!(!due(now, 0, None, false));
    }
}
