//! AdminImportDockerImage and AdminPushDockerImage (api.md §5.26, §5.27):
//! the checks answer as usual; then a 200 whose body is the operation's
//! progress stream. The work runs in its own task, so it finishes even if
//! the client goes away; its failure is the stream's last message.

use std::future::Future;

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::parse_uuid;
use crate::http::request::Req;
use crate::service::docker::events::{EventStream, Events};
use crate::service::docker::{pull, push as push_svc};
use crate::service::{load_image, ServiceError};

const REGISTRY_AUTH: header::HeaderName = header::HeaderName::from_static("x-registry-auth");
const REGISTRY_CONFIG: header::HeaderName = header::HeaderName::from_static("x-registry-config");

/// The 200 answer streaming `events`.
pub(super) fn stream_response(events: EventStream) -> Response {
    let body = futures_util::stream::unfold(events, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::io::Error>(line), rx))
    });
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Run `work` in its own task; a failure becomes the last message. The
/// audit line of the request was written when the stream started, so the
/// outcome gets a line of its own.
pub(super) fn spawn_stream<F>(events: Events, id_first: bool, what: Outcome, work: F)
where
    F: Future<Output = Result<(), ServiceError>> + Send + 'static,
{
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let result = work.await;
        let seconds = started.elapsed().as_secs_f64();
        let Outcome {
            operation,
            req_id,
            target,
        } = what;
        match result {
            Ok(()) => {
                tracing::info!(
                    operation,
                    req_id,
                    target,
                    seconds,
                    "progress stream finished"
                )
            }
            Err(e) => {
                let api = ApiError::from(e);
                tracing::warn!(operation, req_id, target, seconds, code = api.code.as_str(),
                    message = %api.message, cause = api.cause.as_deref().unwrap_or(""), "progress stream failed");
                events.error(api.code.as_str(), &api.client_message(), id_first);
            }
        }
    });
}

/// What the outcome line names.
pub(super) struct Outcome {
    pub(super) operation: &'static str,
    pub(super) req_id: String,
    /// The repository (import), `repo:tag` (push) or LXD alias.
    pub(super) target: String,
}

/// AdminImportDockerImage.
pub async fn import(req: &Req, channel: Option<&str>) -> Result<Response, ApiError> {
    let params = pull::ImportDockerParams {
        account_given: req.account().is_some(),
        repo: req.query.get("repo"),
        tag: req.query.get("tag"),
        digest: req.query.get("digest"),
        public: req.query.get("public"),
        registry_auth: req.header(&REGISTRY_AUTH),
        registry_config: req.header(&REGISTRY_CONFIG),
    };
    let import = pull::validate(params, channel)?;
    let (events, stream) = Events::new(import.repo.canonical_name.clone());
    let state = req.state.clone();
    let request_id = req.request_id.clone();
    let sink = events.clone();
    let what = Outcome {
        operation: "AdminImportDockerImage",
        req_id: request_id.clone(),
        target: import.repo.local_with_reference(),
    };
    spawn_stream(events, true, what, async move {
        pull::run(&state, import, &request_id, &sink).await
    });
    Ok(stream_response(stream))
}

/// AdminPushDockerImage.
pub async fn push(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    let body = req.json_body().await?;
    let loaded = load_image(app, uuid, req.account(), None).await?;
    loaded.ensure_owner()?;
    let params = push_svc::PushParams {
        repo_and_tag: req.query.get("repoAndTag"),
        registry_auth: req.header(&REGISTRY_AUTH),
        body,
    };
    let push = push_svc::validate(loaded.stored.image, params)?;
    let (events, stream) = Events::new(req.request_id.clone());
    let state = req.state.clone();
    let sink = events.clone();
    let what = Outcome {
        operation: "AdminPushDockerImage",
        req_id: req.request_id.clone(),
        target: push.target(),
    };
    spawn_stream(events, false, what, async move {
        push_svc::run(&state, push, &sink).await
    });
    Ok(stream_response(stream))
}
