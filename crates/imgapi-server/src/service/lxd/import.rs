//! AdminImportLxdImage: the newest version of an aliased image of a
//! configured simplestreams remote becomes one active `type: lxd` image.
//!
//! Its files are stored as the original stores them: `files[0]` is the
//! combined tarball, or the metadata tarball of a split image, whose
//! root filesystem is `files[1]`. Every item's sha256 and the image's
//! LXD fingerprint (sha256 of the combined tarball, or of metadata ‖
//! rootfs) are checked while the bytes stream into the blob store. The
//! record is written once, active, after every check passed, so a failure
//! leaves nothing; the uuid comes from the fingerprint, so a re-import
//! finds the image and creates nothing.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use imgapi_blob::{BlobError, BlobStore, ByteStream};
use imgapi_domain::ImageFile;
use imgapi_types::{FieldCode, FieldError, MAX_IMAGE_FILE_SIZE};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::manifest::{compression_of, manifest, uuid_from_fingerprint};
use super::remote::Server;
use super::streams::{self, ChosenImage, Item};
use crate::app::AppState;
use crate::service::docker::events::Events;
use crate::service::files::new_blob_key;
use crate::service::images::{activated, build_import_record, modify, ImportRecord};
use crate::service::ServiceError;

/// A progress message at most every this many bytes (as the original).
const PROGRESS_EVERY: u64 = 512 * 1024;

/// `alias=REMOTE:ALIAS`, split at the first `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxdAlias {
    pub full: String,
    pub remote: String,
    pub image: String,
}

/// A validated import, ready to run.
pub struct LxdImport {
    pub alias: LxdAlias,
    channel: Option<String>,
}

/// The checks made before the stream starts, in the original's order.
pub fn validate(
    account_given: bool,
    alias: Option<&str>,
    channel: Option<&str>,
) -> Result<LxdImport, ServiceError> {
    if account_given {
        return Err(ServiceError::OperatorOnly);
    }
    let full = match alias {
        Some(a) if !a.is_empty() => a,
        _ => {
            return Err(ServiceError::validation(
                "missing parameters",
                vec![FieldError::new("alias", FieldCode::MissingParameter)],
            ))
        }
    };
    let Some((remote, image)) = full.split_once(':') else {
        return Err(ServiceError::invalid_parameter(
            "alias must include a semicolon",
            vec![FieldError::new("alias", FieldCode::InvalidParameter)],
        ));
    };
    Ok(LxdImport {
        alias: LxdAlias {
            full: full.to_string(),
            remote: remote.to_string(),
            image: image.to_string(),
        },
        channel: channel.map(str::to_string),
    })
}

fn progress(events: &Events, alias: &LxdAlias, status: &str) {
    events.progress(json!({"id": alias.full, "status": status}));
}

/// The configured URL of the alias's remote.
pub fn remote_url<'a>(app: &'a AppState, remote: &str) -> Result<&'a str, ServiceError> {
    let remotes = &app.config.lxd.remotes;
    remotes.get(remote).map(String::as_str).ok_or_else(|| {
        let names: Vec<&str> = remotes.keys().map(String::as_str).collect();
        ServiceError::invalid_parameter(
            format!(
                "No registry found for \"{remote}\" - valid registries are \"{}\"",
                names.join(", ")
            ),
            vec![FieldError::invalid("alias")],
        )
    })
}

/// Run the import, sending progress to `events`.
pub async fn run(app: &AppState, import: LxdImport, events: &Events) -> Result<(), ServiceError> {
    let alias = &import.alias;
    let server = Server::new(&app.remote, remote_url(app, &alias.remote)?).await?;
    let products = server.products().await?;
    let img = streams::choose(&products, &alias.image)?;
    let channel = import.channel.as_deref();
    bring(app, &server, &img, &alias.remote, channel, events, alias)
        .await
        .map(|_| ())
}

/// What became of an import of one chosen image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    New(Uuid),
    AlreadyThere(Uuid),
}

/// Bring `img` in (shared with `imgapi mirror --upstream-simplestreams`).
#[allow(clippy::too_many_arguments)]
pub async fn bring(
    app: &AppState,
    server: &Server<'_>,
    img: &ChosenImage,
    repo: &str,
    channel: Option<&str>,
    events: &Events,
    alias: &LxdAlias,
) -> Result<Imported, ServiceError> {
    for item in std::iter::once(&img.manifest_file.item).chain(img.rootfs.as_ref()) {
        if let Some(size) = item.size.filter(|s| *s > MAX_IMAGE_FILE_SIZE) {
            return Err(ServiceError::ImageFileTooBig(format!(
                "Image file size, {size}, exceeds the max allowed file size, 20 GiB"
            )));
        }
    }
    // The original imports private images, which a public-mode server
    // refuses ("private images are not allowed"): there they are public.
    let public = app.config.mode == imgapi_domain::Mode::Public;
    let manifest = manifest(img, repo, public)?;
    let uuid = uuid_from_fingerprint(&img.manifest_file.fingerprint)?;
    let existing = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?;
    if existing.as_ref().is_some_and(|s| s.image.activated) {
        progress(events, alias, "Already exists");
        return Ok(Imported::AlreadyThere(uuid));
    }

    let files = download_all(app, server, img, uuid, events, alias).await?;
    progress(events, alias, "Download complete");
    progress(events, alias, "Activating image");
    let saved = save(app, uuid, manifest, existing, files.clone(), channel).await;
    match saved {
        Ok(Imported::New(_)) => {
            progress(events, alias, "Pull complete");
            Ok(Imported::New(uuid))
        }
        other => {
            // Nothing of ours was kept: our files go.
            discard(&app.blobs, &files).await;
            if matches!(other, Ok(Imported::AlreadyThere(_))) {
                progress(events, alias, "Already exists");
            }
            other
        }
    }
}

/// Write the active record with `files`: a new one, or the files of an
/// unactivated one with this uuid (as the original completes it).
async fn save(
    app: &AppState,
    uuid: Uuid,
    manifest: serde_json::Map<String, serde_json::Value>,
    existing: Option<imgapi_meta::StoredImage>,
    files: Vec<ImageFile>,
    channel: Option<&str>,
) -> Result<Imported, ServiceError> {
    if let Some(stored) = existing {
        let previous = stored.image.files.clone();
        let result = modify(app, stored, true, |img| {
            let mut new = img.clone();
            new.files = files.clone();
            activated(&new)
        })
        .await;
        return match result {
            Ok(_) => {
                discard(&app.blobs, &previous).await;
                Ok(Imported::New(uuid))
            }
            Err(ServiceError::Domain(imgapi_domain::DomainError::ImageAlreadyActivated(_))) => {
                Ok(Imported::AlreadyThere(uuid))
            }
            Err(e) => Err(e),
        };
    }
    let how = ImportRecord {
        skip_owner_check: None,
        user_agent: None,
        placeholder_ok: false,
        check_origin: false,
    };
    let mut record = build_import_record(app, uuid, manifest, how, channel).await?;
    record.files = files;
    let record = activated(&record)?;
    let reservation = crate::service::quotas::reserve_stored_record(app, &record).await?;
    let inserted = app.meta.insert(&record).await;
    crate::service::quotas::release(reservation).await;
    match inserted {
        Ok(_) => Ok(Imported::New(uuid)),
        Err(imgapi_meta::MetaError::Conflict(_) | imgapi_meta::MetaError::AlreadyExists(_)) => {
            // A concurrent import of the same fingerprint got there first.
            Ok(Imported::AlreadyThere(uuid))
        }
        Err(e) => Err(ServiceError::meta(format!("error saving image {uuid}"))(e)),
    }
}

async fn discard(store: &Arc<dyn BlobStore>, files: &[ImageFile]) {
    for key in files.iter().filter_map(|f| f.blob_key.as_deref()) {
        if let Err(e) = store.delete(key).await {
            tracing::warn!(key, error = %e, "could not delete the file of a failed LXD import");
        }
    }
}

/// Every item of `img` into the blob store, verified; on failure nothing
/// stays.
async fn download_all(
    app: &AppState,
    server: &Server<'_>,
    img: &ChosenImage,
    uuid: Uuid,
    events: &Events,
    alias: &LxdAlias,
) -> Result<Vec<ImageFile>, ServiceError> {
    let fingerprint = Arc::new(Mutex::new(Sha256::new()));
    let mut files = Vec::with_capacity(2);
    let items = std::iter::once(&img.manifest_file.item).chain(img.rootfs.as_ref());
    for (slot, item) in ["file0", "file1"].into_iter().zip(items) {
        let fetched = download(app, server, item, uuid, slot, &fingerprint, events, alias).await;
        match fetched {
            Ok(file) => files.push(file),
            Err(e) => {
                discard(&app.blobs, &files).await;
                return Err(e);
            }
        }
    }
    if !img.is_combined() {
        let got = fingerprint
            .lock()
            .map(|h| hex::encode(h.clone().finalize()))
            .unwrap_or_default();
        if got != img.manifest_file.fingerprint {
            discard(&app.blobs, &files).await;
            return Err(ServiceError::Download(format!(
                "LXD fingerprint does not match, received {got}, expected {}",
                img.manifest_file.fingerprint
            )));
        }
    }
    Ok(files)
}

/// One item into the blob store; its bytes also feed `fingerprint`.
#[allow(clippy::too_many_arguments)]
async fn download(
    app: &AppState,
    server: &Server<'_>,
    item: &Item,
    uuid: Uuid,
    slot: &str,
    fingerprint: &Arc<Mutex<Sha256>>,
    events: &Events,
    alias: &LxdAlias,
) -> Result<ImageFile, ServiceError> {
    progress(events, alias, "Downloading image");
    let (body, announced) = server.item_stream(&item.path).await?;
    let total = item.size.or(announced).unwrap_or(0);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let hasher = Arc::clone(fingerprint);
    let progress_events = events.clone();
    let id = alias.full.clone();
    let mut received = 0u64;
    let mut reported = 0u64;
    let tee: ByteStream = Box::pin(body.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            if let Ok(mut h) = hasher.lock() {
                h.update(bytes);
            }
            received += bytes.len() as u64;
            if received - reported > PROGRESS_EVERY {
                reported = received;
                progress_events.progress(json!({"id": id, "status": "Downloading",
                    "progressDetail": {"current": received, "total": total, "start": start}}));
            }
        }
        chunk
    }));
    let store = &app.blobs;
    let key = new_blob_key(uuid, slot);
    let max = item.size.filter(|s| *s > 0).unwrap_or(MAX_IMAGE_FILE_SIZE);
    let outcome = match store.put_stream(&key, tee, max).await {
        Ok(o) => o,
        Err(BlobError::TooLarge { .. }) => {
            return Err(ServiceError::Download(format!(
                "Download error: {} is larger than the server's index says ({max} bytes)",
                item.path
            )))
        }
        Err(BlobError::Source(e)) => {
            return Err(ServiceError::Download(format!("Download error: {e}")))
        }
        Err(e) => return Err(ServiceError::blob("error receiving image file")(e)),
    };
    if outcome.sha256 != item.sha256 {
        if let Err(e) = store.delete(&key).await {
            tracing::warn!(key, error = %e, "could not delete a refused LXD item");
        }
        return Err(ServiceError::Download(format!(
            "sha256 digest does not match, received {}, expected {}",
            outcome.sha256, item.sha256
        )));
    }
    Ok(ImageFile {
        sha1: outcome.sha1,
        size: outcome.size,
        compression: compression_of(&item.path).to_string(),
        dataset_guid: None,
        content_md5: outcome.md5_base64,
        sha256: Some(outcome.sha256),
        mtime: imgapi_domain::image::now_iso(),
        stor: store.kind().to_string(),
        digest: None,
        uncompressed_digest: None,
        blob_key: Some(key),
    })
}
