//! Image records (PostgreSQL): the image writes, each one transaction that
//! also bumps the write generation. [`crate::ImageStore`] itself,
//! ListImages included, is shared with SQLite (`crate::sql::images`,
//! `crate::sql::list_query`).

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgQueryResult};
use sqlx::Postgres;
use uuid::Uuid;

use super::{map_err, PostgresStore};
use crate::sql::changes::insert_events;
use crate::sql::images::{
    image_writes, Columns, ImageDialect, ImageSql, ImageWrite, ImageWrites, WriteFailure,
};
use crate::MetaError;

type Sql = ImageSql<Postgres>;

/// Stripes of the `write_generation` table (see the migration).
const GENERATION_STRIPES: u8 = 16;

/// The `write_generation` stripe a write on `uuid` bumps.
pub(super) fn stripe(uuid: Uuid) -> i16 {
    i16::from(uuid.as_bytes()[15] % GENERATION_STRIPES)
}

#[async_trait]
impl ImageDialect for Postgres {
    const WRITES: ImageWrites = image_writes!(
        "nextval('image_revision')",
        "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT"
    );

    /// One statement, so the counter row's lock (held to COMMIT, and what
    /// every writer queues for) is taken one round trip before the commit.
    const EVENT_INSERT: &'static str =
        "WITH s AS (UPDATE change_log SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq) \
         INSERT INTO image_events (seq, time_ms, kind, uuid, fields, record) \
         SELECT last_seq, $1, $2, $3, $4, $5 FROM s";

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    async fn clear_side_rows(conn: &mut PgConnection, row: &Columns) -> Result<(), sqlx::Error> {
        sqlx::query(
            "WITH t AS (DELETE FROM image_tags WHERE uuid = $1), \
              b AS (DELETE FROM image_billing_tags WHERE uuid = $1), \
              c AS (DELETE FROM image_channels WHERE uuid = $1) \
         DELETE FROM image_acl WHERE uuid = $1",
        )
        .bind(&row.uuid)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    // One statement per non-empty table.
    async fn insert_side_rows(conn: &mut PgConnection, row: &Columns) -> Result<(), sqlx::Error> {
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
}

impl PostgresStore {
    /// Run `write` in one transaction that also bumps the write generation.
    pub(super) async fn write_image(&self, write: ImageWrite) -> Result<i64, MetaError> {
        let key = write.key();
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        let mut events = Vec::new();
        let outcome = Sql::apply(&mut tx, &write, &mut events)
            .await
            .map_err(|e| map_write_err(&self.target, e, key))?;
        // Last, so the stripe's row lock is held only until the commit.
        sqlx::query("UPDATE write_generation SET value = value + 1 WHERE stripe = $1")
            .bind(stripe(key))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_write_err(&self.target, WriteFailure::Sql(e), key))?;
        // Very last: the change log's row lock serializes the commits of
        // every writer that has an event, so sequence numbers follow
        // commit order (docs/events.md "Guarantees").
        insert_events::<Postgres>(&mut tx, &events)
            .await
            .map_err(|e| map_write_err(&self.target, WriteFailure::Sql(e), key))?;
        tx.commit()
            .await
            .map_err(|e| map_write_err(&self.target, WriteFailure::Sql(e), key))?;
        Ok(outcome)
    }
}

/// `map_err` for a write on `key`: a serialization failure or deadlock
/// (SQLSTATE 40001, 40P01; the transaction was rolled back) is a
/// `Conflict`, for the caller to re-read and retry.
fn map_write_err(target: &str, failure: WriteFailure, key: Uuid) -> MetaError {
    match failure {
        WriteFailure::Meta(e) => e,
        WriteFailure::Sql(e) => {
            let code = e.as_database_error().and_then(|db| db.code());
            match code.as_deref() {
                Some("40001" | "40P01") => MetaError::Conflict(key),
                _ => map_err(target, e),
            }
        }
    }
}
