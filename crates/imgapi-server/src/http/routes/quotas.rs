//! ListQuotas, GetQuota, PutQuota, DeleteQuota — `/quotas[/{owner}]` (an
//! extension, docs/lifecycle.md "Quotas"). Operators only, except that an
//! owner may read its own quota.

use axum::response::Response;
use http::StatusCode;
use imgapi_types::{FieldError, QuotaOverrideBody};
use uuid::Uuid;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::{ok_json, response};
use crate::service::quotas as svc;

fn owner_arg(req: &Req) -> Result<Uuid, ApiError> {
    Req::uuid_param("owner", &req.arg(0))
}

pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    Ok(ok_json(&svc::list(app).await?))
}

pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let owner = owner_arg(&req)?;
    // An owner may read its own quota.
    if req.account() != Some(owner.to_string().as_str()) {
        req.operator_only()?;
    }
    Ok(ok_json(&svc::quota_of(app, owner).await?))
}

pub async fn put(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
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
    req.operator_only()?;
    let owner = owner_arg(&req)?;
    svc::delete(app, owner).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}
