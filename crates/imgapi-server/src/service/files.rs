//! Image files and icons (api.md §5.4–§5.10): streaming uploads with
//! digests computed on the fly, atomic commit, ranged downloads.
//!
//! Every upload goes to a fresh blob key, so a failed or rejected upload
//! never touches the bytes an image currently points to; the record update
//! is the commit, and the previous blob is deleted afterwards.

use std::ops::Range;

use std::sync::Arc;

use imgapi_blob::{BlobError, BlobRead, BlobStore, ByteStream, PutOutcome};
use imgapi_domain::{DomainError, IconRecord, ImageFile, ImageRecord};
use imgapi_meta::StoredImage;
use imgapi_types::{FieldCode, FieldError, MAX_ICON_SIZE, MAX_IMAGE_FILE_SIZE};
use uuid::Uuid;

use super::images::{modify, modify_replacing};
use super::quotas;
use super::ServiceError;
use crate::app::AppState;

const COMPRESSIONS: [&str; 4] = ["bzip2", "gzip", "xz", "none"];
const ICON_TYPES: [&str; 3] = ["image/jpeg", "image/gif", "image/png"];
/// Storage names a client may ask for; only `local` is configured here.
const STORAGE_TYPES: [&str; 3] = ["local", "manta", "s3"];

/// Query inputs of AddImageFile.
pub struct AddFileParams<'a> {
    pub compression: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub dataset_guid: Option<&'a str>,
    pub storage: Option<&'a str>,
    pub account_given: bool,
    pub content_length: Option<u64>,
}

pub(crate) fn check_compression(compression: Option<&str>) -> Result<String, ServiceError> {
    match compression.filter(|c| !c.is_empty()) {
        None => Err(ServiceError::invalid_parameter(
            "missing \"compression\"",
            vec![FieldError::new("compression", FieldCode::Missing)],
        )),
        Some(c) if COMPRESSIONS.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ServiceError::invalid_parameter(
            format!("invalid compression \"{c}\" (must be one of gzip, bzip2, xz, none)"),
            vec![FieldError::invalid("compression")],
        )),
    }
}

/// The `storage` rules shared by file and icon uploads (api.md §5.5 step
/// 4), and the store the upload goes to: the named one when configured,
/// else the default (as the original falls back to local).
pub(crate) fn choose_store<'a>(
    app: &'a AppState,
    storage: Option<&str>,
    account_given: bool,
) -> Result<&'a Arc<dyn BlobStore>, ServiceError> {
    check_storage(storage, account_given)?;
    Ok(storage
        .and_then(|s| app.blob_store(s))
        .unwrap_or(&app.blobs))
}

fn check_storage(storage: Option<&str>, account_given: bool) -> Result<(), ServiceError> {
    let Some(s) = storage else { return Ok(()) };
    if account_given {
        return Err(ServiceError::invalid_parameter(
            format!("invalid storage \"{s}\""),
            vec![FieldError::with_message(
                "storage",
                FieldCode::NotAllowed,
                "Parameter cannot be specified by non-operators",
            )],
        ));
    }
    if !STORAGE_TYPES.contains(&s) {
        return Err(ServiceError::invalid_parameter(
            format!("invalid storage \"{s}\" (must be one of local, manta)"),
            vec![FieldError::invalid("storage")],
        ));
    }
    Ok(())
}

/// A fresh key for one upload. Sixteen fan-out directories (by the uuid's
/// first hex digit) exist after the first few uploads, so publishing an
/// image creates no directory (one mkdir + fsync less per upload).
pub fn new_blob_key(uuid: Uuid, slot: &str) -> String {
    let id = uuid.simple().to_string();
    let fan = &id[..1];
    format!("images/{fan}/{uuid}-{slot}-{}", Uuid::new_v4().simple())
}

async fn discard(store: &Arc<dyn BlobStore>, key: &str) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(key, error = %e, "could not delete rejected upload");
    }
}

/// AddImageFile (api.md §5.5).
pub async fn add_file(
    app: &AppState,
    stored: StoredImage,
    params: AddFileParams<'_>,
    body: ByteStream,
) -> Result<ImageRecord, ServiceError> {
    let uuid = stored.image.uuid;
    if stored.image.activated {
        return Err(DomainError::ImageFilesImmutable(uuid).into());
    }
    let compression = check_compression(params.compression)?;
    let store = choose_store(app, params.storage, params.account_given)?;
    if let Some(cl) = params.content_length.filter(|cl| *cl > MAX_IMAGE_FILE_SIZE) {
        return Err(ServiceError::Upload(format!(
            "image file size {cl} (from Content-Length) exceeds the maximum allowed size, 20 GiB"
        )));
    }
    let incoming = Incoming {
        store,
        body,
        max_size: MAX_IMAGE_FILE_SIZE,
        known_size: params.content_length,
        compression,
        dataset_guid: params.dataset_guid.map(str::to_string),
    };
    let failed = |e: BlobError| match e {
        BlobError::TooLarge { .. } => {
            ServiceError::Upload("image file size exceeds the maximum allowed size, 20 GiB".into())
        }
        e => ServiceError::blob("error receiving image file")(e),
    };
    let verify = |o: &PutOutcome| verify_file(o, params.content_length, params.sha1);
    store_file(app, stored, incoming, failed, verify).await
}

/// An image file on its way in.
pub(crate) struct Incoming<'a> {
    pub store: &'a Arc<dyn BlobStore>,
    pub body: ByteStream,
    /// More than this many bytes fail the put (`BlobError::TooLarge`).
    pub max_size: u64,
    /// The body's size when announced (quotas refuse before streaming).
    pub known_size: Option<u64>,
    pub compression: String,
    pub dataset_guid: Option<String>,
}

/// Stream `incoming` into a fresh blob, `verify` what arrived, then make
/// it `files[0]` (AddImageFile steps 6–9 and the from-source / from-URL
/// variants). A put error is mapped by `failed`. Whatever fails, nothing
/// is kept and the record is unchanged; the record update is the commit,
/// after which the previous file's blob is deleted.
pub(crate) async fn store_file(
    app: &AppState,
    stored: StoredImage,
    incoming: Incoming<'_>,
    failed: impl FnOnce(BlobError) -> ServiceError,
    verify: impl FnOnce(&PutOutcome) -> Result<(), ServiceError>,
) -> Result<ImageRecord, ServiceError> {
    let uuid = stored.image.uuid;
    let store = incoming.store;
    let (body, reservation) = quotas::reserve_bytes(
        app,
        stored.image.owner,
        uuid,
        incoming.known_size,
        incoming.body,
    )
    .await?;
    let key = new_blob_key(uuid, "file0");
    let outcome = match store.put_stream(&key, body, incoming.max_size).await {
        Ok(outcome) => outcome,
        Err(e) => {
            let refusal = reservation.as_ref().and_then(|r| r.refusal());
            release_bytes(reservation).await;
            return Err(refusal.unwrap_or_else(|| failed(e)));
        }
    };
    if let Err(e) = verify(&outcome) {
        discard(store, &key).await;
        release_bytes(reservation).await;
        return Err(e);
    }
    let recorded = record_file(
        app,
        stored,
        store,
        &key,
        outcome,
        incoming.compression,
        incoming.dataset_guid,
    )
    .await;
    release_bytes(reservation).await;
    recorded
}

async fn release_bytes(reservation: Option<quotas::ByteReservation>) {
    if let Some(r) = reservation {
        r.release().await;
    }
}

/// Make the committed blob `key` (described by `outcome`) `files[0]` of
/// the image: the record update is the commit. If it fails, the blob is
/// deleted; if it succeeds, the blob the record pointed at before is.
/// (The end of AddImageFile, shared with finishing an upload session.)
pub(crate) async fn record_file(
    app: &AppState,
    stored: StoredImage,
    store: &Arc<dyn BlobStore>,
    key: &str,
    outcome: PutOutcome,
    compression: String,
    dataset_guid: Option<String>,
) -> Result<ImageRecord, ServiceError> {
    let file = ImageFile {
        sha1: outcome.sha1,
        size: outcome.size,
        compression,
        dataset_guid,
        content_md5: outcome.md5_base64,
        sha256: Some(outcome.sha256),
        mtime: imgapi_domain::image::now_iso(),
        stor: store.kind().to_string(),
        digest: None,
        uncompressed_digest: None,
        blob_key: Some(key.to_string()),
    };
    let saved = modify_replacing(app, stored, true, |img| {
        if img.activated {
            return Err(DomainError::ImageAlreadyActivated(img.uuid).into());
        }
        let mut new = img.clone();
        new.files = vec![file.clone()];
        Ok(new)
    })
    .await;
    finish_replacement(app, store, key, saved, file0_blob).await
}

/// `(key, stor)` of an image's first file.
fn file0_blob(img: &ImageRecord) -> Option<(String, String)> {
    let file = img.files.first()?;
    Some((file.blob_key.clone()?, file.stor.clone()))
}

/// `(key, stor)` of an image's icon.
fn icon_blob(img: &ImageRecord) -> Option<(String, String)> {
    let icon = img.icon.as_ref()?;
    Some((icon.blob_key.clone()?, icon.stor.clone()))
}

/// After a record update that points at `key`: delete the blob that
/// `blob_of` finds in the record the update replaced, or, if the update
/// failed, the new blob. The replaced record is the one the write actually
/// overwrote, so of two uploads racing on one image, the one written first
/// is deleted by the second: the store keeps exactly the survivor's bytes.
async fn finish_replacement(
    app: &AppState,
    store: &Arc<dyn BlobStore>,
    key: &str,
    saved: Result<(ImageRecord, ImageRecord), ServiceError>,
    blob_of: fn(&ImageRecord) -> Option<(String, String)>,
) -> Result<ImageRecord, ServiceError> {
    match saved {
        Ok((replaced, record)) => {
            if let Some((old, stor)) = blob_of(&replaced).filter(|(old, _)| old != key) {
                if let Some(old_store) = app.blob_store(&stor) {
                    discard(old_store, &old).await;
                }
            }
            Ok(record)
        }
        Err(e) => {
            discard(store, key).await;
            Err(e)
        }
    }
}

fn verify_file(
    outcome: &PutOutcome,
    content_length: Option<u64>,
    sha1: Option<&str>,
) -> Result<(), ServiceError> {
    if outcome.size == 0 {
        return Err(ServiceError::Download(
            "image file size is 0 bytes, empty files are not allowed".into(),
        ));
    }
    if let Some(cl) = content_length.filter(|cl| *cl != outcome.size) {
        return Err(ServiceError::Download(format!(
            "\"Content-Length\" header, {cl}, does not match uploaded size, {}",
            outcome.size
        )));
    }
    if let Some(expected) = sha1.filter(|s| *s != outcome.sha1) {
        return Err(ServiceError::Download(format!(
            "\"sha1\" hash, {expected}, does not match the uploaded file sha1 hash, {}",
            outcome.sha1
        )));
    }
    Ok(())
}

/// Choose the file of GetImageFile (`index`, parsed leniently).
pub fn select_file<'a>(
    img: &'a ImageRecord,
    index: Option<&str>,
) -> Result<&'a ImageFile, ServiceError> {
    if img.files.is_empty() {
        return Err(ServiceError::not_found(format!(
            "image \"{}\" has no file",
            img.uuid
        )));
    }
    let n: usize = index.and_then(|i| i.trim().parse().ok()).unwrap_or(0);
    img.files.get(n).ok_or_else(|| {
        ServiceError::not_found(format!("image \"{}\" has no file at index {n}", img.uuid))
    })
}

/// Open the stored `part` (`file`, `icon`) of `image` for download.
pub async fn open_blob(
    app: &AppState,
    image: Uuid,
    stored: (&str, Option<&str>),
    range: Option<Range<u64>>,
    part: &'static str,
) -> Result<BlobRead, ServiceError> {
    let (stor, key) = stored;
    let missing = || ServiceError::referenced_blob("", image, part);
    let key = key.ok_or_else(|| missing()(BlobError::NotFound("(no key)".into())))?;
    super::store_for(app, stor)?
        .get_stream(key, range)
        .await
        .map_err(ServiceError::referenced_blob(
            format!("error getting image {part}"),
            image,
            part,
        ))
}

/// Query/header inputs of AddImageIcon.
pub struct AddIconParams<'a> {
    pub content_type: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub storage: Option<&'a str>,
    pub account_given: bool,
    pub content_length: Option<u64>,
}

/// AddImageIcon (api.md §5.9). An empty icon is refused (the original
/// accepted it and then lost the image).
pub async fn add_icon(
    app: &AppState,
    stored: StoredImage,
    params: AddIconParams<'_>,
    body: ByteStream,
) -> Result<ImageRecord, ServiceError> {
    let content_type = match params.content_type {
        Some(ct) if ICON_TYPES.contains(&ct) => ct.to_string(),
        other => {
            return Err(ServiceError::Upload(format!(
                "invalid content-type, {}, must be one of image/jpeg, image/gif, image/png",
                other.unwrap_or("undefined")
            )))
        }
    };
    let store = choose_store(app, params.storage, params.account_given)?;
    if let Some(cl) = params.content_length.filter(|cl| *cl > MAX_ICON_SIZE) {
        return Err(ServiceError::Upload(format!(
            "icon size {cl} (from Content-Length) exceeds the maximum allowed size, 128 KiB"
        )));
    }
    let uuid = stored.image.uuid;
    let (body, reservation) =
        quotas::reserve_bytes(app, stored.image.owner, uuid, params.content_length, body).await?;
    let key = new_blob_key(uuid, "icon");
    let outcome = match store.put_stream(&key, body, MAX_ICON_SIZE).await {
        Ok(o) => o,
        Err(e) => {
            let refusal = reservation.as_ref().and_then(|r| r.refusal());
            release_bytes(reservation).await;
            return Err(match (refusal, e) {
                (Some(refusal), _) => refusal,
                (None, BlobError::TooLarge { .. }) => ServiceError::Upload(
                    "icon size exceeds the maximum allowed size, 128 KiB".into(),
                ),
                (None, e) => ServiceError::blob("error receiving image icon")(e),
            });
        }
    };
    if let Err(e) = verify_icon(&outcome, params.content_length, params.sha1) {
        discard(store, &key).await;
        release_bytes(reservation).await;
        return Err(e);
    }
    let icon = IconRecord {
        sha1: outcome.sha1,
        size: outcome.size,
        content_type,
        content_md5: outcome.md5_base64,
        mtime: imgapi_domain::image::now_iso(),
        stor: store.kind().to_string(),
        blob_key: Some(key.clone()),
    };
    let saved = modify_replacing(app, stored, true, |img| {
        let mut new = img.clone();
        new.icon = Some(icon.clone());
        Ok(new)
    })
    .await;
    let finished = finish_replacement(app, store, &key, saved, icon_blob).await;
    release_bytes(reservation).await;
    finished
}

fn verify_icon(
    outcome: &PutOutcome,
    content_length: Option<u64>,
    sha1: Option<&str>,
) -> Result<(), ServiceError> {
    if outcome.size == 0 {
        return Err(ServiceError::Upload(
            "icon size is 0 bytes, empty icons are not allowed".into(),
        ));
    }
    if let Some(cl) = content_length.filter(|cl| *cl != outcome.size) {
        return Err(ServiceError::Upload(format!(
            "\"Content-Length\" header, {cl}, does not match uploaded size, {}",
            outcome.size
        )));
    }
    if let Some(expected) = sha1.filter(|s| *s != outcome.sha1) {
        return Err(ServiceError::Upload(format!(
            "\"sha1\" hash, {expected}, does not match the uploaded icon file sha1 hash, {}",
            outcome.sha1
        )));
    }
    Ok(())
}

/// DeleteImageIcon (api.md §5.10): 404 when there is no icon.
pub async fn delete_icon(app: &AppState, stored: StoredImage) -> Result<ImageRecord, ServiceError> {
    let uuid = stored.image.uuid;
    let Some(icon) = stored.image.icon.clone() else {
        return Err(ServiceError::not_found(format!(
            "image \"{uuid}\" has no icon"
        )));
    };
    let record = modify(app, stored, true, |img| {
        let mut new = img.clone();
        new.icon = None;
        Ok(new)
    })
    .await?;
    if let Some(key) = &icon.blob_key {
        super::store_for(app, &icon.stor)?
            .delete(key)
            .await
            .map_err(ServiceError::blob("error deleting image icon"))?;
    }
    Ok(record)
}

/// AdminChangeImageStor (api.md §5.22): copy file 0 to the `stor` store
/// (streamed, size and digests verified), point the record at the copy,
/// then delete the old bytes. The same store is a no-op.
pub async fn change_stor(
    app: &AppState,
    stored: StoredImage,
    stor: &str,
) -> Result<ImageRecord, ServiceError> {
    let img = &stored.image;
    let target = app.blob_store(stor).ok_or_else(|| {
        ServiceError::validation(
            format!("unknown storage type \"{stor}\""),
            vec![FieldError::invalid("stor")],
        )
    })?;
    if img.icon.is_some() {
        return Err(ServiceError::NotImplemented(
            "cannot change stor for images with an icon".into(),
        ));
    }
    if img.files.len() > 1 {
        return Err(ServiceError::NotImplemented(
            "cannot change stor for images with multiple files".into(),
        ));
    }
    let file = select_file(img, None)?.clone();
    let source = super::store_for(app, &file.stor)?;
    if source.kind() == target.kind() {
        return Ok(stored.image);
    }
    let old_key = file.blob_key.clone().unwrap_or_default();
    let read = source
        .get_stream(&old_key, None)
        .await
        .map_err(ServiceError::referenced_blob(
            "error reading image file",
            img.uuid,
            "file",
        ))?;
    let new_key = new_blob_key(img.uuid, "file0");
    let outcome = target
        .put_stream(&new_key, read.stream, MAX_IMAGE_FILE_SIZE)
        .await
        .map_err(ServiceError::blob("error copying image file"))?;
    let intact = outcome.size == file.size
        && outcome.sha1 == file.sha1
        && (file.content_md5.is_empty() || outcome.md5_base64 == file.content_md5)
        && file.sha256.as_ref().is_none_or(|s| *s == outcome.sha256);
    if !intact {
        discard(target, &new_key).await;
        return Err(ServiceError::Internal(format!(
            "copy of image {} file to {stor} does not match its manifest (size {} sha1 {})",
            img.uuid, outcome.size, outcome.sha1
        )));
    }
    let target_kind = target.kind().to_string();
    let saved = modify_replacing(app, stored, true, |img| {
        let mut new = img.clone();
        if let Some(f) = new.files.first_mut() {
            f.stor = target_kind.clone();
            f.blob_key = Some(new_key.clone());
            // Files stored before SHA-256 was computed get it now.
            f.sha256.get_or_insert_with(|| outcome.sha256.clone());
        }
        Ok(new)
    })
    .await;
    finish_replacement(app, target, &new_key, saved, file0_blob).await
}
