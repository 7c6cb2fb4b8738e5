//! Resumable upload sessions (an IMGAPI extension, docs/uploads.md): the
//! body every session endpoint answers with, and the header names.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Response header carrying a session's committed offset.
pub const UPLOAD_OFFSET_HEADER: &str = "upload-offset";

/// State of one upload session, as `POST /images/:uuid/file/uploads`,
/// `GET|HEAD|PUT /images/:uuid/file/uploads/:id` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UploadSessionBody {
    /// The session's id (a UUID; the last segment of its URL).
    pub upload_id: String,
    /// Bytes received and durably stored; the next chunk starts here.
    pub offset: u64,
    /// Total size, once known (`null` until then).
    #[serde(default)]
    pub size: Option<u64>,
    /// Smallest chunk accepted other than the last (S3 storage: 5 MiB).
    pub chunk_size_min: u64,
    /// ISO 8601 time after which the session is gone; every chunk moves it on.
    pub expires_at: String,
}
