//! AdminGetUsage — `GET /usage[?owner=<uuid>]` (an extension): storage per
//! owner and billing tag, for billing. Operators only.

use axum::response::Response;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::ok_json;
use crate::http::request::Req;
use crate::service::{quotas, usage};

pub async fn get_usage(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let owner = req.owner_param()?;
    let found = usage::usage(app.meta.as_ref(), owner).await?;
    let bin = usage::bin_usage(app.meta.as_ref(), owner).await?;
    let answer =
        quotas::usage_with_quotas(&app.config.quotas, app.meta.as_ref(), &found, &bin).await?;
    Ok(ok_json(&answer))
}
