//! Jobs as both SQL backends store them: the row form of a [`JobRecord`],
//! the statements, and the decoding of a row.

use std::marker::PhantomData;

use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};
use uuid::Uuid;

use super::{decode_uuid, ScalarStatement, Statement};
use crate::{JobExecution, JobLease, JobRecord, MetaError};

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

const BY_UUID: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE uuid = $1");

const OF_IMAGE: &str = concat!(
    "SELECT ",
    job_columns!(),
    " FROM jobs WHERE image_uuid = $1 ORDER BY created_at, uuid"
);

const CLAIMABLE: &str = "SELECT uuid FROM jobs WHERE execution IN ('queued', 'running') \
     AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < $1) \
     ORDER BY created_at, uuid LIMIT $2";

/// The job statements for database `DB`, whose `attempts` column reads
/// and binds as `Attempts` (a 32-bit `INTEGER` in PostgreSQL, 64 bits in
/// SQLite).
pub(crate) struct JobSql<DB, Attempts>(PhantomData<(DB, Attempts)>);

impl<DB, Attempts> JobSql<DB, Attempts>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> Attempts: Encode<'a, DB> + Decode<'a, DB> + Type<DB> + Into<i64>,
    usize: ColumnIndex<DB::Row>,
{
    /// Insert `row`, whose `attempts` the caller gives in the column's type.
    pub(crate) fn insert(row: &JobRow, attempts: Attempts) -> Statement<DB> {
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
            .bind(attempts)
    }

    /// Write `row`'s mutable columns if `owner` holds the lease.
    pub(crate) fn update(row: &JobRow, owner: &str) -> Statement<DB> {
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

    pub(crate) fn claim(uuid: Uuid, owner: &str, now_ms: i64, expires_ms: i64) -> Statement<DB> {
        sqlx::query(CLAIM)
            .bind(owner.to_owned())
            .bind(expires_ms)
            .bind(uuid.to_string())
            .bind(now_ms)
    }

    pub(crate) fn release(owner: &str) -> Statement<DB> {
        sqlx::query(RELEASE).bind(owner.to_owned())
    }

    /// Rows of [`Self::decode`]'s shape: the job `uuid`.
    pub(crate) fn by_uuid(uuid: Uuid) -> Statement<DB> {
        sqlx::query(BY_UUID).bind(uuid.to_string())
    }

    /// Rows of [`Self::decode`]'s shape: the jobs of one image, oldest first.
    pub(crate) fn of_image(image_uuid: Uuid) -> Statement<DB> {
        sqlx::query(OF_IMAGE).bind(image_uuid.to_string())
    }

    /// The uuids of up to `limit` claimable jobs, oldest first.
    pub(crate) fn claimable(now_ms: i64, limit: u32) -> ScalarStatement<'static, DB, String> {
        sqlx::query_scalar(CLAIMABLE)
            .bind(now_ms)
            .bind(i64::from(limit))
    }

    /// A row of [`Self::by_uuid`] or [`Self::of_image`] as a record;
    /// `sql_err` classifies a column that cannot be read.
    pub(crate) fn decode(
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
