//! Image records (SQLite): the image writes the writer task applies.
//! [`crate::ImageStore`] itself, ListImages included, is shared with
//! PostgreSQL (`crate::sql::images`, `crate::sql::list_query`).
//!
//! Revisions come from one global counter, bumped by every write (deletes
//! too, so caches stamped with the generation expire): a revision is never
//! reused, not even when a uuid is deleted and created again.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqliteQueryResult};
use sqlx::Sqlite;

use super::map_err;
use crate::sql::changes::insert_events;
use crate::sql::images::{
    image_writes, Columns, ImageDialect, ImageSql, ImageWrite, ImageWrites, WriteFailure,
};
use crate::{MetaError, Revision};

#[async_trait]
impl ImageDialect for Sqlite {
    /// The revision a write takes: the one [`next_revision`] just drew.
    const WRITES: ImageWrites = image_writes!(
        "(SELECT value FROM revision_counter WHERE id = 1)",
        "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    );

    /// The counter follows by a trigger (migration 0011): SQLite has no
    /// data-modifying CTE, and each statement is a hand-off to the
    /// database thread that the single writer pays.
    const EVENT_INSERT: &'static str =
        "INSERT INTO image_events (seq, time_ms, kind, uuid, fields, record) \
         SELECT last_seq + 1, $1, $2, $3, $4, $5 FROM change_log WHERE id = 1";

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn clear_side_rows(
        conn: &mut SqliteConnection,
        row: &Columns,
    ) -> Result<(), sqlx::Error> {
        for table in [
            "DELETE FROM image_tags WHERE uuid = ?",
            "DELETE FROM image_billing_tags WHERE uuid = ?",
            "DELETE FROM image_channels WHERE uuid = ?",
            "DELETE FROM image_acl WHERE uuid = ?",
        ] {
            sqlx::query(table)
                .bind(&row.uuid)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    // One statement per row: SQLite has no arrays to unnest.
    async fn insert_side_rows(
        conn: &mut SqliteConnection,
        row: &Columns,
    ) -> Result<(), sqlx::Error> {
        let uuid = row.uuid.as_str();
        for (key, value) in &row.tags {
            sqlx::query("INSERT INTO image_tags (uuid, key, value) VALUES (?, ?, ?)")
                .bind(uuid)
                .bind(key)
                .bind(value)
                .execute(&mut *conn)
                .await?;
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
                    .await?;
            }
        }
        Ok(())
    }
}

/// Perform `write` on `conn`, inside the writer's transaction: draw the
/// next revision, then write (see [`ImageSql::apply`]).
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    write: &ImageWrite,
) -> Result<i64, MetaError> {
    next_revision(conn).await?;
    let mut events = Vec::new();
    let outcome = ImageSql::<Sqlite>::apply(conn, write, &mut events)
        .await
        .map_err(|failure| match failure {
            WriteFailure::Meta(e) => e,
            WriteFailure::Sql(e) => map_err(e),
        })?;
    // The single writer orders every commit; the savepoint around this
    // write takes the events back with it if it fails.
    insert_events::<Sqlite>(conn, &events)
        .await
        .map_err(map_err)?;
    Ok(outcome)
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
