//! The health endpoint's checks (docs/operating.md "Health checks").
//!
//! Each backend is asked one cheap question (the MetaStore's `ping`, the
//! blob stores' `health_check`), all at once, each bounded by
//! [`CHECK_TIMEOUT`]. The answer is reused for [`CACHE_FOR`] and only one
//! check runs at a time (later callers wait for it), so any number of
//! pollers costs the backends at most one round of checks per second and
//! an answer never takes longer than two check timeouts.
//!
//! Clients see a short category of the failure; the backend's own error
//! (hosts, paths, bucket names) goes to the log, once per change.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use imgapi_blob::BlobError;
use imgapi_meta::MetaError;
use imgapi_types::{Health, HealthCheck, HealthChecks};

use crate::app::AppState;

/// Longest a single backend check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(400);
/// How long one round of checks answers every caller.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

const OK: &str = "ok";
const ERROR: &str = "error";

/// The last round of checks, shared by every request.
#[derive(Default)]
pub struct HealthCache {
    last: tokio::sync::Mutex<Option<(Instant, Health)>>,
}

impl HealthCache {
    /// The backends' health, checked now unless a round finished less
    /// than [`CACHE_FOR`] ago.
    pub async fn current(&self, app: &AppState) -> Health {
        let mut last = self.last.lock().await;
        if let Some((at, health)) = last.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return health.clone();
            }
        }
        let (health, details) = check_all(app).await;
        log_changes(last.as_ref().map(|(_, h)| h), &health, &details);
        *last = Some((Instant::now(), health.clone()));
        health
    }
}

/// Whether every check of `health` passed.
pub fn is_healthy(health: &Health) -> bool {
    health.status == OK
}

/// The checks' outcomes plus, per failed check, the backend's own error.
struct Details {
    database: Option<String>,
    storage: Option<String>,
}

async fn check_all(app: &AppState) -> (Health, Details) {
    let database = timed(app.meta.ping(), describe_meta_error);
    let storage = timed(check_stores(app), describe_blob_error);
    let ((database, database_detail), (storage, storage_detail)) = tokio::join!(database, storage);
    let all_ok = database.status == OK && storage.status == OK;
    let health = Health {
        status: if all_ok { OK } else { ERROR }.to_string(),
        checks: HealthChecks { database, storage },
    };
    let details = Details {
        database: database_detail,
        storage: storage_detail,
    };
    (health, details)
}

/// Every configured blob store (files may live in any of them).
async fn check_stores(app: &AppState) -> Result<(), BlobError> {
    let stores = std::iter::once(&app.blobs).chain(app.extra_blobs.iter());
    let checks = stores.map(|store| store.health_check());
    futures_util::future::try_join_all(checks).await?;
    Ok(())
}

/// Run `check` under [`CHECK_TIMEOUT`]: the wire outcome and, on failure,
/// the full error for the log.
async fn timed<E: Display>(
    check: impl Future<Output = Result<(), E>>,
    describe: fn(&E) -> &'static str,
) -> (HealthCheck, Option<String>) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, check).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let failed = |message: String, detail: String| {
        let check = HealthCheck {
            status: ERROR.to_string(),
            message: Some(message),
            latency_ms,
        };
        (check, Some(detail))
    };
    match outcome {
        Ok(Ok(())) => (
            HealthCheck {
                status: OK.to_string(),
                message: None,
                latency_ms,
            },
            None,
        ),
        Ok(Err(e)) => failed(describe(&e).to_string(), e.to_string()),
        Err(_) => {
            let message = format!("no answer within {} ms", CHECK_TIMEOUT.as_millis());
            failed(message.clone(), message)
        }
    }
}

fn describe_meta_error(e: &MetaError) -> &'static str {
    match e {
        MetaError::Unavailable(_) => "database unavailable",
        _ => "database error",
    }
}

fn describe_blob_error(e: &BlobError) -> &'static str {
    match e {
        BlobError::Unavailable(_) => "storage unavailable",
        BlobError::Inaccessible(_) => "storage bucket missing or access denied",
        BlobError::NotFound(_) => "storage location not found",
        BlobError::Io(_) => "storage I/O error",
        _ => "storage error",
    }
}

/// One log line when a check starts failing, changes its reason or
/// recovers, not one per poll.
fn log_changes(previous: Option<&Health>, now: &Health, details: &Details) {
    let pairs = [
        (
            "database",
            previous.map(|h| &h.checks.database),
            &now.checks.database,
            &details.database,
        ),
        (
            "storage",
            previous.map(|h| &h.checks.storage),
            &now.checks.storage,
            &details.storage,
        ),
    ];
    for (name, before, after, detail) in pairs {
        let changed = before.is_none_or(|b| b.status != after.status || b.message != after.message);
        if !changed {
            continue;
        }
        match detail {
            Some(detail) => tracing::warn!(check = name, error = %detail, "health check failed"),
            None if before.is_some() => tracing::info!(check = name, "health check passes again"),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hanging_check_fails_within_its_timeout() {
        let started = Instant::now();
        let (check, detail) = timed(
            std::future::pending::<Result<(), MetaError>>(),
            describe_meta_error,
        )
        .await;
        assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_millis(200));
        assert_eq!(check.status, ERROR);
        assert_eq!(check.message.as_deref(), Some("no answer within 400 ms"));
        assert!(detail.is_some());
    }

    #[tokio::test]
    async fn a_failing_check_names_a_category_not_the_backend_error() {
        let failing = async { Err(MetaError::Unavailable("db.internal:5432 refused".into())) };
        let (check, detail) = timed(failing, describe_meta_error).await;
        assert_eq!(check.status, ERROR);
        assert_eq!(check.message.as_deref(), Some("database unavailable"));
        assert!(detail.is_some_and(|d| d.contains("db.internal")));
    }

    #[tokio::test]
    async fn a_passing_check_has_no_message() {
        let (check, detail) = timed(async { Ok::<(), BlobError>(()) }, describe_blob_error).await;
        assert_eq!(check.status, OK);
        assert_eq!(check.message, None);
        assert_eq!(detail, None);
    }

    #[test]
    fn check_bounds_keep_an_answer_under_one_second() {
        // A caller may wait for a round in progress, then run its own.
        assert!(CHECK_TIMEOUT * 2 < Duration::from_secs(1));
    }
}
