//! GetImageLifecycle / UpdateImageLifecycle — `GET|PUT
//! /images/:uuid/lifecycle` (an extension, docs/lifecycle.md): an image's
//! deprecation time and protection, kept out of its manifest.

use axum::response::Response;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::{ok_json, parse_uuid};
use crate::service::lifecycle::{self, now_ms, parse_update};
use crate::service::{load_image, resolve_channel, ChannelRule};

/// Anyone who may see the image may read its flags: a consumer needs to
/// know an image it uses is deprecated (`imgadm import` warns).
pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    Ok(ok_json(&lifecycle::get(app, &loaded).await?))
}

/// Owners and operators change the flags; the body is merged.
pub async fn update(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let body = req.json_body().await?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    let update = parse_update(body.as_ref(), now_ms())?;
    Ok(ok_json(&lifecycle::update(app, &loaded, update).await?))
}
