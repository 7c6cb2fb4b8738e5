//! The steps of an import: the record, the file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::TryStreamExt;
use imgapi_blob::{BlobError, BlobStore, ByteStream, PutOutcome};
use imgapi_domain::ImageRecord;
use imgapi_meta::StoredImage;
use imgapi_types::MAX_IMAGE_FILE_SIZE;
use reqwest::Url;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::ImportError;
use super::fetch::Trust;
use super::manifest::{fetch_manifest, remote_file, RemoteFile};
use super::source::Source;
use crate::app::AppState;
use crate::service::files::{store_file, Incoming};
use crate::service::images::{import_record, ImportRecord};
use crate::service::ServiceError;

/// Create the local record from a remote manifest (§5.19 steps 3–6).
pub(crate) async fn create_from_manifest(
    app: &AppState,
    uuid: Uuid,
    mut manifest: Map<String, Value>,
    skip_owner_check: Option<bool>,
    user_agent: Option<&str>,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    // `"icon": true` is how the API shows that an icon exists, not an icon
    // record (which would fail validation): the icon bytes are copied on
    // their own by the import job.
    if manifest.get("icon") == Some(&Value::Bool(true)) {
        manifest.remove("icon");
    }
    let how = ImportRecord {
        skip_owner_check,
        user_agent,
        placeholder_ok: false,
        check_origin: false,
    };
    import_record(app, uuid, manifest, how, channel).await
}

/// The transfer part of §5.6.
pub(crate) async fn add_file_from(
    app: &AppState,
    stored: StoredImage,
    src: &Source,
    store: &Arc<dyn BlobStore>,
) -> Result<ImageRecord, ServiceError> {
    let remote = source_file(app, src, stored.image.uuid).await?;
    add_verified_file(app, stored, src, store, remote).await
}

/// The source's `files[0]` of `uuid`, from its manifest.
pub(crate) async fn source_file(
    app: &AppState,
    src: &Source,
    uuid: Uuid,
) -> Result<RemoteFile, ServiceError> {
    let manifest = fetch_manifest(app, src, uuid, None)
        .await
        .map_err(|source| ImportError::Manifest { uuid, source })?;
    remote_file(&manifest).ok_or_else(|| ImportError::no_file(uuid).into())
}

/// Stream the source's file of `stored` into `store`, verified against
/// `remote` (size, sha1).
pub(crate) async fn add_verified_file(
    app: &AppState,
    stored: StoredImage,
    src: &Source,
    store: &Arc<dyn BlobStore>,
    remote: RemoteFile,
) -> Result<ImageRecord, ServiceError> {
    add_verified_file_counted(app, stored, src, store, remote, None).await
}

/// Where the source's file of `uuid` is: GetImageFile of an IMGAPI; the
/// manifest's `files[0].url` for a DSAPI source, always under the
/// `[remote]` policy (checked before the request, as a source URL is).
pub(crate) async fn file_location(
    app: &AppState,
    src: &Source,
    uuid: Uuid,
    remote: &RemoteFile,
) -> Result<(Url, Trust), ServiceError> {
    if !src.dsapi {
        return Ok((src.file_url(uuid), src.trust));
    }
    let stream_error = |cause: String| ImportError::Stream { uuid, cause };
    let Some(raw) = remote.url.as_deref() else {
        return Err(
            stream_error(format!("the DSAPI manifest of {uuid} has no files[0].url")).into(),
        );
    };
    let url = src.resolve(raw).map_err(|e| stream_error(e.to_string()))?;
    app.remote
        .precheck(&url)
        .await
        .map_err(|r| stream_error(format!("files[0].url refused by the [remote] policy: {r}")))?;
    Ok((url, Trust::Checked))
}

/// [`add_verified_file`], adding every byte received to `counter` (for a
/// progress display) as it arrives.
pub(crate) async fn add_verified_file_counted(
    app: &AppState,
    stored: StoredImage,
    src: &Source,
    store: &Arc<dyn BlobStore>,
    remote: RemoteFile,
    counter: Option<Arc<AtomicU64>>,
) -> Result<ImageRecord, ServiceError> {
    let uuid = stored.image.uuid;
    if remote.size > MAX_IMAGE_FILE_SIZE {
        return Err(ImportError::SourceFileTooLarge(remote.size).into());
    }
    let (url, trust) = file_location(app, src, uuid, &remote).await?;
    let (body, _announced) =
        app.remote
            .get_stream(url, trust)
            .await
            .map_err(|e| ImportError::Stream {
                uuid,
                cause: e.to_string(),
            })?;
    let body: ByteStream = match counter {
        Some(counter) => Box::pin(body.inspect_ok(move |chunk| {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        })),
        None => body,
    };
    let RemoteFile {
        sha1,
        size,
        compression,
        dataset_guid,
        url: _,
    } = remote;
    let incoming = Incoming {
        store,
        body,
        // A source sending more than it announced is cut off there.
        max_size: size,
        known_size: Some(size),
        compression,
        dataset_guid,
    };
    let failed = |e: BlobError| match e {
        BlobError::TooLarge { .. } => ImportError::SizeMismatch {
            announced: size,
            got: format!("more than {size}"),
        }
        .into(),
        BlobError::Source(io) => ImportError::Stream {
            uuid,
            cause: io.to_string(),
        }
        .into(),
        e => ServiceError::blob("error receiving image file")(e),
    };
    let verify = |o: &PutOutcome| {
        if o.size != size {
            return Err(ImportError::SizeMismatch {
                announced: size,
                got: o.size.to_string(),
            }
            .into());
        }
        if o.sha1 != sha1 {
            return Err(ImportError::Sha1Mismatch {
                announced: sha1.clone(),
                got: o.sha1.clone(),
            }
            .into());
        }
        Ok(())
    };
    store_file(app, stored, incoming, failed, verify).await
}
