//! CloneImage (api.md §5.17, dc mode): copy a shared image and its
//! non-operator ancestors into the caller's account.

use imgapi_domain::{ImageRecord, ImageState};
use imgapi_types::{FieldError, UNSET_OWNER_UUID};
use uuid::Uuid;

use super::{Loaded, ServiceError};
use crate::app::AppState;

/// Longest origin chain walked (api.md §7).
const MAX_ORIGIN_CHAIN: usize = 100;

pub async fn clone_image(
    app: &AppState,
    loaded: Loaded,
    account_raw: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    let Some(account) = loaded.account else {
        return Err(ServiceError::invalid_parameter(
            format!(
                "invalid \"account\": not a UUID: \"{}\"",
                account_raw.unwrap_or("undefined")
            ),
            vec![FieldError::invalid("account")],
        ));
    };
    let img = loaded.stored.image;
    if !img.activated {
        return Err(ServiceError::validation(
            "image is not active",
            vec![FieldError::invalid("active")],
        ));
    }
    if !img.acl.contains(&account) {
        return Err(ServiceError::ImageNotShared {
            account,
            uuid: img.uuid,
        });
    }
    if img.image_type == "docker" {
        return Err(ServiceError::validation(
            "docker images cannot be cloned",
            vec![FieldError::invalid("type")],
        ));
    }
    if img.files.len() > 1 {
        return Err(ServiceError::NotImplemented(
            "cannot clone images with multiple files".into(),
        ));
    }
    let (chain, base) = origin_chain(app, img).await?;
    let mut created: Vec<ImageRecord> = Vec::new();
    let mut origin = base;
    let last = chain.len().saturating_sub(1);
    // Base-first: the chain was collected from the image towards its base.
    for (i, source) in chain.into_iter().rev().enumerate() {
        match clone_one(app, &source, account, origin, i != last).await {
            Ok(clone) => {
                origin = Some(clone.uuid);
                created.push(clone);
            }
            Err(e) => {
                undo(app, &created).await;
                return Err(e);
            }
        }
    }
    created
        .pop()
        .ok_or_else(|| ServiceError::Internal("clone produced no image".into()))
}

/// The images to clone (image first) and the operator-owned base origin.
async fn origin_chain(
    app: &AppState,
    img: ImageRecord,
) -> Result<(Vec<ImageRecord>, Option<Uuid>), ServiceError> {
    let unset = Uuid::parse_str(UNSET_OWNER_UUID).unwrap_or_default();
    let mut next = img.origin;
    let mut chain = vec![img];
    while let Some(origin) = next {
        if chain.len() > MAX_ORIGIN_CHAIN {
            return Err(ServiceError::Internal(format!(
                "Origin chain too long, exceeds {MAX_ORIGIN_CHAIN} images"
            )));
        }
        let parent = app
            .meta
            .get(origin)
            .await
            .map_err(ServiceError::meta(format!(
                "error loading origin image {origin}"
            )))?
            .ok_or(ServiceError::OriginDoesNotExist(origin))?
            .image;
        if parent.owner == unset || Some(parent.owner) == app.config.admin_uuid {
            return Ok((chain, Some(parent.uuid)));
        }
        next = parent.origin;
        chain.push(parent);
    }
    Ok((chain, None))
}

async fn clone_one(
    app: &AppState,
    source: &ImageRecord,
    account: Uuid,
    origin: Option<Uuid>,
    intermediate: bool,
) -> Result<ImageRecord, ServiceError> {
    let uuid = Uuid::new_v4();
    let mut files = Vec::with_capacity(source.files.len());
    for file in &source.files {
        let Some(key) = file.blob_key.as_deref() else {
            continue;
        };
        let read = super::store_for(app, &file.stor)?
            .get_stream(key, None)
            .await
            .map_err(ServiceError::referenced_blob(
                "error reading image file to clone",
                source.uuid,
                "file",
            ))?;
        let new_key = crate::service::files::new_blob_key(uuid, "file0");
        let copied = app
            .blobs
            .put_stream(&new_key, read.stream, imgapi_types::MAX_IMAGE_FILE_SIZE)
            .await
            .map_err(ServiceError::blob("error copying image file"))?;
        let mut copy = file.clone();
        copy.sha256.get_or_insert(copied.sha256);
        copy.blob_key = Some(new_key);
        copy.stor = app.blobs.kind().to_string();
        files.push(copy);
    }
    let mut clone = source.clone();
    clone.uuid = uuid;
    clone.owner = account;
    clone.acl = Vec::new();
    clone.origin = origin;
    clone.icon = None;
    clone.urn = None;
    clone.files = files;
    clone.disabled = intermediate;
    clone.activated = true;
    clone.state = ImageState::derive(true, intermediate);
    clone.published_at = Some(imgapi_domain::image::now_iso());
    let saved = match super::quotas::reserve_stored_record(app, &clone).await {
        Ok(reservation) => {
            let inserted = app.meta.insert(&clone).await;
            super::quotas::release(reservation).await;
            inserted.map_err(ServiceError::meta(format!("error saving image {uuid}")))
        }
        Err(refused) => Err(refused),
    };
    if let Err(e) = saved {
        for f in &clone.files {
            if let Some(k) = &f.blob_key {
                let _ = app.blobs.delete(k).await;
            }
        }
        return Err(e);
    }
    Ok(clone)
}

async fn undo(app: &AppState, created: &[ImageRecord]) {
    for img in created.iter().rev() {
        if let Err(e) = app.meta.delete(img.uuid).await {
            tracing::warn!(image = %img.uuid, error = %e, "could not remove partial clone");
        }
        for f in &img.files {
            if let Some(k) = &f.blob_key {
                if let Err(e) = app.blobs.delete(k).await {
                    tracing::warn!(key = %k, error = %e, "could not remove partial clone file");
                }
            }
        }
    }
}
