//! Background jobs as stored: the record, its execution state and lease,
//! and the [`JobStore`] role of a metadata backend.
//!
//! A job is run by the instance that holds its lease. An unfinished job
//! (`queued` or `running`) whose lease is absent or expired can be claimed
//! by any instance, so a job whose instance died is taken over once its
//! lease runs out, and one released at a graceful shutdown at once.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

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

/// Jobs: each run by the instance holding its lease.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Insert a new job. `MetaError::AlreadyExists` if the uuid is taken.
    async fn insert_job(&self, job: &JobRecord) -> Result<(), MetaError>;

    /// The job with this uuid, or `None`.
    async fn get_job(&self, uuid: Uuid) -> Result<Option<JobRecord>, MetaError>;

    /// The jobs of one image, oldest first (`created_at`, then uuid).
    async fn image_jobs(&self, image_uuid: Uuid) -> Result<Vec<JobRecord>, MetaError>;

    /// Up to `limit` unfinished jobs whose lease is absent or expired at
    /// `now_ms`, oldest first.
    async fn claimable_jobs(&self, now_ms: i64, limit: u32) -> Result<Vec<Uuid>, MetaError>;

    /// Give `owner` the lease of job `uuid` until `expires_ms`, if the job
    /// is unfinished and its lease is absent or expired at `now_ms`; the
    /// job becomes `running` and its `attempts` grows by one. Of several
    /// instances claiming at once exactly one succeeds. `Ok(None)` when the
    /// job is gone, finished or leased by someone else.
    async fn claim_job(
        &self,
        uuid: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<JobRecord>, MetaError>;

    /// Write the job's execution, params, chain results, timestamps and
    /// lease (renewing or ending it) if `owner` still holds its lease.
    /// `Ok(false)` when the lease was lost (released, taken over) or the
    /// job is gone: the caller must stop working on it.
    async fn update_job(&self, job: &JobRecord, owner: &str) -> Result<bool, MetaError>;

    /// Drop every lease `owner` holds on unfinished jobs (graceful
    /// shutdown), so that another instance can claim them at once. Returns
    /// how many were released.
    async fn release_jobs(&self, owner: &str) -> Result<u64, MetaError>;

    /// Delete the finished jobs (succeeded, failed, canceled) whose
    /// `finished_at` is before `finished_before` (ISO 8601, the layout of
    /// the stored timestamps). Queued and running jobs stay. Returns how
    /// many were deleted.
    async fn prune_finished_jobs(&self, finished_before: &str) -> Result<u64, MetaError>;

    /// Number of jobs per `execution` (metrics); executions without jobs
    /// are absent.
    async fn count_jobs_by_execution(&self) -> Result<Vec<(String, u64)>, MetaError>;

    /// Claim the oldest claimable job for `owner` ([`claimable_jobs`] then
    /// [`claim_job`] until one succeeds).
    ///
    /// [`claimable_jobs`]: JobStore::claimable_jobs
    /// [`claim_job`]: JobStore::claim_job
    async fn claim_next_job(
        &self,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<JobRecord>, MetaError> {
        for uuid in self.claimable_jobs(now_ms, 16).await? {
            if let Some(job) = self.claim_job(uuid, owner, now_ms, expires_ms).await? {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }
}
