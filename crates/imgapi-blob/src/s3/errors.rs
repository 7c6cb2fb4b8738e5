//! What an S3 failure means for the caller, in one short line.
//!
//! `object_store` keeps the HTTP status and the S3 error document in a
//! private type; its text ("…status code: 404 Not Found: <?xml…><Code>…")
//! is all we can read, and it repeats itself once per wrapping layer. So the
//! status and the `<Code>`/`<Message>` of the document are picked out of
//! that text, and the line a caller sees is rebuilt from them.
//!
//! - connection failures, timeouts and 5xx answers (after the client's few
//!   fast retries) → [`BlobError::Unavailable`];
//! - `NoSuchBucket`, and 401/403 (`AccessDenied`, `InvalidAccessKeyId`,
//!   `SignatureDoesNotMatch`…) → [`BlobError::Inaccessible`], naming the
//!   bucket and the cause: retrying will not help until an operator acts;
//! - any other 404 → [`BlobError::NotFound`].

use object_store::client::{HttpError, HttpErrorKind};

use crate::{error_chain_deduped, BlobError};

/// The S3 error codes that mean "these credentials may not use the bucket".
const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
];

/// What an S3 answer said: its status and, when it sent one, the `<Code>`
/// and `<Message>` of its error document.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Answer {
    pub status: Option<u16>,
    pub reason: String,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl Answer {
    /// Read from the text of an error (its whole chain).
    pub(super) fn from_text(text: &str) -> Answer {
        let status_text = text
            .rfind("status code: ")
            .map(|i| &text[i + "status code: ".len()..]);
        let status = status_text
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse::<u16>().ok());
        let reason = status_text
            .and_then(|s| s.get(3..))
            .map(|s| s.split(':').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        Answer {
            status,
            reason,
            code: tag(text, "Code").map(unescape),
            message: tag(text, "Message").map(unescape),
        }
    }

    /// A raw answer (status and body).
    pub(super) fn from_response(status: http::StatusCode, body: &str) -> Answer {
        Answer {
            status: Some(status.as_u16()),
            reason: status.canonical_reason().unwrap_or("").to_owned(),
            code: tag(body, "Code").map(unescape),
            message: tag(body, "Message").map(unescape),
        }
    }

    /// `503 Service Unavailable: SlowDown: Please reduce your request rate`.
    fn summary(&self) -> Option<String> {
        let status = self.status?;
        let mut out = status.to_string();
        if !self.reason.is_empty() {
            out.push(' ');
            out.push_str(&self.reason);
        }
        for part in [&self.code, &self.message].into_iter().flatten() {
            out.push_str(": ");
            out.push_str(part);
        }
        Some(out)
    }

    fn is_server_error(&self) -> bool {
        // 501: the server lacks the call (e.g. ListMultipartUploads); not an outage.
        self.status
            .is_some_and(|s| (500..600).contains(&s) && s != 501)
    }

    /// Why the bucket cannot be used, when the answer says so.
    fn refusal(&self, bucket: &str) -> Option<String> {
        let code = self.code.as_deref();
        if code == Some("NoSuchBucket") {
            return Some(format!("bucket {bucket:?} does not exist"));
        }
        let denied = matches!(self.status, Some(401 | 403))
            || code.is_some_and(|c| DENIED_CODES.contains(&c));
        denied.then(|| {
            let why = match (code, self.status) {
                (Some(code), _) => code.to_owned(),
                (None, Some(status)) => format!("{status} {}", self.reason).trim().to_owned(),
                (None, None) => "denied".to_owned(),
            };
            format!("access to bucket {bucket:?} denied ({why})")
        })
    }
}

/// Is this a transport failure (connect, timeout, reset) somewhere in the
/// chain? Returns that layer.
fn transport<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a HttpError> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            if matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Request
                    | HttpErrorKind::Interrupted
            ) {
                return Some(http);
            }
        }
        current = err.source();
    }
    None
}

/// An `object_store` error of a call on `key` in `bucket`.
pub(super) fn map_err(e: object_store::Error, key: &str, bucket: &str) -> BlobError {
    let answer = Answer::from_text(&crate::error_chain(&e));
    if let Some(why) = answer.refusal(bucket) {
        return BlobError::Inaccessible(why);
    }
    if let object_store::Error::NotFound { .. } = e {
        return BlobError::NotFound(key.to_owned());
    }
    classify(&e, &answer, key)
}

fn classify(e: &(dyn std::error::Error + 'static), answer: &Answer, key: &str) -> BlobError {
    if let Some(http) = transport(e) {
        return BlobError::Unavailable(format!("S3: {}", error_chain_deduped(http)));
    }
    let what = answer.summary().unwrap_or_else(|| error_chain_deduped(e));
    if answer.is_server_error() {
        BlobError::Unavailable(format!("S3: {what}"))
    } else if key.is_empty() {
        BlobError::Io(std::io::Error::other(format!("S3: {what}")))
    } else {
        BlobError::Io(std::io::Error::other(format!("S3 ({key}): {what}")))
    }
}

/// A transport failure of a raw request (`what`: method and URL).
pub(super) fn http_error(e: &HttpError, what: &str) -> BlobError {
    let text = format!("S3 {what}: {}", error_chain_deduped(e));
    if transport(e).is_some() {
        BlobError::Unavailable(text)
    } else {
        BlobError::Io(std::io::Error::other(text))
    }
}

/// A raw request's unsuccessful answer (`what`: method and URL).
pub(super) fn response_error(
    status: http::StatusCode,
    body: &str,
    what: &str,
    bucket: &str,
) -> BlobError {
    let answer = Answer::from_response(status, body);
    if let Some(why) = answer.refusal(bucket) {
        return BlobError::Inaccessible(why);
    }
    if status == http::StatusCode::NOT_FOUND {
        return BlobError::NotFound(what.to_owned());
    }
    let text = format!(
        "S3 {what}: {}",
        answer.summary().unwrap_or_else(|| status.to_string())
    );
    if answer.is_server_error() {
        BlobError::Unavailable(text)
    } else {
        BlobError::Io(std::io::Error::other(text))
    }
}

/// Text of the first `<tag>…</tag>` in `xml`.
pub(super) fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

pub(super) fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_BUCKET: &str = "Generic S3 error: Error performing GET http://h/b?list-type=2 in 7ms - Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>Bucket not found: b</Message></Error>: Error performing…";

    #[test]
    fn reads_status_and_document() {
        let answer = Answer::from_text(NO_BUCKET);
        assert_eq!(answer.status, Some(404));
        assert_eq!(answer.reason, "Not Found");
        assert_eq!(answer.code.as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            answer.summary().as_deref(),
            Some("404 Not Found: NoSuchBucket: Bucket not found: b")
        );
        assert_eq!(
            answer.refusal("imgapi").as_deref(),
            Some("bucket \"imgapi\" does not exist")
        );
    }

    #[test]
    fn denials_name_their_code_or_status() {
        let signed = Answer::from_response(
            http::StatusCode::FORBIDDEN,
            "<Error><Code>SignatureDoesNotMatch</Code></Error>",
        );
        assert_eq!(
            signed.refusal("b").as_deref(),
            Some("access to bucket \"b\" denied (SignatureDoesNotMatch)")
        );
        // A HEAD answer has no body.
        let head = Answer::from_text("Server returned non-2xx status code: 403 Forbidden: ");
        assert_eq!(
            head.refusal("b").as_deref(),
            Some("access to bucket \"b\" denied (403 Forbidden)")
        );
        let missing_key = Answer::from_response(
            http::StatusCode::NOT_FOUND,
            "<Error><Code>NoSuchKey</Code></Error>",
        );
        assert_eq!(missing_key.refusal("b"), None);
    }

    #[test]
    fn server_errors_but_not_501_are_outages() {
        let slow = Answer::from_response(http::StatusCode::SERVICE_UNAVAILABLE, "");
        assert!(slow.is_server_error());
        let lacking = Answer::from_response(http::StatusCode::NOT_IMPLEMENTED, "");
        assert!(!lacking.is_server_error());
    }
}
