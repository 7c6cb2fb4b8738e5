//! Conditional requests (api.md §1.8, restify `conditionalRequest` semantics).

use std::time::SystemTime;

use http::{header, HeaderMap, Method};
use imgapi_types::RestCode;

use super::error::ApiError;

/// Outcome of the precondition checks.
#[derive(Debug, PartialEq, Eq)]
pub enum Precondition {
    Proceed,
    NotModified,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn clean_tag(tag: &str) -> &str {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"')
}

fn list_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(clean_tag)
        .any(|t| t == "*" || t == etag)
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Evaluate If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since
/// in that order against `etag` and (when known) `last_modified`.
pub fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    etag: &str,
    last_modified: Option<SystemTime>,
) -> Result<Precondition, ApiError> {
    let is_get = method == Method::GET || method == Method::HEAD;
    if let Some(h) = header_str(headers, &header::IF_MATCH) {
        if !list_matches(h, etag) {
            return Err(ApiError::new(
                RestCode::PreconditionFailed,
                format!("if-match '{h}' didn't match etag '{etag}'"),
            ));
        }
    }
    if let Some(h) = header_str(headers, &header::IF_NONE_MATCH) {
        if list_matches(h, etag) {
            if is_get {
                return Ok(Precondition::NotModified);
            }
            return Err(ApiError::new(
                RestCode::PreconditionFailed,
                format!("if-none-match '{h}' matched etag '{etag}'"),
            ));
        }
    }
    let Some(modified) = last_modified else {
        return Ok(Precondition::Proceed);
    };
    // HTTP dates have second precision.
    let modified_secs = truncate_to_secs(modified);
    if let Some(h) = header_str(headers, &header::IF_MODIFIED_SINCE) {
        if let Ok(since) = httpdate::parse_http_date(h) {
            if modified_secs <= since {
                if is_get {
                    return Ok(Precondition::NotModified);
                }
                return Err(ApiError::new(
                    RestCode::PreconditionFailed,
                    format!(
                        "object was modified at '{}'; if-modified-since '{h}'",
                        http_date(modified)
                    ),
                ));
            }
        }
    }
    if let Some(h) = header_str(headers, &header::IF_UNMODIFIED_SINCE) {
        if let Ok(since) = httpdate::parse_http_date(h) {
            if modified_secs > since {
                return Err(ApiError::new(
                    RestCode::PreconditionFailed,
                    format!(
                        "object was modified at '{}'; if-unmodified-since '{h}'",
                        http_date(modified)
                    ),
                ));
            }
        }
    }
    Ok(Precondition::Proceed)
}

fn truncate_to_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hdrs(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn if_match_and_none_match() {
        let get = Method::GET;
        let post = Method::POST;
        let ok = evaluate(
            &post,
            &hdrs(header::IF_MATCH, "\"abc\", W/\"x\""),
            "abc",
            None,
        );
        assert_eq!(ok.ok(), Some(Precondition::Proceed));
        let bad = evaluate(&post, &hdrs(header::IF_MATCH, "zzz"), "abc", None);
        assert_eq!(
            bad.err().map(|e| e.message),
            Some("if-match 'zzz' didn't match etag 'abc'".to_string())
        );
        let nm = evaluate(&get, &hdrs(header::IF_NONE_MATCH, "W/\"abc\""), "abc", None);
        assert_eq!(nm.ok(), Some(Precondition::NotModified));
        let nm_post = evaluate(&post, &hdrs(header::IF_NONE_MATCH, "*"), "abc", None);
        assert_eq!(
            nm_post.err().map(|e| e.message),
            Some("if-none-match '*' matched etag 'abc'".to_string())
        );
    }

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_000_500);
        let h = hdrs(header::IF_MODIFIED_SINCE, "Mon, 12 Jan 1970 13:46:40 GMT");
        assert_eq!(
            evaluate(&Method::GET, &h, "e", Some(t)).ok(),
            Some(Precondition::NotModified)
        );
        let h = hdrs(header::IF_UNMODIFIED_SINCE, "Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(evaluate(&Method::GET, &h, "e", Some(t)).is_err());
    }
}
