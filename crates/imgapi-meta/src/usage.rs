//! Storage usage for billing ([`crate::MetaStore::usage`]): per owner, the
//! number of images and the bytes their files and icons take; per owner and
//! billing tag, the same for the images carrying the tag.
//!
//! Computed by the backend with aggregate queries over the authoritative
//! records (never by loading them into the process), in one read-only
//! snapshot: the owner totals and the billing-tag totals always describe
//! the same committed state. A file counts from the commit of the record
//! update that names it (`AddImageFile`'s commit point) until the commit
//! that drops it; uploads in progress and blobs not yet deleted never count.

use uuid::Uuid;

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

/// The answer of [`crate::MetaStore::usage`]: owners sorted by uuid,
/// billing tags by owner then tag. Owners without images are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub owners: Vec<OwnerUsage>,
    pub billing_tags: Vec<BillingTagUsage>,
}

/// A count or sum column (never negative) as `u64`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// One row of the owner query:
/// `(owner, images, active, files, file_bytes, icons, icon_bytes)`.
pub(crate) type OwnerRow = (String, i64, i64, i64, i64, i64, i64);

/// One row of the billing-tag query: `(owner, tag, images, bytes)`.
pub(crate) type TagRow = (String, String, i64, i64);

/// Rows of both queries into a [`Usage`].
pub(crate) fn assemble(
    owners: Vec<OwnerRow>,
    tags: Vec<TagRow>,
) -> Result<Usage, crate::MetaError> {
    let owners = owners
        .into_iter()
        .map(
            |(owner, images, active, files, file_bytes, icons, icon_bytes)| {
                Ok(OwnerUsage {
                    owner: crate::columns::decode_uuid(&owner)?,
                    images: count(images),
                    active: count(active),
                    files: count(files),
                    file_bytes: count(file_bytes),
                    icons: count(icons),
                    icon_bytes: count(icon_bytes),
                })
            },
        )
        .collect::<Result<Vec<_>, crate::MetaError>>()?;
    let billing_tags = tags
        .into_iter()
        .map(|(owner, tag, images, bytes)| {
            Ok(BillingTagUsage {
                owner: crate::columns::decode_uuid(&owner)?,
                tag,
                images: count(images),
                bytes: count(bytes),
            })
        })
        .collect::<Result<Vec<_>, crate::MetaError>>()?;
    Ok(Usage {
        owners,
        billing_tags,
    })
}
