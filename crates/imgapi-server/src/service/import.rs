//! Imports from other servers: AddImageFileFromSource (api.md §5.6),
//! AddImageFileFromUrl (§5.7), AdminImportImageFromSource (§5.19), and the
//! validation of AdminImportRemoteImage (§5.20) and ImportFromDatacenter
//! (§5.21), whose work then runs as a job (`service::jobs`).
//!
//! Every outbound request goes through [`crate::service::remote::Fetcher`]
//! and its `[remote]` policy; a URL the policy refuses is a 422
//! InvalidParameter naming the rule, found before any request is sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::TryStreamExt;
use imgapi_blob::{BlobError, BlobStore, ByteStream, PutOutcome};
use imgapi_domain::validate::is_lower_uuid;
use imgapi_domain::{DomainError, ImageRecord, ImageState};
use imgapi_meta::StoredImage;
use imgapi_types::{FieldCode, FieldError, RestCode, MAX_IMAGE_FILE_SIZE};
use reqwest::Url;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::files::{
    add_icon, check_compression, choose_store, store_file, AddIconParams, Incoming,
};
use super::images::{import_record, ImportRecord};
use super::jobs::{self, ImportJob, StartedJob};
use super::remote::{FetchError, Refused, Source, Trust};
use super::{parse_bool_param, ServiceError};
use crate::app::AppState;

/// Longest origin chain walked (api.md §7).
const MAX_ORIGIN_CHAIN: usize = 100;

/// 503 `Unable to get manifest for image <uuid>. Error from remote: <msg>`.
pub(crate) fn manifest_error(uuid: Uuid, e: &FetchError) -> ServiceError {
    ServiceError::RemoteSource(format!(
        "Unable to get manifest for image {uuid}. Error from remote: {e}"
    ))
}

/// 503 `Unable to get manifest for origin image <uuid>. …`.
fn origin_manifest_error(uuid: Uuid, e: &FetchError) -> ServiceError {
    ServiceError::RemoteSource(format!(
        "Unable to get manifest for origin image {uuid}. Error from remote: {e}"
    ))
}

/// 503 `Unable to get stream for image file <uuid>. Error from remote: <msg>`.
fn stream_error(uuid: Uuid, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::RemoteSource(format!(
        "Unable to get stream for image file {uuid}. Error from remote: {e}"
    ))
}

/// 422 InvalidParameter for a URL the `[remote]` policy refuses.
pub(crate) fn refused(field: &str, r: &Refused) -> ServiceError {
    ServiceError::invalid_parameter(
        format!("{field} refused by the [remote] policy: {r}"),
        vec![FieldError::with_message(
            field,
            FieldCode::Invalid,
            r.0.clone(),
        )],
    )
}

/// A client-given IMGAPI URL, parsed and checked against the policy.
pub(crate) async fn checked_source(
    app: &AppState,
    raw: &str,
    field: &str,
) -> Result<Source, ServiceError> {
    let src = Source::parse(raw, Trust::Checked).map_err(|e| {
        ServiceError::invalid_parameter(
            format!("invalid {field} URL: {e}"),
            vec![FieldError::invalid(field)],
        )
    })?;
    app.remote
        .precheck(&src.base)
        .await
        .map_err(|r| refused(field, &r))?;
    Ok(src)
}

/// GET `<source>/images/<uuid>` (with `account`, when given), or for a
/// DSAPI source `<source>/<uuid>`: the remote manifest (v2: a DSAPI one is
/// upgraded), which must be about `uuid`.
pub(crate) async fn fetch_manifest(
    app: &AppState,
    src: &Source,
    uuid: Uuid,
    account: Option<Uuid>,
) -> Result<Map<String, Value>, FetchError> {
    let manifest = app
        .remote
        .get_object(src.image_url(uuid, account), src.trust)
        .await?;
    let manifest = if src.dsapi {
        dsapi_to_v2(manifest)
    } else {
        manifest
    };
    let got = manifest.get("uuid").and_then(Value::as_str);
    if got != Some(uuid.to_string().as_str()) {
        return Err(FetchError::Transport(format!(
            "the answer is the manifest of {}, not of {uuid}",
            got.unwrap_or("no image")
        )));
    }
    Ok(manifest)
}

/// A DSAPI (v1) manifest as the v2 manifest an import takes
/// (`imgapi_domain::upgrade_legacy`, manifest.md §10). The upgrade drops
/// `files[].url`; it is put back, as the only way to the file (an import
/// discards `files` anyway). A manifest the upgrade does not apply to is
/// returned as it came, for validation to judge.
pub(crate) fn dsapi_to_v2(manifest: Map<String, Value>) -> Map<String, Value> {
    let urls: Vec<Option<Value>> = manifest
        .get("files")
        .and_then(Value::as_array)
        .map(|files| files.iter().map(|f| f.get("url").cloned()).collect())
        .unwrap_or_default();
    let mut upgraded = imgapi_domain::upgrade_legacy(manifest);
    if let Some(files) = upgraded.get_mut("files").and_then(Value::as_array_mut) {
        for (file, url) in files.iter_mut().zip(urls) {
            if let (Some(obj), Some(url)) = (file.as_object_mut(), url) {
                obj.entry("url").or_insert(url);
            }
        }
    }
    upgraded
}

/// The remote manifest's `files[0]`.
#[derive(Debug, Clone)]
pub(crate) struct RemoteFile {
    pub sha1: String,
    pub size: u64,
    pub compression: String,
    pub dataset_guid: Option<String>,
    /// `files[0].url` (DSAPI manifests name their file's URL; used only
    /// for a DSAPI source).
    pub url: Option<String>,
}

pub(crate) fn remote_file(manifest: &Map<String, Value>) -> Option<RemoteFile> {
    let file = manifest.get("files")?.as_array()?.first()?.as_object()?;
    Some(RemoteFile {
        url: file.get("url").and_then(Value::as_str).map(str::to_string),
        sha1: file.get("sha1")?.as_str()?.to_string(),
        size: file.get("size")?.as_u64()?,
        compression: file
            .get("compression")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string(),
        dataset_guid: file
            .get("dataset_guid")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn manifest_str<'a>(manifest: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    manifest.get(key).and_then(Value::as_str)
}

pub(crate) fn manifest_origin(manifest: &Map<String, Value>) -> Option<Uuid> {
    manifest_str(manifest, "origin").and_then(|o| Uuid::parse_str(o).ok())
}

// ---------------------------------------------------------------------------
// AdminImportImageFromSource (§5.19)

/// Query inputs of AdminImportImageFromSource.
pub struct FromSourceParams<'a> {
    pub account_given: bool,
    pub skip_owner_check: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// AdminImportImageFromSource (api.md §5.19): the record from the remote
/// manifest, as an import (uuid, `published_at`, `urn` kept; `state`,
/// `files` dropped). Origins are not fetched.
pub async fn import_from_source(
    app: &AppState,
    uuid: Uuid,
    source: &str,
    params: FromSourceParams<'_>,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    if params.account_given {
        return Err(ServiceError::OperatorOnly);
    }
    let skip_owner_check = parse_bool_param("skip_owner_check", params.skip_owner_check)?;
    let src = checked_source(app, source, "source").await?;
    let manifest = fetch_manifest(app, &src, uuid, None)
        .await
        .map_err(|e| manifest_error(uuid, &e))?;
    create_from_manifest(
        app,
        uuid,
        manifest,
        skip_owner_check,
        params.user_agent,
        channel,
    )
    .await
}

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

// ---------------------------------------------------------------------------
// AddImageFileFromSource (§5.6)

/// AddImageFileFromSource (api.md §5.6): compression, sha1, size and
/// dataset_guid come from the remote manifest; the bytes are verified
/// against them before the record points at them.
pub async fn add_file_from_source(
    app: &AppState,
    stored: StoredImage,
    source: &str,
    storage: Option<&str>,
    account_given: bool,
) -> Result<ImageRecord, ServiceError> {
    if stored.image.activated {
        return Err(DomainError::ImageFilesImmutable(stored.image.uuid).into());
    }
    let store = choose_store(app, storage, account_given)?;
    let src = checked_source(app, source, "source").await?;
    add_file_from(app, stored, &src, store).await
}

/// The transfer part of §5.6 (also an import job's `add_file` step).
pub(crate) async fn add_file_from(
    app: &AppState,
    stored: StoredImage,
    src: &Source,
    store: &Arc<dyn BlobStore>,
) -> Result<ImageRecord, ServiceError> {
    let uuid = stored.image.uuid;
    let manifest = fetch_manifest(app, src, uuid, None)
        .await
        .map_err(|e| manifest_error(uuid, &e))?;
    let Some(remote) = remote_file(&manifest) else {
        return Err(stream_error(uuid, format!("image {uuid} has no file")));
    };
    add_verified_file(app, stored, src, store, remote).await
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
    let Some(raw) = remote.url.as_deref() else {
        return Err(stream_error(
            uuid,
            format!("the DSAPI manifest of {uuid} has no files[0].url"),
        ));
    };
    let url = src.resolve(raw).map_err(|e| stream_error(uuid, e))?;
    app.remote.precheck(&url).await.map_err(|r| {
        stream_error(
            uuid,
            format!("files[0].url refused by the [remote] policy: {r}"),
        )
    })?;
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
        return Err(ServiceError::Download(format!(
            "image file size, {}, exceeds the maximum allowed file size, 20 GiB",
            remote.size
        )));
    }
    let (url, trust) = file_location(app, src, uuid, &remote).await?;
    let (body, _announced) = app
        .remote
        .get_stream(url, trust)
        .await
        .map_err(|e| stream_error(uuid, e))?;
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
        compression,
        dataset_guid,
    };
    let failed = |e: BlobError| match e {
        BlobError::TooLarge { .. } => ServiceError::Download(format!(
            "\"Content-Length\" header, {size}, does not match downloaded size, more than {size}"
        )),
        BlobError::Source(io) => stream_error(uuid, io),
        e => ServiceError::blob("error receiving image file")(e),
    };
    let verify = |o: &PutOutcome| {
        if o.size != size {
            return Err(ServiceError::Download(format!(
                "\"Content-Length\" header, {size}, does not match downloaded size, {}",
                o.size
            )));
        }
        if o.sha1 != sha1 {
            return Err(ServiceError::Download(format!(
                "\"sha1\" file field, {sha1}, does not match the downloaded file sha1 hash, {}",
                o.sha1
            )));
        }
        Ok(())
    };
    store_file(app, stored, incoming, failed, verify).await
}

// ---------------------------------------------------------------------------
// Icons of a source

/// GET the source's icon of `uuid` (the answer's headers read, not its
/// body).
pub(crate) async fn fetch_icon(
    app: &AppState,
    src: &Source,
    uuid: Uuid,
) -> Result<reqwest::Response, ServiceError> {
    app.remote
        .get(src.icon_url(uuid), src.trust)
        .await
        .map_err(|e| {
            ServiceError::RemoteSource(format!(
                "Unable to get icon of image {uuid}. Error from remote: {e}"
            ))
        })
}

/// The icon's sha1 as the source announces it: an IMGAPI's `ETag` of
/// GetImageIcon is the icon's sha1 (api.md §1.8); a quoted or weak form
/// is accepted, anything that is not 40 hex digits ignored.
pub(crate) fn announced_sha1(resp: &reqwest::Response) -> Option<String> {
    let raw = resp.headers().get(http::header::ETAG)?.to_str().ok()?;
    let tag = raw.trim().trim_start_matches("W/").trim_matches('"');
    (tag.len() == 40 && tag.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| tag.to_ascii_lowercase())
}

/// Copy the source's icon of `stored` into the default store and make it
/// the image's icon, verified as any icon upload is (AddImageIcon) against
/// the source's `Content-Length` and announced sha1 (`ETag`). When that
/// sha1 is `unless_sha1` (the icon the image already has) nothing is
/// downloaded and `Ok(None)` is the answer.
pub(crate) async fn copy_icon(
    app: &AppState,
    src: &Source,
    stored: StoredImage,
    unless_sha1: Option<&str>,
) -> Result<Option<ImageRecord>, ServiceError> {
    let uuid = stored.image.uuid;
    let resp = fetch_icon(app, src, uuid).await?;
    let sha1 = announced_sha1(&resp);
    if sha1.is_some() && sha1.as_deref() == unless_sha1 {
        return Ok(None);
    }
    store_fetched_icon(app, stored, resp).await.map(Some)
}

/// Store a fetched icon answer ([`fetch_icon`]) as the icon of `stored`,
/// verified against its `Content-Length` and announced sha1.
pub(crate) async fn store_fetched_icon(
    app: &AppState,
    stored: StoredImage,
    resp: reqwest::Response,
) -> Result<ImageRecord, ServiceError> {
    let sha1 = announced_sha1(&resp);
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let length = resp.content_length();
    let body: ByteStream = Box::pin(resp.bytes_stream().map_err(std::io::Error::other));
    let params = AddIconParams {
        content_type: content_type.as_deref(),
        sha1: sha1.as_deref(),
        storage: None,
        account_given: false,
        content_length: length,
    };
    add_icon(app, stored, params, body).await
}

// ---------------------------------------------------------------------------
// AddImageFileFromUrl (§5.7)

/// Query inputs of AddImageFileFromUrl.
pub struct FromUrlParams<'a> {
    pub compression: Option<&'a str>,
    pub sha1: Option<&'a str>,
    pub dataset_guid: Option<&'a str>,
    pub storage: Option<&'a str>,
    pub account_given: bool,
}

/// AddImageFileFromUrl (api.md §5.7). Unlike the original, redirects are
/// followed (at most `[remote] max_redirects`, each hop checked).
pub async fn add_file_from_url(
    app: &AppState,
    stored: StoredImage,
    params: FromUrlParams<'_>,
    body: Option<&Value>,
) -> Result<ImageRecord, ServiceError> {
    if stored.image.activated {
        return Err(DomainError::ImageFilesImmutable(stored.image.uuid).into());
    }
    let compression = check_compression(params.compression)?;
    let raw = match body.and_then(|b| b.get("file_url")) {
        None => {
            return Err(ServiceError::invalid_parameter(
                "missing \"file_url\" field from request body",
                vec![FieldError::new("file_url", FieldCode::Missing)],
            ))
        }
        Some(Value::String(url)) => url.as_str(),
        Some(_) => {
            return Err(ServiceError::invalid_parameter(
                "invalid \"file_url\" field from request body (not a string)",
                vec![FieldError::invalid("file_url")],
            ))
        }
    };
    let allow_http = app.remote.policy().allow_http;
    if !(raw.starts_with("https:") || allow_http && raw.starts_with("http:")) {
        let message = if allow_http {
            "Only URLs using the http: or https: scheme are supported"
        } else {
            "Only URLs using the https: scheme are supported"
        };
        return Err(ServiceError::invalid_parameter(
            message,
            vec![FieldError::invalid("file_url")],
        ));
    }
    let store = choose_store(app, params.storage, params.account_given)?;
    let url = Url::parse(raw).map_err(|e| {
        ServiceError::invalid_parameter(
            format!("invalid \"file_url\": {e}"),
            vec![FieldError::invalid("file_url")],
        )
    })?;
    app.remote
        .precheck(&url)
        .await
        .map_err(|r| refused("file_url", &r))?;
    let (stream, announced) = match app.remote.get_stream(url, Trust::Checked).await {
        Ok(got) => got,
        Err(FetchError::Status { status, .. }) => {
            return Err(ServiceError::Download(format!(
                "HTTP {status} error attempting to download image"
            )))
        }
        Err(e) => return Err(ServiceError::Download(format!("Error getting image: {e}"))),
    };
    if let Some(cl) = announced.filter(|cl| *cl > MAX_IMAGE_FILE_SIZE) {
        return Err(ServiceError::Upload(format!(
            "image file size {cl} (from Content-Length) exceeds the maximum allowed size, 20 GiB"
        )));
    }
    let incoming = Incoming {
        store,
        body: stream,
        max_size: MAX_IMAGE_FILE_SIZE,
        compression,
        dataset_guid: params.dataset_guid.map(str::to_string),
    };
    let failed = |e: BlobError| match e {
        BlobError::TooLarge { .. } => {
            ServiceError::Upload("image file size exceeds the maximum allowed size, 20 GiB".into())
        }
        BlobError::Source(io) => ServiceError::Download(format!("Error getting image: {io}")),
        e => ServiceError::blob("error receiving image file")(e),
    };
    let expected = params.sha1;
    let verify = |o: &PutOutcome| {
        if o.size == 0 {
            return Err(ServiceError::Download(
                "image file size is 0 bytes, empty files are not allowed".into(),
            ));
        }
        if let Some(given) = expected.filter(|s| *s != o.sha1) {
            return Err(ServiceError::Download(format!(
                "expected sha1 hash, {given}, does not match the uploaded file sha1 hash, {}",
                o.sha1
            )));
        }
        Ok(())
    };
    store_file(app, stored, incoming, failed, verify).await
}

// ---------------------------------------------------------------------------
// AdminImportRemoteImage (§5.20)

/// Query inputs of AdminImportRemoteImage.
pub struct RemoteImportParams<'a> {
    pub source: Option<&'a str>,
    pub account_given: bool,
    pub skip_owner_check: Option<&'a str>,
    /// The local channel the images go to.
    pub channel: Option<&'a str>,
}

/// AdminImportRemoteImage (api.md §5.20): validation in the spec's order,
/// then an import job. An image that is already here, active, with the
/// source's `files[0].sha1` is not an error (unlike the original's 409):
/// the answer is a job that has already succeeded.
pub async fn import_remote(
    app: &AppState,
    uuid: Uuid,
    params: RemoteImportParams<'_>,
) -> Result<StartedJob, ServiceError> {
    let Some(source) = params.source.filter(|s| !s.is_empty()) else {
        return Err(ServiceError::validation(
            "missing source parameter",
            vec![FieldError::missing("source")],
        ));
    };
    if params.account_given {
        return Err(ServiceError::OperatorOnly);
    }
    let skip_owner_check = parse_bool_param("skip_owner_check", params.skip_owner_check)?;
    let src = checked_source(app, source, "source").await?;
    let job = ImportJob {
        image_uuid: uuid,
        source: src.as_str().to_string(),
        origins: Vec::new(),
        skip_owner_check: skip_owner_check.unwrap_or(false),
        channel: params.channel.map(str::to_string),
        account: None,
        datacenter: None,
    };
    if let Some(local) = load(app, uuid).await? {
        if already_present(app, &src, &local.image).await {
            return jobs::record_already_present(app, job).await;
        }
        return Err(ServiceError::ImageUuidAlreadyExists(uuid));
    }
    let manifest = fetch_manifest(app, &src, uuid, None)
        .await
        .map_err(|e| manifest_error(uuid, &e))?;
    let origins = missing_origins(app, &src, &manifest).await?;
    jobs::create_import_job(app, ImportJob { origins, ..job }).await
}

async fn load(app: &AppState, uuid: Uuid) -> Result<Option<StoredImage>, ServiceError> {
    app.meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))
}

/// The local image is active and has the same file as the source's.
async fn already_present(app: &AppState, src: &Source, local: &ImageRecord) -> bool {
    let Some(local_sha1) = local.files.first().map(|f| f.sha1.as_str()) else {
        return false;
    };
    if local.state != ImageState::Active {
        return false;
    }
    match fetch_manifest(app, src, local.uuid, None).await {
        Ok(m) => remote_file(&m).is_some_and(|r| r.sha1 == local_sha1),
        Err(_) => false,
    }
}

/// §5.20 step 6: the origins to import, base first. A local origin ends
/// the walk and must be active; a remote one must be active too.
async fn missing_origins(
    app: &AppState,
    src: &Source,
    manifest: &Map<String, Value>,
) -> Result<Vec<Uuid>, ServiceError> {
    let mut origins = Vec::new();
    let mut next = manifest_origin(manifest);
    while let Some(origin) = next {
        if origins.len() >= MAX_ORIGIN_CHAIN || origins.contains(&origin) {
            return Err(ServiceError::Internal(format!(
                "the origin chain of image {} is longer than {MAX_ORIGIN_CHAIN} images or loops",
                manifest_str(manifest, "uuid").unwrap_or_default()
            )));
        }
        if let Some(local) = load(app, origin).await? {
            if local.image.state != ImageState::Active {
                return Err(ServiceError::OriginIsNotActive(origin));
            }
            break;
        }
        let remote = fetch_manifest(app, src, origin, None)
            .await
            .map_err(|e| origin_manifest_error(origin, &e))?;
        if manifest_str(&remote, "state") != Some("active") {
            return Err(ServiceError::OriginIsNotActive(origin));
        }
        origins.insert(0, origin);
        next = manifest_origin(&remote);
    }
    Ok(origins)
}

// ---------------------------------------------------------------------------
// ImportFromDatacenter (§5.21)

/// ImportFromDatacenter (api.md §5.21): every check in the spec's order,
/// then the import job (owner check on), from the configured IMGAPI URL
/// of `datacenter`.
pub async fn import_from_datacenter(
    app: &AppState,
    uuid: Uuid,
    account: Option<&str>,
    datacenter: Option<&str>,
    channel: Option<&str>,
) -> Result<StartedJob, ServiceError> {
    let parsed = account
        .filter(|a| is_lower_uuid(a))
        .and_then(|a| Uuid::parse_str(a).ok());
    let Some(account) = parsed else {
        return Err(ServiceError::validation(
            format!(
                "invalid image \"account\" (not a UUID): {}",
                account.unwrap_or("undefined")
            ),
            vec![FieldError::invalid("account")],
        ));
    };
    let Some(dc) = datacenter.filter(|d| !d.is_empty()) else {
        return Err(ServiceError::validation(
            "missing datacenter parameter",
            vec![FieldError::missing("datacenter")],
        ));
    };
    let this_dc = app.config.datacenter_name.as_deref();
    let names = app
        .config
        .datacenters
        .keys()
        .filter(|n| Some(n.as_str()) != this_dc)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let Some(url) = app.config.datacenters.get(dc) else {
        return Err(ServiceError::validation(
            format!("datacenter \"{dc}\" is not supported, valid datacenters names are: {names}"),
            vec![FieldError::invalid("datacenter")],
        ));
    };
    if Some(dc) == this_dc {
        return Err(ServiceError::validation(
            format!("cannot import into the same datacenter, valid datacenters names are: {names}"),
            vec![FieldError::invalid("datacenter")],
        ));
    }
    let src = Source::parse(url, Trust::Trusted).map_err(|e| {
        ServiceError::Internal(format!("datacenter {dc} has an invalid IMGAPI URL: {e}"))
    })?;
    let manifest = fetch_manifest(app, &src, uuid, Some(account))
        .await
        .map_err(|e| passed_on(uuid, e))?;
    if manifest_str(&manifest, "state") != Some("active") {
        return Err(ServiceError::validation(
            format!("Cannot import image {uuid} - image is not active."),
            vec![],
        ));
    }
    if manifest_str(&manifest, "owner") != Some(account.to_string().as_str()) {
        return Err(ServiceError::Unauthorized(format!(
            "Cannot import image {uuid} - you are not the owner."
        )));
    }
    if load(app, uuid).await?.is_some() {
        return Err(ServiceError::ImageUuidAlreadyExists(uuid));
    }
    let origins = own_origins(app, &src, &manifest, account).await?;
    let job = ImportJob {
        image_uuid: uuid,
        source: src.as_str().to_string(),
        origins,
        skip_owner_check: false,
        channel: channel.map(str::to_string),
        account: Some(account),
        datacenter: Some(dc.to_string()),
    };
    jobs::create_import_job(app, job).await
}

/// §5.21 step 7: the account's own origins missing here, base first; an
/// origin owned by someone else must already be here.
async fn own_origins(
    app: &AppState,
    src: &Source,
    manifest: &Map<String, Value>,
    account: Uuid,
) -> Result<Vec<Uuid>, ServiceError> {
    let mut origins = Vec::new();
    let mut next = manifest_origin(manifest);
    while let Some(origin) = next {
        if origins.len() >= MAX_ORIGIN_CHAIN || origins.contains(&origin) {
            return Err(ServiceError::Internal(format!(
                "the origin chain of image {} is longer than {MAX_ORIGIN_CHAIN} images or loops",
                manifest_str(manifest, "uuid").unwrap_or_default()
            )));
        }
        if load(app, origin).await?.is_some() {
            break;
        }
        let remote = fetch_manifest(app, src, origin, Some(account))
            .await
            .map_err(|e| passed_on(origin, e))?;
        if manifest_str(&remote, "owner") != Some(account.to_string().as_str()) {
            return Err(ServiceError::not_found(format!(
                "Unable to import - origin image {origin} must already exist in the datacenter (as this image is not owned by you)."
            )));
        }
        origins.insert(0, origin);
        next = manifest_origin(&remote);
    }
    Ok(origins)
}

/// A remote IMGAPI error passed on as it came (§5.21 step 5), when its
/// restCode is one of ours with the same status; anything else is a 503
/// RemoteSourceError.
fn passed_on(uuid: Uuid, e: FetchError) -> ServiceError {
    if let FetchError::Status {
        status,
        code: Some(code),
        message,
        body,
    } = &e
    {
        if let Some(code) = RestCode::from_code(code).filter(|c| c.http_status() == *status) {
            let errors = body
                .as_ref()
                .and_then(|b| b.get("errors"))
                .and_then(|e| serde_json::from_value::<Vec<FieldError>>(e.clone()).ok())
                .unwrap_or_default();
            return ServiceError::Remote {
                code,
                message: message.clone().unwrap_or_default(),
                errors,
            };
        }
    }
    manifest_error(uuid, &e)
}
