//! Per-owner quotas (`/quotas`, and `quota` in `/usage`; docs/lifecycle.md
//! "Quotas").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One owner's effective limits and use (GetQuota, ListQuotas, PutQuota).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Quota {
    /// The owner's UUID.
    pub owner: Uuid,
    pub images: QuotaImages,
    pub bytes: QuotaBytes,
    /// The override stored with PutQuota, if any (`null` keys: the
    /// configured value applies).
    #[serde(rename = "override")]
    pub stored_override: Option<QuotaOverrideBody>,
}

/// The image-count limit and use. `limit` 0 = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuotaImages {
    pub limit: u64,
    /// Image records of the owner, in any state.
    pub used: u64,
}

/// The byte limit and use. `limit` 0 = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuotaBytes {
    pub limit: u64,
    /// Bytes of the owner's files and icons.
    pub used: u64,
    /// Bytes held by uploads in progress.
    pub reserved: u64,
}

/// The body of PutQuota: an owner's limits replacing the configured ones
/// (an absent or `null` key keeps the configured value; 0 = no limit).
/// Other keys are refused by the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuotaOverrideBody {
    #[serde(default)]
    pub images: Option<u64>,
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// `quota` of an owner in `/usage`, only for owners with a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UsageQuota {
    pub images: QuotaImages,
    pub bytes: QuotaBytes,
}
