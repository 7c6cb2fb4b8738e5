//! SQLite backend: the embedded default (STYLE.md item 9).
//!
//! - One database file in WAL mode with `synchronous=FULL`: a write that
//!   returned `Ok` survives a power cut (NORMAL would only protect against
//!   corruption, not against losing the last acknowledged commits).
//! - A single-connection writer pool (writes are serialised in-process and
//!   every write is one `BEGIN IMMEDIATE` transaction) and a read-only pool
//!   of several connections (WAL readers never block the writer).
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
use imgapi_domain::tags::search_pairs;
use imgapi_domain::ImageRecord;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Row;
use uuid::Uuid;

use crate::{MetaError, MetaStore, Revision, StoredImage};

mod query;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

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
    /// The single read-write connection.
    writer: SqlitePool,
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
        Ok(SqliteStore { reader, writer })
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
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, MetaError> {
        // IMMEDIATE takes the write lock up front, so a transaction never
        // fails half-way while upgrading a read lock.
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }
}

/// The derived columns of one record.
struct Columns<'a> {
    uuid: String,
    owner: String,
    name: &'a str,
    version: &'a str,
    state: &'static str,
    activated: bool,
    disabled: bool,
    public: bool,
    image_type: &'a str,
    os: &'a str,
    origin: Option<String>,
    published_ms: Option<i64>,
    record: String,
}

impl<'a> Columns<'a> {
    fn of(image: &'a ImageRecord) -> Result<Self, MetaError> {
        let record = serde_json::to_string(image).map_err(|e| {
            MetaError::Backend(format!("cannot serialise image {}: {e}", image.uuid))
        })?;
        Ok(Columns {
            uuid: image.uuid.to_string(),
            owner: image.owner.to_string(),
            name: &image.name,
            version: &image.version,
            state: image.state.as_str(),
            activated: image.activated,
            disabled: image.disabled,
            public: image.public,
            image_type: &image.image_type,
            os: &image.os,
            origin: image.origin.map(|o| o.to_string()),
            published_ms: image.published_at_ms(),
            record,
        })
    }
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
    c: &Columns<'_>,
    revision: Revision,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql)
        .bind(&c.uuid)
        .bind(revision)
        .bind(&c.owner)
        .bind(c.name)
        .bind(c.version)
        .bind(c.state)
        .bind(c.activated)
        .bind(c.disabled)
        .bind(c.public)
        .bind(c.image_type)
        .bind(c.os)
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
    c: &Columns<'_>,
    revision: Revision,
    expected: Revision,
) -> Result<bool, MetaError> {
    let done = sqlx::query(UPDATE_SQL)
        .bind(revision)
        .bind(&c.owner)
        .bind(c.name)
        .bind(c.version)
        .bind(c.state)
        .bind(c.activated)
        .bind(c.disabled)
        .bind(c.public)
        .bind(c.image_type)
        .bind(c.os)
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

/// Rewrite the side tables of `image` (tags, billing tags, channels, acl).
async fn replace_side_rows(
    conn: &mut SqliteConnection,
    image: &ImageRecord,
    uuid: &str,
) -> Result<(), MetaError> {
    for table in [
        "DELETE FROM image_tags WHERE uuid = ?",
        "DELETE FROM image_billing_tags WHERE uuid = ?",
        "DELETE FROM image_channels WHERE uuid = ?",
        "DELETE FROM image_acl WHERE uuid = ?",
    ] {
        sqlx::query(table)
            .bind(uuid)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    if let Some(tags) = &image.tags {
        for (key, value) in search_pairs(tags) {
            sqlx::query("INSERT INTO image_tags (uuid, key, value) VALUES (?, ?, ?)")
                .bind(uuid)
                .bind(key)
                .bind(value)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
    }
    for tag in image.billing_tags.iter().flatten() {
        sqlx::query("INSERT OR IGNORE INTO image_billing_tags (uuid, tag) VALUES (?, ?)")
            .bind(uuid)
            .bind(tag.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    for channel in image.channels.iter().flatten() {
        sqlx::query("INSERT OR IGNORE INTO image_channels (uuid, channel) VALUES (?, ?)")
            .bind(uuid)
            .bind(channel.as_str())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
    }
    for account in &image.acl {
        sqlx::query("INSERT OR IGNORE INTO image_acl (uuid, account) VALUES (?, ?)")
            .bind(uuid)
            .bind(account.to_string())
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
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

fn decode_record(uuid: &str, record: &str) -> Result<ImageRecord, MetaError> {
    serde_json::from_str(record).map_err(|e| MetaError::Corrupt {
        uuid: uuid.to_owned(),
        detail: e.to_string(),
    })
}

fn decode_uuid(text: &str) -> Result<Uuid, MetaError> {
    Uuid::parse_str(text).map_err(|e| MetaError::Corrupt {
        uuid: text.to_owned(),
        detail: format!("bad uuid column: {e}"),
    })
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
        let cols = Columns::of(image)?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        write_row(&mut tx, INSERT_SQL, &cols, revision)
            .await
            .map_err(|e| map_insert_err(e, image.uuid))?;
        replace_side_rows(&mut tx, image, &cols.uuid).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revision)
    }

    async fn update(&self, image: &ImageRecord, expected: Revision) -> Result<Revision, MetaError> {
        let cols = Columns::of(image)?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        if !update_row(&mut tx, &cols, revision, expected).await? {
            return Err(missed_write(&mut tx, image.uuid).await);
        }
        replace_side_rows(&mut tx, image, &cols.uuid).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revision)
    }

    async fn put(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        let cols = Columns::of(image)?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        write_row(&mut tx, UPSERT_SQL, &cols, revision)
            .await
            .map_err(map_err)?;
        replace_side_rows(&mut tx, image, &cols.uuid).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revision)
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
        let cols = Columns::of(image)?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let deleted = sqlx::query("DELETE FROM images WHERE uuid = ? AND revision = ?")
            .bind(old_uuid.to_string())
            .bind(expected)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if deleted.rows_affected() != 1 {
            return Err(missed_write(&mut tx, old_uuid).await);
        }
        write_row(&mut tx, INSERT_SQL, &cols, revision)
            .await
            .map_err(|e| map_insert_err(e, image.uuid))?;
        replace_side_rows(&mut tx, image, &cols.uuid).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revision)
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, MetaError> {
        // Side rows go by ON DELETE CASCADE (foreign_keys is on).
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM images WHERE uuid = ?")
            .bind(uuid.to_string())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected() > 0)
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

    async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
