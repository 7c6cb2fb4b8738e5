//! The recycle bin ([`crate::RecycleBinStore`]) for both SQL backends:
//! its writes are image writes ([`ImageWrite::ToBin`] and friends, so they
//! take a revision and move the generation); its reads are here.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::images::{decode_record, BinRow, ImageWrite};
use super::{decode_uuid, decode_uuids, SqlBackend, Write};
use crate::{BinEntry, BinUsage, MetaError, RecycleBinStore, Revision};

/// The entry columns [`decode_entry`] reads, then `$rest`.
macro_rules! entries {
    ($rest:literal) => {
        concat!(
            "SELECT uuid, record, deleted_ms, expires_ms, deleted_by, deprecated_ms FROM recycle_bin ",
            $rest
        )
    };
}
const BY_UUID: &str = entries!("WHERE uuid = $1");
const ALL_PAGE: &str = entries!("ORDER BY deleted_ms, uuid LIMIT $1 OFFSET $2");
const OWNER_PAGE: &str = entries!("WHERE owner = $3 ORDER BY deleted_ms, uuid LIMIT $1 OFFSET $2");
const EXPIRED: &str = entries!("WHERE expires_ms < $1 ORDER BY expires_ms, uuid LIMIT $2");
const USAGE: &str = "SELECT owner, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) \
     FROM recycle_bin GROUP BY owner ORDER BY owner";
const OWNER_USAGE: &str = "SELECT owner, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) \
     FROM recycle_bin WHERE owner = $1 GROUP BY owner";
const ABANDONED: &str = "SELECT uuid FROM images WHERE NOT activated AND created_ms < $1 \
     ORDER BY created_ms, uuid LIMIT $2";

/// A row of an [`entries!`] statement as an entry.
fn decode_entry<DB: Database>(
    row: &DB::Row,
    sql_err: impl Fn(sqlx::Error) -> MetaError,
) -> Result<BinEntry, MetaError>
where
    for<'a> String: Decode<'a, DB> + Type<DB>,
    for<'a> i64: Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Decode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let uuid: String = row.try_get(0).map_err(&sql_err)?;
    let record: String = row.try_get(1).map_err(&sql_err)?;
    Ok(BinEntry {
        image: decode_record(&uuid, &record)?,
        deleted_ms: row.try_get(2).map_err(&sql_err)?,
        expires_ms: row.try_get(3).map_err(&sql_err)?,
        deleted_by: row.try_get(4).map_err(&sql_err)?,
        deprecated_ms: row.try_get(5).map_err(&sql_err)?,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl<B> RecycleBinStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> Option<String>: Decode<'a, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'c> &'c sqlx::Pool<B::Db>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn move_to_bin(&self, entry: &BinEntry, expected: Revision) -> Result<(), MetaError> {
        let row = BinRow::of(entry)?;
        self.write(Write::Image(ImageWrite::ToBin { row, expected }))
            .await
            .map(drop)
    }

    async fn binned(&self, uuid: Uuid) -> Result<Option<BinEntry>, MetaError> {
        let row = sqlx::query(BY_UUID)
            .bind(uuid.to_string())
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        row.map(|row| decode_entry::<B::Db>(&row, |e| self.sql_err(e)))
            .transpose()
    }

    async fn list_bin(
        &self,
        owner: Option<Uuid>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<BinEntry>, MetaError> {
        let page = if owner.is_some() {
            OWNER_PAGE
        } else {
            ALL_PAGE
        };
        let mut query = sqlx::query(page)
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX));
        if let Some(owner) = owner {
            query = query.bind(owner.to_string());
        }
        let rows = query
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|row| decode_entry::<B::Db>(row, |e| self.sql_err(e)))
            .collect()
    }

    async fn restore_from_bin(&self, uuid: Uuid) -> Result<Revision, MetaError> {
        self.write(Write::Image(ImageWrite::FromBin(uuid))).await
    }

    async fn remove_from_bin(&self, uuid: Uuid) -> Result<bool, MetaError> {
        Ok(self
            .write(Write::Image(ImageWrite::DropFromBin(uuid)))
            .await?
            > 0)
    }

    async fn expired_bin_entries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<BinEntry>, MetaError> {
        let rows = sqlx::query(EXPIRED)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|row| decode_entry::<B::Db>(row, |e| self.sql_err(e)))
            .collect()
    }

    async fn bin_usage(&self, owner: Option<Uuid>) -> Result<Vec<BinUsage>, MetaError> {
        let query = match owner {
            Some(owner) => sqlx::query_as(OWNER_USAGE).bind(owner.to_string()),
            None => sqlx::query_as(USAGE),
        };
        let rows: Vec<(String, i64, i64)> = query
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.into_iter()
            .map(|(owner, images, bytes)| {
                Ok(BinUsage {
                    owner: decode_uuid(&owner)?,
                    images: count(images),
                    bytes: count(bytes),
                })
            })
            .collect()
    }

    async fn abandoned_images(
        &self,
        created_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Uuid>, MetaError> {
        let rows: Vec<String> = sqlx::query_scalar(ABANDONED)
            .bind(created_before_ms)
            .bind(i64::from(limit))
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        decode_uuids(&rows)
    }
}
