//! Metadata store: image records, persisted by one backend behind [`MetaStore`].
//!
//! Services call stores; stores never call services. Every backend passes the
//! same conformance suite ([`testsuite`], feature `testing`).

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::ImageRecord;
use uuid::Uuid;

mod columns;
mod error;
mod jobs;
pub mod postgres;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;
mod uploads;
mod usage;

pub use error::MetaError;
pub use jobs::{JobExecution, JobLease, JobRecord};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use uploads::{UploadLease, UploadSession};
pub use usage::{BillingTagUsage, OwnerUsage, Usage};

/// Optimistic-concurrency token: changes on every successful write.
pub type Revision = i64;

/// A record together with the revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredImage {
    pub image: ImageRecord,
    pub revision: Revision,
}

/// The contract every metadata backend keeps.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// The record with this uuid, or `None`.
    async fn get(&self, uuid: Uuid) -> Result<Option<StoredImage>, MetaError>;

    /// Insert a new record. `MetaError::AlreadyExists` if the uuid is taken.
    async fn insert(&self, image: &ImageRecord) -> Result<Revision, MetaError>;

    /// Replace the record `image.uuid` if its revision is still `expected`.
    /// `MetaError::Conflict` if someone else wrote it meanwhile,
    /// `MetaError::NotFound` if it was deleted.
    async fn update(&self, image: &ImageRecord, expected: Revision) -> Result<Revision, MetaError>;

    /// Overwrite (or create) the record unconditionally; used where the
    /// original overwrites a placeholder on import.
    async fn put(&self, image: &ImageRecord) -> Result<Revision, MetaError>;

    /// Atomically replace record `old_uuid` (at revision `expected`) with
    /// `image`, which carries a different uuid (operator uuid change).
    async fn rename(
        &self,
        old_uuid: Uuid,
        expected: Revision,
        image: &ImageRecord,
    ) -> Result<Revision, MetaError>;

    /// Delete the record; `Ok(false)` if it did not exist.
    async fn delete(&self, uuid: Uuid) -> Result<bool, MetaError>;

    /// Images matching the query, sorted by `published_at` (missing = 0,
    /// ties by uuid) in the query's order, at most `limit` of them. The
    /// filter is evaluated by the backend (never by loading every record).
    async fn list(&self, query: &ImageQuery) -> Result<Vec<ImageRecord>, MetaError>;

    /// UUIDs of images whose `origin` is `origin`, restricted to images in
    /// `channel` when given; sorted by `published_at` then uuid.
    async fn dependents(&self, origin: Uuid, channel: Option<&str>)
        -> Result<Vec<Uuid>, MetaError>;

    /// Number of records per state, for AdminGetState and metrics.
    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, MetaError>;

    /// Storage usage per owner and per (owner, billing tag), of one owner
    /// or of all: aggregate queries in one read snapshot (see [`Usage`]).
    async fn usage(&self, owner: Option<Uuid>) -> Result<Usage, MetaError>;

    /// Number of jobs per `execution` (metrics); executions without jobs
    /// are absent.
    async fn count_jobs_by_execution(&self) -> Result<Vec<(String, u64)>, MetaError>;

    /// Cheap health check (Ping, readiness).
    async fn ping(&self) -> Result<(), MetaError>;

    /// A number that changes (grows) with every committed write, across
    /// every instance sharing the database: a cache stamped with it is
    /// still valid while the number is unchanged.
    async fn generation(&self) -> Result<i64, MetaError>;

    // -- Jobs (see [`JobRecord`]) --------------------------------------

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

    // -- Upload sessions (see [`UploadSession`]) --------------------------

    /// Insert a new session. `MetaError::AlreadyExists` if the id is taken.
    async fn insert_upload(&self, upload: &UploadSession) -> Result<(), MetaError>;

    /// The session with this id, or `None`.
    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadSession>, MetaError>;

    /// Give `owner` the lease of session `id` until `expires_ms`, if its
    /// lease is absent or expired at `now_ms`. Returns the session as it is
    /// now; `Ok(None)` when it is gone or leased by someone else. Of several
    /// callers claiming at once exactly one succeeds.
    async fn claim_upload(
        &self,
        id: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<UploadSession>, MetaError>;

    /// Move `owner`'s lease of session `id` to `expires_ms`; `Ok(false)` if
    /// `owner` does not hold it (any more).
    async fn renew_upload(&self, id: Uuid, owner: &str, expires_ms: i64)
        -> Result<bool, MetaError>;

    /// Record progress: write `upload`'s offset, size, parts, digests and
    /// expiry and end the lease, if `owner` holds the lease and the stored
    /// offset is still `from_offset`. `Ok(false)` otherwise (lease lost,
    /// session gone): the caller's chunk is not recorded.
    async fn advance_upload(
        &self,
        upload: &UploadSession,
        owner: &str,
        from_offset: u64,
    ) -> Result<bool, MetaError>;

    /// End `owner`'s lease of session `id` (if it holds it).
    async fn release_upload(&self, id: Uuid, owner: &str) -> Result<bool, MetaError>;

    /// Delete session `id`; `Ok(false)` if it did not exist.
    async fn delete_upload(&self, id: Uuid) -> Result<bool, MetaError>;

    /// Delete session `id` only if it expired before `now_ms` and no live
    /// lease (at `now_ms`) is held on it; `Ok(true)` if deleted.
    async fn delete_expired_upload(&self, id: Uuid, now_ms: i64) -> Result<bool, MetaError>;

    /// Up to `limit` sessions that expired before `now_ms`, oldest expiry first.
    async fn expired_uploads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError>;

    /// The backend handles of every session (to tell staged data whose
    /// session is gone from live sessions').
    async fn upload_handles(&self) -> Result<Vec<String>, MetaError>;

    /// Claim the oldest claimable job for `owner` ([`claimable_jobs`] then
    /// [`claim_job`] until one succeeds).
    ///
    /// [`claimable_jobs`]: MetaStore::claimable_jobs
    /// [`claim_job`]: MetaStore::claim_job
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

/// Which metadata backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl FromStr for Engine {
    type Err = String;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            // Only the scheme: the rest of a URL may hold a password.
            other => Err(format!(
                "unknown database engine `{other}` (options: sqlite, postgres; \
                 e.g. sqlite:///var/imgapi/meta.db, postgres://USER@HOST:5432/DATABASE)"
            )),
        }
    }
}

/// Open the metadata store a database URL names: SQLite
/// ([`SqliteStore::open_url`]) or PostgreSQL ([`PostgresStore::connect`]).
/// Schema migrations run before this returns.
pub async fn open(url: &str) -> Result<Arc<dyn MetaStore>, MetaError> {
    match url.parse::<Engine>().map_err(MetaError::Backend)? {
        Engine::Sqlite => Ok(Arc::new(SqliteStore::open_url(url).await?)),
        Engine::Postgres => Ok(Arc::new(PostgresStore::connect(url).await?)),
    }
}
