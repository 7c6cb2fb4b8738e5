//! SQLite backend: the embedded default (STYLE.md item 9).
//!
//! - One database file in WAL mode with `synchronous=FULL`: a write that
//!   returned `Ok` survives a power cut (NORMAL would only protect against
//!   corruption, not against losing the last acknowledged commits).
//! - A single-connection writer pool, used only by the writer task, which
//!   commits queued writes in batches, one fsync per batch ([`writer`]), and
//!   a read-only pool of several connections (WAL readers never block the
//!   writer; they see committed data only, and a write is acknowledged only
//!   once committed).
//! - Migrations are embedded (`migrations/sqlite/`) and run on open.
//! - `record` holds the image record's JSON; the other columns and the side
//!   tables are derived from it in the same transaction, so ListImages is
//!   answered by one SQL query (see `crate::sql::list_query`).
//! - One module per role (`images`, `jobs`, `uploads`, `usage`);
//!   statements and row mappings shared with PostgreSQL live in
//!   `crate::sql`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::Sqlite;
use uuid::Uuid;

use crate::sql::images::dependents_in_channel_sql;
use crate::sql::list_query::{KeyLookup, ListDialect};
use crate::sql::retention::RetentionSql;
use crate::sql::uploads::UploadClaim;
use crate::sql::webhooks::WebhookSql;
use crate::sql::{affected_rows, is_unique_violation, SqlBackend, Write};
use crate::{MetaError, UploadSession};
use writer::Writer;

mod images;
mod jobs;
mod quotas;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
mod uploads;
mod usage;
mod writer;

/// Connections in the read-only pool.
const READ_POOL_SIZE: u32 = 8;
/// How long a statement waits for a database lock before failing (SQLITE_BUSY).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a pooled connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite [`crate::MetaStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Read-only connections for `get`, `list`, … (the writer pool itself
    /// for in-memory databases, which cannot be shared between pools).
    reader: SqlitePool,
    /// The single read-write connection, used by `writes` (and by tests).
    writer: SqlitePool,
    /// Where every write goes.
    writes: Writer,
}

impl SqliteStore {
    /// Open (creating it and its parent directory if needed) the database
    /// file at `path` and bring its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, MetaError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                MetaError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full);

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(map_err)?;
        MIGRATOR.run(&writer).await.map_err(map_migrate_err)?;

        // Opened after the writer has switched the file to WAL and created
        // the schema; read-only connections cannot do either.
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(base.read_only(true))
            .await
            .map_err(map_err)?;
        let writes = Writer::spawn(writer.clone());
        Ok(SqliteStore {
            reader,
            writer,
            writes,
        })
    }

    /// A fresh, private in-memory database (tests). One connection serves
    /// reads and writes; it is never closed while the store lives, since the
    /// database disappears with its last connection.
    pub async fn open_in_memory() -> Result<Self, MetaError> {
        // `:memory:` gets a unique shared-cache name per call.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(map_err)?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        MIGRATOR.run(&pool).await.map_err(map_migrate_err)?;
        Ok(SqliteStore {
            reader: pool.clone(),
            writes: Writer::spawn(pool.clone()),
            writer: pool,
        })
    }

    /// Open from a database URL: `sqlite://PATH`, `sqlite:PATH`
    /// (`sqlite:///abs/path` for an absolute path) or `sqlite::memory:`.
    /// URL query parameters are not supported.
    pub async fn open_url(url: &str) -> Result<Self, MetaError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| MetaError::Backend(format!("not a sqlite URL: `{url}`")))?;
        if rest == ":memory:" {
            return Self::open_in_memory().await;
        }
        if rest.is_empty() || rest.contains('?') {
            return Err(MetaError::Backend(format!(
                "invalid sqlite URL `{url}` (expected sqlite://PATH or sqlite:PATH, no parameters)"
            )));
        }
        Self::open(Path::new(rest)).await
    }

    /// Close both pools, waiting for running queries (graceful shutdown).
    /// Later writes fail with `Unavailable`.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// One host's database: its users lock a file of the data directory.
#[async_trait]
impl crate::RunLockStore for SqliteStore {
    async fn try_run_lock(&self, _name: &str) -> Result<crate::RunLockAttempt, MetaError> {
        Ok(crate::RunLockAttempt::NotShared)
    }
}

#[async_trait]
impl SqlBackend for SqliteStore {
    type Db = Sqlite;
    /// SQLite's `INTEGER` is 64 bits.
    type Attempts = i64;

    const DEPENDENTS_IN_CHANNEL: &'static str = dependents_in_channel_sql!("c.channel = $2");
    const GENERATION: &'static str = "SELECT value FROM revision_counter WHERE id = 1";
    const LIST_DIALECT: ListDialect = ListDialect {
        always_true: "1",
        substring_position: "instr",
        key_lookup: KeyLookup::Plain,
    };
    const PREPARE_LISTS: bool = true;

    fn read_pool(&self) -> &SqlitePool {
        &self.reader
    }

    fn sql_err(&self, e: sqlx::Error) -> MetaError {
        map_err(e)
    }

    async fn write(&self, write: Write) -> Result<i64, MetaError> {
        self.writes.run(write).await
    }

    async fn claim_upload_row(
        &self,
        claim: UploadClaim,
    ) -> Result<Option<UploadSession>, MetaError> {
        self.claim_and_read_upload(claim).await
    }
}

/// Perform `write` on `conn`, inside the writer's transaction. Yields the
/// new revision of an image write, else the number of rows touched. On
/// `Err` the caller rolls back whatever `write` did.
async fn apply(conn: &mut SqliteConnection, write: &Write) -> Result<i64, MetaError> {
    match write {
        Write::Image(write) => images::apply(conn, write).await,
        Write::Job(write) => jobs::apply(conn, write).await,
        Write::Upload(write) => uploads::apply(conn, write).await,
        Write::Changes(write) => crate::sql::changes::apply::<Sqlite>(conn, write)
            .await
            .map_err(map_err),
        Write::MirrorCursor(write) => affected(
            crate::sql::mirror_cursors::MirrorCursorSql::<Sqlite>::write(write)
                .execute(conn)
                .await,
        ),
        Write::Retention(write) => {
            let done = RetentionSql::<Sqlite>::write(write).execute(conn).await;
            match (done, write.inserted()) {
                (Err(e), Some(id)) => Err(map_insert_err(e, id)),
                (done, _) => affected(done),
            }
        }
        Write::Webhook(write) => {
            let done = WebhookSql::<Sqlite>::write(write).execute(conn).await;
            match (done, write.inserted()) {
                (Err(e), Some(id)) => Err(map_insert_err(e, id)),
                (done, _) => affected(done),
            }
        }
    }
}

/// Rows touched by a statement, as an op outcome.
fn affected(done: Result<SqliteQueryResult, sqlx::Error>) -> Result<i64, MetaError> {
    Ok(affected_rows(done.map_err(map_err)?.rows_affected()))
}

/// Map a sqlx error: the database not being reachable (or locked past the
/// busy timeout, out of disk, I/O failures) is `Unavailable` (→ 503), the
/// rest `Backend`.
fn map_err(e: sqlx::Error) -> MetaError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => MetaError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) => {
            // Extended result code; the primary code is its low byte.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            match primary {
                // BUSY, LOCKED, IOERR, FULL, CANTOPEN
                Some(5 | 6 | 10 | 13 | 14) => MetaError::Unavailable(e.to_string()),
                _ => MetaError::Backend(e.to_string()),
            }
        }
        _ => MetaError::Backend(e.to_string()),
    }
}

/// `map_err`, except that a unique violation means `uuid` is taken.
fn map_insert_err(e: sqlx::Error, uuid: Uuid) -> MetaError {
    if is_unique_violation(&e) {
        MetaError::AlreadyExists(uuid)
    } else {
        map_err(e)
    }
}

fn map_migrate_err(e: MigrateError) -> MetaError {
    match e {
        MigrateError::Execute(inner) => map_err(inner),
        other => MetaError::Backend(format!("migrating the metadata database: {other}")),
    }
}
