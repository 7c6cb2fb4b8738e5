//! Registry credentials from the request headers, as the Docker Engine API
//! passes them: `x-registry-auth` (base64 JSON `{username, password}` or
//! `{identitytoken}`) and `x-registry-config` (base64 JSON map registry →
//! the same). Unreadable headers are ignored, as the original ignores them.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::reference::{RepoRef, DOCKER_HUB};
use crate::service::ServiceError;

/// Docker's legacy key for Docker Hub in a credentials map.
const DOCKER_HUB_LEGACY_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

fn decode(header: &str) -> Option<Value> {
    let trimmed = header.trim();
    let engine = base64::engine::general_purpose::STANDARD;
    let url_engine = base64::engine::general_purpose::URL_SAFE;
    let bytes = engine
        .decode(trimmed)
        .or_else(|_| url_engine.decode(trimmed))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The credentials for `repo` given by the headers: `x-registry-auth` wins
/// over the entry of `x-registry-config` for the repo's registry.
pub fn from_headers(
    registry_auth: Option<&str>,
    registry_config: Option<&str>,
    repo: Option<&RepoRef>,
) -> Result<Option<Credentials>, ServiceError> {
    let mut entry: Option<Value> = None;
    if let (Some(Value::Object(map)), Some(repo)) = (registry_config.and_then(decode), repo) {
        entry = lookup(&map, &repo.index);
    }
    if let Some(auth) = registry_auth.and_then(decode) {
        entry = Some(auth);
    }
    let Some(entry) = entry.and_then(|v| serde_json::from_value::<AuthEntry>(v).ok()) else {
        return Ok(None);
    };
    if entry.identitytoken.is_some_and(|t| !t.is_empty()) {
        return Err(ServiceError::NotImplemented(
            "OAuth to Docker registry is not yet supported, please \"docker logout\" and \"docker login\" and try again".into(),
        ));
    }
    Ok(match (entry.username, entry.password) {
        (Some(username), password) if !username.is_empty() => Some(Credentials {
            username,
            password: password.unwrap_or_default(),
        }),
        _ => None,
    })
}

fn lookup(map: &Map<String, Value>, index: &str) -> Option<Value> {
    if let Some(v) = map.get(index) {
        return Some(v.clone());
    }
    if index == DOCKER_HUB {
        return map.get(DOCKER_HUB_LEGACY_KEY).cloned();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::service::docker::reference::parse_repo_and_ref;

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(v.to_string())
    }

    #[test]
    fn auth_header_and_config_map() {
        let repo = parse_repo_and_ref("127.0.0.1:5000/ab/c").unwrap();
        let auth = b64(&serde_json::json!({"username": "u", "password": "p"}));
        let got = from_headers(Some(&auth), None, Some(&repo))
            .unwrap()
            .unwrap();
        assert_eq!((got.username.as_str(), got.password.as_str()), ("u", "p"));
        let config =
            b64(&serde_json::json!({"127.0.0.1:5000": {"username": "c", "password": "d"}}));
        let got = from_headers(None, Some(&config), Some(&repo))
            .unwrap()
            .unwrap();
        assert_eq!(got.username, "c");
        let hub = parse_repo_and_ref("busybox").unwrap();
        let legacy =
            b64(&serde_json::json!({DOCKER_HUB_LEGACY_KEY: {"username": "h", "password": "x"}}));
        assert_eq!(
            from_headers(None, Some(&legacy), Some(&hub))
                .unwrap()
                .unwrap()
                .username,
            "h"
        );
        assert_eq!(from_headers(Some("%%%"), None, Some(&repo)).unwrap(), None);
        let token = b64(&serde_json::json!({"identitytoken": "t"}));
        assert!(matches!(
            from_headers(Some(&token), None, Some(&repo)),
            Err(ServiceError::NotImplemented(_))
        ));
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
