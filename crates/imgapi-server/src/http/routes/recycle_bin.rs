//! The recycle bin (an extension, docs/lifecycle.md): `GET /recycle-bin`,
//! `GET|DELETE /recycle-bin/:uuid`, `POST /recycle-bin/:uuid?action=restore`.
//! The owner (`account=`) sees its own entries, an operator every entry;
//! anyone else gets the 404 of an entry that does not exist.

use axum::response::Response;
use http::StatusCode;
use imgapi_domain::serialize::api_object;
use imgapi_types::FieldError;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::{ok_json, parse_uuid, response};
use crate::service::recycle_bin::{self as svc, DEFAULT_LIMIT, MAX_LIMIT};

/// ListRecycleBin.
pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let owner = req.owner_param()?;
    let limit = req
        .integer_param("limit", u64::from(MAX_LIMIT))?
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_LIMIT);
    let offset = req.integer_param("offset", i64::MAX as u64)?.unwrap_or(0);
    let entries = svc::list(app, req.account(), owner, offset, limit).await?;
    Ok(ok_json(&entries))
}

/// GetRecycledImage.
pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    Ok(ok_json(&svc::get(app, req.account(), uuid).await?))
}

/// RestoreRecycledImage: the restored image as GetImage shows it.
pub async fn restore(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    match req.query.get("action") {
        Some("restore") => {}
        other => {
            return Err(ApiError::invalid_param(
                format!(
                    "\"{}\" is not a valid action (use action=restore)",
                    other.unwrap_or_default()
                ),
                vec![FieldError::invalid("action")],
            ))
        }
    }
    let image = svc::restore(app, req.account(), uuid).await?;
    Ok(response::image(api_object(
        &image,
        req.serialize_options(app, false),
    )))
}

/// PurgeRecycledImage.
pub async fn purge(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    svc::purge(app, req.account(), uuid).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}
