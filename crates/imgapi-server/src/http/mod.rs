//! HTTP layer: parse each request into a typed operation, authenticate it,
//! call a service, and map the result (or the error) to the wire.
//! Handlers call services; they never touch the stores directly.

pub mod auth;
pub mod conditional;
pub mod error;
pub mod openapi;
pub mod operation;
pub mod operations;
pub mod params;
pub mod query;
pub mod request;
pub mod response;
pub mod routes;
pub mod schemas;
pub mod signature;
pub mod version;

use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use http::{header, HeaderName, HeaderValue, Method, StatusCode};
use imgapi_domain::redact::{redact_text, redact_url};
use imgapi_types::RestCode;

use crate::app::App;
use auth::authenticate;
use error::{ApiError, ErrorCause};
use operation::Routed;
use operations::{method_not_allowed, Operation};
use query::QueryParams;
use request::Req;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
const X_RESPONSE_TIME: HeaderName = HeaderName::from_static("x-response-time");
const X_SERVER_NAME: HeaderName = HeaderName::from_static("x-server-name");

/// The axum application: every request goes through [`handle`].
pub fn app_router(app: App) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

/// Route, authenticate and run one request, then add the common headers of
/// api.md §1.2 and write one audit log line.
async fn handle(State(app): State<App>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .or_else(|| request.headers().get(X_REQUEST_ID))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = request.method().clone();
    let routed = Operation::route(&app, &method, request.uri().path());
    // Metrics: the endpoint's name (never the raw path) labels everything.
    let endpoint = if app.metrics.is_enabled() {
        std::borrow::Cow::Borrowed(endpoint_name(&routed, request.uri().query()))
    } else {
        std::borrow::Cow::Borrowed("")
    };
    let in_flight = app.metrics.request_started(&endpoint, &method);
    let request = request.map(|body| app.metrics.count_request_body(body, endpoint.clone()));
    let url = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let keep_alive = request.version() == http::Version::HTTP_11
        && !request
            .headers()
            .get(header::CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));

    // Set once the signature is verified, so an error answer after that
    // (and a panic) still names who asked.
    let caller = OnceLock::new();
    // A panic is a bug, but it must cost one request a 500, never the
    // connection or the process.
    let outcome = AssertUnwindSafe(route_request(&app, routed, request, &request_id, &caller))
        .catch_unwind()
        .await;
    let mut resp = match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let err = ApiError::internal("internal error", format!("handler panicked: {detail}"));
            err.into_response()
        }
    };
    let user = caller.get().map_or("-", String::as_str);
    if method == Method::HEAD {
        without_body(&mut resp);
    }
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&app.config.server_name) {
        headers.insert(header::SERVER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
    let elapsed = started.elapsed();
    headers.insert(
        X_RESPONSE_TIME,
        HeaderValue::from(elapsed.as_millis() as u64),
    );
    if let Ok(v) = HeaderValue::from_str(&app.hostname) {
        headers.insert(X_SERVER_NAME, v);
    }
    if keep_alive {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.insert(
            HeaderName::from_static("keep-alive"),
            HeaderValue::from_static("timeout=5"),
        );
    }
    drop(in_flight);
    let status = resp.status().as_u16();
    app.metrics
        .request_finished(endpoint.clone(), &method, status, elapsed);
    audit(&resp, &method, &url, &request_id, user, elapsed);
    resp.map(|body| app.metrics.count_response_body(body, endpoint))
}

/// HEAD: the GET answer's status and headers, no body. The length a GET
/// body would have is kept as `Content-Length` (RFC 9110 §9.3.2).
fn without_body(resp: &mut Response) {
    use axum::body::HttpBody as _;
    if !resp.headers().contains_key(header::CONTENT_LENGTH) && !resp.status().is_informational() {
        if let Some(len) = resp.body().size_hint().exact() {
            if len > 0 {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
        }
    }
    *resp.body_mut() = Body::empty();
}

/// One audit line. `caller` is `-` when no caller was verified (anonymous,
/// a refused signature, or an answer given before authentication). The URL
/// and the cause lose their credentials.
fn audit(
    resp: &Response,
    method: &Method,
    url: &str,
    request_id: &str,
    user: &str,
    elapsed: std::time::Duration,
) {
    let status = resp.status().as_u16();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let url = redact_url(url);
    let url = url.as_ref();
    let cause = resp
        .extensions()
        .get::<ErrorCause>()
        .map(|ErrorCause(cause)| redact_text(cause));
    match cause {
        Some(cause) if resp.status().is_server_error() => tracing::error!(
            target: "audit", %method, url, status, latency_ms, caller = user, req_id = request_id, cause = %cause, "request"
        ),
        Some(cause) => tracing::info!(
            target: "audit", %method, url, status, latency_ms, caller = user, req_id = request_id, cause = %cause, "request"
        ),
        None => tracing::info!(
            target: "audit", %method, url, status, latency_ms, caller = user, req_id = request_id, "request"
        ),
    }
}

async fn route_request(
    app: &App,
    routed: Routed<Operation>,
    request: Request,
    request_id: &str,
    caller_name: &OnceLock<String>,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let (op, args) = match routed {
        Routed::Found(op, args) => (op, args),
        Routed::MethodNotAllowed(allow) => return Err(method_not_allowed(allow, &parts.method)),
        Routed::NotFound => return Err(ApiError::not_found(format!("{path} does not exist"))),
    };
    let accept = parts
        .headers
        .get("accept-version")
        .and_then(|v| v.to_str().ok());
    let version = version::negotiate(accept).ok_or_else(|| {
        ApiError::new(
            RestCode::InvalidVersion,
            format!(
                "{} is not supported by {} {path}",
                accept.unwrap_or_default(),
                parts.method
            ),
        )
    })?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let caller = authenticate(
        app,
        &parts.method,
        path_and_query,
        &parts.headers,
        op.auth_policy(),
    )?;
    let _ = caller_name.set(caller.log_name().to_string());
    let url = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let req = Req {
        method: parts.method,
        query: QueryParams::parse(parts.uri.query()).declared(op.def().params),
        path,
        args,
        url,
        headers: parts.headers,
        version,
        caller,
        request_id: request_id.to_string(),
        state: std::sync::Arc::clone(app),
        body: std::sync::Mutex::new(Some(body)),
    };
    op.call(app, req).await
}

/// Unmatched paths, in metrics.
pub const NOT_FOUND: &str = "NotFound";
/// A matched path with a method it does not have, in metrics.
pub const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";

/// The endpoint name of a request (api.md §2's "Name" column), the `route`
/// label of the request metrics: a small, fixed set of values, never the
/// raw path.
pub fn endpoint_name(routed: &Routed<Operation>, query: Option<&str>) -> &'static str {
    match routed {
        Routed::Found(op, _) => op.def().endpoint_name(&QueryParams::parse(query)),
        Routed::MethodNotAllowed(_) => METHOD_NOT_ALLOWED,
        Routed::NotFound => NOT_FOUND,
    }
}

/// 404 for a malformed `:uuid` (api.md §1.10): the message quotes the URL.
pub fn parse_uuid(req: &Req, raw: &str) -> Result<uuid::Uuid, ApiError> {
    if imgapi_domain::validate::is_lower_uuid(raw) {
        if let Ok(u) = uuid::Uuid::parse_str(raw) {
            return Ok(u);
        }
    }
    Err(ApiError::not_found(format!("{} does not exist", req.url)))
}

/// 200 `{}`-style JSON convenience.
pub fn ok_json<T: serde::Serialize + ?Sized>(body: &T) -> Response {
    response::json(StatusCode::OK, body)
}
