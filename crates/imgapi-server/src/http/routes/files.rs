//! Image file and icon handlers (api.md §5.4–§5.10), incl. `Range`.

use std::ops::Range;
use std::time::SystemTime;

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use imgapi_domain::image::parse_iso_ms;
use imgapi_domain::ImageRecord;
use imgapi_types::RestCode;

use super::images::current_etag;
use crate::app::AppState;
use crate::http::conditional::{evaluate, Precondition};
use crate::http::error::ApiError;
use crate::http::parse_uuid;
use crate::http::request::Req;
use crate::http::response;
use crate::service::files::{self as svc, AddFileParams, AddIconParams};
use crate::service::{load_image, resolve_channel, ChannelRule, ServiceError};

/// What a download serves: digests and times of the stored object.
struct Served<'a> {
    sha1: &'a str,
    md5: &'a str,
    /// Hex SHA-256 of the whole object, when known (→ `Repr-Digest`).
    sha256: Option<&'a str>,
    size: u64,
    mtime: &'a str,
    content_type: &'a str,
    key: Option<&'a str>,
    /// Which store holds it.
    stor: &'a str,
    /// Send the client to the object store instead of proxying.
    redirect: bool,
}

/// How long a redirected download URL stays valid.
const REDIRECT_URL_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

fn mtime_of(iso: &str) -> Option<SystemTime> {
    let ms = parse_iso_ms(iso)?;
    let ms = u64::try_from(ms).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// Parse a single `bytes=` range against `size`. `Ok(None)` = serve all;
/// `Err(())` = unsatisfiable.
fn parse_range(header: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: answer with the whole file
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 {
            return Err(());
        }
        size.saturating_sub(suffix)..size
    } else {
        let s: u64 = start.parse().map_err(|_| ())?;
        let e = if end.is_empty() {
            size
        } else {
            end.parse::<u64>()
                .map_err(|_| ())?
                .saturating_add(1)
                .min(size)
        };
        if s >= size || s >= e {
            return Err(());
        }
        s..e
    };
    Ok(Some(range))
}

/// `If-Range` holds the validator the client saw: the sha1 or a date.
fn if_range_allows(req: &Req, served: &Served<'_>) -> bool {
    let Some(v) = req.header(&header::IF_RANGE) else {
        return true;
    };
    let tag = v.trim().trim_start_matches("W/").trim_matches('"');
    if tag == served.sha1 {
        return true;
    }
    match (httpdate::parse_http_date(v.trim()), mtime_of(served.mtime)) {
        (Ok(date), Some(m)) => {
            let secs = m
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs) <= date
        }
        _ => false,
    }
}

fn set(resp: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn validators(resp: &mut Response, served: &Served<'_>) {
    set(resp, header::ETAG, served.sha1);
    if let Some(m) = mtime_of(served.mtime) {
        set(resp, header::LAST_MODIFIED, &httpdate::fmt_http_date(m));
    }
}

/// Stream the stored `part` (`file`, `icon`) of `img` with conditional and
/// range handling.
async fn download(
    app: &AppState,
    req: &Req,
    img: &ImageRecord,
    served: Served<'_>,
    part: &'static str,
) -> Result<Response, ApiError> {
    let what = format!("image {part}");
    let etag = current_etag(app, req, img);
    let last_modified = mtime_of(served.mtime);
    if evaluate(&req.method, &req.headers, &etag, last_modified)? == Precondition::NotModified {
        let mut resp = response::empty(StatusCode::NOT_MODIFIED);
        validators(&mut resp, &served);
        return Ok(resp);
    }
    if served.redirect {
        if let Some(key) = served.key {
            let url = crate::service::store_for(app, served.stor)?
                .redirect_url(key, REDIRECT_URL_LIFETIME)
                .await
                .map_err(ServiceError::blob(format!("error signing {what} URL")))?;
            if let Some(url) = url {
                let mut resp = response::empty(StatusCode::FOUND);
                set(&mut resp, header::LOCATION, &url);
                validators(&mut resp, &served);
                return Ok(resp);
            }
        }
    }
    let range = match req.header(&header::RANGE) {
        Some(h) if if_range_allows(req, &served) => match parse_range(h, served.size) {
            Ok(r) => r,
            Err(()) => {
                let mut err = ApiError::new(
                    RestCode::RequestedRangeNotSatisfiable,
                    format!(
                        "range {h:?} is not satisfiable for a {} byte {what}",
                        served.size
                    ),
                )
                .into_response_parts();
                set(
                    &mut err,
                    header::CONTENT_RANGE,
                    &format!("bytes */{}", served.size),
                );
                return Ok(err);
            }
        },
        _ => None,
    };
    let stored = (served.stor, served.key);
    let read = svc::open_blob(app, img.uuid, stored, range.clone(), part).await?;
    let mut resp = Response::new(Body::from_stream(read.stream));
    let len = read.range.end - read.range.start;
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        set(
            &mut resp,
            header::CONTENT_RANGE,
            &format!(
                "bytes {}-{}/{}",
                read.range.start,
                read.range.end.saturating_sub(1),
                read.total_size
            ),
        );
    }
    set(&mut resp, header::CONTENT_TYPE, served.content_type);
    set(&mut resp, header::CONTENT_LENGTH, &len.to_string());
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    set(
        &mut resp,
        header::HeaderName::from_static("content-md5"),
        served.md5,
    );
    if let Some(b64) = served.sha256.and_then(sha256_base64) {
        // RFC 9530: the digest of the whole representation, also on a 206.
        set(
            &mut resp,
            header::HeaderName::from_static("repr-digest"),
            &format!("sha-256=:{b64}:"),
        );
        // RFC 3230, for older clients.
        set(
            &mut resp,
            header::HeaderName::from_static("digest"),
            &format!("SHA-256={b64}"),
        );
    }
    validators(&mut resp, &served);
    Ok(resp)
}

/// Hex SHA-256 → base64 of its 32 bytes (`None` if not 64 hex digits).
fn sha256_base64(hex_digest: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = hex::decode(hex_digest).ok().filter(|b| b.len() == 32)?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// GetImageFile (api.md §5.4).
pub async fn get_file(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    let img = &loaded.stored.image;
    let file = svc::select_file(img, req.query.get("index"))?;
    serve_image_file(app, &req, img, file).await
}

/// Download `file` of `img` (GetImageFile, and the legacy
/// `/datasets/:uuid/:file` of `dsapi = "serve"`).
pub async fn serve_image_file(
    app: &AppState,
    req: &Req,
    img: &ImageRecord,
    file: &imgapi_domain::ImageFile,
) -> Result<Response, ApiError> {
    let served = Served {
        sha1: &file.sha1,
        md5: &file.content_md5,
        sha256: file.sha256.as_deref(),
        size: file.size,
        mtime: &file.mtime,
        content_type: "application/octet-stream",
        key: file.blob_key.as_deref(),
        stor: &file.stor,
        redirect: app.redirect_downloads(),
    };
    download(app, req, img, served, "file").await
}

/// AddImageFile (api.md §5.5): streamed to storage, never buffered.
pub async fn add_file(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    if let Some(source) = req.query.get("source") {
        // AddImageFileFromSource (api.md §5.6); the body is not read.
        let account_given = loaded.account.is_some();
        let storage = req.query.get("storage");
        let record = crate::service::import::add_file_from_source(
            app,
            loaded.stored,
            source,
            storage,
            account_given,
        )
        .await?;
        return Ok(response::image(imgapi_domain::serialize::api_object(
            &record,
            req.serialize_options(app, false),
        )));
    }
    let body = req.body_stream(app.body_idle_timeout());
    let params = AddFileParams {
        compression: req.query.get("compression"),
        sha1: req.query.get_nonempty("sha1"),
        dataset_guid: req.query.get_nonempty("dataset_guid"),
        storage: req.query.get("storage"),
        account_given: loaded.account.is_some(),
        content_length: req.content_length(),
    };
    let record = svc::add_file(app, loaded.stored, params, body).await?;
    Ok(response::image(imgapi_domain::serialize::api_object(
        &record,
        req.serialize_options(app, false),
    )))
}

/// AddImageFileFromUrl (api.md §5.7).
pub async fn add_file_from_url(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    let body = req.json_body().await?;
    let params = crate::service::import::FromUrlParams {
        compression: req.query.get("compression"),
        sha1: req.query.get_nonempty("sha1"),
        dataset_guid: req.query.get_nonempty("dataset_guid"),
        storage: req.query.get("storage"),
        account_given: loaded.account.is_some(),
    };
    let record =
        crate::service::import::add_file_from_url(app, loaded.stored, params, body.as_ref())
            .await?;
    Ok(response::image(imgapi_domain::serialize::api_object(
        &record,
        req.serialize_options(app, false),
    )))
}

/// GetImageIcon (api.md §5.8).
pub async fn get_icon(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    let img = &loaded.stored.image;
    let icon = img
        .icon
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("image \"{uuid}\" has no icon")))?;
    let served = Served {
        sha1: &icon.sha1,
        md5: &icon.content_md5,
        sha256: None,
        size: icon.size,
        mtime: &icon.mtime,
        content_type: &icon.content_type,
        key: icon.blob_key.as_deref(),
        stor: &icon.stor,
        redirect: false,
    };
    download(app, &req, img, served, "icon").await
}

/// AddImageIcon (api.md §5.9).
pub async fn add_icon(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    let body = req.body_stream(app.body_idle_timeout());
    let params = AddIconParams {
        content_type: req.header(&header::CONTENT_TYPE),
        sha1: req.query.get_nonempty("sha1"),
        storage: req.query.get("storage"),
        account_given: loaded.account.is_some(),
        content_length: req.content_length(),
    };
    let record = svc::add_icon(app, loaded.stored, params, body).await?;
    Ok(response::image(imgapi_domain::serialize::api_object(
        &record,
        req.serialize_options(app, false),
    )))
}

/// DeleteImageIcon (api.md §5.10).
pub async fn delete_icon(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    let record = svc::delete_icon(app, loaded.stored).await?;
    Ok(response::image(imgapi_domain::serialize::api_object(
        &record,
        req.serialize_options(app, false),
    )))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=95-200", 100), Ok(Some(95..100)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }
}
