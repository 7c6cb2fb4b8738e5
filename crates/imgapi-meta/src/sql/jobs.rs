//! Jobs as both SQL backends store them: the row form of a [`JobRecord`],
//! the statements, and the decoding of a row.

use std::marker::PhantomData;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::usage::count;
use super::{decode_uuid, decode_uuids, ScalarStatement, SqlBackend, Statement, Write};
use crate::{JobExecution, JobLease, JobRecord, JobStore, MetaError};

/// The SQL form of a job's columns, computed outside any transaction.
pub(crate) struct JobRow {
    pub(crate) id: Uuid,
    pub(crate) uuid: String,
    pub(crate) image_uuid: String,
    pub(crate) name: String,
    pub(crate) execution: &'static str,
    pub(crate) params: String,
    pub(crate) chain_results: String,
    pub(crate) created_at: String,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
    pub(crate) attempts: i64,
}

impl JobRow {
    pub(crate) fn of(job: &JobRecord) -> Result<JobRow, MetaError> {
        let err = |e: serde_json::Error| {
            MetaError::Backend(format!("cannot encode job {}: {e}", job.uuid))
        };
        Ok(JobRow {
            id: job.uuid,
            uuid: job.uuid.to_string(),
            image_uuid: job.image_uuid.to_string(),
            name: job.name.clone(),
            execution: job.execution.as_str(),
            params: serde_json::to_string(&job.params).map_err(err)?,
            chain_results: serde_json::to_string(&job.chain_results).map_err(err)?,
            created_at: job.created_at.clone(),
            started_at: job.started_at.clone(),
            finished_at: job.finished_at.clone(),
            lease_owner: job.lease.as_ref().map(|l| l.owner.clone()),
            lease_expires_ms: job.lease.as_ref().map(|l| l.expires_ms),
            attempts: i64::from(job.attempts),
        })
    }
}

#[async_trait]
impl<B> JobStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> Option<String>: Encode<'a, B::Db>,
    for<'a> Option<i64>: Encode<'a, B::Db>,
    for<'a> B::Attempts: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn insert_job(&self, job: &JobRecord) -> Result<(), MetaError> {
        self.write(Write::Job(JobWrite::Insert(JobRow::of(job)?)))
            .await?;
        Ok(())
    }

    async fn get_job(&self, uuid: Uuid) -> Result<Option<JobRecord>, MetaError> {
        let row = JobSql::<B::Db, B::Attempts>::by_uuid(uuid)
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        row.map(|r| JobSql::<B::Db, B::Attempts>::decode(&r, |e| self.sql_err(e)))
            .transpose()
    }

    async fn image_jobs(&self, image_uuid: Uuid) -> Result<Vec<JobRecord>, MetaError> {
        let rows = JobSql::<B::Db, B::Attempts>::of_image(image_uuid)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|r| JobSql::<B::Db, B::Attempts>::decode(r, |e| self.sql_err(e)))
            .collect()
    }

    async fn claimable_jobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Uuid>, MetaError> {
        let rows = JobSql::<B::Db, B::Attempts>::claimable(now_ms, limit)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
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
        if self.write(Write::Job(claim)).await? == 0 {
            return Ok(None);
        }
        self.get_job(uuid).await
    }

    async fn update_job(&self, job: &JobRecord, owner: &str) -> Result<bool, MetaError> {
        let row = JobRow::of(job)?;
        let owner = owner.to_string();
        Ok(self
            .write(Write::Job(JobWrite::Update { row, owner }))
            .await?
            > 0)
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64, MetaError> {
        let released = self.write(Write::Job(JobWrite::Release(owner.to_string())));
        Ok(u64::try_from(released.await?).unwrap_or(0))
    }

    async fn prune_finished_jobs(&self, finished_before: &str) -> Result<u64, MetaError> {
        let pruned = self.write(Write::Job(JobWrite::PruneFinished(
            finished_before.to_string(),
        )));
        Ok(u64::try_from(pruned.await?).unwrap_or(0))
    }

    async fn count_jobs_by_execution(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(COUNT_BY_EXECUTION)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(rows.into_iter().map(|(e, n)| (e, count(n))).collect())
    }
}

/// The columns of a `SELECT` of [`job_columns!`], as read from either backend.
struct RawJob {
    uuid: String,
    image_uuid: String,
    name: String,
    execution: String,
    params: String,
    chain_results: String,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    lease_owner: Option<String>,
    lease_expires_ms: Option<i64>,
    attempts: i64,
}

/// Column list matching [`RawJob`]'s field order, as a literal for
/// `concat!` (sqlx only takes static SQL).
macro_rules! job_columns {
    () => {
        "uuid, image_uuid, name, execution, params, chain_results, \
         created_at, started_at, finished_at, lease_owner, lease_expires_ms, attempts"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO jobs (",
    job_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
);

const UPDATE: &str = "UPDATE jobs SET \
     execution = $1, params = $2, chain_results = $3, started_at = $4, finished_at = $5, \
     lease_owner = $6, lease_expires_ms = $7 \
    WHERE uuid = $8 AND lease_owner = $9";

/// Under PostgreSQL's READ COMMITTED a racing claim waits for the row
/// lock, then re-checks the lease condition on the committed row (SQLite
/// has a single writer): one claim wins.
const CLAIM: &str = "UPDATE jobs SET \
     lease_owner = $1, lease_expires_ms = $2, attempts = attempts + 1, execution = 'running' \
    WHERE uuid = $3 AND execution IN ('queued', 'running') \
     AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < $4)";

const RELEASE: &str = "UPDATE jobs SET lease_owner = NULL, lease_expires_ms = NULL \
    WHERE lease_owner = $1 AND execution IN ('queued', 'running')";

/// Timestamps are ISO 8601 in UTC with one fixed layout, so text order is
/// time order. Unfinished jobs never match: their `execution` says so.
const PRUNE_FINISHED: &str = "DELETE FROM jobs \
    WHERE execution IN ('succeeded', 'failed', 'canceled') \
     AND finished_at IS NOT NULL AND finished_at < $1";

const BY_UUID: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE uuid = $1");

const OF_IMAGE: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE image_uuid = $1 ORDER BY created_at, uuid"
);

const CLAIMABLE: &str = "SELECT uuid FROM jobs WHERE execution IN ('queued', 'running') \
     AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < $1) \
     ORDER BY created_at, uuid LIMIT $2";

const COUNT_BY_EXECUTION: &str =
    "SELECT execution, COUNT(*) FROM jobs GROUP BY execution ORDER BY execution";

/// The integer type of the `attempts` column: a 32-bit `INTEGER` in
/// PostgreSQL, 64 bits in SQLite.
pub(crate) trait AttemptsColumn: Into<i64> + Send + Sized {
    /// `n`, or the type's maximum where it does not fit.
    fn saturating_from(n: i64) -> Self;
}

impl AttemptsColumn for i64 {
    fn saturating_from(n: i64) -> Self {
        n
    }
}

impl AttemptsColumn for i32 {
    fn saturating_from(n: i64) -> Self {
        i32::try_from(n).unwrap_or(i32::MAX)
    }
}

/// A job write, as a backend applies it.
pub(crate) enum JobWrite {
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
    /// Delete the finished jobs that finished before this timestamp.
    PruneFinished(String),
}

impl JobWrite {
    /// The job an insert creates: a unique violation means it exists.
    pub(crate) fn inserted(&self) -> Option<Uuid> {
        match self {
            JobWrite::Insert(row) => Some(row.id),
            _ => None,
        }
    }
}

/// The job statements for database `DB`, whose `attempts` column reads
/// and binds as `Attempts`.
pub(crate) struct JobSql<DB, Attempts>(PhantomData<(DB, Attempts)>);

impl<DB, Attempts> JobSql<DB, Attempts>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Attempts: Encode<'a, DB> + Decode<'a, DB> + Type<DB> + AttemptsColumn,
    usize: ColumnIndex<DB::Row>,
{
    /// The statement performing `write`.
    pub(crate) fn write(write: &JobWrite) -> Statement<DB> {
        match write {
            JobWrite::Insert(row) => Self::insert(row),
            JobWrite::Update { row, owner } => Self::update(row, owner),
            JobWrite::Claim {
                uuid,
                owner,
                now_ms,
                expires_ms,
            } => Self::claim(*uuid, owner, *now_ms, *expires_ms),
            JobWrite::Release(owner) => Self::release(owner),
            JobWrite::PruneFinished(before) => sqlx::query(PRUNE_FINISHED).bind(before.clone()),
        }
    }

    fn insert(row: &JobRow) -> Statement<DB> {
        sqlx::query(INSERT)
            .bind(&row.uuid)
            .bind(&row.image_uuid)
            .bind(&row.name)
            .bind(row.execution.to_owned())
            .bind(&row.params)
            .bind(&row.chain_results)
            .bind(&row.created_at)
            .bind(&row.started_at)
            .bind(&row.finished_at)
            .bind(&row.lease_owner)
            .bind(row.lease_expires_ms)
            .bind(Attempts::saturating_from(row.attempts))
    }

    /// Write `row`'s mutable columns if `owner` holds the lease.
    fn update(row: &JobRow, owner: &str) -> Statement<DB> {
        sqlx::query(UPDATE)
            .bind(row.execution.to_owned())
            .bind(&row.params)
            .bind(&row.chain_results)
            .bind(&row.started_at)
            .bind(&row.finished_at)
            .bind(&row.lease_owner)
            .bind(row.lease_expires_ms)
            .bind(&row.uuid)
            .bind(owner.to_owned())
    }

    fn claim(uuid: Uuid, owner: &str, now_ms: i64, expires_ms: i64) -> Statement<DB> {
        sqlx::query(CLAIM)
            .bind(owner.to_owned())
            .bind(expires_ms)
            .bind(uuid.to_string())
            .bind(now_ms)
    }

    fn release(owner: &str) -> Statement<DB> {
        sqlx::query(RELEASE).bind(owner.to_owned())
    }

    /// Rows of [`Self::decode`]'s shape: the job `uuid`.
    fn by_uuid(uuid: Uuid) -> Statement<DB> {
        sqlx::query(BY_UUID).bind(uuid.to_string())
    }

    /// Rows of [`Self::decode`]'s shape: the jobs of one image, oldest first.
    fn of_image(image_uuid: Uuid) -> Statement<DB> {
        sqlx::query(OF_IMAGE).bind(image_uuid.to_string())
    }

    /// The uuids of up to `limit` claimable jobs, oldest first.
    fn claimable(now_ms: i64, limit: u32) -> ScalarStatement<'static, DB, String> {
        sqlx::query_scalar(CLAIMABLE)
            .bind(now_ms)
            .bind(i64::from(limit))
    }

    /// A row of [`Self::by_uuid`] or [`Self::of_image`] as a record;
    /// `sql_err` classifies a column that cannot be read.
    fn decode(
        row: &DB::Row,
        sql_err: impl Fn(sqlx::Error) -> MetaError,
    ) -> Result<JobRecord, MetaError> {
        let raw = || -> Result<RawJob, sqlx::Error> {
            Ok(RawJob {
                uuid: row.try_get(0)?,
                image_uuid: row.try_get(1)?,
                name: row.try_get(2)?,
                execution: row.try_get(3)?,
                params: row.try_get(4)?,
                chain_results: row.try_get(5)?,
                created_at: row.try_get(6)?,
                started_at: row.try_get(7)?,
                finished_at: row.try_get(8)?,
                lease_owner: row.try_get(9)?,
                lease_expires_ms: row.try_get(10)?,
                attempts: row.try_get::<Attempts, _>(11)?.into(),
            })
        };
        raw().map_err(sql_err)?.decode()
    }
}

impl RawJob {
    fn decode(self) -> Result<JobRecord, MetaError> {
        let corrupt = |detail: String| MetaError::Corrupt {
            uuid: self.uuid.clone(),
            detail,
        };
        let execution = JobExecution::parse(&self.execution)
            .ok_or_else(|| corrupt(format!("unknown job execution {:?}", self.execution)))?;
        let params: Value =
            serde_json::from_str(&self.params).map_err(|e| corrupt(format!("job params: {e}")))?;
        let chain_results: Vec<Value> = serde_json::from_str(&self.chain_results)
            .map_err(|e| corrupt(format!("job chain_results: {e}")))?;
        let lease = match (&self.lease_owner, self.lease_expires_ms) {
            (Some(owner), Some(expires_ms)) => Some(JobLease {
                owner: owner.clone(),
                expires_ms,
            }),
            _ => None,
        };
        Ok(JobRecord {
            uuid: decode_uuid(&self.uuid)?,
            image_uuid: decode_uuid(&self.image_uuid)?,
            name: self.name,
            execution,
            params,
            chain_results,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            lease,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
        })
    }
}
