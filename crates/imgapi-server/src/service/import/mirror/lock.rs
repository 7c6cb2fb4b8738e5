//! One mirror per registry. With the embedded store the `imgapi mirror`
//! command locks `<data_dir>/mirror.lock` before opening anything
//! (`crate::data_dir_lock`); with PostgreSQL, whose mirrors may run on
//! different hosts, it holds the database's run lock `mirror` instead.

use imgapi_meta::{RunLock, RunLockAttempt};

use super::MirrorError;
use crate::app::AppState;
use crate::data_dir_lock::LockHolder;

/// The run lock's name.
const RUN_LOCK: &str = "mirror";

/// Take the registry's mirror lock in its database: `Some` guard to keep
/// for the mirror's life, `None` when the database is not shared (the
/// data-directory lock covers it). [`MirrorError::Locked`] names the
/// holder when another mirror runs.
pub async fn lock_registry(app: &AppState) -> Result<Option<RunLock>, MirrorError> {
    match app
        .meta
        .try_run_lock(RUN_LOCK)
        .await
        .map_err(MirrorError::Lock)?
    {
        RunLockAttempt::Taken(lock) => Ok(Some(lock)),
        RunLockAttempt::NotShared => Ok(None),
        RunLockAttempt::Held { holder } => Err(MirrorError::Locked(format!(
            "{} ({holder}): {}",
            LockHolder::Mirror.other(),
            LockHolder::Mirror.advice()
        ))),
    }
}
