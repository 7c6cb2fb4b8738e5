//! Background jobs as stored: the record, its execution state and lease,
//! and the row form both SQL backends read and write.
//!
//! A job is run by the instance that holds its lease. An unfinished job
//! (`queued` or `running`) whose lease is absent or expired can be claimed
//! by any instance, so a job whose instance died is taken over once its
//! lease runs out, and one released at a graceful shutdown at once.

use serde_json::Value;
use uuid::Uuid;

use crate::columns::decode_uuid;
use crate::MetaError;

/// Where a job is in its life (the workflow API's `execution` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobExecution {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl JobExecution {
    pub const ALL: [JobExecution; 5] = [
        JobExecution::Queued,
        JobExecution::Running,
        JobExecution::Succeeded,
        JobExecution::Failed,
        JobExecution::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobExecution::Queued => "queued",
            JobExecution::Running => "running",
            JobExecution::Succeeded => "succeeded",
            JobExecution::Failed => "failed",
            JobExecution::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<JobExecution> {
        JobExecution::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Succeeded, failed or canceled: never run again.
    pub fn is_finished(self) -> bool {
        !matches!(self, JobExecution::Queued | JobExecution::Running)
    }
}

/// Who runs a job, and until when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    pub owner: String,
    pub expires_ms: i64,
}

/// One job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub uuid: Uuid,
    /// The image the job is about (ListImageJobs selects by it).
    pub image_uuid: Uuid,
    /// The workflow name, e.g. `import-remote-image`.
    pub name: String,
    pub execution: JobExecution,
    /// The job's inputs (a JSON object).
    pub params: Value,
    /// One entry per step done or started (JSON objects).
    pub chain_results: Vec<Value>,
    /// ISO 8601 timestamps.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub lease: Option<JobLease>,
    /// How many times the job was claimed (runs started).
    pub attempts: u32,
}

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

/// The columns of a `SELECT` of [`JOB_COLUMNS`], as read from either backend.
pub(crate) struct RawJob {
    pub(crate) uuid: String,
    pub(crate) image_uuid: String,
    pub(crate) name: String,
    pub(crate) execution: String,
    pub(crate) params: String,
    pub(crate) chain_results: String,
    pub(crate) created_at: String,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
    pub(crate) attempts: i64,
}

/// Column list matching [`RawJob`]'s field order, as a literal for
/// `concat!` (sqlx only takes static SQL).
macro_rules! job_columns {
    () => {
        "uuid, image_uuid, name, execution, params, chain_results, \
         created_at, started_at, finished_at, lease_owner, lease_expires_ms, attempts"
    };
}
pub(crate) use job_columns;

impl RawJob {
    pub(crate) fn decode(self) -> Result<JobRecord, MetaError> {
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
