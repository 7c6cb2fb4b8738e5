//! The recycle bin (docs/lifecycle.md, `[lifecycle] recycle_days`): with a
//! bin, DeleteImage moves the record into it and leaves the image's blobs
//! in place; the owner or an operator can list, restore or purge the
//! entry, and the lifecycle sweep ([`super::lifecycle`]) purges it once
//! expired. A binned image is absent from every read path (its record is
//! no longer among the images) and its uuid cannot be reused.

use imgapi_domain::ImageRecord;
use imgapi_meta::{BinEntry, MetaError, StoredImage};
use imgapi_types::RecycledImage;
use uuid::Uuid;

use super::uploads::{iso_of_ms, now_ms};
use super::{parse_account, ServiceError};
use crate::app::AppState;

/// How [`super::images::delete_image`] removes an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A deletion someone asked for (DeleteImage, `imgapi mirror
    /// --delete`, retention): into the recycle bin when `[lifecycle]
    /// recycle_days > 0`, else at once. `by` is who asked (for the entry).
    Requested { by: Option<String> },
    /// Leftovers nobody means to keep (a failed import, a placeholder being
    /// replaced): deleted at once, bin or not.
    Immediate,
}

/// Bin entries shown per page by default, and at most.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// How many times a delete re-reads a record that changed under it.
const MOVE_ATTEMPTS: usize = 5;

/// The wire form of an entry.
pub fn wire(entry: &BinEntry) -> RecycledImage {
    let image = &entry.image;
    RecycledImage {
        uuid: image.uuid,
        owner: image.owner,
        name: image.name.clone(),
        version: image.version.clone(),
        state: image.state.as_str().to_string(),
        origin: image.origin,
        size: entry.size(),
        deleted_at: iso_of_ms(entry.deleted_ms),
        expires_at: iso_of_ms(entry.expires_ms),
        deleted_by: entry.deleted_by.clone(),
    }
}

/// Move `stored` into the bin for `[lifecycle] recycle_days`; its blobs
/// stay until the entry is purged. A record changed meanwhile is re-read
/// and moved as it now is; one deleted meanwhile is gone already.
pub(crate) async fn move_to_bin(
    app: &AppState,
    mut stored: StoredImage,
    by: Option<String>,
) -> Result<(), ServiceError> {
    let uuid = stored.image.uuid;
    for _ in 0..MOVE_ATTEMPTS {
        let deleted_ms = now_ms();
        let entry = BinEntry {
            image: stored.image,
            deleted_ms,
            expires_ms: deleted_ms.saturating_add(app.config.lifecycle.recycle_ms()),
            deleted_by: by.clone(),
            deprecated_ms: None,
        };
        match app.meta.move_to_bin(&entry, stored.revision).await {
            Ok(()) => {
                tracing::info!(
                    image = %uuid,
                    owner = %entry.image.owner,
                    deleted_by = entry.deleted_by.as_deref().unwrap_or("-"),
                    expires_at = %iso_of_ms(entry.expires_ms),
                    "image moved to the recycle bin"
                );
                return Ok(());
            }
            Err(MetaError::NotFound(_)) => return Ok(()),
            Err(MetaError::Conflict(_)) => {
                let current = app
                    .meta
                    .get(uuid)
                    .await
                    .map_err(ServiceError::meta(format!("error loading image {uuid}")))?;
                match current {
                    Some(current) => stored = current,
                    None => return Ok(()),
                }
            }
            Err(e) => {
                return Err(ServiceError::meta(format!(
                    "error moving image {uuid} to the recycle bin"
                ))(e))
            }
        }
    }
    Err(ServiceError::Internal(format!(
        "image {uuid} kept changing while being deleted; try again"
    )))
}

/// Who may see the bin: an operator (no account) sees every entry, an
/// account only its own.
fn visible(entry: &BinEntry, account: Option<Uuid>) -> bool {
    account.is_none_or(|a| a == entry.image.owner)
}

/// The entry of `uuid` if `account` may see it; else 404 as if absent.
async fn load(app: &AppState, uuid: Uuid, account: Option<&str>) -> Result<BinEntry, ServiceError> {
    let account = parse_account(account)?;
    let entry = app
        .meta
        .binned(uuid)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading recycle bin entry {uuid}"
        )))?;
    match entry {
        Some(entry) if visible(&entry, account) => Ok(entry),
        _ => Err(not_in_bin(uuid)),
    }
}

fn not_in_bin(uuid: Uuid) -> ServiceError {
    ServiceError::not_found(format!("image {uuid} is not in the recycle bin"))
}

/// ListRecycleBin: an account sees its own entries (`owner` must then be
/// absent or itself), an operator all or `owner`'s.
pub async fn list(
    app: &AppState,
    account: Option<&str>,
    owner: Option<Uuid>,
    offset: u64,
    limit: u32,
) -> Result<Vec<RecycledImage>, ServiceError> {
    let account = parse_account(account)?;
    let owner = match (account, owner) {
        (Some(a), Some(o)) if a != o => return Ok(Vec::new()),
        (Some(a), _) => Some(a),
        (None, o) => o,
    };
    let entries = app
        .meta
        .list_bin(owner, offset, limit)
        .await
        .map_err(ServiceError::meta("error listing the recycle bin"))?;
    Ok(entries.iter().map(wire).collect())
}

/// GetRecycledImage.
pub async fn get(
    app: &AppState,
    account: Option<&str>,
    uuid: Uuid,
) -> Result<RecycledImage, ServiceError> {
    Ok(wire(&load(app, uuid, account).await?))
}

/// RestoreRecycledImage: the image back as it was deleted, refused while
/// its origin is not an image (restore the origin first).
pub async fn restore(
    app: &AppState,
    account: Option<&str>,
    uuid: Uuid,
) -> Result<ImageRecord, ServiceError> {
    let entry = load(app, uuid, account).await?;
    if let Some(origin) = entry.image.origin {
        let live = app
            .meta
            .get(origin)
            .await
            .map_err(ServiceError::meta(format!("error loading image {origin}")))?;
        if live.is_none() {
            return Err(ServiceError::RestoreOriginMissing { uuid, origin });
        }
    }
    // Back among the owner's images and bytes: within its quota, and (with
    // write-once versions) only if its name and version are still free.
    let reservation = super::quotas::reserve_stored_record(app, &entry.image).await?;
    let restored = app.meta.restore_from_bin(uuid).await;
    super::quotas::release(reservation).await;
    match restored {
        Ok(_) => {}
        Err(MetaError::NotFound(_)) => return Err(not_in_bin(uuid)),
        Err(e) => {
            return Err(ServiceError::meta(format!(
                "error restoring image {uuid} from the recycle bin"
            ))(e))
        }
    }
    tracing::info!(image = %uuid, owner = %entry.image.owner, "image restored from the recycle bin");
    let restored = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?;
    restored
        .map(|s| s.image)
        .ok_or_else(|| ServiceError::not_found(format!("image {uuid} not found")))
}

/// PurgeRecycledImage: the entry's blobs, then the entry.
pub async fn purge(app: &AppState, account: Option<&str>, uuid: Uuid) -> Result<(), ServiceError> {
    let entry = load(app, uuid, account).await?;
    if purge_entry(app, &entry, "purged").await? {
        Ok(())
    } else {
        Err(not_in_bin(uuid))
    }
}

/// Delete an entry's blobs, then its row (so a failure leaves an entry
/// to purge again, never blobs nobody knows of). `why` goes to the log.
/// `Ok(false)` when someone else removed the row first.
pub(crate) async fn purge_entry(
    app: &AppState,
    entry: &BinEntry,
    why: &str,
) -> Result<bool, ServiceError> {
    let uuid = entry.image.uuid;
    super::images::delete_blobs(app, &entry.image).await?;
    let removed = app
        .meta
        .remove_from_bin(uuid)
        .await
        .map_err(ServiceError::meta(format!(
            "error removing image {uuid} from the recycle bin"
        )))?;
    if removed {
        tracing::info!(image = %uuid, owner = %entry.image.owner, why, "recycle bin entry purged");
    }
    Ok(removed)
}
