//! The change feed (an extension, docs/events.md): `GET /changes`.

use std::time::Duration;

use axum::response::Response;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::ok_json;
use crate::http::request::Req;
use crate::service::changes::{self as svc, ChangesQuery, DEFAULT_LIMIT, MAX_LIMIT, MAX_WAIT_SECS};
use crate::service::{parse_account, resolve_channel, ChannelRule};

/// ListChanges.
pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let account = parse_account(req.account())?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let since = req.integer_param("since", i64::MAX as u64)?.unwrap_or(0);
    let limit = req
        .integer_param("limit", u64::from(MAX_LIMIT))?
        .map_or(DEFAULT_LIMIT, |n| u32::try_from(n).unwrap_or(MAX_LIMIT));
    let wait = req.integer_param("wait", MAX_WAIT_SECS)?.unwrap_or(0);
    let query = ChangesQuery {
        since: i64::try_from(since).unwrap_or(i64::MAX),
        limit,
        wait: Duration::from_secs(wait),
        account,
        channel,
    };
    Ok(ok_json(&svc::list(app, &query).await?))
}
