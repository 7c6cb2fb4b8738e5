//! Storage usage for billing ([`UsageStore::usage`]): per owner, the
//! number of images and the bytes their files and icons take; per owner and
//! billing tag, the same for the images carrying the tag.
//!
//! Computed by the backend with aggregate queries over the authoritative
//! records (never by loading them into the process), in one read-only
//! snapshot: the owner totals and the billing-tag totals always describe
//! the same committed state. A file counts from the commit of the record
//! update that names it (`AddImageFile`'s commit point) until the commit
//! that drops it; uploads in progress and blobs not yet deleted never count.

use async_trait::async_trait;
use uuid::Uuid;

use crate::MetaError;

/// What one owner stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerUsage {
    pub owner: Uuid,
    /// Image records, whatever their state.
    pub images: u64,
    /// Of them, in state `active`.
    pub active: u64,
    /// `files[]` entries of those images.
    pub files: u64,
    /// Sum of `files[].size`.
    pub file_bytes: u64,
    /// Images with an icon.
    pub icons: u64,
    /// Sum of `icon.size`.
    pub icon_bytes: u64,
}

impl OwnerUsage {
    /// Bytes stored: files and icons.
    pub fn bytes(&self) -> u64 {
        self.file_bytes.saturating_add(self.icon_bytes)
    }
}

/// What the images of one owner that carry one billing tag store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingTagUsage {
    pub owner: Uuid,
    pub tag: String,
    pub images: u64,
    /// Files and icons of those images.
    pub bytes: u64,
}

/// The answer of [`UsageStore::usage`]: owners sorted by uuid,
/// billing tags by owner then tag. Owners without images are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub owners: Vec<OwnerUsage>,
    pub billing_tags: Vec<BillingTagUsage>,
}

/// Storage usage, for billing.
#[async_trait]
pub trait UsageStore: Send + Sync + 'static {
    /// Storage usage per owner and per (owner, billing tag), of one owner
    /// or of all: aggregate queries in one read snapshot (see [`Usage`]).
    async fn usage(&self, owner: Option<Uuid>) -> Result<Usage, MetaError>;
}
