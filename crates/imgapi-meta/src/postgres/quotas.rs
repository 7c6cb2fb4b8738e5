//! Quotas (PostgreSQL): [`QuotaStore`], see [`crate::quotas`]. A
//! reservation's check and insert hold a transaction-scoped advisory lock
//! on the owner, so instances sharing the database serialize per owner.

use async_trait::async_trait;
use sqlx::Postgres;
use uuid::Uuid;

use super::PostgresStore;
use crate::sql::quotas::{self, to_column, use_and_reserved_sql};
use crate::{MetaError, QuotaOverride, QuotaStore, QuotaUse, ReservationRequest, ReserveOutcome};

/// `$1` = owner → `(images, bytes of files and icons)`, with its live
/// reservations at `$2` ([`use_and_reserved_sql!`]). The record is
/// text; it is parsed as jsonb once per image.
const OWNER_USE: &str = use_and_reserved_sql!(
    "SELECT COUNT(*)::bigint, COALESCE(SUM(
        COALESCE((SELECT SUM((f->>'size')::bigint) FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(r->'files') = 'array' THEN r->'files' ELSE '[]'::jsonb END
        ) AS f), 0)
        + COALESCE((r->'icon'->>'size')::bigint, 0)), 0)::bigint
    FROM (SELECT record::jsonb AS r FROM images WHERE owner = $1) AS rec"
);

/// Serializes the reservations of one owner until the transaction ends.
const LOCK_OWNER: &str = "SELECT pg_advisory_xact_lock(hashtext('imgapi-quota:' || $1))";

#[async_trait]
impl QuotaStore for PostgresStore {
    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, MetaError> {
        let err = |e| self.err(e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(LOCK_OWNER)
            .bind(request.owner.to_string())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let outcome = quotas::reserve_in::<Postgres>(&mut tx, OWNER_USE, request, &err).await?;
        tx.commit().await.map_err(err)?;
        Ok(outcome)
    }

    async fn release_reservation(&self, id: Uuid) -> Result<(), MetaError> {
        sqlx::query(quotas::RELEASE)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn quota_use(&self, owner: Uuid, now_ms: i64) -> Result<QuotaUse, MetaError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.err(e))?;
        quotas::quota_use::<Postgres>(&mut conn, OWNER_USE, owner, now_ms)
            .await
            .map_err(|e| self.err(e))
    }

    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>, MetaError> {
        let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(quotas::LIST_OVERRIDES)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.into_iter().map(quotas::decode_override).collect()
    }

    async fn quota_override(&self, owner: Uuid) -> Result<Option<QuotaOverride>, MetaError> {
        let row: Option<(String, Option<i64>, Option<i64>)> = sqlx::query_as(quotas::GET_OVERRIDE)
            .bind(owner.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(quotas::decode_override).transpose()
    }

    async fn put_quota_override(&self, o: &QuotaOverride) -> Result<(), MetaError> {
        sqlx::query(quotas::PUT_OVERRIDE)
            .bind(o.owner.to_string())
            .bind(o.images.map(to_column))
            .bind(o.bytes.map(to_column))
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn delete_quota_override(&self, owner: Uuid) -> Result<bool, MetaError> {
        let done = sqlx::query(quotas::DELETE_OVERRIDE)
            .bind(owner.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }
}
