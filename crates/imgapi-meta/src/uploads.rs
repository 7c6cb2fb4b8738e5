//! Resumable upload sessions as stored: the record, its lease, and the row
//! form both SQL backends read and write.
//!
//! A session is the server-side state of one resumable image-file upload
//! (docs/uploads.md): where its bytes are staged (store kind, final blob
//! key, backend handle), how many are committed (`offset`), the S3 part ids
//! so far, and the running digests of the committed bytes. Every instance
//! sharing the database can continue any session.
//!
//! Writes to a session's bytes are serialised by a lease, like jobs: a
//! request claims the session ([`crate::MetaStore::claim_upload`]) before
//! writing a chunk or finishing, and records the chunk with
//! [`crate::MetaStore::advance_upload`], which succeeds only while it still
//! holds the lease and the offset is the one it started from. A lease whose
//! holder died expires by itself.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::columns::decode_uuid;
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

/// The SQL form of a session's columns.
pub(crate) struct UploadRow {
    pub(crate) id: Uuid,
    pub(crate) uuid: String,
    pub(crate) image_uuid: String,
    pub(crate) params: String,
    pub(crate) stor: String,
    pub(crate) blob_key: String,
    pub(crate) handle: String,
    pub(crate) offset: i64,
    pub(crate) size: Option<i64>,
    pub(crate) parts: String,
    pub(crate) digests: String,
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: i64,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
}

fn to_i64(n: u64, what: &str, id: Uuid) -> Result<i64, MetaError> {
    i64::try_from(n).map_err(|_| MetaError::Backend(format!("upload {id}: {what} {n} too large")))
}

impl UploadRow {
    pub(crate) fn of(s: &UploadSession) -> Result<UploadRow, MetaError> {
        let params = json!({
            "compression": s.compression,
            "sha1": s.sha1,
            "dataset_guid": s.dataset_guid,
        });
        let parts = serde_json::to_string(&s.parts)
            .map_err(|e| MetaError::Backend(format!("cannot encode upload {}: {e}", s.id)))?;
        Ok(UploadRow {
            id: s.id,
            uuid: s.id.to_string(),
            image_uuid: s.image_uuid.to_string(),
            params: params.to_string(),
            stor: s.stor.clone(),
            blob_key: s.blob_key.clone(),
            handle: s.handle.clone(),
            offset: to_i64(s.offset, "offset", s.id)?,
            size: s.size.map(|n| to_i64(n, "size", s.id)).transpose()?,
            parts,
            digests: s.digests.clone(),
            created_ms: s.created_ms,
            expires_ms: s.expires_ms,
            lease_owner: s.lease.as_ref().map(|l| l.owner.clone()),
            lease_expires_ms: s.lease.as_ref().map(|l| l.expires_ms),
        })
    }
}

/// Column list matching [`RawUpload`]'s field order (`committed` is the
/// offset: `offset` is an SQL keyword).
macro_rules! upload_columns {
    () => {
        "id, image_uuid, params, stor, blob_key, handle, committed, size, parts, digests, \
         created_ms, expires_ms, lease_owner, lease_expires_ms"
    };
}
pub(crate) use upload_columns;

/// The columns of a `SELECT upload_columns!()`, as read from either backend.
pub(crate) struct RawUpload {
    pub(crate) id: String,
    pub(crate) image_uuid: String,
    pub(crate) params: String,
    pub(crate) stor: String,
    pub(crate) blob_key: String,
    pub(crate) handle: String,
    pub(crate) offset: i64,
    pub(crate) size: Option<i64>,
    pub(crate) parts: String,
    pub(crate) digests: String,
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: i64,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
}

impl RawUpload {
    pub(crate) fn decode(self) -> Result<UploadSession, MetaError> {
        let corrupt = |detail: String| MetaError::Corrupt {
            uuid: self.id.clone(),
            detail,
        };
        let params: Value = serde_json::from_str(&self.params)
            .map_err(|e| corrupt(format!("upload params: {e}")))?;
        let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
        let parts: Vec<String> =
            serde_json::from_str(&self.parts).map_err(|e| corrupt(format!("upload parts: {e}")))?;
        let offset = u64::try_from(self.offset)
            .map_err(|_| corrupt(format!("negative offset {}", self.offset)))?;
        let size = self
            .size
            .map(|n| u64::try_from(n).map_err(|_| corrupt(format!("negative size {n}"))))
            .transpose()?;
        let lease = match (&self.lease_owner, self.lease_expires_ms) {
            (Some(owner), Some(expires_ms)) => Some(UploadLease {
                owner: owner.clone(),
                expires_ms,
            }),
            _ => None,
        };
        Ok(UploadSession {
            id: decode_uuid(&self.id)?,
            image_uuid: decode_uuid(&self.image_uuid)?,
            compression: text("compression").unwrap_or_default(),
            sha1: text("sha1"),
            dataset_guid: text("dataset_guid"),
            stor: self.stor,
            blob_key: self.blob_key,
            handle: self.handle,
            offset,
            size,
            parts,
            digests: self.digests,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            lease,
        })
    }
}
