//! AdminGetUsage — `GET /usage[?owner=<uuid>]` (an extension): storage per
//! owner and billing tag, for billing. Operators only.

use axum::response::Response;
use imgapi_types::{FieldError, RestCode};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::ok_json;
use crate::http::request::Req;
use crate::service::{quotas, usage};

pub async fn get_usage(app: &AppState, req: Req) -> Result<Response, ApiError> {
    if req.account().is_some() {
        return Err(ApiError::new(
            RestCode::OperatorOnly,
            "this endpoint may only be called by an operator",
        ));
    }
    let owner = match req.query.get("owner") {
        None => None,
        Some(raw) => match uuid::Uuid::parse_str(raw) {
            Ok(u) if imgapi_domain::validate::is_lower_uuid(raw) => Some(u),
            _ => {
                return Err(ApiError::invalid_param(
                    format!("invalid \"owner\": \"{raw}\" is not a UUID"),
                    vec![FieldError::invalid("owner")],
                ))
            }
        },
    };
    let found = usage::usage(app.meta.as_ref(), owner).await?;
    let bin = usage::bin_usage(app.meta.as_ref(), owner).await?;
    let answer =
        quotas::usage_with_quotas(&app.config.quotas, app.meta.as_ref(), &found, &bin).await?;
    Ok(ok_json(&answer))
}
