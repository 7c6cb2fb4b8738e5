//! Locks that one process at a time holds for as long as it runs, across
//! every host sharing the database: what keeps two `imgapi mirror` runs
//! into one registry apart.
//!
//! PostgreSQL takes a session-level advisory lock on a connection of its
//! own, held by the [`RunLock`] guard: dropping the guard, or the process
//! dying (kill -9 included), ends the session and with it the lock. The
//! embedded SQLite store belongs to one host; there the caller locks a
//! file in its data directory instead ([`RunLockAttempt::NotShared`]).

use async_trait::async_trait;

use crate::MetaError;

/// A held run lock; dropping it releases the lock.
pub struct RunLock {
    _session: Box<dyn Send + Sync>,
}

impl RunLock {
    /// A lock held for as long as `session` lives.
    pub(crate) fn held_by(session: impl Send + Sync + 'static) -> RunLock {
        RunLock {
            _session: Box::new(session),
        }
    }
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunLock")
    }
}

/// What trying to take a run lock found.
#[derive(Debug)]
pub enum RunLockAttempt {
    /// Taken: held until the guard is dropped.
    Taken(RunLock),
    /// Another process holds it; `holder` says who, as far as the
    /// database can tell (session, client address, since when).
    Held { holder: String },
    /// This store is not shared between hosts (SQLite): lock a file of
    /// the data directory instead.
    NotShared,
}

/// Run locks of a metadata backend.
#[async_trait]
pub trait RunLockStore: Send + Sync + 'static {
    /// Take the run lock `name` without waiting.
    async fn try_run_lock(&self, name: &str) -> Result<RunLockAttempt, MetaError>;
}
