//! AdminImportDockerImage and AdminPushDockerImage: the request, the
//! registry credentials header, and the answer's stream of messages,
//! decoded line by line as it arrives (never the whole body in memory).

use std::collections::VecDeque;

use base64::Engine as _;
use reqwest::{Method, Response};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use imgapi_types::DOCKER_MESSAGE_TYPES;
pub use imgapi_types::{
    DockerErrorMessage, DockerImageCreated, DockerMessage, DockerProgress, DockerProgressDetail,
    DockerProgressMessage, DockerPushResult, DockerStreamError,
};

use crate::{Client, ClientError};

/// The header carrying the credentials for the registry.
pub const REGISTRY_AUTH_HEADER: &str = "x-registry-auth";
/// The header carrying credentials per registry (`{host: credentials}`).
pub const REGISTRY_CONFIG_HEADER: &str = "x-registry-config";
/// The key docker uses for Docker Hub's credentials.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
/// A message longer than this is refused rather than buffered further (the
/// largest, `create-docker-image`, carries a manifest and an image config).
const MAX_MESSAGE_LEN: usize = 16 << 20;

/// Credentials for a registry, sent base64-encoded as docker's
/// `{"username","password","serveraddress"}` JSON.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    /// The registry, as docker names it in its config: the host
    /// (`registry.example.com:5000`), or [`DOCKER_HUB_AUTH_KEY`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serveraddress: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    // The password never reaches a log or an error message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"***")
            .field("serveraddress", &self.serveraddress)
            .finish()
    }
}

impl RegistryAuth {
    /// The value of [`REGISTRY_AUTH_HEADER`]: base64 of the JSON.
    pub fn header_value(&self) -> Result<String, ClientError> {
        encode_json(self)
    }

    /// The value of [`REGISTRY_CONFIG_HEADER`]: base64 of
    /// `{serveraddress: credentials}` (`None` without a serveraddress).
    pub fn config_header_value(&self) -> Result<Option<String>, ClientError> {
        let Some(server) = &self.serveraddress else {
            return Ok(None);
        };
        let mut map = serde_json::Map::new();
        map.insert(
            server.clone(),
            serde_json::to_value(self)
                .map_err(|e| ClientError::Decode(format!("cannot encode credentials: {e}")))?,
        );
        encode_json(&map).map(Some)
    }
}

fn encode_json<T: Serialize>(value: &T) -> Result<String, ClientError> {
    let json = serde_json::to_vec(value)
        .map_err(|e| ClientError::Decode(format!("cannot encode credentials: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}

/// Which image of a repository to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerReference {
    /// `repo:tag`.
    Tag(String),
    /// `repo@sha256:…`.
    Digest(String),
}

/// What AdminImportDockerImage imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerImportRequest {
    /// The repository, as `docker pull` takes it (`busybox`,
    /// `registry.example.com:5000/team/app`), without tag or digest.
    pub repo: String,
    pub reference: DockerReference,
    /// Whether the images are public (the server's default: `true`).
    pub public: Option<bool>,
}

/// One message of a docker import or push stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerEvent {
    /// The message as the server sent it (its key order kept).
    pub raw: Value,
    /// What it says; `None` when its `type` is not one this client knows.
    pub message: Option<DockerMessage>,
}

impl DockerEvent {
    /// Decode one message. A known `type` must have its documented shape;
    /// an unknown one is kept as sent.
    pub fn from_json(raw: Value) -> Result<DockerEvent, ClientError> {
        let known = raw
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| DOCKER_MESSAGE_TYPES.contains(&t));
        let message = if known {
            Some(
                serde_json::from_value(raw.clone())
                    .map_err(|e| ClientError::Decode(format!("invalid docker message: {e}")))?,
            )
        } else {
            None
        };
        Ok(DockerEvent { raw, message })
    }
}

/// Splits a byte stream into `\r\n`-terminated JSON messages, whatever the
/// chunk boundaries.
#[derive(Debug, Default)]
pub struct DockerEventDecoder {
    /// Bytes of the message not yet terminated.
    partial: Vec<u8>,
}

impl DockerEventDecoder {
    /// Feed the next chunk; returns the messages it completes, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<DockerEvent>, ClientError> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.partial);
            if let Some(event) = decode_line(&line)? {
                events.push(event);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_MESSAGE_LEN {
            return Err(ClientError::Decode(format!(
                "docker message longer than {MAX_MESSAGE_LEN} bytes"
            )));
        }
        Ok(events)
    }

    /// The stream ended: an unterminated message is an error (the answer
    /// was cut).
    pub fn finish(&mut self) -> Result<(), ClientError> {
        let partial = std::mem::take(&mut self.partial);
        if partial.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(ClientError::Decode(format!(
                "the answer ends in the middle of a message ({} bytes after the last \\r\\n)",
                partial.len()
            )))
        }
    }
}

fn decode_line(line: &[u8]) -> Result<Option<DockerEvent>, ClientError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let raw: Value = serde_json::from_slice(line)
        .map_err(|e| ClientError::Decode(format!("invalid docker message: {e}")))?;
    DockerEvent::from_json(raw).map(Some)
}

/// The messages of a docker import or push, read as they arrive.
#[derive(Debug)]
pub struct DockerEvents {
    response: Option<Response>,
    decoder: DockerEventDecoder,
    ready: VecDeque<DockerEvent>,
}

impl DockerEvents {
    fn new(response: Response) -> DockerEvents {
        DockerEvents {
            response: Some(response),
            decoder: DockerEventDecoder::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next message; `None` once the answer ended after a complete
    /// message. A connection lost mid-answer or a message cut short is an
    /// error.
    pub async fn next(&mut self) -> Result<Option<DockerEvent>, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            let Some(response) = self.response.as_mut() else {
                return Ok(None);
            };
            match response.chunk().await? {
                Some(chunk) => self.ready.extend(self.decoder.push(&chunk)?),
                None => {
                    self.response = None;
                    self.decoder.finish()?;
                }
            }
        }
    }
}

impl Client {
    /// `POST /images?action=import-docker-image` (AdminImportDockerImage,
    /// operator): import `request.repo` from its registry, with `auth` in
    /// [`REGISTRY_AUTH_HEADER`] (anonymous without). An error status is
    /// [`ClientError::Api`]; once the server has started answering, a
    /// failure is the last message (`type: "error"`).
    pub async fn admin_import_docker_image(
        &self,
        request: &DockerImportRequest,
        auth: Option<&RegistryAuth>,
    ) -> Result<DockerEvents, ClientError> {
        let public = request.public.map(|p| p.to_string());
        let mut query = vec![
            ("action", "import-docker-image"),
            ("repo", request.repo.as_str()),
        ];
        match &request.reference {
            DockerReference::Tag(tag) => query.push(("tag", tag)),
            DockerReference::Digest(digest) => query.push(("digest", digest)),
        }
        if let Some(public) = &public {
            query.push(("public", public));
        }
        let url = self.url("/images", &query)?;
        let req = with_registry_auth(self.request(Method::POST, url)?, auth)?;
        let resp = Self::check(req.send().await?).await?;
        Ok(DockerEvents::new(resp))
    }

    /// `POST /images/:uuid/push?repoAndTag=…` (AdminPushDockerImage):
    /// push the image `uuid` and its origins to a registry as `repo:tag`.
    /// `body` defaults to `{}` (the server then builds the manifest from
    /// its own records). Errors as [`Client::admin_import_docker_image`].
    pub async fn admin_push_docker_image(
        &self,
        uuid: &Uuid,
        repo_and_tag: &str,
        body: Option<&Value>,
        auth: Option<&RegistryAuth>,
    ) -> Result<DockerEvents, ClientError> {
        let url = self.url(
            &format!("/images/{uuid}/push"),
            &[("repoAndTag", repo_and_tag)],
        )?;
        let empty = Value::Object(serde_json::Map::new());
        let req = self
            .request(Method::POST, url)?
            .json(body.unwrap_or(&empty));
        let req = with_registry_auth(req, auth)?;
        let resp = Self::check(req.send().await?).await?;
        Ok(DockerEvents::new(resp))
    }
}

fn with_registry_auth(
    req: reqwest::RequestBuilder,
    auth: Option<&RegistryAuth>,
) -> Result<reqwest::RequestBuilder, ClientError> {
    let Some(auth) = auth else {
        return Ok(req);
    };
    let req = req.header(REGISTRY_AUTH_HEADER, auth.header_value()?);
    Ok(match auth.config_header_value()? {
        Some(config) => req.header(REGISTRY_CONFIG_HEADER, config),
        None => req,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STREAM: &str = concat!(
        r#"{"type":"status","payload":{"status":"latest: Pulling from busybox (req r1)"},"id":"docker.io/busybox"}"#,
        "\r\n",
        r#"{"type":"progress","payload":{"id":"0123456789ab","status":"Downloading","progressDetail":{"current":524289,"total":900000,"start":1700000000}},"id":"docker.io/busybox"}"#,
        "\r\n",
        r#"{"type":"future-kind","payload":{"x":"é"},"id":"docker.io/busybox"}"#,
        "\r\n",
        r#"{"type":"error","id":"docker.io/busybox","error":{"code":"Download","message":"cut"}}"#,
        "\r\n",
    );

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<DockerEvent>, ClientError> {
        let mut decoder = DockerEventDecoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(decoder.push(chunk)?);
        }
        decoder.finish()?;
        Ok(events)
    }

    #[test]
    fn decodes_whatever_the_chunk_boundaries() {
        let bytes = STREAM.as_bytes();
        let whole = decode_all(&[bytes]).unwrap();
        assert_eq!(whole.len(), 4);
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(decode_all(&[a, b]).unwrap(), whole, "split at {split}");
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_all(&one_by_one).unwrap(), whole);
    }

    #[test]
    fn known_types_are_typed_and_unknown_ones_kept() {
        let events = decode_all(&[STREAM.as_bytes()]).unwrap();
        match &events[1].message {
            Some(DockerMessage::Progress(p)) => {
                assert_eq!(p.payload.id.as_deref(), Some("0123456789ab"));
                let detail = p.payload.progress_detail.unwrap_or_default();
                assert_eq!((detail.current, detail.total), (Some(524289), Some(900000)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(events[2].message, None);
        assert_eq!(
            events[2].raw,
            json!({"type":"future-kind","payload":{"x":"é"},"id":"docker.io/busybox"})
        );
        match &events[3].message {
            Some(DockerMessage::Error(e)) => assert_eq!(e.error.code, "Download"),
            other => panic!("{other:?}"),
        }
        // The raw JSON keeps the server's key order.
        assert_eq!(
            serde_json::to_string(&events[1].raw).unwrap(),
            STREAM.split("\r\n").nth(1).unwrap()
        );
    }

    #[test]
    fn a_cut_last_message_is_an_error() {
        let bytes = STREAM.as_bytes();
        let cut = &bytes[..bytes.len() - 2];
        assert!(matches!(decode_all(&[cut]), Err(ClientError::Decode(_))));
        let cut = &bytes[..bytes.len() - 10];
        assert!(decode_all(&[cut]).is_err());
        // A bare `\n` ends a message too, and blank lines are skipped.
        let events = decode_all(&[b"{\"type\":\"x\"}\n\r\n\n"]).unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_known_type_of_the_wrong_shape_is_an_error() {
        assert!(decode_all(&[b"{\"type\":\"error\",\"id\":\"i\"}\r\n"]).is_err());
        assert!(decode_all(&[b"not json\r\n"]).is_err());
    }

    #[test]
    fn auth_headers_are_base64_json() {
        let auth = RegistryAuth {
            username: "alice".into(),
            password: "s3cret:x".into(),
            serveraddress: Some(DOCKER_HUB_AUTH_KEY.into()),
        };
        let decode = |s: String| -> Value {
            let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        let header = decode(auth.header_value().unwrap());
        assert_eq!(
            header,
            json!({"username":"alice","password":"s3cret:x","serveraddress":DOCKER_HUB_AUTH_KEY})
        );
        let config = decode(auth.config_header_value().unwrap().unwrap());
        assert_eq!(config, json!({ DOCKER_HUB_AUTH_KEY: header }));
        assert!(!format!("{auth:?}").contains("s3cret"));
        let bare = RegistryAuth {
            serveraddress: None,
            ..auth
        };
        assert_eq!(
            decode(bare.header_value().unwrap()),
            json!({"username":"alice","password":"s3cret:x"})
        );
        assert_eq!(bare.config_header_value().unwrap(), None);
    }
}
