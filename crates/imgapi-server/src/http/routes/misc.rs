//! Ping, channels and the admin state endpoints (api.md §3, §4.1).

use axum::response::Response;
use http::StatusCode;
use imgapi_domain::Mode;
use imgapi_types::{FieldCode, FieldError, RestCode};
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::{ok_json, response};

/// Error classes Ping's `?error=` knows (errors.md §5), without the
/// `Error` suffix.
const PING_ERROR_CLASSES: &[&str] = &[
    "ValidationFailed",
    "InvalidParameter",
    "ImageFilesImmutable",
    "ImageAlreadyActivated",
    "NoActivationNoFile",
    "OperatorOnly",
    "ImageUuidAlreadyExists",
    "Upload",
    "Download",
    "StorageIsDown",
    "StorageUnsupported",
    "RemoteSource",
    "OwnerDoesNotExist",
    "ImageNotShared",
    "AccountDoesNotExist",
    "NotImageOwner",
    "NotMantaPathOwner",
    "OriginDoesNotExist",
    "OriginIsNotActive",
    "InsufficientServerVersion",
    "ImageHasDependentImages",
    "NotAvailable",
    "NotImplemented",
    "Internal",
    "ResourceNotFound",
    "InvalidHeader",
    "ServiceUnavailable",
    "Unauthorized",
    "BadRequest",
];

/// The canned error of `GET /ping?error=<name>`.
fn ping_error(name: &str) -> ApiError {
    let name = if name.is_empty() { "Internal" } else { name };
    let class = name.strip_suffix("Error").unwrap_or(name);
    let full = format!("{class}Error");
    if !PING_ERROR_CLASSES.contains(&class) {
        return ApiError::invalid_param(
            format!("unknown error: {full}"),
            vec![FieldError::new("error", FieldCode::Missing)],
        );
    }
    let sample_uuid = "ed8cd007-2065-0140-8d41-e32247b71748";
    match class {
        "ValidationFailed" => ApiError::validation("boom", vec![]),
        "InvalidParameter" => {
            ApiError::invalid_param("invalid \"foo\"", vec![FieldError::invalid("foo")])
        }
        "ImageFilesImmutable" => ApiError::new(
            RestCode::ImageFilesImmutable,
            "cannot modify files on activated image 82ce32a2-9cb4-9a4c-a303-7a63254bacf4",
        ),
        "ImageAlreadyActivated" => ApiError::new(
            RestCode::ImageAlreadyActivated,
            format!("image \"{sample_uuid}\" is already activated"),
        ),
        "NoActivationNoFile" => ApiError::new(
            RestCode::NoActivationNoFile,
            format!("image \"{sample_uuid}\" cannot be activated: it has no file"),
        ),
        "OperatorOnly" => ApiError::new(
            RestCode::OperatorOnly,
            "this endpoint may only be called by an operator",
        ),
        "ImageUuidAlreadyExists" => ApiError::new(
            RestCode::ImageUuidAlreadyExists,
            "image uuid \"undefined\" already exists",
        ),
        "StorageIsDown" => ApiError::new(RestCode::StorageIsDown, "storage is down at the moment"),
        "StorageUnsupported" => {
            ApiError::new(RestCode::StorageUnsupported, "storage type is unsupported")
        }
        "RemoteSource" => ApiError::new(RestCode::RemoteSourceError, ""),
        "Internal" => ApiError::new(RestCode::InternalError, "boom"),
        _ => ApiError::new(
            RestCode::InternalError,
            format!("do not have a sample \"{full}\" error"),
        ),
    }
}

/// Admin endpoints refuse users mapped to an account.
fn ensure_operator(req: &Req) -> Result<(), ApiError> {
    if req.caller.is_operator() {
        Ok(())
    } else {
        Err(ApiError::new(
            RestCode::OperatorOnly,
            "this endpoint may only be called by an operator",
        ))
    }
}

/// Ping (api.md §3.1).
pub async fn ping(app: &AppState, req: Req) -> Result<Response, ApiError> {
    if let Some(name) = req.query.get("error") {
        return Err(ping_error(name));
    }
    let mut body = Map::new();
    body.insert("ping".into(), json!("pong"));
    body.insert("version".into(), json!(imgapi_types::API_VERSION));
    body.insert("imgapi".into(), json!(true));
    if app.config.mode == Mode::Dc || req.caller.is_authenticated() {
        body.insert("pid".into(), json!(std::process::id()));
    }
    if let Some(user) = &req.caller.username {
        body.insert("user".into(), json!(user));
    }
    Ok(ok_json(&body))
}

/// Health: 200 when every backend answers, 503 naming the failing check
/// otherwise (docs/operating.md "Health checks").
pub async fn health(app: &AppState, _req: Req) -> Result<Response, ApiError> {
    let health = app.health.current(app).await;
    let status = if crate::service::health::is_healthy(&health) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(response::json(status, &health))
}

/// ListChannels (api.md §4.1): the configured channels, in order.
pub async fn list_channels(app: &AppState, _req: Req) -> Result<Response, ApiError> {
    let channels: Vec<Value> = app
        .channels()
        .iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("name".into(), json!(c.name));
            m.insert("description".into(), json!(c.description));
            if let Some(d) = c.default {
                m.insert("default".into(), json!(d));
            }
            Value::Object(m)
        })
        .collect();
    Ok(ok_json(&channels))
}

/// AdminGetState (api.md §3.2): a debugging snapshot.
pub async fn get_state(app: &AppState, req: Req) -> Result<Response, ApiError> {
    ensure_operator(&req)?;
    let counts = app
        .meta
        .count_by_state()
        .await
        .map_err(|e| ApiError::internal("error reading state", e.to_string()))?;
    let images: Map<String, Value> = counts.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(ok_json(&json!({
        "log": {"level": app.config.log_level},
        "storageTypes": app.storage_kinds(),
        "mode": app.config.mode.as_str(),
        "uptimeSeconds": app.started.elapsed().as_secs(),
        "images": images,
    })))
}

/// AdminUpdateState (api.md §3.3). There are no response caches to drop.
pub async fn update_state(_app: &AppState, req: Req) -> Result<Response, ApiError> {
    ensure_operator(&req)?;
    match req.query.get("action") {
        Some("dropcaches") => Ok(response::empty(StatusCode::ACCEPTED)),
        Some(other) => Err(ApiError::new(
            RestCode::InvalidArgument,
            format!("\"{other}\" is not a valid action"),
        )),
        None => Err(ApiError::new(
            RestCode::MissingParameter,
            "\"action\" is required",
        )),
    }
}

/// AdminReloadAuthKeys (api.md §3.4): re-read the keys directory.
pub async fn reload_auth_keys(app: &AppState, req: Req) -> Result<Response, ApiError> {
    ensure_operator(&req)?;
    let keys = app.auth_keys.clone();
    let stats = tokio::task::spawn_blocking(move || keys.reload())
        .await
        .map_err(|e| ApiError::internal("error reloading auth keys", e.to_string()))?
        .map_err(|e| ApiError::internal("error reloading auth keys", e.to_string()))?;
    tracing::info!(
        users = stats.users,
        keys = stats.keys,
        skipped = stats.skipped,
        "auth keys reloaded"
    );
    Ok(ok_json(&json!({})))
}
