//! Run locks (PostgreSQL): a session-level advisory lock on a dedicated
//! connection, so that the lock lives exactly as long as the guard (a
//! pooled connection would carry it back into the pool).

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::Connection;

use super::{PostgresStore, CONNECT_TIMEOUT};
use crate::run_lock::{RunLock, RunLockAttempt, RunLockStore};
use crate::MetaError;

/// The first key of imgapi's advisory locks ("IMGA"), the second being the
/// lock name's hash: keeps them apart from other applications' locks and
/// from sqlx's migration lock (a single 64-bit key).
const LOCK_CLASS: i32 = 0x494d_4741;

const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1, hashtext($2))";

/// Who holds the lock: the session's pid, application name, client
/// address and start, if this role may see them.
const HOLDER: &str = "SELECT a.pid, COALESCE(a.application_name, ''), \
     COALESCE(host(a.client_addr), 'a local socket'), \
     COALESCE(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '?') \
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 \
     AND l.classid = $1::oid AND l.objid = hashtext($2)::oid \
    LIMIT 1";

#[async_trait]
impl RunLockStore for PostgresStore {
    async fn try_run_lock(&self, name: &str) -> Result<RunLockAttempt, MetaError> {
        let options = self
            .pool
            .connect_options()
            .as_ref()
            .clone()
            .application_name(&format!("imgapi {name}"));
        let mut session =
            tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
                .await
                .map_err(|_| {
                    MetaError::Unavailable(format!(
                        "cannot connect to PostgreSQL at {}: no answer within {} s",
                        self.target,
                        CONNECT_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(|e| self.err(e))?;
        let taken: bool = sqlx::query_scalar(TRY_LOCK)
            .bind(LOCK_CLASS)
            .bind(name)
            .fetch_one(&mut session)
            .await
            .map_err(|e| self.err(e))?;
        if taken {
            return Ok(RunLockAttempt::Taken(RunLock::held_by(session)));
        }
        let holder: Option<(i32, String, String, String)> = sqlx::query_as(HOLDER)
            .bind(LOCK_CLASS)
            .bind(name)
            .fetch_optional(&mut session)
            .await
            .map_err(|e| self.err(e))?;
        let _ = session.close().await;
        let holder = match holder {
            Some((pid, application, client, since)) => format!(
                "PostgreSQL session {pid} ({application}) from {client}, connected since {since}, \
                 holds advisory lock ({LOCK_CLASS}, hashtext('{name}')) on {}",
                self.target
            ),
            None => format!("another PostgreSQL session on {}", self.target),
        };
        Ok(RunLockAttempt::Held { holder })
    }
}
