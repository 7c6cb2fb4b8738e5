//! Jobs (PostgreSQL): [`JobStore`], each write one statement.

use async_trait::async_trait;
use sqlx::Postgres;
use uuid::Uuid;

use super::PostgresStore;
use crate::sql::decode_uuids;
use crate::sql::jobs::{JobRow, JobSql};
use crate::sql::usage::count;
use crate::{JobRecord, JobStore, MetaError};

/// `attempts` is a 32-bit `INTEGER` here.
type Sql = JobSql<Postgres, i32>;

#[async_trait]
impl JobStore for PostgresStore {
    async fn insert_job(&self, job: &JobRecord) -> Result<(), MetaError> {
        let row = JobRow::of(job)?;
        let attempts = i32::try_from(row.attempts).unwrap_or(i32::MAX);
        Sql::insert(&row, attempts)
            .execute(&self.pool)
            .await
            .map_err(|e| self.insert_err(e, row.id))?;
        Ok(())
    }

    async fn get_job(&self, uuid: Uuid) -> Result<Option<JobRecord>, MetaError> {
        let row = Sql::by_uuid(uuid)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        row.map(|r| Sql::decode(&r, |e| self.err(e))).transpose()
    }

    async fn image_jobs(&self, image_uuid: Uuid) -> Result<Vec<JobRecord>, MetaError> {
        let rows = Sql::of_image(image_uuid)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| Sql::decode(r, |e| self.err(e)))
            .collect()
    }

    async fn claimable_jobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Uuid>, MetaError> {
        let rows = Sql::claimable(now_ms, limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        decode_uuids(&rows)
    }

    async fn claim_job(
        &self,
        uuid: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<JobRecord>, MetaError> {
        let claimed = self
            .execute(Sql::claim(uuid, owner, now_ms, expires_ms))
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        self.get_job(uuid).await
    }

    async fn update_job(&self, job: &JobRecord, owner: &str) -> Result<bool, MetaError> {
        let row = JobRow::of(job)?;
        Ok(self.execute(Sql::update(&row, owner)).await? > 0)
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64, MetaError> {
        self.execute(Sql::release(owner)).await
    }

    async fn count_jobs_by_execution(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT execution, COUNT(*)::bigint FROM jobs GROUP BY execution ORDER BY execution",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().map(|(e, n)| (e, count(n))).collect())
    }
}
