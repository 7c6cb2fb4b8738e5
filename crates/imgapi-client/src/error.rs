//! [`ClientError`]: everything a client call can fail with.

use imgapi_types::{ErrorBody, FieldError};

/// An error from a client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status. `rest_code` and `message`
    /// come from the JSON error body (`{code, message[, errors]}`); when the
    /// body is not such JSON (e.g. a 412 on a file download, or a proxy's
    /// page), `rest_code` is empty and `message` is the body text or the
    /// status's reason phrase.
    #[error("{}", api_display(*.status, .rest_code, .message))]
    Api {
        status: u16,
        rest_code: String,
        message: String,
        errors: Vec<FieldError>,
    },
    /// Transport failure (connection, timeout, protocol).
    #[error("http error: {0}")]
    Http(#[from] reqwest::Error),
    /// Local file system failure.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Downloaded or uploaded bytes do not match the manifest.
    #[error("integrity check failed: expected {expected}, got {actual}")]
    Integrity { expected: String, actual: String },
    /// A response (or an argument) could not be decoded as expected.
    #[error("decode error: {0}")]
    Decode(String),
    /// A signing key could not be read or is not supported.
    #[error("signing key error: {0}")]
    Key(String),
    /// The private key is encrypted (passphrase-protected) and no
    /// passphrase was given. `key` names it (its path).
    #[error("{key}: the private key is encrypted (passphrase-protected): a passphrase is needed")]
    KeyEncrypted { key: String },
    /// The passphrase given does not decrypt the private key `key`.
    #[error("{key}: wrong passphrase for the encrypted private key")]
    KeyPassphrase { key: String },
    /// ssh-agent could not be used: not reachable, does not hold the key,
    /// or refused to sign.
    #[error("ssh-agent error: {0}")]
    Agent(String),
}

fn api_display(status: u16, rest_code: &str, message: &str) -> String {
    if rest_code.is_empty() {
        format!("HTTP {status}: {message}")
    } else {
        format!("{rest_code} ({status}): {message}")
    }
}

impl ClientError {
    /// Build an [`ClientError::Api`] from a status and a raw error body.
    pub fn from_body(status: u16, body: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => ClientError::Api {
                status,
                rest_code: b.code,
                message: b.message,
                errors: b.errors.unwrap_or_default(),
            },
            Err(_) => {
                let text = String::from_utf8_lossy(body).trim().to_string();
                let message = if text.is_empty() {
                    reqwest::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("error")
                        .to_string()
                } else {
                    text
                };
                ClientError::Api {
                    status,
                    rest_code: String::new(),
                    message,
                    errors: Vec::new(),
                }
            }
        }
    }

    /// The restCode of an API error (`None` for other errors).
    pub fn rest_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { rest_code, .. } if !rest_code.is_empty() => Some(rest_code),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Http(e) => e.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// True for a 404 (missing image, file, route).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when a signatures call failed because the server has no image
    /// signatures (an original IMGAPI, or one before the extension): a 404
    /// for the path itself (`/images/<uuid>/signatures does not exist`, or
    /// a 404 without an IMGAPI error body, e.g. from a plain file mirror),
    /// not one for a missing image (`image <uuid> not found`).
    pub fn is_signatures_unsupported(&self) -> bool {
        match self {
            ClientError::Api {
                status: 404,
                rest_code,
                message,
                ..
            } => rest_code.is_empty() || message.ends_with(" does not exist"),
            _ => false,
        }
    }

    /// What a [`crate::Client::changes`] error means to a follower of the
    /// change feed: `None` for any other error (see
    /// [`ClientError::is_transient`] for those worth retrying).
    pub fn feed_error(&self) -> Option<FeedError> {
        match self {
            ClientError::Api { status: 410, .. } => Some(FeedError::Expired),
            ClientError::Api { rest_code, .. } if rest_code == "ChangesExpired" => {
                Some(FeedError::Expired)
            }
            // An original IMGAPI has no `/changes` route: 404
            // ResourceNotFound "/changes does not exist".
            ClientError::Api { status: 404, .. } => Some(FeedError::NoFeed),
            _ => None,
        }
    }

    /// A failure that may pass by itself: the connection (refused, reset,
    /// timed out) or a 502/503/504 of the server or a proxy in front of it.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Http(e) => {
                e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
            }
            ClientError::Api { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}

/// Why `GET /changes` cannot go on from a cursor (docs/events.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedError {
    /// 410 ChangesExpired: the cursor is older than the retained log, or
    /// ahead of it (another database). Resynchronize (a full listing) and
    /// follow again from `changes(0, Some(0), None)`'s `next`.
    Expired,
    /// 404: the server has no change feed (an original IMGAPI).
    NoFeed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rest_body() {
        let body = br#"{"code":"ValidationFailed","message":"bad","errors":[{"field":"name","code":"MissingParameter"}]}"#;
        let e = ClientError::from_body(422, body);
        assert_eq!(e.rest_code(), Some("ValidationFailed"));
        match e {
            ClientError::Api { errors, .. } => assert_eq!(errors[0].field, "name"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn feed_errors() {
        let expired = ClientError::from_body(
            410,
            br#"{"code":"ChangesExpired","message":"since 3 is older than the change log"}"#,
        );
        assert_eq!(expired.feed_error(), Some(FeedError::Expired));
        let original = ClientError::from_body(
            404,
            br#"{"code":"ResourceNotFound","message":"/changes does not exist"}"#,
        );
        assert_eq!(original.feed_error(), Some(FeedError::NoFeed));
        let unavailable = ClientError::from_body(503, b"");
        assert_eq!(unavailable.feed_error(), None);
        assert!(unavailable.is_transient());
        assert!(!original.is_transient());
    }

    #[test]
    fn signatures_unsupported_is_a_missing_route_not_a_missing_image() {
        let route = ClientError::from_body(
            404,
            br#"{"code":"ResourceNotFound","message":"/images/2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11/signatures does not exist"}"#,
        );
        assert!(route.is_signatures_unsupported());
        assert!(ClientError::from_body(404, b"<html>Not Found</html>").is_signatures_unsupported());
        let image = ClientError::from_body(
            404,
            br#"{"code":"ResourceNotFound","message":"image 2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11 not found"}"#,
        );
        assert!(!image.is_signatures_unsupported());
        assert!(!ClientError::from_body(422, b"").is_signatures_unsupported());
    }

    #[test]
    fn non_json_body() {
        let e = ClientError::from_body(412, b"");
        assert_eq!(e.rest_code(), None);
        assert_eq!(e.to_string(), "HTTP 412: Precondition Failed");
    }
}
