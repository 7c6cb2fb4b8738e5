//! The recycle bin (docs/lifecycle.md): deleted images kept, whole, until
//! restored, purged or expired — the [`RecycleBinStore`] role of a
//! metadata backend. Also the one query of abandoned uploads, which the
//! same lifecycle sweep removes.
//!
//! Moving an image into the bin and restoring it are each one
//! transaction (the record leaves one table and enters the other) that
//! moves the write generation like any image write, so list caches expire.
//! A uuid in the bin stays taken: [`crate::ImageStore::insert`] refuses it
//! with `AlreadyExists`.

use async_trait::async_trait;
use imgapi_domain::ImageRecord;
use uuid::Uuid;

use crate::{MetaError, Revision};

/// One deleted image in the bin.
#[derive(Debug, Clone, PartialEq)]
pub struct BinEntry {
    /// The record as it was when deleted.
    pub image: ImageRecord,
    /// When it was deleted (ms since the epoch).
    pub deleted_ms: i64,
    /// When the lifecycle sweep may purge it (ms since the epoch).
    pub expires_ms: i64,
    /// Who deleted it (an account uuid or operator name), when known.
    pub deleted_by: Option<String>,
    /// The image's deprecation time when it was deleted, as read back. A
    /// move into the bin takes the image's own (its lifecycle flags) and
    /// ignores this.
    pub deprecated_ms: Option<i64>,
}

impl BinEntry {
    /// Bytes of the image's files.
    pub fn size(&self) -> u64 {
        self.image
            .files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.size))
    }
}

/// What one owner's images in the bin hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BinUsage {
    pub owner: Uuid,
    pub images: u64,
    /// Bytes of their files.
    pub bytes: u64,
}

/// The recycle bin of deleted images.
#[async_trait]
pub trait RecycleBinStore: Send + Sync + 'static {
    /// Move record `entry.image.uuid`, if still at revision `expected`,
    /// into the bin, in one transaction. `Conflict` if it was written
    /// meanwhile, `NotFound` if it is gone, `AlreadyExists` if the bin
    /// already holds that uuid.
    async fn move_to_bin(&self, entry: &BinEntry, expected: Revision) -> Result<(), MetaError>;

    /// The bin entry of `uuid`, or `None`.
    async fn binned(&self, uuid: Uuid) -> Result<Option<BinEntry>, MetaError>;

    /// Bin entries (of `owner`, or all), oldest deletion first (ties by
    /// uuid), skipping `offset`, at most `limit`.
    async fn list_bin(
        &self,
        owner: Option<Uuid>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<BinEntry>, MetaError>;

    /// Put entry `uuid` back among the images, in one transaction; the new
    /// revision. `NotFound` if it is not in the bin, `AlreadyExists` if the
    /// uuid is taken by an image.
    async fn restore_from_bin(&self, uuid: Uuid) -> Result<Revision, MetaError>;

    /// Remove entry `uuid` for good; `Ok(false)` if it was not there.
    async fn remove_from_bin(&self, uuid: Uuid) -> Result<bool, MetaError>;

    /// Up to `limit` entries that expired before `now_ms`, oldest expiry first.
    async fn expired_bin_entries(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<BinEntry>, MetaError>;

    /// Per owner (sorted by uuid; of `owner` or all): the bin's images and
    /// bytes. Owners with an empty bin are absent.
    async fn bin_usage(&self, owner: Option<Uuid>) -> Result<Vec<BinUsage>, MetaError>;

    /// Up to `limit` images never activated whose record was first
    /// inserted before `created_before_ms`, oldest first.
    async fn abandoned_images(
        &self,
        created_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Uuid>, MetaError>;
}
