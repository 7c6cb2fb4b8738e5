//! Typed async client for the IMGAPI wire API (see `spec/api.md`).
//!
//! Calls return the wire types of [`imgapi_types`] ([`Image`], [`Job`],
//! [`Ping`], [`Channel`]…). An image keeps the keys it does not know in
//! `extra` and serialises back to the JSON text the server sent (fields are
//! declared in the server's key order), so a caller may print it as
//! received; [`FileInfo::of`] picks `files[0]`.
//! Errors carry the server's restCode ([`ClientError::Api`]). File transfers
//! stream from and to disk and report progress through
//! [`progress::Reporter`]; downloads resume with `Range` and are verified
//! against the manifest's size and SHA-1 (and the SHA-256 of the server's
//! `Repr-Digest` header, when it sends one) before they appear at their
//! path. Big uploads can go through resumable upload sessions (an IMGAPI
//! extension; [`Client::add_image_file_resumable`]).
//!
//! Requests are signed with HTTP Signature when a [`Signer`] is set
//! ([`Client::with_signer`]).
//!
//! With [`Client::with_channel`] every image call carries `?channel=`.
//!
//! Docker imports and pushes ([`Client::admin_import_docker_image`],
//! [`Client::admin_push_docker_image`]) answer a stream of messages,
//! decoded as they arrive ([`DockerEvents`]).
//!
//! Not yet here: ssh-agent signing and encrypted keys, clone and the other
//! admin actions.

pub mod agent;
pub mod docker;
pub mod error;
pub mod image_signing;
pub mod progress;
mod resumable;
pub mod signing;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::{header, Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

pub use docker::{
    DockerEvent, DockerEventDecoder, DockerEvents, DockerImportRequest, DockerReference,
    RegistryAuth,
};
pub use error::{ClientError, FeedError};
pub use image_signing::ImageSigner;
pub use imgapi_types::signatures::{AddSignatureBody, ImageSignature, ImageSignatures};
pub use imgapi_types::{
    ChangeEvent, ChangeKind, ChangesPage, Channel, DockerMessage, ErrorBody, FieldError, Image,
    ImageFile, ImageLifecycle, Job, Ping, Quota, QuotaOverrideBody, RecycledImage, RetentionPlan,
    RetentionPlanImage, RetentionRule, StartedJob, UploadSessionBody,
};
pub use progress::{NoProgress, Reporter};
/// URLs as the client takes them.
pub use reqwest::Url;
pub use resumable::{ResumableOptions, DEFAULT_UPLOAD_CHUNK};
pub use signing::Signer;

/// Attempts for idempotent requests (connection errors and 503).
const ATTEMPTS: u32 = 3;
/// First retry delay; doubled for each further attempt.
const BACKOFF: Duration = Duration::from_millis(200);
/// How much longer than its `wait` a `GET /changes` may take (the
/// server answers at `wait`; this covers a slow network and a busy server).
const CHANGES_MARGIN: Duration = Duration::from_secs(30);
/// Upload chunk size.
const CHUNK: usize = 256 * 1024;
/// Largest icon the server accepts (api.md §5.9).
const MAX_ICON_SIZE: u64 = 128 * 1024;

/// A download answer whose body is read by the caller
/// ([`Client::open_image_icon`]).
#[derive(Debug)]
pub struct Download(Response);

impl Download {
    /// `Content-Length`, when sent.
    pub fn content_length(&self) -> Option<u64> {
        self.0.content_length()
    }

    /// `Content-MD5` (base64), when sent.
    pub fn content_md5(&self) -> Option<String> {
        self.header("content-md5")
    }

    /// `Content-Type`, when sent.
    pub fn content_type(&self) -> Option<String> {
        self.header("content-type")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.0
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        Ok(self.0.chunk().await?)
    }
}

/// `files[0]` of an image, as far as transfers need it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileInfo {
    pub sha1: String,
    pub size: u64,
    #[serde(default)]
    pub compression: Option<String>,
}

impl FileInfo {
    /// `files[0]` of an image (`None` if it has no file).
    pub fn of(image: &Image) -> Option<FileInfo> {
        image.files.first().map(|f| FileInfo {
            sha1: f.sha1.clone(),
            size: f.size,
            compression: Some(f.compression.clone()),
        })
    }
}

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Accept any TLS certificate (`--insecure`): for test servers with a
    /// self-signed certificate.
    pub insecure: bool,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// A client for one IMGAPI server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    user_agent: String,
    signer: Option<Arc<Signer>>,
    /// `?channel=` for every `/images...` request (api.md §1.7).
    channel: Option<String>,
    /// `Accept-Version` of every request (api.md §1.3).
    accept_version: Option<String>,
}

/// What [`Client::get_image_icon`] saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IconInfo {
    /// The icon's `Content-Type` as stored (`image/png`, `image/gif`, `image/jpeg`).
    pub content_type: String,
    pub size: u64,
    /// SHA-1 (hex) of the saved bytes.
    pub sha1: String,
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// with the default [`ClientOptions`].
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::with_options(base_url, &ClientOptions::default())
    }

    /// A client for the server at `base_url` with `options`.
    pub fn with_options(base_url: &str, options: &ClientOptions) -> Result<Client, ClientError> {
        let mut base = Url::parse(base_url)
            .map_err(|e| ClientError::Decode(format!("invalid URL {base_url:?}: {e}")))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls::client_config(options.insecure)?)
            .connect_timeout(options.connect_timeout)
            .build()?;
        Ok(Client {
            http,
            base,
            user_agent: format!("imgapi-client/{}", env!("CARGO_PKG_VERSION")),
            signer: None,
            channel: None,
            accept_version: None,
        })
    }

    /// Use `ua` as the `User-Agent` of every request.
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Client {
        self.user_agent = ua.into();
        self
    }

    /// Sign every request with `signer` (HTTP Signature over a `Date`
    /// header added to each request).
    pub fn with_signer(mut self, signer: Signer) -> Client {
        self.signer = Some(Arc::new(signer));
        self
    }

    /// Send `?channel=<channel>` with every image request (list, get,
    /// create, files, icons, actions, ACLs, delete), as the original client
    /// does; `*` on reads means "any channel". An empty name clears it.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Client {
        let channel = channel.into();
        self.channel = (!channel.is_empty()).then_some(channel);
        self
    }

    /// Send `Accept-Version: <range>` with every request, as the node
    /// client does (`*`): the server then answers in its newest version,
    /// e.g. with the `channels` of each image.
    pub fn with_accept_version(mut self, range: impl Into<String>) -> Client {
        self.accept_version = Some(range.into());
        self
    }

    /// The channel set with [`Client::with_channel`].
    pub fn channel(&self) -> Option<&str> {
        self.channel.as_deref()
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ClientError> {
        let mut url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Decode(format!("invalid path {path:?}: {e}")))?;
        let channel = self
            .channel
            .as_deref()
            .filter(|_| is_images_path(path) && !query.iter().any(|(k, _)| *k == "channel"));
        if !query.is_empty() || channel.is_some() {
            let mut pairs = url.query_pairs_mut();
            pairs.extend_pairs(query);
            if let Some(c) = channel {
                pairs.append_pair("channel", c);
            }
        }
        Ok(url)
    }

    /// A request with the common headers, signed when a signer is set
    /// (fails only when signing through ssh-agent fails).
    fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, ClientError> {
        let req = self
            .http
            .request(method, url)
            .header(header::USER_AGENT, &self.user_agent)
            .header(header::ACCEPT, "application/json");
        let req = match &self.accept_version {
            Some(range) => req.header("accept-version", range),
            None => req,
        };
        match &self.signer {
            None => Ok(req),
            Some(signer) => {
                let date = httpdate::fmt_http_date(std::time::SystemTime::now());
                let authorization = signer.authorization(&date)?;
                Ok(req
                    .header(header::DATE, date)
                    .header(header::AUTHORIZATION, authorization))
            }
        }
    }

    /// Send a request built by `build`, retrying with backoff on connection
    /// errors and 503. Only for idempotent requests.
    async fn send_retrying(
        &self,
        build: impl Fn() -> Result<RequestBuilder, ClientError>,
    ) -> Result<Response, ClientError> {
        let mut delay = BACKOFF;
        let mut attempt = 1;
        loop {
            let result = build()?.send().await;
            let retry = match &result {
                Ok(r) => r.status() == StatusCode::SERVICE_UNAVAILABLE,
                Err(e) => e.is_connect() || e.is_timeout(),
            };
            if !retry || attempt >= ATTEMPTS {
                return Ok(result?);
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    /// Turn an error status into [`ClientError::Api`].
    async fn check(resp: Response) -> Result<Response, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        Err(ClientError::from_body(status.as_u16(), &body))
    }

    /// The body of a successful answer, decoded as `T`.
    async fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
        let resp = Self::check(resp).await?;
        let body = resp.bytes().await?;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Decode(format!("invalid answer: {e}")))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let url = self.url(path, query)?;
        let resp = self
            .send_retrying(|| self.request(Method::GET, url.clone()))
            .await?;
        Self::decode(resp).await
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let url = self.url(path, query)?;
        let mut req = self.request(Method::POST, url)?;
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::decode(req.send().await?).await
    }

    // ---- misc ----

    /// `GET /ping`.
    pub async fn ping(&self) -> Result<Ping, ClientError> {
        self.get_json("/ping", &[]).await
    }

    /// `GET /channels` (404 when the server has no channels).
    pub async fn list_channels(&self) -> Result<Vec<Channel>, ClientError> {
        self.get_json("/channels", &[]).await
    }

    // ---- change feed (docs/events.md) ----

    /// `GET /changes?since=SEQ[&limit=N][&wait=SECONDS]` (ListChanges, an
    /// extension): the events after `since` this caller may see, oldest
    /// first; pass the answer's `next` as the next `since`. `limit` 0
    /// answers no events and the feed's latest seq as `next` (follow from
    /// now). With `wait` the server holds the request until an event comes
    /// or the time is up, so this request's timeout is `wait` plus a
    /// margin. The client's channel ([`Client::with_channel`]) goes along.
    /// [`ClientError::feed_error`] tells a 410 (resync) and a server
    /// without a feed (404) from other errors.
    pub async fn changes(
        &self,
        since: i64,
        limit: Option<u32>,
        wait: Option<u32>,
    ) -> Result<ChangesPage, ClientError> {
        let since = since.to_string();
        let limit = limit.map(|l| l.to_string());
        let wait_text = wait.map(|w| w.to_string());
        let mut query: Vec<(&str, &str)> = vec![("since", &since)];
        if let Some(l) = &limit {
            query.push(("limit", l));
        }
        if let Some(w) = &wait_text {
            query.push(("wait", w));
        }
        if let Some(c) = &self.channel {
            query.push(("channel", c));
        }
        let url = self.url("/changes", &query)?;
        let timeout = Duration::from_secs(u64::from(wait.unwrap_or(0))) + CHANGES_MARGIN;
        let resp = self
            .send_retrying(|| Ok(self.request(Method::GET, url.clone())?.timeout(timeout)))
            .await?;
        Self::decode(resp).await
    }

    // ---- quotas ----

    /// `GET /quotas/:owner`: the owner's limits and use (operators, or the
    /// owner itself).
    pub async fn get_quota(&self, owner: &Uuid) -> Result<Quota, ClientError> {
        self.get_json(&format!("/quotas/{owner}"), &[]).await
    }

    /// `GET /quotas` (operators): every owner with a configured or stored quota.
    pub async fn list_quotas(&self) -> Result<Vec<Quota>, ClientError> {
        self.get_json("/quotas", &[]).await
    }

    /// `PUT /quotas/:owner` (operators): store the owner's limits.
    pub async fn put_quota(
        &self,
        owner: &Uuid,
        limits: &QuotaOverrideBody,
    ) -> Result<Quota, ClientError> {
        let url = self.url(&format!("/quotas/{owner}"), &[])?;
        let resp = self.request(Method::PUT, url)?.json(limits).send().await?;
        Self::decode(resp).await
    }

    /// `DELETE /quotas/:owner` (operators): drop the owner's stored limits.
    pub async fn delete_quota(&self, owner: &Uuid) -> Result<(), ClientError> {
        let url = self.url(&format!("/quotas/{owner}"), &[])?;
        let resp = self.request(Method::DELETE, url)?.send().await?;
        Self::check(resp).await.map(|_| ())
    }

    // ---- jobs ----

    /// `GET /jobs/:uuid`: an import job (AdminImportRemoteImage,
    /// ImportFromDatacenter, mirror imports).
    pub async fn get_job(&self, uuid: &Uuid) -> Result<Job, ClientError> {
        self.get_json(&format!("/jobs/{uuid}"), &[]).await
    }

    /// `GET /images/:uuid/jobs` (ListImageJobs), newest first, with filters
    /// such as `("task", "import-remote-image")`, `("execution", "failed")`.
    pub async fn list_image_jobs(
        &self,
        uuid: &Uuid,
        query: &[(&str, &str)],
    ) -> Result<Vec<Job>, ClientError> {
        self.get_json(&format!("/images/{uuid}/jobs"), query).await
    }

    // ---- retention (docs/lifecycle.md) ----

    /// `GET /retention/rules` (operators): configured and API rules.
    pub async fn list_retention_rules(&self) -> Result<Vec<RetentionRule>, ClientError> {
        self.get_json("/retention/rules", &[]).await
    }

    /// `POST /retention/rules` (operators) with `{owner?, name,
    /// keep_versions?, keep_days?}`; the stored rule.
    pub async fn add_retention_rule(&self, rule: &Value) -> Result<RetentionRule, ClientError> {
        self.post_json("/retention/rules", &[], Some(rule)).await
    }

    /// `DELETE /retention/rules/:id` (operators; API rules only).
    pub async fn delete_retention_rule(&self, id: &str) -> Result<(), ClientError> {
        let mut url = self.url("/retention/rules", &[])?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Decode("base URL cannot take a path".into()))?
            .push(id);
        let resp = self.request(Method::DELETE, url)?.send().await?;
        Self::check(resp).await.map(|_| ())
    }

    // ---- recycle bin (docs/lifecycle.md) ----

    /// `GET /recycle-bin` (ListRecycleBin) with filters such as
    /// `("owner", UUID)`, `("limit", "100")`, `("offset", "100")`.
    pub async fn list_recycle_bin(
        &self,
        query: &[(&str, &str)],
    ) -> Result<Vec<RecycledImage>, ClientError> {
        self.get_json("/recycle-bin", query).await
    }

    /// `GET /recycle-bin/:uuid` (GetRecycledImage).
    pub async fn get_recycled_image(&self, uuid: &Uuid) -> Result<RecycledImage, ClientError> {
        self.get_json(&format!("/recycle-bin/{uuid}"), &[]).await
    }

    /// `POST /recycle-bin/:uuid?action=restore` (RestoreRecycledImage):
    /// the image, back.
    pub async fn restore_recycled_image(&self, uuid: &Uuid) -> Result<Image, ClientError> {
        self.post_json(
            &format!("/recycle-bin/{uuid}"),
            &[("action", "restore")],
            None,
        )
        .await
    }

    /// `DELETE /recycle-bin/:uuid` (PurgeRecycledImage): gone for good.
    pub async fn purge_recycled_image(&self, uuid: &Uuid) -> Result<(), ClientError> {
        let url = self.url(&format!("/recycle-bin/{uuid}"), &[])?;
        let resp = self.request(Method::DELETE, url)?.send().await?;
        Self::check(resp).await.map(|_| ())
    }

    // ---- retention runs (docs/lifecycle.md) ----

    /// `POST /retention/runs?dry_run=true` (operators): the plan.
    pub async fn retention_plan(&self) -> Result<RetentionPlan, ClientError> {
        self.post_json("/retention/runs", &[("dry_run", "true")], None)
            .await
    }

    /// `POST /retention/runs` (operators): the queued retention job
    /// (follow it with [`Client::get_job`]).
    pub async fn run_retention(&self) -> Result<Job, ClientError> {
        self.post_json("/retention/runs", &[], None).await
    }

    // ---- images ----

    /// `GET /images` with filters such as `("name", "~base")`, `("state", "all")`.
    pub async fn list_images(&self, query: &[(&str, &str)]) -> Result<Vec<Image>, ClientError> {
        self.get_json("/images", query).await
    }

    /// `GET /images/:uuid`.
    pub async fn get_image(&self, uuid: &Uuid) -> Result<Image, ClientError> {
        self.get_image_with(uuid, &[]).await
    }

    /// `GET /images/:uuid` with query parameters such as
    /// `("inclAdminFields", "true")`.
    pub async fn get_image_with(
        &self,
        uuid: &Uuid,
        query: &[(&str, &str)],
    ) -> Result<Image, ClientError> {
        self.get_json(&format!("/images/{uuid}"), query).await
    }

    /// `GET /images/:uuid` with `Accept-Version: ~2`, the API version whose
    /// answer lists the image's `channels` (earlier versions leave them out).
    pub async fn get_image_with_channels(&self, uuid: &Uuid) -> Result<Image, ClientError> {
        self.clone().with_accept_version("~2").get_image(uuid).await
    }

    /// `POST /images` with a manifest; returns the unactivated image.
    pub async fn create_image(&self, manifest: &Value) -> Result<Image, ClientError> {
        self.post_json("/images", &[], Some(manifest)).await
    }

    async fn action<T: DeserializeOwned>(
        &self,
        uuid: &Uuid,
        action: &str,
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        self.action_with(uuid, action, &[], body).await
    }

    /// `POST /images/:uuid?action=<action>` with more query parameters.
    async fn action_with<T: DeserializeOwned>(
        &self,
        uuid: &Uuid,
        action: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ClientError> {
        let mut all = vec![("action", action)];
        all.extend_from_slice(query);
        self.post_json(&format!("/images/{uuid}"), &all, body).await
    }

    /// `POST /images/:uuid?action=activate`.
    pub async fn activate_image(&self, uuid: &Uuid) -> Result<Image, ClientError> {
        self.action(uuid, "activate", None).await
    }

    /// `POST /images/:uuid?action=disable`.
    pub async fn disable_image(&self, uuid: &Uuid) -> Result<Image, ClientError> {
        self.action(uuid, "disable", None).await
    }

    /// `POST /images/:uuid?action=enable`.
    pub async fn enable_image(&self, uuid: &Uuid) -> Result<Image, ClientError> {
        self.action(uuid, "enable", None).await
    }

    /// `POST /images/:uuid?action=update` with the fields to change.
    pub async fn update_image(&self, uuid: &Uuid, fields: &Value) -> Result<Image, ClientError> {
        self.action(uuid, "update", Some(fields)).await
    }

    /// `GET /images/:uuid/lifecycle`: the image's deprecation time and
    /// protection (docs/lifecycle.md). A server without lifecycle flags (an
    /// original IMGAPI) answers 404 ResourceNotFound for the path.
    pub async fn get_image_lifecycle(&self, uuid: &Uuid) -> Result<ImageLifecycle, ClientError> {
        self.get_json(&format!("/images/{uuid}/lifecycle"), &[])
            .await
    }

    /// `PUT /images/:uuid/lifecycle` (owner or operator) with the flags to
    /// change: `deprecated_at` (ISO 8601, `"now"` or `null`), `protected`.
    /// Fields left out keep their value.
    pub async fn update_image_lifecycle(
        &self,
        uuid: &Uuid,
        change: &Value,
    ) -> Result<ImageLifecycle, ClientError> {
        let url = self.url(&format!("/images/{uuid}/lifecycle"), &[])?;
        // Idempotent: the same flags whichever attempt lands.
        let resp = self
            .send_retrying(|| Ok(self.request(Method::PUT, url.clone())?.json(change)))
            .await?;
        Self::decode(resp).await
    }

    /// `POST /images/:uuid?action=import-remote&source=<url>` (operator):
    /// start a job importing image `uuid` (and its missing origins) from
    /// the IMGAPI at `source`.
    pub async fn import_remote_image(
        &self,
        uuid: &Uuid,
        source: &str,
    ) -> Result<StartedJob, ClientError> {
        self.import_remote_image_with(uuid, source, &[]).await
    }

    /// [`Client::import_remote_image`] with more query parameters, such as
    /// `("skip_owner_check", "true")` or `("channel", "*")`.
    pub async fn import_remote_image_with(
        &self,
        uuid: &Uuid,
        source: &str,
        query: &[(&str, &str)],
    ) -> Result<StartedJob, ClientError> {
        let mut all = vec![("source", source)];
        all.extend_from_slice(query);
        self.action_with(uuid, "import-remote", &all, None).await
    }

    /// `POST /images/:uuid?action=import` (operator): create with the
    /// manifest's own `uuid`. The path uuid is taken from the manifest.
    pub async fn import_image(&self, manifest: &Value) -> Result<Image, ClientError> {
        self.import_image_with(manifest, &[]).await
    }

    /// [`Client::import_image`] with more query parameters, such as
    /// `("skip_owner_check", "true")`.
    pub async fn import_image_with(
        &self,
        manifest: &Value,
        query: &[(&str, &str)],
    ) -> Result<Image, ClientError> {
        let uuid = manifest
            .get("uuid")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| ClientError::Decode("manifest has no valid \"uuid\"".into()))?;
        self.action_with(&uuid, "import", query, Some(manifest))
            .await
    }

    /// `POST /images/:uuid?action=channel-add` with body `{"channel": …}`:
    /// add the image to `channel`. The image itself is looked up through
    /// the client's channel ([`Client::with_channel`]; the server's default
    /// channel when unset).
    pub async fn channel_add_image(
        &self,
        uuid: &Uuid,
        channel: &str,
    ) -> Result<Image, ClientError> {
        let body = serde_json::json!({ "channel": channel });
        self.action(uuid, "channel-add", Some(&body)).await
    }

    // ---- image signatures (an extension, docs/signing.md) ----

    /// `GET /images/:uuid/signatures` (ListImageSignatures), with
    /// `?account=` when given: the image's statement and signatures. A
    /// server without image signatures answers 404
    /// ([`ClientError::is_signatures_unsupported`]).
    pub async fn list_image_signatures(
        &self,
        uuid: &Uuid,
        account: Option<&Uuid>,
    ) -> Result<ImageSignatures, ClientError> {
        let account = account.map(Uuid::to_string);
        self.get_json(
            &format!("/images/{uuid}/signatures"),
            &account_query(account.as_deref()),
        )
        .await
    }

    /// `POST /images/:uuid/signatures` (AddImageSignature) with an armored
    /// SSHSIG signature of the image's statement; replaces the signature of
    /// the same key. An invalid signature is 422 `InvalidSignature`.
    pub async fn add_image_signature(
        &self,
        uuid: &Uuid,
        signature: &str,
        account: Option<&Uuid>,
    ) -> Result<ImageSignature, ClientError> {
        let account = account.map(Uuid::to_string);
        let body = serde_json::to_value(AddSignatureBody {
            signature: signature.to_string(),
        })
        .map_err(|e| ClientError::Decode(format!("cannot encode the body: {e}")))?;
        self.post_json(
            &format!("/images/{uuid}/signatures"),
            &account_query(account.as_deref()),
            Some(&body),
        )
        .await
    }

    /// `DELETE /images/:uuid/signatures/:id` (RemoveImageSignature); `id` is
    /// the key's fingerprint in hex ([`ImageSignature::id`]).
    pub async fn remove_image_signature(
        &self,
        uuid: &Uuid,
        id: &str,
        account: Option<&Uuid>,
    ) -> Result<(), ClientError> {
        let account = account.map(Uuid::to_string);
        let mut url = self.url(
            &format!("/images/{uuid}/signatures"),
            &account_query(account.as_deref()),
        )?;
        url.path_segments_mut()
            .map_err(|()| ClientError::Decode("the server URL cannot hold a path".to_string()))?
            .push(id);
        let resp = self.request(Method::DELETE, url)?.send().await?;
        Self::check(resp).await.map(|_| ())
    }

    /// `DELETE /images/:uuid`.
    pub async fn delete_image(&self, uuid: &Uuid) -> Result<(), ClientError> {
        self.delete_image_with(uuid, &[]).await
    }

    /// `DELETE /images/:uuid` with query parameters such as
    /// `("force_all_channels", "true")`.
    pub async fn delete_image_with(
        &self,
        uuid: &Uuid,
        query: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        let url = self.url(&format!("/images/{uuid}"), query)?;
        let resp = self.request(Method::DELETE, url)?.send().await?;
        Self::check(resp).await.map(|_| ())
    }

    /// `POST /images/:uuid?action=export` (ExportImage) with its query
    /// parameters (`manta_path`); the answer as sent.
    pub async fn export_image(
        &self,
        uuid: &Uuid,
        query: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        self.action_with(uuid, "export", query, None).await
    }

    /// `POST /images/:uuid?action=change-stor&stor=<stor>` (operator).
    pub async fn change_image_stor(&self, uuid: &Uuid, stor: &str) -> Result<Image, ClientError> {
        self.action_with(uuid, "change-stor", &[("stor", stor)], None)
            .await
    }

    /// `POST /images/:uuid/file/from-url` (AddImageFileFromUrl): the server
    /// fetches `file_url`. `query` carries `compression`, `sha1`, `storage`.
    pub async fn add_image_file_from_url(
        &self,
        uuid: &Uuid,
        file_url: &str,
        query: &[(&str, &str)],
    ) -> Result<Image, ClientError> {
        let body = serde_json::json!({ "file_url": file_url });
        self.post_json(&format!("/images/{uuid}/file/from-url"), query, Some(&body))
            .await
    }

    /// `GET /state` (AdminGetState): the server's internal state, as sent.
    pub async fn admin_get_state(&self) -> Result<Value, ClientError> {
        self.get_json("/state", &[]).await
    }

    /// `POST /authkeys/reload` (AdminReloadAuthKeys).
    pub async fn admin_reload_auth_keys(&self) -> Result<(), ClientError> {
        let url = self.url("/authkeys/reload", &[])?;
        let resp = self.request(Method::POST, url)?.send().await?;
        Self::check(resp).await.map(|_| ())
    }

    /// `GET /images/:uuid/icon` as a stream, unverified: for a caller that
    /// writes the bytes somewhere else than a file (a pipe) and checks
    /// them itself ([`Download::content_md5`]).
    pub async fn open_image_icon(&self, uuid: &Uuid) -> Result<Download, ClientError> {
        let url = self.url(&format!("/images/{uuid}/icon"), &[])?;
        let resp = self
            .send_retrying(|| self.request(Method::GET, url.clone()))
            .await?;
        Ok(Download(Self::check(resp).await?))
    }

    /// `POST /images/:uuid/acl?action=add`.
    pub async fn add_acl(&self, uuid: &Uuid, accounts: &[Uuid]) -> Result<Image, ClientError> {
        self.acl(uuid, "add", accounts).await
    }

    /// `POST /images/:uuid/acl?action=remove`.
    pub async fn remove_acl(&self, uuid: &Uuid, accounts: &[Uuid]) -> Result<Image, ClientError> {
        self.acl(uuid, "remove", accounts).await
    }

    async fn acl(
        &self,
        uuid: &Uuid,
        action: &str,
        accounts: &[Uuid],
    ) -> Result<Image, ClientError> {
        let body = Value::Array(
            accounts
                .iter()
                .map(|u| Value::String(u.to_string()))
                .collect(),
        );
        self.post_json(
            &format!("/images/{uuid}/acl"),
            &[("action", action)],
            Some(&body),
        )
        .await
    }

    // ---- files ----

    /// `PUT /images/:uuid/file?compression=…`, streaming `path` from disk.
    ///
    /// The SHA-1 is computed while streaming (the file is read once) and
    /// checked against the `files[0].sha1`/`size` the server returns; a
    /// mismatch is [`ClientError::Integrity`].
    pub async fn add_image_file(
        &self,
        uuid: &Uuid,
        path: &Path,
        compression: &str,
        reporter: Option<&dyn Reporter>,
    ) -> Result<Image, ClientError> {
        self.add_image_file_checked(uuid, path, compression, None, reporter)
            .await
    }

    /// [`Client::add_image_file`], also sending `?sha1=<expected_sha1>`
    /// when given: the server then refuses (400 Download) and does not keep
    /// bytes whose SHA-1 differs, e.g. a file that is not the one a
    /// manifest's `files[0]` describes.
    pub async fn add_image_file_checked(
        &self,
        uuid: &Uuid,
        path: &Path,
        compression: &str,
        expected_sha1: Option<&str>,
        reporter: Option<&dyn Reporter>,
    ) -> Result<Image, ClientError> {
        let file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        let mut query = vec![("compression", compression)];
        if let Some(sha1) = expected_sha1 {
            query.push(("sha1", sha1));
        }
        let url = self.url(&format!("/images/{uuid}/file"), &query)?;
        let state = Arc::new(Mutex::new((Sha1::new(), 0u64)));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let stream_state = Arc::clone(&state);
        let stream = futures_util::stream::try_unfold(file, move |mut file| {
            let state = Arc::clone(&stream_state);
            let tx = tx.clone();
            async move {
                let mut buf = vec![0u8; CHUNK];
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                buf.truncate(n);
                {
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    s.0.update(&buf);
                    s.1 += n as u64;
                }
                let _ = tx.send(n as u64);
                Ok(Some((Bytes::from(buf), file)))
            }
        });
        if let Some(r) = reporter {
            r.on_start(Some(size), 0);
        }
        let send = self
            .request(Method::PUT, url)?
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream))
            .send();
        tokio::pin!(send);
        let resp = loop {
            tokio::select! {
                res = &mut send => break res?,
                Some(n) = rx.recv() => {
                    if let Some(r) = reporter { r.on_progress(n); }
                }
            }
        };
        while let Ok(n) = rx.try_recv() {
            if let Some(r) = reporter {
                r.on_progress(n);
            }
        }
        let image: Image = Self::decode(resp).await?;
        let (sha1, sent) = {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            (hex::encode(s.0.clone().finalize()), s.1)
        };
        let info = FileInfo::of(&image)
            .ok_or_else(|| ClientError::Decode("uploaded image has no files[0]".into()))?;
        if info.size != sent {
            return Err(ClientError::Integrity {
                expected: format!("size {sent}"),
                actual: format!("size {}", info.size),
            });
        }
        if !info.sha1.eq_ignore_ascii_case(&sha1) {
            return Err(ClientError::Integrity {
                expected: sha1,
                actual: info.sha1,
            });
        }
        if let Some(r) = reporter {
            r.on_complete();
        }
        Ok(image)
    }

    // ---- icons ----

    /// `PUT /images/:uuid/icon` with the icon at `path`, streamed.
    ///
    /// `content_type` must be `image/png`, `image/gif` or `image/jpeg` (the
    /// server refuses others, and icons over 128 KiB). The file's SHA-1 is
    /// sent as `?sha1=` so the server, which computes its own while
    /// receiving, refuses bytes that changed on the way. Returns the image
    /// (with `"icon": true`).
    pub async fn add_image_icon(
        &self,
        uuid: &Uuid,
        path: &Path,
        content_type: &str,
    ) -> Result<Image, ClientError> {
        let size = tokio::fs::metadata(path).await?.len();
        // Hash first only what the server can accept: a larger icon is
        // refused from its Content-Length before any byte is read.
        let sha1 = if size <= MAX_ICON_SIZE {
            let mut hasher = Sha1::new();
            hash_file(path, &mut hasher).await?;
            Some(hex::encode(hasher.finalize()))
        } else {
            None
        };
        let file = tokio::fs::File::open(path).await?;
        self.add_image_icon_stream(uuid, file, Some(size), content_type, sha1.as_deref())
            .await
    }

    /// `PUT /images/:uuid/icon` streaming `reader`. `size`, when known, is
    /// sent as `Content-Length`; `sha1` (hex), when known, as `?sha1=` for
    /// the server to check.
    pub async fn add_image_icon_stream<R>(
        &self,
        uuid: &Uuid,
        reader: R,
        size: Option<u64>,
        content_type: &str,
        sha1: Option<&str>,
    ) -> Result<Image, ClientError>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        let query: Vec<(&str, &str)> = sha1.map(|s| ("sha1", s)).into_iter().collect();
        let url = self.url(&format!("/images/{uuid}/icon"), &query)?;
        let stream = futures_util::stream::try_unfold(reader, |mut reader| async move {
            let mut buf = vec![0u8; CHUNK];
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), reader)))
        });
        let mut req = self
            .request(Method::PUT, url)?
            .header(header::CONTENT_TYPE, content_type);
        if let Some(size) = size {
            req = req.header(header::CONTENT_LENGTH, size);
        }
        let resp = req.body(reqwest::Body::wrap_stream(stream)).send().await?;
        Self::decode(resp).await
    }

    /// `GET /images/:uuid/icon` saved to `dest` (through `<dest>.part`,
    /// renamed into place once complete). The size is checked against
    /// `Content-Length` and the SHA-1 against the `ETag` (the icon's sha1);
    /// on a mismatch nothing is left at `dest` and
    /// [`ClientError::Integrity`] is returned. An image without an icon is a
    /// 404 `ResourceNotFound`.
    pub async fn get_image_icon(&self, uuid: &Uuid, dest: &Path) -> Result<IconInfo, ClientError> {
        let url = self.url(&format!("/images/{uuid}/icon"), &[])?;
        let resp = self
            .send_retrying(|| self.request(Method::GET, url.clone()))
            .await?;
        let mut resp = Self::check(resp).await?;
        let header_str = |name: header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header_str(header::CONTENT_TYPE)
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let etag = header_str(header::ETAG)
            .map(|e| {
                e.trim_start_matches("W/")
                    .trim_matches('"')
                    .to_ascii_lowercase()
            })
            .filter(|e| e.len() == 40 && e.bytes().all(|b| b.is_ascii_hexdigit()));
        let expected_len = resp.content_length();
        let part = part_path(dest);
        let mut out = tokio::fs::File::create(&part).await?;
        let mut hasher = Sha1::new();
        let mut size = 0u64;
        let copied: Result<(), ClientError> = async {
            while let Some(chunk) = resp.chunk().await? {
                hasher.update(&chunk);
                out.write_all(&chunk).await?;
                size += chunk.len() as u64;
            }
            out.flush().await?;
            out.sync_all().await?;
            Ok(())
        }
        .await;
        drop(out);
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        let sha1 = hex::encode(hasher.finalize());
        let mismatch = match (expected_len, &etag) {
            (Some(n), _) if n != size => Some((format!("size {n}"), format!("size {size}"))),
            (_, Some(e)) if *e != sha1 => Some((e.clone(), sha1.clone())),
            _ => None,
        };
        if let Some((expected, actual)) = mismatch {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(ClientError::Integrity { expected, actual });
        }
        tokio::fs::rename(&part, dest).await?;
        Ok(IconInfo {
            content_type,
            size,
            sha1,
        })
    }

    /// `DELETE /images/:uuid/icon`; returns the image (without `icon`).
    pub async fn delete_image_icon(&self, uuid: &Uuid) -> Result<Image, ClientError> {
        let url = self.url(&format!("/images/{uuid}/icon"), &[])?;
        let resp = self.request(Method::DELETE, url)?.send().await?;
        Self::decode(resp).await
    }

    /// Download `files[0]` of image `uuid` to `dest`.
    ///
    /// Bytes go to `<dest>.part`; an existing `.part` is resumed with
    /// `Range: bytes=<len>-` (a 200 answer restarts from zero). When complete
    /// the size and SHA-1 are checked against the manifest's `files[0]`; on a
    /// mismatch the `.part` is removed and [`ClientError::Integrity`] is
    /// returned, otherwise it is renamed to `dest` atomically. Returns the
    /// verified file info.
    pub async fn get_image_file(
        &self,
        uuid: &Uuid,
        dest: &Path,
        reporter: Option<&dyn Reporter>,
    ) -> Result<FileInfo, ClientError> {
        let info = self.file_info(uuid).await?;
        let part = part_path(dest);
        let mut already = match tokio::fs::metadata(&part).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        if already > info.size {
            tokio::fs::remove_file(&part).await?;
            already = 0;
        }

        let mut hasher = Hashers::default();
        let mut repr_sha256 = None;
        if already == info.size && already > 0 {
            hash_file_all(&part, &mut hasher).await?;
            if let Some(r) = reporter {
                r.on_start(Some(info.size), already);
            }
        } else {
            repr_sha256 = self
                .download_resuming(uuid, &info, &part, already, &mut hasher, reporter)
                .await?;
        }

        let size = tokio::fs::metadata(&part).await?.len();
        if let Err(e) = check_download(&info, size, hasher, repr_sha256) {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, dest).await?;
        if let Some(r) = reporter {
            r.on_complete();
        }
        Ok(info)
    }

    /// `files[0]` of image `uuid`; an image without a file is a 404
    /// `ResourceNotFound`, as the server answers for its file.
    async fn file_info(&self, uuid: &Uuid) -> Result<FileInfo, ClientError> {
        let image = self.get_image(uuid).await?;
        FileInfo::of(&image).ok_or_else(|| ClientError::Api {
            status: 404,
            rest_code: "ResourceNotFound".into(),
            message: format!("image \"{uuid}\" has no file"),
            errors: Vec::new(),
        })
    }

    /// Stream `files[0]` of image `uuid` into `out` (e.g. stdout), then
    /// check its size and SHA-1 against the manifest (and the SHA-256 of a
    /// `Repr-Digest` header). Unlike [`Client::get_image_file`] nothing can
    /// be held back or resumed: the bytes are in `out` before the check, so
    /// a mismatch ([`ClientError::Integrity`]) tells the caller to discard
    /// them, and a connection lost mid-body is an error. Errors writing to
    /// `out` are [`ClientError::Io`] with the writer's error kind (a closed
    /// pipe is `BrokenPipe`).
    pub async fn get_image_file_to_writer<W>(
        &self,
        uuid: &Uuid,
        out: &mut W,
        reporter: Option<&dyn Reporter>,
    ) -> Result<FileInfo, ClientError>
    where
        W: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        let info = self.file_info(uuid).await?;
        let url = self.url(&format!("/images/{uuid}/file"), &[])?;
        let resp = self
            .send_retrying(|| self.request(Method::GET, url.clone()))
            .await?;
        let mut resp = Self::check(resp).await?;
        let repr_sha256 = repr_digest_sha256(resp.headers());
        if let Some(r) = reporter {
            r.on_start(Some(info.size), 0);
        }
        let mut hasher = Hashers::default();
        let mut size = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            hasher.update(&chunk);
            out.write_all(&chunk).await?;
            size += chunk.len() as u64;
            if let Some(r) = reporter {
                r.on_progress(chunk.len() as u64);
            }
        }
        out.flush().await?;
        check_download(&info, size, hasher, repr_sha256)?;
        if let Some(r) = reporter {
            r.on_complete();
        }
        Ok(info)
    }

    /// Download the rest of the file into `part` (which holds `already`
    /// bytes), appending and hashing. A connection lost mid-body is resumed
    /// with `Range` from the last byte written; it gives up after
    /// [`ATTEMPTS`] attempts in a row that bring no new byte. Returns the
    /// whole file's SHA-256 (hex) from the last response's `Repr-Digest`
    /// (or `Digest`) header, when the server sent one.
    async fn download_resuming(
        &self,
        uuid: &Uuid,
        info: &FileInfo,
        part: &Path,
        mut already: u64,
        hasher: &mut Hashers,
        reporter: Option<&dyn Reporter>,
    ) -> Result<Option<String>, ClientError> {
        let url = self.url(&format!("/images/{uuid}/file"), &[])?;
        let mut hashed_prefix = false;
        let mut started = false;
        let mut fruitless = 0;
        let mut delay = BACKOFF;
        loop {
            let from = already;
            let resp = self
                .send_retrying(|| {
                    let req = self.request(Method::GET, url.clone())?;
                    Ok(if from > 0 {
                        req.header(header::RANGE, format!("bytes={from}-"))
                            .header(header::IF_RANGE, info.sha1.as_str())
                    } else {
                        req
                    })
                })
                .await?;
            let resp = Self::check(resp).await?;
            let repr_sha256 = repr_digest_sha256(resp.headers());
            let mut out = if resp.status() == StatusCode::PARTIAL_CONTENT && from > 0 {
                if !hashed_prefix {
                    hash_file_all(part, hasher).await?;
                    hashed_prefix = true;
                }
                tokio::fs::OpenOptions::new()
                    .append(true)
                    .open(part)
                    .await?
            } else {
                // The whole file again (no range support, or it changed).
                *hasher = Hashers::default();
                hashed_prefix = true;
                already = 0;
                tokio::fs::File::create(part).await?
            };
            if let Some(r) = reporter {
                if !started {
                    r.on_start(Some(info.size), already);
                    started = true;
                }
            }
            let mut resp = resp;
            let outcome = loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        hasher.update(&chunk);
                        out.write_all(&chunk).await?;
                        already += chunk.len() as u64;
                        if let Some(r) = reporter {
                            r.on_progress(chunk.len() as u64);
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            out.flush().await?;
            out.sync_all().await?;
            drop(out);
            match outcome {
                Ok(()) => return Ok(repr_sha256),
                // Every byte arrived; the size and digest checks decide.
                Err(_) if already >= info.size => return Ok(repr_sha256),
                Err(e) => {
                    if already > from {
                        fruitless = 0;
                        delay = BACKOFF;
                    } else {
                        fruitless += 1;
                        if fruitless >= ATTEMPTS {
                            return Err(e.into());
                        }
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
    }
}

/// `images`, `images/…` (after any leading `/`): the paths that take `?channel=`.
fn is_images_path(path: &str) -> bool {
    let p = path.trim_start_matches('/');
    p == "images" || p.starts_with("images/") || p.starts_with("images?")
}

/// Check a downloaded file of `size` bytes, hashed by `hasher`, against
/// the manifest's `files[0]` and the SHA-256 a `Repr-Digest` header gave.
fn check_download(
    info: &FileInfo,
    size: u64,
    hasher: Hashers,
    repr_sha256: Option<String>,
) -> Result<(), ClientError> {
    let (sha1, sha256) = hasher.finish();
    if size != info.size {
        return Err(ClientError::Integrity {
            expected: format!("size {}", info.size),
            actual: format!("size {size}"),
        });
    }
    if !sha1.eq_ignore_ascii_case(&info.sha1) {
        return Err(ClientError::Integrity {
            expected: info.sha1.clone(),
            actual: sha1,
        });
    }
    if let Some(want) = repr_sha256.filter(|want| *want != sha256) {
        return Err(ClientError::Integrity {
            expected: format!("sha256 {want} (Repr-Digest)"),
            actual: format!("sha256 {sha256}"),
        });
    }
    Ok(())
}

/// `?account=<uuid>` when `account` is given.
fn account_query(account: Option<&str>) -> Vec<(&'static str, &str)> {
    account.map(|a| ("account", a)).into_iter().collect()
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// SHA-1 and SHA-256 of a download, computed together.
#[derive(Default, Clone)]
pub(crate) struct Hashers {
    sha1: Sha1,
    sha256: sha2::Sha256,
}

impl Hashers {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.sha1.update(data);
        self.sha256.update(data);
    }

    /// `(sha1 hex, sha256 hex)`.
    pub(crate) fn finish(self) -> (String, String) {
        (
            hex::encode(self.sha1.finalize()),
            hex::encode(self.sha256.finalize()),
        )
    }
}

/// The SHA-256 (lower-case hex) a response announces for the whole
/// representation: RFC 9530 `Repr-Digest: sha-256=:<base64>:`, else RFC
/// 3230 `Digest: SHA-256=<base64>`. `None` when absent or malformed.
pub fn repr_digest_sha256(headers: &header::HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let decode = |b64: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .map(hex::encode)
    };
    let from_repr = headers
        .get_all("repr-digest")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|member| {
            let (key, value) = member.split_once('=')?;
            if !key.trim().eq_ignore_ascii_case("sha-256") {
                return None;
            }
            let value = value.trim();
            decode(value.strip_prefix(':')?.strip_suffix(':')?)
        });
    from_repr.or_else(|| {
        headers
            .get_all("digest")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|member| {
                let (key, value) = member.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("sha-256")
                    .then(|| decode(value))
                    .flatten()
            })
    })
}

async fn hash_file_all(path: &Path, hasher: &mut Hashers) -> Result<(), ClientError> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

async fn hash_file(path: &Path, hasher: &mut Sha1) -> Result<(), ClientError> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_goes_on_image_requests_only() {
        let c = Client::new("http://h:1/base").unwrap().with_channel("dev");
        let u = c.url("/images/abc", &[("action", "activate")]).unwrap();
        assert_eq!(
            u.as_str(),
            "http://h:1/base/images/abc?action=activate&channel=dev"
        );
        let u = c.url("/images", &[]).unwrap();
        assert_eq!(u.as_str(), "http://h:1/base/images?channel=dev");
        assert_eq!(
            c.url("/ping", &[]).unwrap().as_str(),
            "http://h:1/base/ping"
        );
        assert_eq!(c.url("/channels", &[]).unwrap().query(), None);
        // An explicit channel in the query wins.
        let u = c.url("/images", &[("channel", "*")]).unwrap();
        assert_eq!(u.query(), Some("channel=*"));
        let c = c.with_channel("");
        assert_eq!(c.channel(), None);
        assert_eq!(c.url("/images", &[]).unwrap().query(), None);
    }
}
