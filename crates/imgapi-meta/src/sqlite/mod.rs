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
//! - `record` holds the [`ImageRecord`] JSON; the other columns and the side
//!   tables are derived from it in the same transaction, so ListImages is
//!   answered by one SQL query (see [`query`]).
//! - Revisions come from one global counter, so a revision is never reused,
//!   not even when a uuid is deleted and created again.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::ImageRecord;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use crate::columns::Columns;
use crate::columns::{decode_record, decode_uuid};
use crate::jobs::{job_columns, JobRow, RawJob};
use crate::uploads::{upload_columns, RawUpload, UploadRow};
use crate::{JobRecord, MetaError, MetaStore, Revision, StoredImage, UploadSession};
use writer::Writer;

mod query;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
mod usage;
mod writer;

/// Connections in the read-only pool.
const READ_POOL_SIZE: u32 = 8;
/// How long a statement waits for a database lock before failing (SQLITE_BUSY).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a pooled connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite [`MetaStore`].
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

/// A write, as queued for the writer task.
pub(super) enum Op {
    Insert(Columns),
    Update {
        row: Columns,
        expected: Revision,
    },
    Put(Columns),
    Rename {
        old_uuid: Uuid,
        expected: Revision,
        row: Columns,
    },
    Delete(Uuid),
    InsertJob(JobRow),
    UpdateJob {
        row: JobRow,
        owner: String,
    },
    ClaimJob {
        uuid: Uuid,
        owner: String,
        now_ms: i64,
        expires_ms: i64,
    },
    ReleaseJobs(String),
    InsertUpload(UploadRow),
    ClaimUpload {
        id: Uuid,
        owner: String,
        now_ms: i64,
        expires_ms: i64,
    },
    RenewUpload {
        id: Uuid,
        owner: String,
        expires_ms: i64,
    },
    AdvanceUpload {
        row: UploadRow,
        owner: String,
        from_offset: i64,
    },
    ReleaseUpload {
        id: Uuid,
        owner: String,
    },
    DeleteUpload(Uuid),
    DeleteExpiredUpload {
        id: Uuid,
        now_ms: i64,
    },
}

/// Perform `op` on `conn`, inside the writer's transaction. Yields the new
/// revision, or for `Delete` the number of rows deleted. On `Err` the
/// caller rolls back whatever `op` did.
async fn apply(conn: &mut SqliteConnection, op: &Op) -> Result<i64, MetaError> {
    match op {
        Op::Insert(row) => {
            let revision = next_revision(conn).await?;
            write_row(conn, INSERT_SQL, row, revision)
                .await
                .map_err(|e| map_insert_err(e, row.id))?;
            insert_side_rows(conn, row).await?;
            Ok(revision)
        }
        Op::Update { row, expected } => {
            let revision = next_revision(conn).await?;
            if !update_row(conn, row, revision, *expected).await? {
                return Err(missed_write(conn, row.id).await);
            }
            replace_side_rows(conn, row).await?;
            Ok(revision)
        }
        Op::Put(row) => {
            let revision = next_revision(conn).await?;
            write_row(conn, UPSERT_SQL, row, revision)
                .await
                .map_err(map_err)?;
            replace_side_rows(conn, row).await?;
            Ok(revision)
        }
        Op::Rename {
            old_uuid,
            expected,
            row,
        } => {
            let revision = next_revision(conn).await?;
            let deleted = sqlx::query("DELETE FROM images WHERE uuid = ? AND revision = ?")
                .bind(old_uuid.to_string())
                .bind(expected)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            if deleted.rows_affected() != 1 {
                return Err(missed_write(conn, *old_uuid).await);
            }
            write_row(conn, INSERT_SQL, row, revision)
                .await
                .map_err(|e| map_insert_err(e, row.id))?;
            insert_side_rows(conn, row).await?;
            Ok(revision)
        }
        Op::Delete(uuid) => {
            // Deletes move the generation too, so caches stamped with it expire.
            next_revision(conn).await?;
            // Side rows go by ON DELETE CASCADE (foreign_keys is on).
            let done = sqlx::query("DELETE FROM images WHERE uuid = ?")
                .bind(uuid.to_string())
                .execute(conn)
                .await
                .map_err(map_err)?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }
        Op::InsertJob(row) => {
            sqlx::query(INSERT_JOB_SQL)
                .bind(&row.uuid)
                .bind(&row.image_uuid)
                .bind(&row.name)
                .bind(row.execution)
                .bind(&row.params)
                .bind(&row.chain_results)
                .bind(&row.created_at)
                .bind(row.started_at.as_deref())
                .bind(row.finished_at.as_deref())
                .bind(row.lease_owner.as_deref())
                .bind(row.lease_expires_ms)
                .bind(row.attempts)
                .execute(conn)
                .await
                .map_err(|e| map_insert_err(e, row.id))?;
            Ok(1)
        }
        Op::UpdateJob { row, owner } => {
            let done = sqlx::query(UPDATE_JOB_SQL)
                .bind(row.execution)
                .bind(&row.params)
                .bind(&row.chain_results)
                .bind(row.started_at.as_deref())
                .bind(row.finished_at.as_deref())
                .bind(row.lease_owner.as_deref())
                .bind(row.lease_expires_ms)
                .bind(&row.uuid)
                .bind(owner)
                .execute(conn)
                .await
                .map_err(map_err)?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }
        Op::ClaimJob {
            uuid,
            owner,
            now_ms,
            expires_ms,
        } => {
            let done = sqlx::query(CLAIM_JOB_SQL)
                .bind(owner)
                .bind(expires_ms)
                .bind(uuid.to_string())
                .bind(now_ms)
                .execute(conn)
                .await
                .map_err(map_err)?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }
        Op::ReleaseJobs(owner) => {
            let done = sqlx::query(RELEASE_JOBS_SQL)
                .bind(owner)
                .execute(conn)
                .await
                .map_err(map_err)?;
            Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
        }
        Op::InsertUpload(row) => {
            sqlx::query(INSERT_UPLOAD_SQL)
                .bind(&row.uuid)
                .bind(&row.image_uuid)
                .bind(&row.params)
                .bind(&row.stor)
                .bind(&row.blob_key)
                .bind(&row.handle)
                .bind(row.offset)
                .bind(row.size)
                .bind(&row.parts)
                .bind(&row.digests)
                .bind(row.created_ms)
                .bind(row.expires_ms)
                .bind(row.lease_owner.as_deref())
                .bind(row.lease_expires_ms)
                .execute(conn)
                .await
                .map_err(|e| map_insert_err(e, row.id))?;
            Ok(1)
        }
        Op::ClaimUpload {
            id,
            owner,
            now_ms,
            expires_ms,
        } => affected(
            sqlx::query(CLAIM_UPLOAD_SQL)
                .bind(owner)
                .bind(expires_ms)
                .bind(id.to_string())
                .bind(now_ms)
                .execute(conn)
                .await,
        ),
        Op::RenewUpload {
            id,
            owner,
            expires_ms,
        } => affected(
            sqlx::query(RENEW_UPLOAD_SQL)
                .bind(expires_ms)
                .bind(id.to_string())
                .bind(owner)
                .execute(conn)
                .await,
        ),
        Op::AdvanceUpload {
            row,
            owner,
            from_offset,
        } => affected(
            sqlx::query(ADVANCE_UPLOAD_SQL)
                .bind(row.offset)
                .bind(row.size)
                .bind(&row.parts)
                .bind(&row.digests)
                .bind(row.expires_ms)
                .bind(&row.uuid)
                .bind(owner)
                .bind(from_offset)
                .execute(conn)
                .await,
        ),
        Op::ReleaseUpload { id, owner } => affected(
            sqlx::query(RELEASE_UPLOAD_SQL)
                .bind(id.to_string())
                .bind(owner)
                .execute(conn)
                .await,
        ),
        Op::DeleteUpload(id) => affected(
            sqlx::query("DELETE FROM upload_sessions WHERE id = ?")
                .bind(id.to_string())
                .execute(conn)
                .await,
        ),
        Op::DeleteExpiredUpload { id, now_ms } => affected(
            sqlx::query(DELETE_EXPIRED_UPLOAD_SQL)
                .bind(id.to_string())
                .bind(now_ms)
                .bind(now_ms)
                .execute(conn)
                .await,
        ),
    }
}

/// Rows affected by a statement, as an op outcome.
fn affected(done: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> Result<i64, MetaError> {
    let done = done.map_err(map_err)?;
    Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
}

const INSERT_UPLOAD_SQL: &str = "INSERT INTO upload_sessions \
    (id, image_uuid, params, stor, blob_key, handle, committed, size, parts, digests, \
     created_ms, expires_ms, lease_owner, lease_expires_ms) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const CLAIM_UPLOAD_SQL: &str = "UPDATE upload_sessions SET lease_owner = ?, lease_expires_ms = ? \
    WHERE id = ? AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < ?)";

const RENEW_UPLOAD_SQL: &str =
    "UPDATE upload_sessions SET lease_expires_ms = ? WHERE id = ? AND lease_owner = ?";

const ADVANCE_UPLOAD_SQL: &str = "UPDATE upload_sessions SET \
     committed = ?, size = ?, parts = ?, digests = ?, expires_ms = ?, \
     lease_owner = NULL, lease_expires_ms = NULL \
    WHERE id = ? AND lease_owner = ? AND committed = ?";

const RELEASE_UPLOAD_SQL: &str = "UPDATE upload_sessions \
    SET lease_owner = NULL, lease_expires_ms = NULL WHERE id = ? AND lease_owner = ?";

const DELETE_EXPIRED_UPLOAD_SQL: &str = "DELETE FROM upload_sessions \
    WHERE id = ? AND expires_ms < ? \
     AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < ?)";

/// A `SELECT upload_columns!()` row.
fn raw_upload(row: &sqlx::sqlite::SqliteRow) -> Result<RawUpload, sqlx::Error> {
    Ok(RawUpload {
        id: row.try_get(0)?,
        image_uuid: row.try_get(1)?,
        params: row.try_get(2)?,
        stor: row.try_get(3)?,
        blob_key: row.try_get(4)?,
        handle: row.try_get(5)?,
        offset: row.try_get(6)?,
        size: row.try_get(7)?,
        parts: row.try_get(8)?,
        digests: row.try_get(9)?,
        created_ms: row.try_get(10)?,
        expires_ms: row.try_get(11)?,
        lease_owner: row.try_get(12)?,
        lease_expires_ms: row.try_get(13)?,
    })
}

const INSERT_JOB_SQL: &str = "INSERT INTO jobs \
    (uuid, image_uuid, name, execution, params, chain_results, created_at, started_at, \
     finished_at, lease_owner, lease_expires_ms, attempts) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const UPDATE_JOB_SQL: &str = "UPDATE jobs SET \
     execution = ?, params = ?, chain_results = ?, started_at = ?, finished_at = ?, \
     lease_owner = ?, lease_expires_ms = ? \
    WHERE uuid = ? AND lease_owner = ?";

const CLAIM_JOB_SQL: &str = "UPDATE jobs SET \
     lease_owner = ?, lease_expires_ms = ?, attempts = attempts + 1, execution = 'running' \
    WHERE uuid = ? AND execution IN ('queued', 'running') \
     AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < ?)";

const RELEASE_JOBS_SQL: &str = "UPDATE jobs SET lease_owner = NULL, lease_expires_ms = NULL \
    WHERE lease_owner = ? AND execution IN ('queued', 'running')";

/// A `SELECT JOB_COLUMNS` row.
fn raw_job(row: &sqlx::sqlite::SqliteRow) -> Result<RawJob, sqlx::Error> {
    Ok(RawJob {
        uuid: row.try_get(0)?,
        image_uuid: row.try_get(1)?,
        name: row.try_get(2)?,
        execution: row.try_get(3)?,
        params: row.try_get(4)?,
        chain_results: row.try_get(5)?,
        created_at: row.try_get(6)?,
        started_at: row.try_get(7)?,
        finished_at: row.try_get(8)?,
        lease_owner: row.try_get(9)?,
        lease_expires_ms: row.try_get(10)?,
        attempts: row.try_get(11)?,
    })
}

const INSERT_SQL: &str = "INSERT INTO images \
    (uuid, revision, owner, name, version, state, activated, disabled, public, type, os, \
     origin, published_ms, record) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const UPSERT_SQL: &str = "INSERT INTO images \
    (uuid, revision, owner, name, version, state, activated, disabled, public, type, os, \
     origin, published_ms, record) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (uuid) DO UPDATE SET \
     revision = excluded.revision, owner = excluded.owner, name = excluded.name, \
     version = excluded.version, state = excluded.state, activated = excluded.activated, \
     disabled = excluded.disabled, public = excluded.public, type = excluded.type, \
     os = excluded.os, origin = excluded.origin, published_ms = excluded.published_ms, \
     record = excluded.record";

const UPDATE_SQL: &str = "UPDATE images SET \
     revision = ?, owner = ?, name = ?, version = ?, state = ?, activated = ?, disabled = ?, \
     public = ?, type = ?, os = ?, origin = ?, published_ms = ?, record = ? \
    WHERE uuid = ? AND revision = ?";

/// Insert (or upsert, with `sql = UPSERT_SQL`) the main row.
async fn write_row(
    conn: &mut SqliteConnection,
    sql: &'static str,
    c: &Columns,
    revision: Revision,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql)
        .bind(&c.uuid)
        .bind(revision)
        .bind(&c.owner)
        .bind(&c.name)
        .bind(&c.version)
        .bind(c.state)
        .bind(c.activated)
        .bind(c.disabled)
        .bind(c.public)
        .bind(&c.image_type)
        .bind(&c.os)
        .bind(c.origin.as_deref())
        .bind(c.published_ms)
        .bind(&c.record)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Conditional update of the main row; `true` if it was at `expected`.
async fn update_row(
    conn: &mut SqliteConnection,
    c: &Columns,
    revision: Revision,
    expected: Revision,
) -> Result<bool, MetaError> {
    let done = sqlx::query(UPDATE_SQL)
        .bind(revision)
        .bind(&c.owner)
        .bind(&c.name)
        .bind(&c.version)
        .bind(c.state)
        .bind(c.activated)
        .bind(c.disabled)
        .bind(c.public)
        .bind(&c.image_type)
        .bind(&c.os)
        .bind(c.origin.as_deref())
        .bind(c.published_ms)
        .bind(&c.record)
        .bind(&c.uuid)
        .bind(expected)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}

/// Rewrite the side tables of `row` (tags, billing tags, channels, acl).
async fn replace_side_rows(conn: &mut SqliteConnection, row: &Columns) -> Result<(), MetaError> {
    for table in [
        "DELETE FROM image_tags WHERE uuid = ?",
        "DELETE FROM image_billing_tags WHERE uuid = ?",
        "DELETE FROM image_channels WHERE uuid = ?",
        "DELETE FROM image_acl WHERE uuid = ?",
    ] {
        sqlx::query(table)
            .bind(&row.uuid)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    insert_side_rows(conn, row).await
}

/// Write the side rows of a freshly inserted main row. There are none to
/// clear first: they reference `images` with ON DELETE CASCADE, so none
/// can outlive a previous row with this uuid.
async fn insert_side_rows(conn: &mut SqliteConnection, row: &Columns) -> Result<(), MetaError> {
    let uuid = row.uuid.as_str();
    for (key, value) in &row.tags {
        sqlx::query("INSERT INTO image_tags (uuid, key, value) VALUES (?, ?, ?)")
            .bind(uuid)
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    for (sql, values) in [
        (
            "INSERT OR IGNORE INTO image_billing_tags (uuid, tag) VALUES (?, ?)",
            &row.billing_tags,
        ),
        (
            "INSERT OR IGNORE INTO image_channels (uuid, channel) VALUES (?, ?)",
            &row.channels,
        ),
        (
            "INSERT OR IGNORE INTO image_acl (uuid, account) VALUES (?, ?)",
            &row.acl,
        ),
    ] {
        for value in values {
            sqlx::query(sql)
                .bind(uuid)
                .bind(value)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
    }
    Ok(())
}

/// The next revision; rolled back with the transaction if the write fails.
async fn next_revision(conn: &mut SqliteConnection) -> Result<Revision, MetaError> {
    sqlx::query_scalar::<_, i64>(
        "UPDATE revision_counter SET value = value + 1 WHERE id = 1 RETURNING value",
    )
    .fetch_one(conn)
    .await
    .map_err(map_err)
}

/// Why a conditional write on `uuid` matched no row: gone, or moved on.
async fn missed_write(conn: &mut SqliteConnection, uuid: Uuid) -> MetaError {
    let found = sqlx::query_scalar::<_, i64>("SELECT 1 FROM images WHERE uuid = ?")
        .bind(uuid.to_string())
        .fetch_optional(conn)
        .await;
    match found {
        Ok(Some(_)) => MetaError::Conflict(uuid),
        Ok(None) => MetaError::NotFound(uuid),
        Err(e) => map_err(e),
    }
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
    if e.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
    {
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

#[async_trait]
impl MetaStore for SqliteStore {
    async fn get(&self, uuid: Uuid) -> Result<Option<StoredImage>, MetaError> {
        let key = uuid.to_string();
        let row = sqlx::query("SELECT revision, record FROM images WHERE uuid = ?")
            .bind(&key)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let revision: i64 = row.try_get(0).map_err(map_err)?;
        let record: String = row.try_get(1).map_err(map_err)?;
        Ok(Some(StoredImage {
            image: decode_record(&key, &record)?,
            revision,
        }))
    }

    async fn insert(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.writes.run(Op::Insert(Columns::of(image)?)).await
    }

    async fn update(&self, image: &ImageRecord, expected: Revision) -> Result<Revision, MetaError> {
        let row = Columns::of(image)?;
        self.writes.run(Op::Update { row, expected }).await
    }

    async fn put(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.writes.run(Op::Put(Columns::of(image)?)).await
    }

    async fn rename(
        &self,
        old_uuid: Uuid,
        expected: Revision,
        image: &ImageRecord,
    ) -> Result<Revision, MetaError> {
        if old_uuid == image.uuid {
            return self.update(image, expected).await;
        }
        let row = Columns::of(image)?;
        self.writes
            .run(Op::Rename {
                old_uuid,
                expected,
                row,
            })
            .await
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, MetaError> {
        Ok(self.writes.run(Op::Delete(uuid)).await? > 0)
    }

    async fn list(&self, query: &ImageQuery) -> Result<Vec<ImageRecord>, MetaError> {
        if query.matches_nothing() {
            return Ok(Vec::new());
        }
        let mut builder = query::list_query(query);
        let rows = builder
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let uuid: String = row.try_get(0).map_err(map_err)?;
                let record: String = row.try_get(1).map_err(map_err)?;
                decode_record(&uuid, &record)
            })
            .collect()
    }

    async fn dependents(
        &self,
        origin: Uuid,
        channel: Option<&str>,
    ) -> Result<Vec<Uuid>, MetaError> {
        let rows: Vec<String> = match channel {
            None => {
                sqlx::query_scalar(
                    "SELECT uuid FROM images WHERE origin = ? \
                     ORDER BY COALESCE(published_ms, 0), uuid",
                )
                .bind(origin.to_string())
                .fetch_all(&self.reader)
                .await
            }
            Some(channel) => {
                sqlx::query_scalar(
                    "SELECT uuid FROM images WHERE origin = ? AND EXISTS \
                     (SELECT 1 FROM image_channels c WHERE c.uuid = images.uuid AND c.channel = ?) \
                     ORDER BY COALESCE(published_ms, 0), uuid",
                )
                .bind(origin.to_string())
                .bind(channel)
                .fetch_all(&self.reader)
                .await
            }
        }
        .map_err(map_err)?;
        rows.iter().map(|u| decode_uuid(u)).collect()
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM images GROUP BY state ORDER BY state")
                .fetch_all(&self.reader)
                .await
                .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(state, n)| (state, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn usage(&self, owner: Option<Uuid>) -> Result<crate::Usage, MetaError> {
        usage::usage(&self.reader, owner).await
    }

    async fn count_jobs_by_execution(&self) -> Result<Vec<(String, u64)>, MetaError> {
        usage::count_jobs_by_execution(&self.reader).await
    }

    async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn generation(&self) -> Result<i64, MetaError> {
        sqlx::query_scalar::<_, i64>("SELECT value FROM revision_counter WHERE id = 1")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)
    }

    async fn insert_job(&self, job: &JobRecord) -> Result<(), MetaError> {
        self.writes.run(Op::InsertJob(JobRow::of(job)?)).await?;
        Ok(())
    }

    async fn get_job(&self, uuid: Uuid) -> Result<Option<JobRecord>, MetaError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE uuid = ?"
        ))
        .bind(uuid.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| raw_job(&r).map_err(map_err)?.decode())
            .transpose()
    }

    async fn image_jobs(&self, image_uuid: Uuid) -> Result<Vec<JobRecord>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE image_uuid = ? ORDER BY created_at, uuid"
        ))
        .bind(image_uuid.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| raw_job(r).map_err(map_err)?.decode())
            .collect()
    }

    async fn claimable_jobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Uuid>, MetaError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT uuid FROM jobs WHERE execution IN ('queued', 'running') \
             AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < ?) \
             ORDER BY created_at, uuid LIMIT ?",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter().map(|u| decode_uuid(u)).collect()
    }

    async fn claim_job(
        &self,
        uuid: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<JobRecord>, MetaError> {
        let claimed = self
            .writes
            .run(Op::ClaimJob {
                uuid,
                owner: owner.to_string(),
                now_ms,
                expires_ms,
            })
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        self.get_job(uuid).await
    }

    async fn update_job(&self, job: &JobRecord, owner: &str) -> Result<bool, MetaError> {
        let row = JobRow::of(job)?;
        let owner = owner.to_string();
        Ok(self.writes.run(Op::UpdateJob { row, owner }).await? > 0)
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64, MetaError> {
        let n = self.writes.run(Op::ReleaseJobs(owner.to_string())).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn insert_upload(&self, upload: &UploadSession) -> Result<(), MetaError> {
        self.writes
            .run(Op::InsertUpload(UploadRow::of(upload)?))
            .await?;
        Ok(())
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadSession>, MetaError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM upload_sessions WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(map_err)?;
        row.map(|r| raw_upload(&r).map_err(map_err)?.decode())
            .transpose()
    }

    async fn claim_upload(
        &self,
        id: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<UploadSession>, MetaError> {
        let claimed = self
            .writes
            .run(Op::ClaimUpload {
                id,
                owner: owner.to_string(),
                now_ms,
                expires_ms,
            })
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        self.get_upload(id).await
    }

    async fn renew_upload(
        &self,
        id: Uuid,
        owner: &str,
        expires_ms: i64,
    ) -> Result<bool, MetaError> {
        let op = Op::RenewUpload {
            id,
            owner: owner.to_string(),
            expires_ms,
        };
        Ok(self.writes.run(op).await? > 0)
    }

    async fn advance_upload(
        &self,
        upload: &UploadSession,
        owner: &str,
        from_offset: u64,
    ) -> Result<bool, MetaError> {
        let op = Op::AdvanceUpload {
            row: UploadRow::of(upload)?,
            owner: owner.to_string(),
            from_offset: i64::try_from(from_offset).unwrap_or(i64::MAX),
        };
        Ok(self.writes.run(op).await? > 0)
    }

    async fn release_upload(&self, id: Uuid, owner: &str) -> Result<bool, MetaError> {
        let op = Op::ReleaseUpload {
            id,
            owner: owner.to_string(),
        };
        Ok(self.writes.run(op).await? > 0)
    }

    async fn delete_upload(&self, id: Uuid) -> Result<bool, MetaError> {
        Ok(self.writes.run(Op::DeleteUpload(id)).await? > 0)
    }

    async fn delete_expired_upload(&self, id: Uuid, now_ms: i64) -> Result<bool, MetaError> {
        Ok(self
            .writes
            .run(Op::DeleteExpiredUpload { id, now_ms })
            .await?
            > 0)
    }

    async fn expired_uploads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM upload_sessions WHERE expires_ms < ? ORDER BY expires_ms, id LIMIT ?"
        ))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| raw_upload(r).map_err(map_err)?.decode())
            .collect()
    }

    async fn upload_handles(&self) -> Result<Vec<String>, MetaError> {
        sqlx::query_scalar("SELECT handle FROM upload_sessions")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)
    }
}
