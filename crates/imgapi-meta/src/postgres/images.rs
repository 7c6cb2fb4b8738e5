//! Image records (PostgreSQL): the image writes, each one transaction that
//! also bumps the write generation, and the ListImages query.
//! [`crate::ImageStore`] itself is shared with SQLite (`crate::sql::images`).

use imgapi_domain::filter::ImageQuery;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::Postgres;
use uuid::Uuid;

use super::{map_err, query, PostgresStore};
use crate::sql::affected_rows;
use crate::sql::images::{image_writes, Columns, ImageSql, ImageWrite, ImageWrites};
use crate::{MetaError, Revision};

type Sql = ImageSql<Postgres>;

const WRITES: ImageWrites = image_writes!("nextval('image_revision')");

/// Stripes of the `write_generation` table (see the migration).
const GENERATION_STRIPES: u8 = 16;

/// The `write_generation` stripe a write on `uuid` bumps.
pub(super) fn stripe(uuid: Uuid) -> i16 {
    i16::from(uuid.as_bytes()[15] % GENERATION_STRIPES)
}

/// Why a write failed: already decided, or an SQL error still to classify.
pub(super) enum Failure {
    Meta(MetaError),
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Sql(e)
    }
}

impl From<MetaError> for Failure {
    fn from(e: MetaError) -> Self {
        Failure::Meta(e)
    }
}

impl PostgresStore {
    /// Run `write` in one transaction that also bumps the write generation.
    pub(super) async fn write_image(&self, write: ImageWrite) -> Result<i64, MetaError> {
        let key = write.key();
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let outcome = apply(&mut tx, &write)
            .await
            .map_err(|e| map_write_err(&self.target, e, key))?;
        // Last, so the stripe's row lock is held only until the commit.
        sqlx::query("UPDATE write_generation SET value = value + 1 WHERE stripe = $1")
            .bind(stripe(key))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_write_err(&self.target, Failure::Sql(e), key))?;
        tx.commit()
            .await
            .map_err(|e| map_write_err(&self.target, Failure::Sql(e), key))?;
        Ok(outcome)
    }
}

/// `map_err` for a write on `key`: a serialization failure or deadlock
/// (SQLSTATE 40001, 40P01; the transaction was rolled back) is a
/// `Conflict`, for the caller to re-read and retry.
fn map_write_err(target: &str, failure: Failure, key: Uuid) -> MetaError {
    match failure {
        Failure::Meta(e) => e,
        Failure::Sql(e) => {
            let code = e.as_database_error().and_then(|db| db.code());
            match code.as_deref() {
                Some("40001" | "40P01") => MetaError::Conflict(key),
                _ => map_err(target, e),
            }
        }
    }
}

/// Perform `write`. Yields the new revision, or for `Delete` the number of
/// rows deleted. On `Err` the caller drops (rolls back) the transaction.
pub(super) async fn apply(conn: &mut PgConnection, write: &ImageWrite) -> Result<i64, Failure> {
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
                .await?;
            let Some(revision) = updated else {
                return Err(missed_write(conn, row.id).await);
            };
            replace_side_rows(conn, row).await?;
            Ok(revision)
        }
        ImageWrite::Put(row) => {
            let revision = Sql::bind_columns(WRITES.upsert, row)
                .fetch_one(&mut *conn)
                .await?;
            replace_side_rows(conn, row).await?;
            Ok(revision)
        }
        ImageWrite::Rename {
            old_uuid,
            expected,
            row,
        } => {
            // Side rows of the old uuid go by ON DELETE CASCADE.
            let deleted = Sql::delete_at_revision(*old_uuid, *expected)
                .execute(&mut *conn)
                .await?;
            if deleted.rows_affected() != 1 {
                return Err(missed_write(conn, *old_uuid).await);
            }
            let revision = insert_row(conn, row).await?;
            insert_side_rows(conn, row).await?;
            Ok(revision)
        }
        ImageWrite::Delete(uuid) => {
            let done = Sql::delete(*uuid).execute(conn).await?;
            Ok(affected_rows(done.rows_affected()))
        }
    }
}

/// Insert the main row; a taken uuid is `AlreadyExists`.
async fn insert_row(conn: &mut PgConnection, row: &Columns) -> Result<Revision, Failure> {
    Sql::bind_columns(WRITES.insert, row)
        .fetch_one(conn)
        .await
        .map_err(|e| {
            if e.as_database_error()
                .is_some_and(|db| db.is_unique_violation())
            {
                Failure::Meta(MetaError::AlreadyExists(row.id))
            } else {
                Failure::Sql(e)
            }
        })
}

/// Rewrite the side tables of `row` (tags, billing tags, channels, acl).
async fn replace_side_rows(conn: &mut PgConnection, row: &Columns) -> Result<(), Failure> {
    sqlx::query(
        "WITH t AS (DELETE FROM image_tags WHERE uuid = $1), \
              b AS (DELETE FROM image_billing_tags WHERE uuid = $1), \
              c AS (DELETE FROM image_channels WHERE uuid = $1) \
         DELETE FROM image_acl WHERE uuid = $1",
    )
    .bind(&row.uuid)
    .execute(&mut *conn)
    .await?;
    insert_side_rows(conn, row).await
}

/// Write the side rows of a main row that has none (freshly inserted, or
/// cleared by [`replace_side_rows`]). One statement per non-empty table.
async fn insert_side_rows(conn: &mut PgConnection, row: &Columns) -> Result<(), Failure> {
    if !row.tags.is_empty() {
        let (keys, values): (Vec<&str>, Vec<&str>) = row
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .unzip();
        sqlx::query(
            "INSERT INTO image_tags (uuid, key, value) \
             SELECT $1, t.key, t.value FROM unnest($2::text[], $3::text[]) AS t (key, value)",
        )
        .bind(&row.uuid)
        .bind(keys)
        .bind(values)
        .execute(&mut *conn)
        .await?;
    }
    for (sql, values) in [
        (
            "INSERT INTO image_billing_tags (uuid, tag) \
             SELECT DISTINCT $1, t FROM unnest($2::text[]) AS t",
            &row.billing_tags,
        ),
        (
            "INSERT INTO image_channels (uuid, channel) \
             SELECT DISTINCT $1, t FROM unnest($2::text[]) AS t",
            &row.channels,
        ),
        (
            "INSERT INTO image_acl (uuid, account) \
             SELECT DISTINCT $1, t FROM unnest($2::text[]) AS t",
            &row.acl,
        ),
    ] {
        if values.is_empty() {
            continue;
        }
        sqlx::query(sql)
            .bind(&row.uuid)
            .bind(values)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Why a conditional write on `uuid` matched no row: gone, or moved on.
async fn missed_write(conn: &mut PgConnection, uuid: Uuid) -> Failure {
    match Sql::exists(uuid).fetch_optional(conn).await {
        Ok(Some(_)) => Failure::Meta(MetaError::Conflict(uuid)),
        Ok(None) => Failure::Meta(MetaError::NotFound(uuid)),
        Err(e) => Failure::Sql(e),
    }
}

impl PostgresStore {
    /// The `(uuid, record)` rows answering `query` ([`query::list_query`]).
    pub(super) async fn list_image_rows(
        &self,
        query: &ImageQuery,
    ) -> Result<Vec<PgRow>, MetaError> {
        // Not a prepared statement: PostgreSQL then plans each list with its
        // actual values. A cached generic plan walked the sort index and
        // filtered most of the table (57 ms instead of 4 ms at 100k images).
        query::list_query(query)
            .build()
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }
}
