//! Finished jobs are kept for `jobs_retention_days`, then deleted by a task
//! that runs at start-up and hourly, so the jobs table does not grow
//! without bound. Queued and running jobs are never deleted.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::app::{App, AppState};
use crate::service::ServiceError;

/// How often the pruner looks for expired jobs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The `finished_at` before which a finished job is deleted, in the
/// layout jobs are stored with; `None` when jobs are kept forever.
pub fn cutoff(now: DateTime<Utc>, retention_days: u64) -> Option<String> {
    if retention_days == 0 {
        return None;
    }
    let days = i64::try_from(retention_days).ok()?;
    let before = now.checked_sub_signed(chrono::TimeDelta::try_days(days)?)?;
    Some(before.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// Delete the finished jobs older than the retention: how many went.
pub async fn prune(app: &AppState) -> Result<u64, ServiceError> {
    let Some(before) = cutoff(Utc::now(), app.config.jobs_retention_days) else {
        return Ok(0);
    };
    let pruned = app
        .meta
        .prune_finished_jobs(&before)
        .await
        .map_err(ServiceError::meta("error pruning finished jobs"))?;
    if pruned > 0 {
        tracing::info!(pruned, finished_before = %before, "pruned finished jobs");
    }
    Ok(pruned)
}

/// The periodic pruning task; stops when dropped or [`Pruner::stop`]ped.
pub struct Pruner(tokio::task::JoinHandle<()>);

impl Pruner {
    pub fn stop(self) {
        self.0.abort();
    }
}

impl Drop for Pruner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Prune now (start-up) and then every hour.
pub fn start_pruner(app: App) -> Pruner {
    Pruner(tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = prune(&app).await {
                tracing::warn!(error = %e, "job pruning failed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::cutoff;

    #[test]
    fn cutoff_is_retention_days_ago_or_none_for_zero() {
        let now = chrono::DateTime::parse_from_rfc3339("2030-03-02T10:00:00.5Z")
            .map(|t| t.with_timezone(&chrono::Utc));
        let Ok(now) = now else {
            panic!("fixed timestamp parses");
        };
        assert_eq!(cutoff(now, 0), None);
        assert_eq!(cutoff(now, 30).as_deref(), Some("2030-01-31T10:00:00.500Z"));
    }
}
