//! Image lifecycle flags as both SQL backends store them (the
//! `image_lifecycle` table): [`crate::ImageFlagsStore`] for every
//! [`SqlBackend`]. Changes are image writes ([`ImageWrite::Flags`]), so they
//! take the backend's write path and bump the write generation.

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};
use uuid::Uuid;

use super::images::{ImageDialect, ImageWrite, WriteFailure};
use super::{decode_uuid, SqlBackend, Write};
use crate::{FlagsChange, ImageFlags, ImageFlagsStore, MetaError};

const BY_UUID: &str = "SELECT deprecated_ms, protected, updated_ms, updated_by \
                       FROM image_lifecycle WHERE uuid = $1";
const NEXT_DEPRECATION: &str =
    "SELECT MIN(deprecated_ms) FROM image_lifecycle WHERE deprecated_ms > $1";
const PROTECTED: &str = "SELECT uuid FROM image_lifecycle WHERE protected ORDER BY uuid";
const IMAGE_EXISTS: &str = "SELECT 1 FROM images WHERE uuid = $1";
/// Insert or merge: `$6` / `$7` say whether the change sets the deprecation
/// time / the protection (an unset field keeps the stored value).
const MERGE: &str = "INSERT INTO image_lifecycle \
     (uuid, deprecated_ms, protected, updated_ms, updated_by) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (uuid) DO UPDATE SET \
     deprecated_ms = CASE WHEN $6 THEN excluded.deprecated_ms \
                     ELSE image_lifecycle.deprecated_ms END, \
     protected = CASE WHEN $7 THEN excluded.protected ELSE image_lifecycle.protected END, \
     updated_ms = excluded.updated_ms, updated_by = excluded.updated_by";
/// Copy the flags of `$2` to the image `$1` (an operator uuid change).
const CARRY: &str = "INSERT INTO image_lifecycle \
     (uuid, deprecated_ms, protected, updated_ms, updated_by) \
     SELECT $1, deprecated_ms, protected, updated_ms, updated_by \
     FROM image_lifecycle WHERE uuid = $2";

/// A row of [`BY_UUID`].
type FlagsRow = (Option<i64>, bool, i64, String);

/// A change of one image's flags, as an image write applies it.
pub(crate) struct FlagsWrite {
    pub(crate) uuid: Uuid,
    pub(crate) change: FlagsChange,
}

/// Apply `write` inside the caller's transaction: `NotFound` if the image
/// does not exist, else 1.
pub(crate) async fn apply<DB>(
    conn: &mut DB::Connection,
    write: &FlagsWrite,
) -> Result<i64, WriteFailure>
where
    DB: ImageDialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let uuid = write.uuid.to_string();
    let exists = sqlx::query(IMAGE_EXISTS)
        .bind(uuid.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(WriteFailure::Meta(MetaError::NotFound(write.uuid)));
    }
    let change = &write.change;
    sqlx::query(MERGE)
        .bind(uuid)
        .bind(change.deprecated_ms.flatten())
        .bind(change.protected.unwrap_or(false))
        .bind(change.at_ms)
        .bind(change.by.clone())
        .bind(change.deprecated_ms.is_some())
        .bind(change.protected.is_some())
        .execute(&mut *conn)
        .await?;
    Ok(1)
}

/// Give image `new_uuid` the flags of `old_uuid` (both rows exist).
pub(crate) async fn carry<DB>(
    conn: &mut DB::Connection,
    old_uuid: Uuid,
    new_uuid: Uuid,
) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    sqlx::query(CARRY)
        .bind(new_uuid.to_string())
        .bind(old_uuid.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

fn flags_of((deprecated_ms, protected, updated_ms, updated_by): FlagsRow) -> ImageFlags {
    ImageFlags {
        deprecated_ms,
        protected,
        updated_ms,
        updated_by,
    }
}

#[async_trait]
impl<B> ImageFlagsStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Type<B::Db>,
    for<'r> FlagsRow: FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (Option<i64>,): FromRow<'r, <B::Db as Database>::Row>,
    for<'r> (String,): FromRow<'r, <B::Db as Database>::Row>,
    for<'c> &'c sqlx::Pool<B::Db>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn image_flags(&self, uuid: Uuid) -> Result<Option<ImageFlags>, MetaError> {
        let row: Option<FlagsRow> = sqlx::query_as(BY_UUID)
            .bind(uuid.to_string())
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(row.map(flags_of))
    }

    async fn change_image_flags(
        &self,
        uuid: Uuid,
        change: &FlagsChange,
    ) -> Result<ImageFlags, MetaError> {
        let write = FlagsWrite {
            uuid,
            change: change.clone(),
        };
        self.write(Write::Image(ImageWrite::Flags(write))).await?;
        self.image_flags(uuid)
            .await?
            .ok_or(MetaError::NotFound(uuid))
    }

    async fn next_deprecation_after(&self, now_ms: i64) -> Result<Option<i64>, MetaError> {
        let (next,): (Option<i64>,) = sqlx::query_as(NEXT_DEPRECATION)
            .bind(now_ms)
            .fetch_one(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(next)
    }

    async fn protected_images(&self) -> Result<Vec<Uuid>, MetaError> {
        let rows: Vec<(String,)> = sqlx::query_as(PROTECTED)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter().map(|(uuid,)| decode_uuid(uuid)).collect()
    }
}
