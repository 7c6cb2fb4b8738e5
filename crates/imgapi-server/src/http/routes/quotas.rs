//! ListQuotas, GetQuota, PutQuota, DeleteQuota — `/quotas[/{owner}]` (an
//! extension, docs/lifecycle.md "Quotas"). Operators only, except that an
//! owner may read its own quota.

use axum::response::Response;
use http::StatusCode;
use imgapi_types::{FieldError, QuotaOverrideBody, RestCode};
use uuid::Uuid;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::{ok_json, response};
use crate::service::quotas as svc;

fn operator_only() -> ApiError {
    ApiError::new(
        RestCode::OperatorOnly,
        "this endpoint may only be called by an operator",
    )
}

fn owner_arg(req: &Req) -> Result<Uuid, ApiError> {
    let raw = req.arg(0);
    match Uuid::parse_str(&raw) {
        Ok(u) if imgapi_domain::validate::is_lower_uuid(&raw) => Ok(u),
        _ => Err(ApiError::invalid_param(
            format!("invalid \"owner\": \"{raw}\" is not a UUID"),
            vec![FieldError::invalid("owner")],
        )),
    }
}

pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    if req.account().is_some() {
        return Err(operator_only());
    }
    Ok(ok_json(&svc::list(app).await?))
}

pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let owner = owner_arg(&req)?;
    if req.account().is_some_and(|a| a != owner.to_string()) {
        return Err(operator_only());
    }
    Ok(ok_json(&svc::quota_of(app, owner).await?))
}

pub async fn put(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    if req.account().is_some() {
        return Err(operator_only());
    }
    let owner = owner_arg(&req)?;
    let body = req.json_body().await?.unwrap_or_default();
    let invalid = |why: String| {
        ApiError::invalid_param(
            format!(
                "invalid quota: {why} (expected {{\"images\": N, \"bytes\": N}}, 0 = no limit)"
            ),
            vec![FieldError::invalid("body")],
        )
    };
    if let Some(unknown) = body.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["images", "bytes"].contains(&k.as_str()))
    }) {
        return Err(invalid(format!("unknown key \"{unknown}\"")));
    }
    let body: QuotaOverrideBody =
        serde_json::from_value(body).map_err(|e| invalid(e.to_string()))?;
    Ok(ok_json(&svc::put(app, owner, body).await?))
}

pub async fn delete(app: &AppState, req: Req) -> Result<Response, ApiError> {
    if req.account().is_some() {
        return Err(operator_only());
    }
    let owner = owner_arg(&req)?;
    svc::delete(app, owner).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}
