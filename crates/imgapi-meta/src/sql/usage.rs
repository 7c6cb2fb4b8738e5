//! Storage usage as both SQL backends read it: the rows of the owner and
//! billing-tag aggregates, assembled into a [`Usage`].

use crate::sql::decode_uuid;
use crate::{BillingTagUsage, MetaError, OwnerUsage, Usage};

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
pub(crate) fn assemble(owners: Vec<OwnerRow>, tags: Vec<TagRow>) -> Result<Usage, MetaError> {
    let owners = owners
        .into_iter()
        .map(
            |(owner, images, active, files, file_bytes, icons, icon_bytes)| {
                Ok(OwnerUsage {
                    owner: decode_uuid(&owner)?,
                    images: count(images),
                    active: count(active),
                    files: count(files),
                    file_bytes: count(file_bytes),
                    icons: count(icons),
                    icon_bytes: count(icon_bytes),
                })
            },
        )
        .collect::<Result<Vec<_>, MetaError>>()?;
    let billing_tags = tags
        .into_iter()
        .map(|(owner, tag, images, bytes)| {
            Ok(BillingTagUsage {
                owner: decode_uuid(&owner)?,
                tag,
                images: count(images),
                bytes: count(bytes),
            })
        })
        .collect::<Result<Vec<_>, MetaError>>()?;
    Ok(Usage {
        owners,
        billing_tags,
    })
}
