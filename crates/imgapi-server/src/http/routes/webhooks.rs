//! Webhook endpoints (an extension, docs/webhooks.md): `/webhooks` and
//! `/webhooks/{id}` (`?action=test`, `?action=resume`). Operators only.

use axum::response::Response;
use http::StatusCode;
use imgapi_types::FieldError;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response;
use crate::service::webhooks as svc;

/// ListWebhooks.
pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let hooks = svc::list(app).await?;
    Ok(response::json(StatusCode::OK, &hooks))
}

/// AddWebhook.
pub async fn add(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let body = req.json_body().await?;
    let hook = svc::add(app, body).await?;
    Ok(response::json(StatusCode::CREATED, &hook))
}

/// GetWebhook.
pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let hook = svc::get(app, &req.arg(0)).await?;
    Ok(response::json(StatusCode::OK, &hook))
}

/// TestWebhook (`?action=test`) and ResumeWebhook (`?action=resume`).
pub async fn action(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let id = req.arg(0);
    match req.query.get("action") {
        Some("test") => {
            let result = svc::test(app, &id).await?;
            Ok(response::json(StatusCode::OK, &result))
        }
        Some("resume") => {
            let body = req.json_body().await?;
            let hook = svc::resume(app, &id, body).await?;
            Ok(response::json(StatusCode::OK, &hook))
        }
        other => Err(ApiError::invalid_param(
            format!(
                "\"{}\" is not a valid action (use action=test or action=resume)",
                other.unwrap_or_default()
            ),
            vec![FieldError::invalid("action")],
        )),
    }
}

/// DeleteWebhook.
pub async fn delete(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    svc::delete(app, &req.arg(0)).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}
