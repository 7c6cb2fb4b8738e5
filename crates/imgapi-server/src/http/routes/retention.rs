//! Retention rules and runs (an extension, docs/lifecycle.md "Retention
//! rules"): `/retention/rules[/{id}]` and `/retention/runs`. Operators
//! only.

use axum::response::Response;
use http::StatusCode;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response;
use crate::service::import::jobs::job_object;
use crate::service::{parse_bool_param, retention as svc};

/// ListRetentionRules.
pub async fn list_rules(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let rules = svc::list_rules(app).await?;
    Ok(response::json(StatusCode::OK, &rules))
}

/// AddRetentionRule.
pub async fn add_rule(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let body = req.json_body().await?;
    let rule = svc::add_rule(app, body).await?;
    Ok(response::json(StatusCode::CREATED, &rule))
}

/// DeleteRetentionRule.
pub async fn delete_rule(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    svc::delete_rule(app, &req.arg(0)).await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// ListRetentionRuns.
pub async fn list_runs(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    let runs: Vec<_> = svc::list_runs(app).await?.iter().map(job_object).collect();
    Ok(response::json(StatusCode::OK, &runs))
}

/// RunRetention: the plan with `dry_run=true`, else a queued job.
pub async fn run(app: &AppState, req: Req) -> Result<Response, ApiError> {
    req.operator_only()?;
    if parse_bool_param("dry_run", req.query.get("dry_run"))?.unwrap_or(false) {
        let plan = svc::dry_run(app).await?;
        return Ok(response::json(StatusCode::OK, &plan));
    }
    let job = svc::start_run(app).await?;
    Ok(response::json(StatusCode::ACCEPTED, &job_object(&job)))
}
