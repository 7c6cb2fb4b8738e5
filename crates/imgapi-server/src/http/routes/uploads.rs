//! Resumable upload sessions (an IMGAPI extension, docs/uploads.md):
//! `/images/:uuid/file/uploads[/:id]`. The image is loaded and checked as
//! for AddImageFile (api.md §5.5 step 1: uuid, channel, visibility,
//! ownership) before any session is looked at.

use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use imgapi_meta::UploadSession;
use imgapi_types::{ErrorBody, FieldCode, FieldError, RestCode, UploadSessionBody};
use uuid::Uuid;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::parse_uuid;
use crate::http::request::Req;
use crate::http::response;
use crate::service::uploads::{self as svc, ChunkOutcome, ChunkRange};
use crate::service::{load_image, resolve_channel, ChannelRule, Loaded};

/// The image of the request, loaded for a modification by its owner.
async fn owned_image(app: &AppState, req: &Req, id: &str) -> Result<Loaded, ApiError> {
    let uuid = parse_uuid(req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    Ok(loaded)
}

/// A malformed upload id is a 404, like a malformed image uuid.
fn upload_id(req: &Req, raw: &str) -> Result<Uuid, ApiError> {
    parse_uuid(req, raw)
}

fn body_of(app: &AppState, session: &UploadSession) -> UploadSessionBody {
    UploadSessionBody {
        upload_id: session.id.to_string(),
        offset: session.offset,
        size: session.size,
        chunk_size_min: svc::chunk_min(app, session),
        expires_at: svc::iso_of_ms(session.expires_ms),
    }
}

fn with_offset(mut resp: Response, offset: u64) -> Response {
    resp.headers_mut().insert(
        header::HeaderName::from_static(imgapi_types::UPLOAD_OFFSET_HEADER),
        HeaderValue::from(offset),
    );
    resp
}

fn session_response(app: &AppState, status: StatusCode, session: &UploadSession) -> Response {
    with_offset(
        response::json(status, &body_of(app, session)),
        session.offset,
    )
}

/// CreateUploadSession: `POST /images/:uuid/file/uploads` → 201.
pub async fn create(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let loaded = owned_image(app, &req, id).await?;
    let params = svc::CreateParams {
        compression: req.query.get("compression"),
        sha1: req.query.get_nonempty("sha1"),
        size: req.query.get_nonempty("size"),
        dataset_guid: req.query.get_nonempty("dataset_guid"),
        storage: req.query.get("storage"),
        account_given: loaded.account.is_some(),
    };
    let session = svc::create(app, &loaded.stored, params).await?;
    let mut resp = session_response(app, StatusCode::CREATED, &session);
    let location = format!("/images/{}/file/uploads/{}", session.image_uuid, session.id);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// GetUploadSession: `GET|HEAD /images/:uuid/file/uploads/:id`.
pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let upload = &req.arg(1);
    let loaded = owned_image(app, &req, id).await?;
    let upload = upload_id(&req, upload)?;
    let session = svc::load(app, loaded.stored.image.uuid, upload).await?;
    Ok(session_response(app, StatusCode::OK, &session))
}

/// WriteUploadChunk: `PUT /images/:uuid/file/uploads/:id` with
/// `Content-Range: bytes START-END/TOTAL` (or `/*`).
pub async fn put_chunk(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let upload = &req.arg(1);
    let loaded = owned_image(app, &req, id).await?;
    let upload = upload_id(&req, upload)?;
    let range = match req.header(&header::CONTENT_RANGE) {
        None => {
            return Err(ApiError::invalid_param(
                "missing \"Content-Range\" header",
                vec![FieldError::new("Content-Range", FieldCode::MissingParameter)],
            ))
        }
        Some(raw) => ChunkRange::parse(raw).ok_or_else(|| {
            ApiError::invalid_param(
                format!("invalid \"Content-Range\" header {raw:?} (expected bytes START-END/TOTAL or bytes START-END/*)"),
                vec![FieldError::invalid("Content-Range")],
            )
        })?,
    };
    let content_length = req.content_length();
    let body = req.body_stream(app.body_idle_timeout());
    let outcome = svc::put_chunk(app, &loaded.stored, upload, range, content_length, body).await?;
    Ok(match outcome {
        ChunkOutcome::Stored(s) | ChunkOutcome::AlreadyReceived(s) => {
            session_response(app, StatusCode::OK, &s)
        }
        ChunkOutcome::OutOfOrder(s) => out_of_order(&range, &s),
    })
}

/// 416 with the offset the chunk should have started at.
fn out_of_order(range: &ChunkRange, session: &UploadSession) -> Response {
    let code = RestCode::RequestedRangeNotSatisfiable;
    let message = format!(
        "chunk starts at byte {} but upload session {} has {} bytes: send from byte {}",
        range.start, session.id, session.offset, session.offset
    );
    let mut body =
        serde_json::to_value(ErrorBody::new(code, message, Vec::new())).unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("offset".into(), serde_json::Value::from(session.offset));
    }
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::RANGE_NOT_SATISFIABLE);
    with_offset(response::json(status, &body), session.offset)
}

/// `POST /images/:uuid/file/uploads/:id?action=finish` (FinishUploadSession).
pub async fn action(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let upload = &req.arg(1);
    let loaded = owned_image(app, &req, id).await?;
    let upload = upload_id(&req, upload)?;
    match req.query.get("action") {
        Some("finish") => {}
        other => {
            return Err(ApiError::invalid_param(
                match other {
                    None => "missing \"action\" (must be finish)".to_string(),
                    Some(a) => format!("invalid action \"{a}\" (must be finish)"),
                },
                vec![FieldError::invalid("action")],
            ))
        }
    }
    let params = svc::FinishParams {
        sha1: req.query.get_nonempty("sha1"),
        sha256: req.query.get_nonempty("sha256"),
        size: req.query.get_nonempty("size"),
    };
    let record = svc::finish(app, loaded.stored, upload, params).await?;
    Ok(response::image(imgapi_domain::serialize::api_object(
        &record,
        req.serialize_options(app, false),
    )))
}

/// AbortUploadSession: `DELETE /images/:uuid/file/uploads/:id` → 204.
pub async fn abort(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let upload = &req.arg(1);
    let loaded = owned_image(app, &req, id).await?;
    let upload = upload_id(&req, upload)?;
    svc::abort(app, loaded.stored.image.uuid, upload).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}
