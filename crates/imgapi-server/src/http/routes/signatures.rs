//! ListImageSignatures / AddImageSignature / RemoveImageSignature —
//! `/images/:uuid/signatures` (an extension, docs/signing.md): SSHSIG
//! signatures of an image's statement, kept out of its manifest.

use axum::response::Response;
use http::StatusCode;
use imgapi_types::FieldError;
use serde_json::Value;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::{ok_json, parse_uuid, response};
use crate::service::signatures as svc;
use crate::service::{load_image, resolve_channel, ChannelRule, ServiceError};

/// Anyone who may see the image may read its signatures: consumers verify
/// them before they install it.
pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    Ok(ok_json(&svc::list(app, &loaded).await?))
}

/// Owners and operators add a signature; it is verified first.
pub async fn add(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let body = req.json_body().await?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    let armored = parse_body(body.as_ref())?;
    Ok(ok_json(&svc::add(app, &loaded, armored).await?))
}

/// Owners and operators remove a signature by its id.
pub async fn remove(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    svc::remove(app, &loaded, &req.arg(1)).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// `{"signature": "<armored SSHSIG>"}` and nothing else.
fn parse_body(body: Option<&Value>) -> Result<&str, ServiceError> {
    let Some(Value::Object(data)) = body else {
        return Err(ServiceError::validation(
            "missing request body: a JSON object with \"signature\" (the armored output of `ssh-keygen -Y sign -n imgapi`)",
            vec![FieldError::missing("signature")],
        ));
    };
    let unknown: Vec<&String> = data.keys().filter(|k| *k != "signature").collect();
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|k| format!("\"{k}\"")).collect();
        return Err(ServiceError::invalid_parameter(
            format!("invalid extra parameters: {}", quoted.join(", ")),
            unknown.into_iter().map(FieldError::invalid).collect(),
        ));
    }
    match data.get("signature") {
        Some(Value::String(armored)) => Ok(armored),
        None => Err(ServiceError::validation(
            "missing \"signature\": the armored output of `ssh-keygen -Y sign -n imgapi`",
            vec![FieldError::missing("signature")],
        )),
        Some(other) => Err(ServiceError::invalid_parameter(
            format!("invalid \"signature\": {other} is not a string"),
            vec![FieldError::invalid("signature")],
        )),
    }
}
