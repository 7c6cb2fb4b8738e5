//! Resumable upload sessions as stored: the record, its lease, and the
//! [`UploadStore`] role of a metadata backend.
//!
//! A session is the server-side state of one resumable image-file upload
//! (docs/uploads.md): where its bytes are staged (store kind, final blob
//! key, backend handle), how many are committed (`offset`), the S3 part ids
//! so far, and the running digests of the committed bytes. Every instance
//! sharing the database can continue any session.
//!
//! Writes to a session's bytes are serialised by a lease, like jobs: a
//! request claims the session ([`UploadStore::claim_upload`]) before
//! writing a chunk or finishing, and records the chunk with
//! [`UploadStore::advance_upload`], which succeeds only while it still
//! holds the lease and the offset is the one it started from. A lease whose
//! holder died expires by itself, or ends at once when that holder starts
//! again ([`UploadStore::release_stale_upload_leases`]).

use async_trait::async_trait;
use uuid::Uuid;

use crate::MetaError;

/// Who is writing to a session, and until when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLease {
    pub owner: String,
    pub expires_ms: i64,
}

/// One upload session.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadSession {
    /// The `upload_id` of the API.
    pub id: Uuid,
    pub image_uuid: Uuid,
    /// `compression` of the file (as AddImageFile's parameter).
    pub compression: String,
    /// Expected SHA-1 (hex) given when the session was created.
    pub sha1: Option<String>,
    /// `dataset_guid` of the file.
    pub dataset_guid: Option<String>,
    /// Kind of the blob store holding the bytes (`local`, `s3`).
    pub stor: String,
    /// The key the file will be committed to.
    pub blob_key: String,
    /// The blob store's handle of the staged upload.
    pub handle: String,
    /// Bytes received and durably stored.
    pub offset: u64,
    /// Total size, once known (given at creation or by a `Content-Range`).
    pub size: Option<u64>,
    /// S3 part ids of the committed bytes, in order (empty for local).
    pub parts: Vec<String>,
    /// Saved running digests of the committed bytes
    /// (`imgapi_blob::Digests::to_state`).
    pub digests: String,
    pub created_ms: i64,
    /// The session is gone after this (ms since the epoch); each chunk
    /// moves it forward.
    pub expires_ms: i64,
    pub lease: Option<UploadLease>,
}

/// Upload sessions: leased, resumable, expiring.
#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
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

    /// End every lease whose owner starts with `holder` but not with
    /// `current`: the leases an earlier run of this holder took and never
    /// ended (it was killed). Owner names must make neither prefix match
    /// another holder's (end each with a separator). Returns how many
    /// leases ended.
    async fn release_stale_upload_leases(
        &self,
        holder: &str,
        current: &str,
    ) -> Result<u64, MetaError>;

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

    /// The sessions of image `image`, oldest first (the removal of an
    /// abandoned upload ends them with it).
    async fn uploads_of_image(&self, image: Uuid) -> Result<Vec<UploadSession>, MetaError>;

    /// The backend handles of every session (to tell staged data whose
    /// session is gone from live sessions').
    async fn upload_handles(&self) -> Result<Vec<String>, MetaError>;
}
