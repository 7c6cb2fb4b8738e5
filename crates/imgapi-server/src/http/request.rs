//! The parsed request every handler receives: method, path, query, API
//! version, caller and the not-yet-read body.

use axum::body::Body;
use futures_util::TryStreamExt;
use http::{header, HeaderMap, Method};
use http_body_util::{BodyExt, Limited};
use imgapi_blob::ByteStream;
use imgapi_domain::serialize::SerializeOptions;
use imgapi_types::RestCode;
use serde_json::Value;

use super::auth::Caller;
use super::error::ApiError;
use super::query::QueryParams;
use super::version::ApiVersion;
use crate::app::AppState;

/// Largest JSON request body accepted (manifests with big tag objects fit).
pub const MAX_JSON_BODY: usize = 4 * 1024 * 1024;

/// End `stream` with a `TimedOut` error when no item arrives within `idle`.
fn with_idle_timeout<S>(
    stream: S,
    idle: std::time::Duration,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Unpin + 'static,
{
    futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        match tokio::time::timeout(idle, futures_util::StreamExt::next(&mut stream)).await {
            Ok(Some(item)) => Some((item, Some(stream))),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data received for {} s", idle.as_secs()),
                )),
                None,
            )),
        }
    })
}

/// Most a rejected upload is read (and discarded) so that its client,
/// still sending, receives the error response instead of a broken pipe.
const MAX_DRAIN_BYTES: u64 = 1 << 30;

/// An upload body that, when dropped unfinished (the request was refused
/// before or while reading it), keeps reading and discarding the rest in the
/// background, up to [`MAX_DRAIN_BYTES`]: HTTP/1.1 clients such as the
/// original's node client only read the answer once they have sent the
/// whole body.
struct DrainOnDrop {
    inner: Option<ByteStream>,
    finished: bool,
}

impl futures_util::Stream for DrainOnDrop {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let polled = inner.as_mut().poll_next(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.finished = true;
        }
        polled
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut rest) = self.inner.take().filter(|_| !self.finished) else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut drained = 0u64;
                while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut rest).await {
                    drained += chunk.len() as u64;
                    if drained > MAX_DRAIN_BYTES {
                        break;
                    }
                }
            });
        }
    }
}

pub struct Req {
    pub method: Method,
    /// Raw (still percent-encoded) path.
    pub path: String,
    /// The path's `{name}` segments, in template order (still
    /// percent-encoded).
    pub args: Vec<String>,
    /// Path and query as received.
    pub url: String,
    pub headers: HeaderMap,
    pub query: QueryParams,
    pub version: ApiVersion,
    pub caller: Caller,
    /// The request id (`x-request-id`).
    pub request_id: String,
    /// The server state, for work that outlives the handler (a streamed
    /// Docker import goes on when its client goes away).
    pub state: crate::app::App,
    /// Behind a mutex only so `&Req` is `Sync` (handler futures hold it
    /// across awaits); it is taken at most once.
    pub body: std::sync::Mutex<Option<Body>>,
}

impl Req {
    /// The account the request acts for (api.md §1.6): the signed user's own
    /// account when the user is mapped to one, else the `account` parameter.
    pub fn account(&self) -> Option<&str> {
        self.caller
            .account
            .as_deref()
            .or_else(|| self.query.get("account"))
    }

    /// Refuse a request made for an account (operator-only extension
    /// endpoints): 403 OperatorOnly.
    pub fn operator_only(&self) -> Result<(), ApiError> {
        match self.account() {
            Some(_) => Err(ApiError::new(
                RestCode::OperatorOnly,
                "this endpoint may only be called by an operator",
            )),
            None => Ok(()),
        }
    }

    /// The query parameter `name` as an integer from 0 to `max`, else 422
    /// InvalidParameter naming it.
    pub fn integer_param(&self, name: &str, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(raw) = self.query.get(name) else {
            return Ok(None);
        };
        match raw.parse::<u64>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(ApiError::invalid_param(
                format!("invalid \"{name}\": \"{raw}\" is not an integer from 0 to {max}"),
                vec![imgapi_types::FieldError::invalid(name)],
            )),
        }
    }

    /// A lower-case uuid named `name` (`value`: from the query or the path),
    /// else 422 InvalidParameter naming it.
    pub fn uuid_param(name: &str, value: &str) -> Result<uuid::Uuid, ApiError> {
        match uuid::Uuid::parse_str(value) {
            Ok(u) if imgapi_domain::validate::is_lower_uuid(value) => Ok(u),
            _ => Err(ApiError::invalid_param(
                format!("invalid \"{name}\": \"{value}\" is not a UUID"),
                vec![imgapi_types::FieldError::invalid(name)],
            )),
        }
    }

    /// The optional `owner` query parameter, a lower-case uuid.
    pub fn owner_param(&self) -> Result<Option<uuid::Uuid>, ApiError> {
        self.query
            .get("owner")
            .map(|raw| Self::uuid_param("owner", raw))
            .transpose()
    }

    /// The `i`-th `{name}` segment of the path (empty if the template has
    /// none there).
    pub fn arg(&self, i: usize) -> String {
        self.args.get(i).cloned().unwrap_or_default()
    }

    pub fn header(&self, name: &header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `scheme://host[:port]` as the client reached this server, for
    /// absolute URLs in answers: the scheme from `X-Forwarded-Proto`
    /// (`http`/`https`, as a TLS-terminating proxy sets it), else `https`
    /// when this server speaks TLS; the host from `Host`. `None` when `Host`
    /// is missing or not a plain host and port (never echo odd bytes).
    pub fn external_base_url(&self, tls: bool) -> Option<String> {
        let host = self
            .header(&header::HOST)
            .map(str::trim)
            .filter(|h| !h.is_empty() && h.bytes().all(is_host_byte))?;
        let scheme = self
            .header(&header::HeaderName::from_static("x-forwarded-proto"))
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https")
            .unwrap_or_else(|| if tls { "https" } else { "http" }.to_string());
        Some(format!("{scheme}://{host}"))
    }

    /// `Content-Length` when present and numeric (a non-numeric one is ignored).
    pub fn content_length(&self) -> Option<u64> {
        self.header(&header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse().ok())
    }

    fn is_json(&self) -> bool {
        self.header(&header::CONTENT_TYPE)
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|mt| mt.trim().eq_ignore_ascii_case("application/json"))
    }

    /// The JSON body under the original's rules (api.md §1.1): parsed only
    /// with `Content-Type: application/json` and a non-empty body.
    pub async fn json_body(&mut self) -> Result<Option<Value>, ApiError> {
        let Some(body) = self.take_body() else {
            return Ok(None);
        };
        if !self.is_json() {
            return Ok(None);
        }
        let bytes = match Limited::new(body, MAX_JSON_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::new(
                    RestCode::RequestEntityTooLarge,
                    format!("request body exceeds the maximum of {MAX_JSON_BODY} bytes"),
                ))
            }
            Err(e) => {
                return Err(ApiError::new(
                    RestCode::BadRequestError,
                    format!("error reading request body: {e}"),
                ))
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ApiError::new(RestCode::InvalidContent, format!("Invalid JSON: {e}")))
    }

    /// The body as a byte stream for uploads (errors become io::Error so
    /// a client disconnect reaches the blob store as a source failure). A
    /// client that sends nothing for `idle` fails the stream the same way.
    pub fn body_stream(&mut self, idle: std::time::Duration) -> ByteStream {
        let body = self.take_body().unwrap_or_else(Body::empty);
        let chunks = TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
        // A body announced bigger than we would drain is cut off at once.
        let drain = self.content_length().is_none_or(|cl| cl <= MAX_DRAIN_BYTES);
        Box::pin(DrainOnDrop {
            inner: Some(Box::pin(with_idle_timeout(chunks, idle))),
            finished: !drain,
        })
    }

    fn take_body(&mut self) -> Option<Body> {
        match self.body.get_mut() {
            Ok(body) => body.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    pub fn serialize_options(&self, app: &AppState, admin_fields: bool) -> SerializeOptions {
        SerializeOptions {
            mode: app.config.mode,
            channels: self.version.v2,
            admin_fields,
        }
    }
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
}
