//! The icon step of an import.

use futures_util::TryStreamExt;
use imgapi_blob::ByteStream;
use imgapi_domain::ImageRecord;
use imgapi_meta::StoredImage;
use uuid::Uuid;

use super::error::ImportError;
use super::source::Source;
use crate::app::AppState;
use crate::service::files::{add_icon, AddIconParams};
use crate::service::ServiceError;

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
        .map_err(|source| ImportError::Icon { uuid, source }.into())
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
