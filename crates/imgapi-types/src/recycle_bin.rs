//! The recycle bin (an IMGAPI extension, docs/lifecycle.md): how a deleted
//! image in the bin is shown by `/recycle-bin`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One deleted image in the recycle bin (`GET /recycle-bin`,
/// `GET /recycle-bin/:uuid`). Not a manifest: restore it to get the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecycledImage {
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    /// The image's state when it was deleted.
    pub state: String,
    /// The origin image, which must be live for a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    /// Bytes of the image's files, still stored until the entry is purged.
    pub size: u64,
    /// ISO 8601 time of the deletion.
    pub deleted_at: String,
    /// ISO 8601 time after which the lifecycle sweep purges the entry.
    pub expires_at: String,
    /// Who deleted it: the account, or `operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
}

/// Images and bytes one owner has in the recycle bin (`/usage`'s
/// `recycleBin`, present only when some bin is not empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecycleBinUsage {
    /// Deleted images in the bin.
    pub images: u64,
    /// Bytes of their files.
    pub bytes: u64,
}
