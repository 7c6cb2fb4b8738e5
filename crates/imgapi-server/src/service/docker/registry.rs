//! A client of the Docker Registry HTTP API V2 (the OCI distribution API):
//! manifests, blobs, blob uploads; anonymous, HTTP Basic and Bearer token
//! authentication (the challenge flow Docker Hub uses).
//!
//! Transport: https, or plain http for the registries listed in `[docker]
//! insecure_registries`; the `[remote]` address rules (private addresses,
//! allowed hosts, redirects) apply to registries and token realms alike,
//! through the same checked resolver as the other outbound requests.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use http::{Method, StatusCode};
use imgapi_blob::{error_chain_deduped, ByteStream};
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use super::credentials::Credentials;
use super::reference::RepoRef;
use crate::config::{DockerConfig, RemoteConfig};
use crate::service::import::fetch::{
    self, checked_redirects, client_builder, request_error, tls_config, FetchError,
};
use crate::service::import::policy::{CheckedResolver, Policy};

/// Manifest media types this client reads.
pub mod media {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
}

/// Largest manifest or config read.
const MAX_DOCUMENT: usize = 4 * 1024 * 1024;

/// What a registry request can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The `[remote]` policy or `[docker] insecure_registries` refused it.
    #[error("{0}")]
    Refused(String),
    /// Authentication failed or the token does not grant the access.
    #[error("{0}")]
    Unauthorized(String),
    /// Manifest or blob unknown.
    #[error("{0}")]
    NotFound(String),
    /// Another non-2xx answer.
    #[error("{0}")]
    Status(String),
    /// Connecting, TLS, a timeout, a broken transfer.
    #[error("{0}")]
    Transport(String),
    /// A document that is not what the registry said it is.
    #[error("{0}")]
    BadDigest(String),
}

impl From<FetchError> for RegistryError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Refused(r) => RegistryError::Refused(r.0),
            other => RegistryError::Transport(other.to_string()),
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The registry HTTP client of the server (one per process).
pub struct RegistryClient {
    http: reqwest::Client,
    policy: Arc<Policy>,
    insecure: Arc<Vec<String>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

fn is_insecure(insecure: &[String], url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let with_port = match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    insecure
        .iter()
        .any(|entry| entry.eq_ignore_ascii_case(&with_port) || entry.eq_ignore_ascii_case(host))
}

impl RegistryClient {
    /// Build the client. Fails only if TLS cannot be set up.
    pub fn new(
        remote: &RemoteConfig,
        docker: &DockerConfig,
        user_agent: &str,
    ) -> Result<RegistryClient, String> {
        let policy = Arc::new(Policy::from_config(remote));
        let insecure = Arc::new(
            docker
                .insecure_registries
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect::<Vec<_>>(),
        );
        let redirect_policy = {
            let insecure = Arc::clone(&insecure);
            checked_redirects(Arc::clone(&policy), move |url| is_insecure(&insecure, url))
        };
        let http = client_builder(remote, user_agent, tls_config()?)
            .redirect(redirect_policy)
            .dns_resolver(CheckedResolver {
                policy: Arc::clone(&policy),
            })
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(RegistryClient {
            http,
            policy,
            insecure,
        })
    }

    /// A session with the registry of `repo`, for `actions` (`pull`,
    /// `push`) on it; `mount_from` adds pull access to those repositories
    /// of the same registry (cross-repository blob mounts).
    pub fn session(
        &self,
        repo: &RepoRef,
        credentials: Option<Credentials>,
        actions: &str,
        mount_from: &[String],
    ) -> Result<Session<'_>, RegistryError> {
        let host = repo.api_host();
        let insecure = self
            .insecure
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(&repo.index));
        let scheme = match (repo.scheme.as_deref(), insecure) {
            (Some("http"), false) => {
                return Err(RegistryError::Refused(format!(
                    "registry {} is reached over http only when it is listed in [docker] insecure_registries",
                    repo.index
                )))
            }
            (Some("https"), _) => "https",
            (_, true) => "http",
            (_, false) => "https",
        };
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| RegistryError::Refused(format!("invalid registry {host}: {e}")))?;
        self.policy
            .check_url_with_http(&base, insecure)
            .map_err(|r| RegistryError::Refused(r.0))?;
        let mut scopes = vec![format!("repository:{}:{actions}", repo.remote_name)];
        scopes.extend(
            mount_from
                .iter()
                .filter(|from| **from != repo.remote_name)
                .map(|from| format!("repository:{from}:pull")),
        );
        Ok(Session {
            client: self,
            base,
            insecure,
            repo: repo.remote_name.clone(),
            registry: repo.index.clone(),
            credentials,
            scopes,
            authorization: Mutex::new(None),
        })
    }
}

/// A manifest as fetched: its exact bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: String,
}

/// Requests to one repository of one registry, with the authorization
/// obtained on the first challenge kept for the following requests.
pub struct Session<'a> {
    client: &'a RegistryClient,
    base: Url,
    insecure: bool,
    repo: String,
    registry: String,
    credentials: Option<Credentials>,
    scopes: Vec<String>,
    authorization: Mutex<Option<HeaderValue>>,
}

/// A challenge of a `WWW-Authenticate` header.
#[derive(Debug, Default, PartialEq, Eq)]
struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse `Bearer realm="…",service="…",scope="…"` (quoted values may
/// hold commas).
fn parse_challenge(header: &str) -> Challenge {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.push((key, value.to_string()));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Challenge {
        scheme: scheme.to_string(),
        params,
    }
}

/// The first `errors[].message` (or `.code`) of a registry error body.
fn registry_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let first = v.get("errors")?.as_array()?.first()?;
    first
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .or_else(|| first.get("code").and_then(Value::as_str))
        .map(str::to_string)
}

async fn read_limited(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, RegistryError> {
    fetch::read_limited(resp, max)
        .await
        .map_err(RegistryError::from)
}

impl Session<'_> {
    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| RegistryError::Refused(format!("invalid registry URL {path}: {e}")))
    }

    /// Send a request (built anew for a retry), answering one
    /// authentication challenge on the way.
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut answered_challenge = false;
        loop {
            let mut request = build(&self.client.http);
            if let Some(auth) = self.authorization.lock().await.clone() {
                request = request.header(AUTHORIZATION, auth);
            }
            let resp = request
                .send()
                .await
                .map_err(|e| RegistryError::from(request_error(e)))?;
            if resp.status() != StatusCode::UNAUTHORIZED || answered_challenge {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(parse_challenge)
                .unwrap_or_default();
            self.authenticate(&challenge).await?;
            answered_challenge = true;
        }
    }

    /// Obtain the authorization a challenge asks for.
    async fn authenticate(&self, challenge: &Challenge) -> Result<(), RegistryError> {
        let header = if challenge.scheme.eq_ignore_ascii_case("basic") {
            let Some(creds) = &self.credentials else {
                return Err(RegistryError::Unauthorized(format!(
                    "registry {} requires authentication (no credentials given)",
                    self.registry
                )));
            };
            let header = basic(creds);
            self.check_basic_login(&header).await?;
            header
        } else if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let token = self.token(challenge).await?;
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                RegistryError::Unauthorized("the token server sent an invalid token".into())
            })?
        } else {
            return Err(RegistryError::Unauthorized(format!(
                "unsupported auth scheme: \"{}\"",
                challenge.scheme
            )));
        };
        *self.authorization.lock().await = Some(header);
        Ok(())
    }

    /// Basic credentials are checked on the registry's base endpoint
    /// first (as the Docker client logs in), so that wrong credentials are
    /// told apart from a repository they cannot see.
    async fn check_basic_login(&self, header: &HeaderValue) -> Result<(), RegistryError> {
        let url = self.url("v2/")?;
        let resp = self
            .client
            .http
            .get(url)
            .header(AUTHORIZATION, header.clone())
            .send()
            .await
            .map_err(|e| RegistryError::from(request_error(e)))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Unauthorized(format!(
                "login to registry {} failed: incorrect username or password",
                self.registry
            )));
        }
        Ok(())
    }

    /// The token flow: GET realm?service=…&scope=… (with Basic
    /// credentials when there are some).
    async fn token(&self, challenge: &Challenge) -> Result<String, RegistryError> {
        let Some(realm) = challenge.param("realm") else {
            return Err(RegistryError::Unauthorized(
                "the registry's Bearer challenge has no realm".into(),
            ));
        };
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::Unauthorized(format!("invalid token realm {realm}: {e}"))
        })?;
        let http_ok = self.insecure || is_insecure(&self.client.insecure, &url);
        self.client
            .policy
            .check_url_with_http(&url, http_ok)
            .map_err(|r| RegistryError::Refused(format!("token realm {realm} refused: {}", r.0)))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
            for scope in &self.scopes {
                query.append_pair("scope", scope);
            }
            if let Some(creds) = &self.credentials {
                query.append_pair("account", &creds.username);
            }
        }
        let mut request = self.client.http.get(url);
        if let Some(creds) = &self.credentials {
            request = request.header(AUTHORIZATION, basic(creds));
        }
        let resp = request
            .send()
            .await
            .map_err(|e| RegistryError::from(request_error(e)))?;
        let status = resp.status();
        let body = read_limited(resp, MAX_DOCUMENT).await?;
        if !status.is_success() {
            let why = registry_message(&body)
                .or_else(|| {
                    serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
                        v.get("details")
                            .or_else(|| v.get("message"))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                })
                .unwrap_or_else(|| status.to_string());
            return Err(RegistryError::Unauthorized(format!(
                "token auth attempt for registry {} failed: {why}",
                self.registry
            )));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Unauthorized(format!("the token server's answer is not JSON: {e}"))
        })?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Unauthorized("the token server sent no token".into()))
    }

    /// A non-2xx answer as an error.
    async fn failure(&self, what: &str, resp: reqwest::Response) -> RegistryError {
        let status = resp.status();
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(parse_challenge);
        let body = read_limited(resp, MAX_DOCUMENT).await.unwrap_or_default();
        let message = registry_message(&body).unwrap_or_else(|| status.to_string());
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let scope_error = challenge
                    .as_ref()
                    .and_then(|c| c.param("error"))
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                RegistryError::Unauthorized(format!("{what}: {message}{scope_error}"))
            }
            StatusCode::NOT_FOUND => RegistryError::NotFound(format!("{what}: {message}")),
            _ => RegistryError::Status(format!("{what}: {status}: {message}")),
        }
    }

    /// GET a manifest (tag or digest), accepting Docker schema 2, manifest
    /// lists, OCI manifests and indexes. A digest reference is verified.
    pub async fn get_manifest(&self, reference: &str) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(&format!("v2/{}/manifests/{reference}", self.repo))?;
        let accept = [
            media::DOCKER_MANIFEST,
            media::DOCKER_LIST,
            media::OCI_MANIFEST,
            media::OCI_INDEX,
        ]
        .join(", ");
        let resp = self
            .send(|http| http.get(url.clone()).header(ACCEPT, accept.as_str()))
            .await?;
        if !resp.status().is_success() {
            let what = format!("manifest {}:{reference}", self.repo);
            return Err(match self.failure(&what, resp).await {
                // The original's client: a 401 here means the repository
                // does not exist for these credentials.
                RegistryError::Unauthorized(m) if self.authorization.lock().await.is_some() => {
                    RegistryError::NotFound(format!(
                        "{m}; the repository does not exist or these credentials may not pull it"
                    ))
                }
                other => other,
            });
        }
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = Bytes::from(read_limited(resp, MAX_DOCUMENT).await?);
        let computed = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && reference != computed {
            return Err(RegistryError::BadDigest(format!(
                "manifest digest does not match: got {computed}, expected {reference}"
            )));
        }
        let body_type = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
            v.get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let media_type = body_type.or(header_type).unwrap_or_default();
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: header_digest
                .filter(|d| d.starts_with("sha256:"))
                .unwrap_or(computed),
        })
    }

    /// GET a blob as a stream, with its announced length.
    pub async fn get_blob(&self, digest: &str) -> Result<(ByteStream, Option<u64>), RegistryError> {
        let url = self.url(&format!("v2/{}/blobs/{digest}", self.repo))?;
        let resp = self.send(|http| http.get(url.clone())).await?;
        if !resp.status().is_success() {
            return Err(self.failure(&format!("blob {digest}"), resp).await);
        }
        let length = resp.content_length();
        let stream = resp
            .bytes_stream()
            .map_err(|e| std::io::Error::other(error_chain_deduped(&e)));
        Ok((Box::pin(stream), length))
    }

    /// GET a small blob (an image config), verified against its digest.
    pub async fn get_blob_bytes(&self, digest: &str) -> Result<Bytes, RegistryError> {
        let url = self.url(&format!("v2/{}/blobs/{digest}", self.repo))?;
        let resp = self.send(|http| http.get(url.clone())).await?;
        if !resp.status().is_success() {
            return Err(self.failure(&format!("blob {digest}"), resp).await);
        }
        let bytes = Bytes::from(read_limited(resp, MAX_DOCUMENT).await?);
        let got = sha256_digest(&bytes);
        if got != digest {
            return Err(RegistryError::BadDigest(format!(
                "config digest does not match, got {got}, expected {digest}"
            )));
        }
        Ok(bytes)
    }

    /// Whether the repository has the blob.
    pub async fn has_blob(&self, digest: &str) -> Result<bool, RegistryError> {
        let url = self.url(&format!("v2/{}/blobs/{digest}", self.repo))?;
        let resp = self.send(|http| http.head(url.clone())).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.failure(&format!("blob {digest}"), resp).await),
        }
    }

    /// Start an upload; with `mount_from`, ask the registry to mount the
    /// blob from that repository instead. `None`: mounted, nothing to send.
    async fn start_upload(
        &self,
        digest: &str,
        mount_from: Option<&str>,
    ) -> Result<Option<Url>, RegistryError> {
        let mut url = self.url(&format!("v2/{}/blobs/uploads/", self.repo))?;
        if let Some(from) = mount_from {
            url.query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", from);
        }
        let resp = self
            .send(|http| http.post(url.clone()).header(CONTENT_LENGTH, 0))
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount_from.is_some() => Ok(None),
            StatusCode::ACCEPTED => {
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        RegistryError::Status("the registry gave no upload location".into())
                    })?;
                let url = self.url(location)?;
                self.client
                    .policy
                    .check_url_with_http(
                        &url,
                        self.insecure || is_insecure(&self.client.insecure, &url),
                    )
                    .map_err(|r| {
                        RegistryError::Refused(format!("upload location refused: {}", r.0))
                    })?;
                Ok(Some(url))
            }
            _ => Err(self.failure(&format!("blob upload {digest}"), resp).await),
        }
    }

    /// Upload a blob of `size` bytes with one streamed PUT (after a
    /// cross-repository mount attempt from `mount_from`). `true` when the
    /// registry mounted it and no byte was sent.
    pub async fn upload_blob(
        &self,
        digest: &str,
        size: u64,
        body: ByteStream,
        mount_from: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let Some(mut location) = self.start_upload(digest, mount_from).await? else {
            return Ok(true);
        };
        location.query_pairs_mut().append_pair("digest", digest);
        let mut request = self
            .client
            .http
            .put(location)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        if let Some(auth) = self.authorization.lock().await.clone() {
            request = request.header(AUTHORIZATION, auth);
        }
        let resp = request
            .send()
            .await
            .map_err(|e| RegistryError::from(request_error(e)))?;
        if resp.status().is_success() {
            return Ok(false);
        }
        Err(self.failure(&format!("blob upload {digest}"), resp).await)
    }

    /// Upload a small blob (a config) held in memory.
    pub async fn upload_bytes(&self, digest: &str, bytes: Bytes) -> Result<(), RegistryError> {
        if self.has_blob(digest).await? {
            return Ok(());
        }
        let size = bytes.len() as u64;
        let body: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(bytes) }));
        self.upload_blob(digest, size, body, None).await.map(|_| ())
    }

    /// PUT a manifest under `reference`; the digest the registry gives.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String, RegistryError> {
        let url = self.url(&format!("v2/{}/manifests/{reference}", self.repo))?;
        let resp = self
            .send(|http| {
                http.request(Method::PUT, url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .failure(&format!("manifest {}:{reference}", self.repo), resp)
                .await);
        }
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| sha256_digest(&bytes)))
    }
}

fn basic(creds: &Credentials) -> HeaderValue {
    let raw = format!("{}:{}", creds.username, creds.password);
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.param("realm"), Some("http://127.0.0.1:9/token"));
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
        let b = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(b.scheme, "Basic");
        assert_eq!(b.param("realm"), Some("Registry Realm"));
    }

    #[test]
    fn insecure_registries_match_host_and_port() {
        let list = vec!["127.0.0.1:5000".to_string(), "reg.local".to_string()];
        assert!(is_insecure(
            &list,
            &Url::parse("http://127.0.0.1:5000/v2/").unwrap()
        ));
        assert!(!is_insecure(
            &list,
            &Url::parse("http://127.0.0.1:5001/v2/").unwrap()
        ));
        assert!(is_insecure(
            &list,
            &Url::parse("http://reg.local:8080/").unwrap()
        ));
    }

    #[test]
    fn error_bodies() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_message(body).as_deref(), Some("manifest unknown"));
        assert_eq!(registry_message(b"nope"), None);
    }
}
