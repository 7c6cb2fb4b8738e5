//! Image records (SQLite): [`ImageStore`], and the image writes the writer
//! task applies.
//!
//! Revisions come from one global counter, bumped by every write (deletes
//! too, so caches stamped with the generation expire): a revision is never
//! reused, not even when a uuid is deleted and created again.

use async_trait::async_trait;
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::ImageRecord;
use sqlx::sqlite::SqliteConnection;
use sqlx::Sqlite;
use uuid::Uuid;

use super::{affected, map_err, map_insert_err, query, Op, SqliteStore};
use crate::sql::decode_uuids;
use crate::sql::images::{
    dependents_in_channel_sql, image_writes, state_counts, Columns, ImageSql, ImageWrite,
    ImageWrites,
};
use crate::{ImageStore, MetaError, Revision, StoredImage};

type Sql = ImageSql<Sqlite>;

/// The revision a write takes: the one [`next_revision`] just drew.
const WRITES: ImageWrites = image_writes!("(SELECT value FROM revision_counter WHERE id = 1)");

const DEPENDENTS_IN_CHANNEL: &str = dependents_in_channel_sql!("c.channel = $2");

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

#[async_trait]
impl ImageStore for SqliteStore {
    async fn get(&self, uuid: Uuid) -> Result<Option<StoredImage>, MetaError> {
        let row = Sql::by_uuid(uuid)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|row| Sql::decode_stored(&row, uuid, map_err))
            .transpose()
    }

    async fn insert(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.write_image(ImageWrite::insert(image)?).await
    }

    async fn update(&self, image: &ImageRecord, expected: Revision) -> Result<Revision, MetaError> {
        self.write_image(ImageWrite::update(image, expected)?).await
    }

    async fn put(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.write_image(ImageWrite::put(image)?).await
    }

    async fn rename(
        &self,
        old_uuid: Uuid,
        expected: Revision,
        image: &ImageRecord,
    ) -> Result<Revision, MetaError> {
        self.write_image(ImageWrite::rename(old_uuid, expected, image)?)
            .await
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, MetaError> {
        Ok(self.write_image(ImageWrite::Delete(uuid)).await? > 0)
    }

    async fn list(&self, query: &ImageQuery) -> Result<Vec<ImageRecord>, MetaError> {
        if query.matches_nothing() {
            return Ok(Vec::new());
        }
        let rows = query::list_query(query)
            .build()
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| Sql::decode_listed(row, map_err))
            .collect()
    }

    async fn dependents(
        &self,
        origin: Uuid,
        channel: Option<&str>,
    ) -> Result<Vec<Uuid>, MetaError> {
        let statement = match channel {
            None => Sql::dependents(origin),
            Some(channel) => Sql::dependents_in_channel(DEPENDENTS_IN_CHANNEL, origin, channel),
        };
        let rows = statement.fetch_all(&self.reader).await.map_err(map_err)?;
        decode_uuids(&rows)
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let rows = Sql::count_by_state()
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(state_counts(rows))
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
}

impl SqliteStore {
    async fn write_image(&self, write: ImageWrite) -> Result<i64, MetaError> {
        self.writes.run(Op::Image(write)).await
    }
}
