//! Response builders: pretty JSON, images with ETags, bodiless responses.

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

/// JSON pretty-printed with 2-space indentation (api.md §1.1).
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec_pretty(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// 200-style JSON response from already serialised bytes.
pub fn json_bytes(status: StatusCode, bytes: bytes::Bytes) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Lower-case hex SHA-1 of the compact JSON of an image object.
pub fn etag_of(obj: &Map<String, Value>) -> String {
    hex::encode(Sha1::digest(
        imgapi_domain::serialize::compact_json(obj).as_bytes(),
    ))
}

/// 200 with an image object and its ETag.
pub fn image(obj: Map<String, Value>) -> Response {
    let etag = etag_of(&obj);
    let mut resp = json(StatusCode::OK, &obj);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// A response with no body and no Content-Type.
pub fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// 301 to `location` with `Content-Length: 0`.
pub fn redirect(location: &str) -> Response {
    let mut resp = empty(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = HeaderValue::from_bytes(location.as_bytes()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}
