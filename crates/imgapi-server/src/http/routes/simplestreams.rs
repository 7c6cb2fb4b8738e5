//! Simplestreams for `lxc` / `incus` (`[simplestreams] enabled`,
//! docs/lxd.md): the index, the products file and the items' bytes.

use axum::response::Response;
use http::StatusCode;

use super::files::serve_image_file;
use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response;
use crate::service::simplestreams::{self as svc, Document};

/// `GET /streams/v1/index.json`.
pub async fn index(app: &AppState, _req: Req) -> Result<Response, ApiError> {
    let body = svc::document(app, Document::Index).await?;
    Ok(response::json_bytes(StatusCode::OK, body))
}

/// `GET /streams/v1/images.json`.
pub async fn products(app: &AppState, _req: Req) -> Result<Response, ApiError> {
    let body = svc::document(app, Document::Products).await?;
    Ok(response::json_bytes(StatusCode::OK, body))
}

/// `GET /streams/v1/files/:uuid/:item`: the bytes an item path names.
pub async fn file(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let (img, file) = svc::item_file(app, &req.arg(0), &req.arg(1)).await?;
    serve_image_file(app, &req, &img, &file).await
}
