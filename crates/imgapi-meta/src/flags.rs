//! Lifecycle flags of an image (docs/lifecycle.md): its deprecation time and
//! whether it is protected from deletion. The [`ImageFlagsStore`] role.
//!
//! The flags live beside the image record, never in it, so the manifests
//! clients see do not change. They go with their image when it is deleted,
//! stay when its record is overwritten (`put`) and move with it when an
//! operator changes its uuid (`rename`). A change bumps the write generation
//! like any image write, so answers cached under the old flags expire.

use async_trait::async_trait;
use uuid::Uuid;

use crate::MetaError;

/// The flags of one image. An image without a row has the default: not
/// deprecated, not protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFlags {
    /// When the image is (or was) deprecated, ms since the epoch.
    pub deprecated_ms: Option<i64>,
    pub protected: bool,
    /// The last change, ms since the epoch.
    pub updated_ms: i64,
    /// Who made the last change (an account uuid, or `operator`).
    pub updated_by: String,
}

impl ImageFlags {
    /// Whether the image is deprecated at `now_ms`.
    pub fn deprecated_at(&self, now_ms: i64) -> bool {
        self.deprecated_ms.is_some_and(|ms| ms <= now_ms)
    }
}

/// A change of an image's flags: the fields given are set, the others kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagsChange {
    /// `Some(None)` clears the deprecation time.
    pub deprecated_ms: Option<Option<i64>>,
    pub protected: Option<bool>,
    pub at_ms: i64,
    pub by: String,
}

/// Image lifecycle flags.
#[async_trait]
pub trait ImageFlagsStore: Send + Sync + 'static {
    /// The flags of `uuid`, `None` when none were ever set (or the image
    /// does not exist).
    async fn image_flags(&self, uuid: Uuid) -> Result<Option<ImageFlags>, MetaError>;

    /// Apply `change` to the flags of `uuid` in one write (two changes of
    /// different fields never undo each other) and return the flags after
    /// it. `MetaError::NotFound` if the image does not exist.
    async fn change_image_flags(
        &self,
        uuid: Uuid,
        change: &FlagsChange,
    ) -> Result<ImageFlags, MetaError>;

    /// The earliest deprecation time after `now_ms`: until then, which
    /// images are deprecated does not change without a write.
    async fn next_deprecation_after(&self, now_ms: i64) -> Result<Option<i64>, MetaError>;

    /// Every protected image, sorted: what retention never removes, read
    /// in one query instead of one per candidate.
    async fn protected_images(&self) -> Result<Vec<Uuid>, MetaError>;
}
