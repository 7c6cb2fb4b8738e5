//! Image records as stored: the [`ImageStore`] role of a metadata backend.

use async_trait::async_trait;
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::ImageRecord;
use uuid::Uuid;

use crate::MetaError;

/// Optimistic-concurrency token: changes on every successful write.
pub type Revision = i64;

/// A record together with the revision it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredImage {
    pub image: ImageRecord,
    pub revision: Revision,
}

/// Image records: reads, optimistic writes, and the store's health.
#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
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

    /// Cheap health check (Ping, readiness).
    async fn ping(&self) -> Result<(), MetaError>;

    /// A number that changes (grows) with every committed write, across
    /// every instance sharing the database: a cache stamped with it is
    /// still valid while the number is unchanged.
    async fn generation(&self) -> Result<i64, MetaError>;
}
