//! Jobs (SQLite): [`JobStore`], and the job writes the writer task applies.

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;
use sqlx::Sqlite;
use uuid::Uuid;

use super::{affected, map_err, map_insert_err, Op, SqliteStore};
use crate::sql::decode_uuids;
use crate::sql::jobs::{JobRow, JobSql};
use crate::sql::usage::count;
use crate::{JobRecord, JobStore, MetaError};

/// SQLite's `INTEGER` is 64 bits.
type Sql = JobSql<Sqlite, i64>;

/// A job write, as queued for the writer task.
pub(super) enum JobWrite {
    Insert(JobRow),
    Update {
        row: JobRow,
        owner: String,
    },
    Claim {
        uuid: Uuid,
        owner: String,
        now_ms: i64,
        expires_ms: i64,
    },
    Release(String),
}

/// Perform `write` on `conn`, inside the writer's transaction: the rows
/// it touched.
pub(super) async fn apply(conn: &mut SqliteConnection, write: &JobWrite) -> Result<i64, MetaError> {
    match write {
        JobWrite::Insert(row) => {
            Sql::insert(row, row.attempts)
                .execute(conn)
                .await
                .map_err(|e| map_insert_err(e, row.id))?;
            Ok(1)
        }
        JobWrite::Update { row, owner } => affected(Sql::update(row, owner).execute(conn).await),
        JobWrite::Claim {
            uuid,
            owner,
            now_ms,
            expires_ms,
        } => affected(
            Sql::claim(*uuid, owner, *now_ms, *expires_ms)
                .execute(conn)
                .await,
        ),
        JobWrite::Release(owner) => affected(Sql::release(owner).execute(conn).await),
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_job(&self, job: &JobRecord) -> Result<(), MetaError> {
        self.write_job(JobWrite::Insert(JobRow::of(job)?)).await?;
        Ok(())
    }

    async fn get_job(&self, uuid: Uuid) -> Result<Option<JobRecord>, MetaError> {
        let row = Sql::by_uuid(uuid)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| Sql::decode(&r, map_err)).transpose()
    }

    async fn image_jobs(&self, image_uuid: Uuid) -> Result<Vec<JobRecord>, MetaError> {
        let rows = Sql::of_image(image_uuid)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Sql::decode(r, map_err)).collect()
    }

    async fn claimable_jobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Uuid>, MetaError> {
        let rows = Sql::claimable(now_ms, limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        decode_uuids(&rows)
    }

    async fn claim_job(
        &self,
        uuid: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<JobRecord>, MetaError> {
        let claim = JobWrite::Claim {
            uuid,
            owner: owner.to_string(),
            now_ms,
            expires_ms,
        };
        if self.write_job(claim).await? == 0 {
            return Ok(None);
        }
        self.get_job(uuid).await
    }

    async fn update_job(&self, job: &JobRecord, owner: &str) -> Result<bool, MetaError> {
        let row = JobRow::of(job)?;
        let owner = owner.to_string();
        Ok(self.write_job(JobWrite::Update { row, owner }).await? > 0)
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64, MetaError> {
        let n = self.write_job(JobWrite::Release(owner.to_string())).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn count_jobs_by_execution(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT execution, COUNT(*) FROM jobs GROUP BY execution ORDER BY execution",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(map_err)?;
        Ok(rows.into_iter().map(|(e, n)| (e, count(n))).collect())
    }
}

impl SqliteStore {
    async fn write_job(&self, write: JobWrite) -> Result<i64, MetaError> {
        self.writes.run(Op::Job(write)).await
    }
}
