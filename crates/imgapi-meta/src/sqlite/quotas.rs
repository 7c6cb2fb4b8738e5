//! Quotas (SQLite): [`QuotaStore`], see [`crate::quotas`]. Writes run on
//! the single write connection (shared with the writer task), so every
//! reservation is serialized with every other write.

use async_trait::async_trait;
use sqlx::Sqlite;
use uuid::Uuid;

use super::{map_err, SqliteStore};
use crate::sql::quotas::{self, to_column, use_and_reserved_sql};
use crate::{MetaError, QuotaOverride, QuotaStore, QuotaUse, ReservationRequest, ReserveOutcome};

/// `$1` = owner → `(images, bytes of files and icons)`, with its live
/// reservations at `$2` ([`use_and_reserved_sql!`]).
const OWNER_USE: &str = use_and_reserved_sql!(
    "SELECT COUNT(*), COALESCE(SUM(
        (SELECT COALESCE(SUM(json_extract(f.value, '$.size')), 0)
            FROM json_each(record, '$.files') AS f)
        + COALESCE(json_extract(record, '$.icon.size'), 0)), 0)
    FROM images WHERE owner = $1"
);

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, MetaError> {
        // IMMEDIATE: the write lock from the start, so the check and the
        // insert see and leave one state.
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let outcome = quotas::reserve_in::<Sqlite>(&mut tx, OWNER_USE, request, &map_err).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn release_reservation(&self, id: Uuid) -> Result<(), MetaError> {
        sqlx::query(quotas::RELEASE)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn quota_use(&self, owner: Uuid, now_ms: i64) -> Result<QuotaUse, MetaError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        quotas::quota_use::<Sqlite>(&mut conn, OWNER_USE, owner, now_ms)
            .await
            .map_err(map_err)
    }

    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>, MetaError> {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(quotas::LIST_OVERRIDES)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(quotas::decode_override).collect()
    }

    async fn quota_override(&self, owner: Uuid) -> Result<Option<QuotaOverride>, MetaError> {
        let row: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(quotas::GET_OVERRIDE)
            .bind(owner.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(quotas::decode_override).transpose()
    }

    async fn put_quota_override(&self, o: &QuotaOverride) -> Result<(), MetaError> {
        sqlx::query(quotas::PUT_OVERRIDE)
            .bind(o.owner.to_string())
            .bind(o.images.map(to_column))
            .bind(o.bytes.map(to_column))
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_quota_override(&self, owner: Uuid) -> Result<bool, MetaError> {
        let done = sqlx::query(quotas::DELETE_OVERRIDE)
            .bind(owner.to_string())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}
