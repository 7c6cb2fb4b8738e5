//! Upload sessions (PostgreSQL): [`UploadStore`], each write one statement.

use async_trait::async_trait;
use sqlx::Postgres;
use uuid::Uuid;

use super::PostgresStore;
use crate::sql::uploads::{claim_upload_sql, upload_columns, UploadRow, UploadSql};
use crate::{MetaError, UploadSession, UploadStore};

type Sql = UploadSql<Postgres>;

/// The claim returns the session as claimed, in the same statement.
const CLAIM_RETURNING: &str = concat!(claim_upload_sql!(), " RETURNING ", upload_columns!());

#[async_trait]
impl UploadStore for PostgresStore {
    async fn insert_upload(&self, upload: &UploadSession) -> Result<(), MetaError> {
        let row = UploadRow::of(upload)?;
        Sql::insert(&row)
            .execute(&self.pool)
            .await
            .map_err(|e| self.insert_err(e, row.id))?;
        Ok(())
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadSession>, MetaError> {
        let row = Sql::by_id(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| Sql::decode(&r, |e| self.err(e))).transpose()
    }

    async fn claim_upload(
        &self,
        id: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<UploadSession>, MetaError> {
        let row = Sql::claim(CLAIM_RETURNING, id, owner, now_ms, expires_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| Sql::decode(&r, |e| self.err(e))).transpose()
    }

    async fn renew_upload(
        &self,
        id: Uuid,
        owner: &str,
        expires_ms: i64,
    ) -> Result<bool, MetaError> {
        Ok(self.execute(Sql::renew(id, owner, expires_ms)).await? > 0)
    }

    async fn advance_upload(
        &self,
        upload: &UploadSession,
        owner: &str,
        from_offset: u64,
    ) -> Result<bool, MetaError> {
        let row = UploadRow::of(upload)?;
        let from_offset = i64::try_from(from_offset).unwrap_or(i64::MAX);
        Ok(self.execute(Sql::advance(&row, owner, from_offset)).await? > 0)
    }

    async fn release_upload(&self, id: Uuid, owner: &str) -> Result<bool, MetaError> {
        Ok(self.execute(Sql::release(id, owner)).await? > 0)
    }

    async fn delete_upload(&self, id: Uuid) -> Result<bool, MetaError> {
        Ok(self.execute(Sql::delete(id)).await? > 0)
    }

    async fn delete_expired_upload(&self, id: Uuid, now_ms: i64) -> Result<bool, MetaError> {
        Ok(self.execute(Sql::delete_expired(id, now_ms)).await? > 0)
    }

    async fn expired_uploads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        let rows = Sql::expired(now_ms, limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| Sql::decode(r, |e| self.err(e)))
            .collect()
    }

    async fn upload_handles(&self) -> Result<Vec<String>, MetaError> {
        Sql::handles()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }
}
