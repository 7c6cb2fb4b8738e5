//! Image records (SQLite): the image writes the writer task applies, and
//! the ListImages query. [`crate::ImageStore`] itself is shared with
//! PostgreSQL (`crate::sql::images`).
//!
//! Revisions come from one global counter, bumped by every write (deletes
//! too, so caches stamped with the generation expire): a revision is never
//! reused, not even when a uuid is deleted and created again.

use imgapi_domain::filter::ImageQuery;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Sqlite;
use uuid::Uuid;

use super::{affected, map_err, map_insert_err, query, SqliteStore};
use crate::sql::images::{image_writes, Columns, ImageSql, ImageWrite, ImageWrites};
use crate::{MetaError, Revision};

type Sql = ImageSql<Sqlite>;

/// The revision a write takes: the one [`next_revision`] just drew.
const WRITES: ImageWrites = image_writes!("(SELECT value FROM revision_counter WHERE id = 1)");

/// Perform `write` on `conn`, inside the writer's transaction. Yields the
/// new revision, or for `Delete` the number of rows deleted. On `Err` the
/// caller rolls back whatever it did.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    write: &ImageWrite,
) -> Result<i64, MetaError> {
    next_revision(conn).await?;
    match write {
        ImageWrite::Insert(row) => {
            let revision = insert_row(conn, row).await?;
            insert_side_rows(conn, row).await?;
            Ok(revision)
        }
        ImageWrite::Update { row, expected } => {
            let updated = Sql::bind_columns(WRITES.update, row)
                .bind(expected)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
            let Some(revision) = updated else {
                return Err(missed_write(conn, row.id).await);
            };
            replace_side_rows(conn, row).await?;
            Ok(revision)
        }
        ImageWrite::Put(row) => {
            let revision = Sql::bind_columns(WRITES.upsert, row)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
            replace_side_rows(conn, row).await?;
            Ok(revision)
        }
        ImageWrite::Rename {
            old_uuid,
            expected,
            row,
        } => {
            let deleted = Sql::delete_at_revision(*old_uuid, *expected)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            if deleted.rows_affected() != 1 {
                return Err(missed_write(conn, *old_uuid).await);
            }
            let revision = insert_row(conn, row).await?;
            insert_side_rows(conn, row).await?;
            Ok(revision)
        }
        // Side rows go by ON DELETE CASCADE (foreign_keys is on).
        ImageWrite::Delete(uuid) => affected(Sql::delete(*uuid).execute(conn).await),
    }
}

/// Insert the main row; a taken uuid is `AlreadyExists`.
async fn insert_row(conn: &mut SqliteConnection, row: &Columns) -> Result<Revision, MetaError> {
    Sql::bind_columns(WRITES.insert, row)
        .fetch_one(conn)
        .await
        .map_err(|e| map_insert_err(e, row.id))
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

/// Draw the next revision; rolled back with the transaction if the write
/// fails.
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
    match Sql::exists(uuid).fetch_optional(conn).await {
        Ok(Some(_)) => MetaError::Conflict(uuid),
        Ok(None) => MetaError::NotFound(uuid),
        Err(e) => map_err(e),
    }
}

impl SqliteStore {
    /// The `(uuid, record)` rows answering `query` ([`query::list_query`]).
    pub(super) async fn list_image_rows(
        &self,
        query: &ImageQuery,
    ) -> Result<Vec<SqliteRow>, MetaError> {
        query::list_query(query)
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)
    }
}
