//! Answers about the server itself: Ping, ListChannels, AdminGetState,
//! AdminGetUsage, and ExportImage's answer.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `GET /ping` (api.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ping {
    /// Always `pong`.
    pub ping: String,
    /// The API version the server implements (`4.11.0`).
    pub version: String,
    /// Always `true`: this is an IMGAPI.
    pub imgapi: bool,
    /// The server's process id (dc mode, or an authenticated caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The authenticated caller's login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// `GET /health`: whether every backend the server needs answers (200 when
/// `status` is `ok`, 503 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// `ok` when every check is, else `error`.
    #[schemars(extend("enum" = ["ok", "error"]))]
    pub status: String,
    pub checks: HealthChecks,
}

/// The checks of a [`Health`] answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HealthChecks {
    /// The metadata database (SQLite or PostgreSQL).
    pub database: HealthCheck,
    /// The file store(s) (local directory or S3 bucket).
    pub storage: HealthCheck,
}

/// One backend's check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HealthCheck {
    /// `ok` or `error`.
    #[schemars(extend("enum" = ["ok", "error"]))]
    pub status: String,
    /// What failed (only on `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long the check took, in milliseconds.
    pub latency_ms: u64,
}

/// One entry of `GET /channels` (api.md §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Channel {
    /// The channel's name (the `channel` parameter).
    pub name: String,
    /// What the channel holds.
    pub description: String,
    /// `true` on the default channel (absent elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
}

/// `GET /state` (AdminGetState, api.md §3.2): a debugging snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServerState {
    /// Logging settings.
    pub log: LogState,
    /// Storage backends configured (`local`, `s3`).
    #[serde(rename = "storageTypes")]
    pub storage_types: Vec<String>,
    /// Server mode.
    #[schemars(extend("enum" = ["public", "private", "dc"]))]
    pub mode: String,
    /// Seconds since the server started.
    #[serde(rename = "uptimeSeconds")]
    pub uptime_seconds: u64,
    /// Number of images per state.
    pub images: BTreeMap<String, u64>,
}

/// The `log` of [`ServerState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogState {
    /// The configured log level.
    pub level: String,
}

/// `GET /usage` (AdminGetUsage, docs/operating.md "Usage for billing").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    /// Per owner, ordered by owner UUID.
    pub owners: Vec<OwnerUsage>,
    /// Per billing tag, summed over the owners listed (an image with
    /// several tags counts under each).
    #[serde(rename = "billingTags")]
    pub billing_tags: BTreeMap<String, TagUsage>,
    /// Sums over the owners listed.
    pub totals: UsageTotals,
    /// Per owner: deleted images waiting in the recycle bin (not counted
    /// above). Absent when every bin listed is empty.
    #[serde(
        rename = "recycleBin",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub recycle_bin: BTreeMap<Uuid, crate::RecycleBinUsage>,
}

/// The storage one owner uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OwnerUsage {
    /// The owner's UUID.
    pub owner: Uuid,
    /// Images owned, in any state.
    pub images: u64,
    /// Of those, images in state `active`.
    #[serde(rename = "activeImages")]
    pub active_images: u64,
    /// Image files stored.
    pub files: u64,
    /// Bytes of those files.
    #[serde(rename = "fileBytes")]
    pub file_bytes: u64,
    /// Icons stored.
    pub icons: u64,
    /// Bytes of those icons.
    #[serde(rename = "iconBytes")]
    pub icon_bytes: u64,
    /// `fileBytes` + `iconBytes`.
    pub bytes: u64,
    /// The owner's images and bytes per billing tag.
    #[serde(rename = "billingTags")]
    pub billing_tags: BTreeMap<String, TagUsage>,
    /// Limits and use, only for owners with a quota (docs/lifecycle.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<crate::UsageQuota>,
}

/// Images and bytes under one billing tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TagUsage {
    /// Images with the tag.
    pub images: u64,
    /// Bytes of their files and icons.
    pub bytes: u64,
}

/// The totals of a [`Usage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UsageTotals {
    /// Owners listed.
    pub owners: u64,
    /// Images of those owners.
    pub images: u64,
    /// Bytes of those images.
    pub bytes: u64,
}

/// The answer of ExportImage (`POST /images/:uuid?action=export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Exported {
    /// Where the export went (`file:///…`, `s3://…`).
    pub manta_url: String,
    /// Path of the exported file.
    pub image_path: String,
    /// Path of the exported manifest.
    pub manifest_path: String,
    /// Path of the exported signatures (an extension, docs/signing.md: the
    /// ListImageSignatures answer as JSON), when the image has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures_path: Option<String>,
}
