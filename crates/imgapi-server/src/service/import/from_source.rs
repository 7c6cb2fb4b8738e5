//! The imports that run within their request: AdminImportImageFromSource
//! (api.md §5.19), AddImageFileFromSource (§5.6) and AddImageFileFromUrl
//! (§5.7).

use imgapi_blob::{BlobError, PutOutcome};
use imgapi_domain::{DomainError, ImageRecord};
use imgapi_meta::StoredImage;
use imgapi_types::{FieldCode, FieldError, MAX_IMAGE_FILE_SIZE};
use reqwest::Url;
use serde_json::Value;
use uuid::Uuid;

use super::error::ImportError;
use super::fetch::{FetchError, Trust};
use super::manifest::fetch_manifest;
use super::source::Source;
use super::steps::{add_file_from, create_from_manifest};
use crate::app::AppState;
use crate::service::files::{check_compression, choose_store, store_file, Incoming};
use crate::service::{parse_bool_param, ServiceError};

/// A client-given IMGAPI URL, parsed and checked against the policy.
pub(crate) async fn checked_source(
    app: &AppState,
    raw: &str,
    field: &'static str,
) -> Result<Source, ImportError> {
    let src = Source::parse(raw, Trust::Checked)
        .map_err(|source| ImportError::InvalidSourceUrl { field, source })?;
    app.remote
        .precheck(&src.base)
        .await
        .map_err(|refused| ImportError::Refused { field, refused })?;
    Ok(src)
}

// ---------------------------------------------------------------------------
// AdminImportImageFromSource (§5.19)

/// AdminImportImageFromSource (api.md §5.19): the record from the remote
/// manifest, as an import (uuid, `published_at`, `urn` kept; `state`,
/// `files` dropped). Origins are not fetched.
pub async fn import_from_source(
    app: &AppState,
    uuid: Uuid,
    source: &str,
    params: crate::service::images::ImportParams<'_>,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    if params.account_given {
        return Err(ServiceError::OperatorOnly);
    }
    let skip_owner_check = parse_bool_param("skip_owner_check", params.skip_owner_check)?;
    let src = checked_source(app, source, "source").await?;
    let manifest = fetch_manifest(app, &src, uuid, None)
        .await
        .map_err(|source| ImportError::Manifest { uuid, source })?;
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
        .map_err(|refused| ImportError::Refused {
            field: "file_url",
            refused,
        })?;
    let (stream, announced) = match app.remote.get_stream(url, Trust::Checked).await {
        Ok(got) => got,
        Err(FetchError::Status { status, .. }) => return Err(ImportError::UrlStatus(status).into()),
        Err(e) => return Err(ImportError::UrlTransfer(e.to_string()).into()),
    };
    if let Some(cl) = announced.filter(|cl| *cl > MAX_IMAGE_FILE_SIZE) {
        return Err(ImportError::UrlFileTooLarge(cl).into());
    }
    let incoming = Incoming {
        store,
        body: stream,
        max_size: MAX_IMAGE_FILE_SIZE,
        known_size: announced,
        compression,
        dataset_guid: params.dataset_guid.map(str::to_string),
    };
    let failed = |e: BlobError| match e {
        BlobError::TooLarge { .. } => ImportError::UrlFileExceeds.into(),
        BlobError::Source(io) => ImportError::UrlTransfer(io.to_string()).into(),
        e => ServiceError::blob("error receiving image file")(e),
    };
    let expected = params.sha1;
    let verify = |o: &PutOutcome| {
        if o.size == 0 {
            return Err(ImportError::EmptyFile.into());
        }
        if let Some(given) = expected.filter(|s| *s != o.sha1) {
            return Err(ImportError::UrlSha1Mismatch {
                expected: given.to_string(),
                got: o.sha1.clone(),
            }
            .into());
        }
        Ok(())
    };
    store_file(app, stored, incoming, failed, verify).await
}
