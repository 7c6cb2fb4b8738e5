//! AdminImportLxdImage: the alias is checked as usual; then a 200 whose
//! body is the import's progress stream (the original reports an unknown
//! remote or alias there too). The work runs in its own task.

use axum::response::Response;

use super::docker::{spawn_stream, stream_response, Outcome};
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::service::docker::events::Events;
use crate::service::lxd::import;

/// AdminImportLxdImage.
pub async fn import(req: &Req, channel: Option<&str>) -> Result<Response, ApiError> {
    let lxd = import::validate(req.account().is_some(), req.query.get("alias"), channel)?;
    let (events, stream) = Events::ending_with("alias", lxd.alias.full.clone());
    let state = req.state.clone();
    let sink = events.clone();
    let what = Outcome {
        operation: "AdminImportLxdImage",
        req_id: req.request_id.clone(),
        target: lxd.alias.full.clone(),
    };
    spawn_stream(events, true, what, async move {
        import::run(&state, lxd, &sink).await
    });
    Ok(stream_response(stream))
}
