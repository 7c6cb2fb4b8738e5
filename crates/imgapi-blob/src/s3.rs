//! S3-compatible backend (AWS S3, Garage, MinIO, Ceph RGW, s3s…) on
//! `object_store`'s `AmazonS3`, with path-style requests.
//!
//! Layout: object `<prefix>/<key>` in one bucket (`<key>` when the prefix is
//! empty). Keys follow the same rules as the local backend
//! ([`crate::local::validate_key`]).
//!
//! Visibility / commit: a put never writes a temporary *object*. A body that
//! ends before one part is filled is sent with a single `PutObject` (atomic on
//! every S3 implementation). A larger body goes to the final key through a
//! multipart upload, which S3 keeps invisible until
//! `CompleteMultipartUpload`; that call is made only after every part is
//! stored, the size cap held, and the SHA-1/MD5 lanes finished. So readers see
//! the previous object or the new one, whole, never a mix, and there is no
//! server-side copy (which would double the I/O and is limited to 5 GiB).
//!
//! Abort paths: `TooLarge`, a failing body stream, a failed part or complete,
//! and a failed digest lane all abort the multipart upload (after cancelling
//! the part uploads still in flight) before returning. If the put future is
//! dropped mid-way (client gone, timeout), [`UploadGuard`]'s `Drop` spawns the
//! abort on the runtime. A crash of the process itself leaves an incomplete
//! multipart upload, invisible but billed: [`BlobStore::sweep_staging`] lists
//! the bucket's multipart uploads under our prefix and aborts those older than
//! [`S3BlobStore::with_sweep_min_age`] (default one hour, so puts running on
//! other instances are left alone). An `AbortIncompleteMultipartUpload`
//! lifecycle rule on the bucket is a good second line of defence.
//!
//! Memory per put: the part being filled ([`DEFAULT_PART_SIZE`], 8 MiB) plus
//! at most [`DEFAULT_UPLOAD_CONCURRENCY`] parts in flight, whose buffers the
//! digest lanes share (refcounted, not copied): about 24–40 MiB whatever the
//! object size. The part size doubles every 1000 parts (S3 allows 10,000), so
//! objects of many TiB fit.
//!
//! Staged uploads (resumable sessions): a multipart upload to the final key
//! (which ends with [`crate::STAGED_KEY_SUFFIX`]), started by
//! `staged_create`; the upload id is the handle. Each chunk becomes one or
//! more parts of [`DEFAULT_PART_SIZE`]–2× that size (one part when the chunk
//! is smaller), numbered after the parts the caller has recorded, so a
//! chunk retried after a failure overwrites the parts of the failed
//! attempt; parts are buffered one at a time (never the whole chunk) and
//! uploaded [`DEFAULT_UPLOAD_CONCURRENCY`] at once. Every chunk but the last
//! must be at least 5 MiB ([`BlobStore::staged_min_chunk`]), so every part
//! but the last is too. `staged_commit` completes the upload with the
//! recorded part ids (parts of failed attempts beyond them are dropped by
//! S3) and checks the object's size. `sweep_staging` never aborts staged
//! uploads; `staged_leftovers` lists them for the session sweeper.
//!
//! Errors: connection failures, timeouts and 5xx answers (after the client's
//! few fast retries) are [`BlobError::Unavailable`], a missing bucket or
//! refused credentials [`BlobError::Inaccessible`] (both → 503
//! StorageIsDown), a missing object [`BlobError::NotFound`]; each in one
//! short line (see `errors`).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer};
use object_store::client::{HttpClient, HttpConnector, HttpRequest};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::task::JoinSet;

use crate::digest::{DigestValues, StreamDigests};
use crate::local::{is_key_byte, validate_key};
use crate::{
    error_chain, BlobError, BlobMeta, BlobRead, BlobStore, ByteStream, PutOutcome, StagedChunk,
    StagedProgress, StagedRef, STAGED_KEY_SUFFIX,
};

/// Size of the first 1000 parts of a multipart upload (S3's minimum is
/// 5 MiB for every part but the last).
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Parts uploaded concurrently by one put.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 2;
/// Incomplete multipart uploads younger than this are not swept (they may
/// be puts in progress on another instance).
pub const DEFAULT_SWEEP_MIN_AGE: Duration = Duration::from_secs(3600);
/// Parts per part-size step: the part size doubles after every this many.
const PARTS_PER_STEP: usize = 1000;
/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: usize = 5 << 20;
/// S3's maximum number of parts of one multipart upload.
const MAX_PARTS: usize = 10_000;
/// Buffers queued per digest lane.
const DIGEST_DEPTH: usize = 2;
/// How long the store's HTTP client waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Timeouts {
    /// For a connection (an unreachable endpoint fails fast).
    pub connect: Duration,
    /// For the next byte of an answer, and for the answer to a request
    /// whose body is being sent (a part): longer than one part takes to
    /// send. The request then fails (and is retried).
    pub stall: Duration,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        S3Timeouts {
            connect: Duration::from_secs(3),
            stall: Duration::from_secs(30),
        }
    }
}

/// Where and how to reach the bucket.
#[derive(Clone, Default)]
pub struct S3Config {
    /// `http(s)://host:port` of an S3-compatible server; `None` = AWS S3 of
    /// `region`. Plain `http` is accepted (meant for loopback test servers).
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    /// Key prefix inside the bucket (`a/b`, no leading or trailing `/`); may
    /// be empty.
    pub prefix: String,
    /// Explicit credentials; when absent, the standard AWS environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`) and the usual AWS credential providers are used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Blob store in an S3 bucket. Cheap to clone and share.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    s3: Arc<AmazonS3>,
    /// Raw client for the two calls `object_store` does not expose
    /// (ListMultipartUploads, AbortMultipartUpload by id).
    http: HttpClient,
    /// `scheme://host[:port]/bucket`, no trailing slash.
    bucket_url: String,
    /// The bucket's name, for messages.
    bucket: String,
    region: String,
    prefix: String,
    part_size: usize,
    concurrency: usize,
    sweep_min_age: Duration,
}

/// One incomplete multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// Key relative to the store's prefix.
    pub key: String,
    pub upload_id: String,
    /// When it was started, if the server said.
    pub initiated: Option<chrono::DateTime<chrono::Utc>>,
}

impl S3BlobStore {
    /// Build the client with the default [`S3Timeouts`]. Does no I/O: use
    /// [`S3BlobStore::check`] to find out whether the bucket is reachable.
    pub fn open(cfg: S3Config) -> Result<Self, BlobError> {
        Self::open_with(cfg, S3Timeouts::default())
    }

    /// [`S3BlobStore::open`] with the given timeouts.
    pub fn open_with(cfg: S3Config, timeouts: S3Timeouts) -> Result<Self, BlobError> {
        let misconfigured = |what: String| BlobError::Io(std::io::Error::other(what));
        if cfg.bucket.is_empty() {
            return Err(misconfigured("S3 storage: no bucket configured".into()));
        }
        let prefix = cfg.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            validate_key(&prefix).map_err(|_| {
                misconfigured(format!(
                    "S3 storage: invalid key prefix {:?} ('/'-separated segments of [A-Za-z0-9._-])",
                    cfg.prefix
                ))
            })?;
        }
        let region = if cfg.region.is_empty() {
            "us-east-1".to_owned()
        } else {
            cfg.region.clone()
        };
        let endpoint = cfg
            .endpoint
            .as_deref()
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let usable = endpoint.parse::<http::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
        });
        if !usable {
            return Err(misconfigured(format!(
                "S3 storage: endpoint {endpoint:?} is not an http(s)://host[:port] URL"
            )));
        }
        let allow_http = endpoint.starts_with("http://");
        let options = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(timeouts.connect)
            .with_timeout_disabled()
            .with_read_timeout(timeouts.stall);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
        };
        // from_env: the standard AWS_* credential variables; everything we
        // know explicitly overrides what the environment says.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&region)
            .with_endpoint(&endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(allow_http)
            .with_client_options(options.clone())
            .with_retry(retry);
        if let Some(id) = &cfg.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &cfg.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let s3 = builder
            .build()
            .map_err(|e| misconfigured(format!("S3 storage configuration: {e}")))?;
        let http = object_store::client::ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| misconfigured(format!("S3 storage HTTP client: {e}")))?;
        Ok(S3BlobStore {
            s3: Arc::new(s3),
            http,
            bucket_url: format!("{endpoint}/{}", encode_segment(&cfg.bucket)),
            bucket: cfg.bucket.clone(),
            region,
            prefix,
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            sweep_min_age: DEFAULT_SWEEP_MIN_AGE,
        })
    }

    /// Part size of multipart uploads (at least 5 MiB; smaller values are
    /// raised) and how many parts one put uploads at once (at least 1).
    #[must_use]
    pub fn with_parts(mut self, part_size: usize, concurrency: usize) -> Self {
        self.part_size = part_size.max(MIN_PART_SIZE);
        self.concurrency = concurrency.max(1);
        self
    }

    /// Minimum age of the incomplete multipart uploads that
    /// [`BlobStore::sweep_staging`] aborts.
    #[must_use]
    pub fn with_sweep_min_age(mut self, age: Duration) -> Self {
        self.sweep_min_age = age;
        self
    }

    /// The key prefix inside the bucket (empty or `a/b`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// One cheap authenticated request (a list of at most one key) to tell
    /// whether the bucket is reachable and the credentials work.
    pub async fn check(&self) -> Result<(), BlobError> {
        let prefix = self.dir_path("")?;
        let mut list = self.s3.list(prefix.as_ref());
        match list.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.fail(e, "")),
        }
    }

    /// A URL that lets anyone GET `key` for `expires` (the optional download
    /// redirect). No request is made; the object is not checked.
    pub async fn presigned_get_url(
        &self,
        key: &str,
        expires: Duration,
    ) -> Result<String, BlobError> {
        let path = self.path_for(key)?;
        let url = self
            .s3
            .signed_url(http::Method::GET, &path, expires)
            .await
            .map_err(|e| self.fail(e, key))?;
        Ok(url.to_string())
    }

    /// Incomplete multipart uploads under this store's prefix (puts in
    /// progress, or leftovers of crashed ones).
    pub async fn pending_uploads(&self) -> Result<Vec<PendingUpload>, BlobError> {
        let list_prefix = self.object_key("");
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut url = format!(
                "{}?uploads&prefix={}",
                self.bucket_url,
                encode_query(&list_prefix)
            );
            if let Some((key, id)) = &markers {
                url.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    encode_query(key),
                    encode_query(id)
                ));
            }
            let body = self.raw(http::Method::GET, &url).await?;
            let page = parse_list_uploads(&body);
            for upload in page.uploads {
                let Some(key) = upload.key.strip_prefix(&list_prefix) else {
                    continue;
                };
                out.push(PendingUpload {
                    key: key.to_owned(),
                    upload_id: upload.upload_id,
                    initiated: upload.initiated,
                });
            }
            match (page.truncated, page.next_key, page.next_upload_id) {
                (true, Some(k), Some(id)) => markers = Some((k, id)),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Abort one incomplete multipart upload (missing = Ok).
    pub async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), BlobError> {
        let key = self.object_key(&upload.key);
        let encoded: Vec<String> = key.split('/').map(encode_segment).collect();
        let url = format!(
            "{}/{}?uploadId={}",
            self.bucket_url,
            encoded.join("/"),
            encode_query(&upload.upload_id)
        );
        match self.raw(http::Method::DELETE, &url).await {
            Ok(_) | Err(BlobError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A signed request outside `object_store`'s API; returns the body.
    async fn raw(&self, method: http::Method, url: &str) -> Result<String, BlobError> {
        let credential = self
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| self.fail(e, ""))?;
        let mut request: HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(Bytes::new().into())
            .map_err(|e| BlobError::Io(std::io::Error::other(format!("S3 request {url}: {e}"))))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| self.fail(e, ""))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| errors::http_error(&e, &format!("{method} {url}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .bytes()
            .await
            .map_err(|e| errors::http_error(&e, &format!("{method} {url}")))?;
        let body = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Ok(body)
        } else {
            Err(errors::response_error(
                status,
                &body,
                &format!("{method} {url}"),
                &self.bucket,
            ))
        }
    }

    /// An `object_store` error of a call on `key`.
    fn fail(&self, e: object_store::Error, key: &str) -> BlobError {
        errors::map_err(e, key, &self.bucket)
    }

    /// A 404 without a body (HEAD) does not say whether the object or the
    /// whole bucket is missing: one cheap listing tells.
    async fn missing(&self, key: &str) -> BlobError {
        match self.check().await {
            Err(e @ BlobError::Inaccessible(_)) => e,
            _ => BlobError::NotFound(key.to_owned()),
        }
    }

    /// HEAD `path`, with a missing bucket told from a missing object.
    async fn head(&self, path: &Path, key: &str) -> Result<object_store::ObjectMeta, BlobError> {
        match self.s3.head(path).await {
            Ok(meta) => Ok(meta),
            Err(e) => match self.fail(e, key) {
                BlobError::NotFound(_) => Err(self.missing(key).await),
                other => Err(other),
            },
        }
    }

    /// `<prefix>/<key>` (or `<key>`), unvalidated.
    fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn path_for(&self, key: &str) -> Result<Path, BlobError> {
        validate_key(key)?;
        Path::parse(self.object_key(key)).map_err(|_| BlobError::InvalidKey(key.to_owned()))
    }

    /// The object_store path of the "directory" `dir_key` (empty = the
    /// store's prefix; `None` = the whole bucket).
    fn dir_path(&self, dir_key: &str) -> Result<Option<Path>, BlobError> {
        let full = match (self.prefix.is_empty(), dir_key.is_empty()) {
            (true, true) => return Ok(None),
            (false, true) => self.prefix.clone(),
            _ => self.object_key(dir_key),
        };
        Path::parse(full)
            .map(Some)
            .map_err(|_| BlobError::InvalidKey(dir_key.to_owned()))
    }

    fn part_size_for(&self, part_index: usize) -> usize {
        let step = u32::try_from(part_index / PARTS_PER_STEP)
            .unwrap_or(u32::MAX)
            .min(10);
        self.part_size.saturating_mul(1usize << step)
    }

    async fn put_inner(
        &self,
        key: &str,
        path: &Path,
        mut body: ByteStream,
        max_size: u64,
        guard: &mut UploadGuard,
    ) -> Result<PutOutcome, BlobError> {
        let mut digests = StreamDigests::spawn(DIGEST_DEPTH);
        let mut size: u64 = 0;
        let mut part_index = 0usize;
        let mut part_size = self.part_size_for(0);
        let mut buf = BytesMut::new();
        while let Some(item) = body.next().await {
            let mut chunk = item.map_err(BlobError::Source)?;
            size = size.saturating_add(chunk.len() as u64);
            if size > max_size {
                return Err(BlobError::TooLarge { limit: max_size });
            }
            while !chunk.is_empty() {
                if buf.is_empty() {
                    // Once multipart, fill each part in place; until then, a
                    // small body does not pay for a whole part buffer.
                    let want = if guard.upload.is_some() {
                        part_size
                    } else {
                        part_size.min(chunk.len().max(64 << 10))
                    };
                    buf.reserve(want);
                }
                let take = chunk.len().min(part_size - buf.len());
                buf.extend_from_slice(&chunk.split_to(take));
                if buf.len() == part_size {
                    let part = buf.split().freeze();
                    if guard.upload.is_none() {
                        let upload = self
                            .s3
                            .put_multipart_opts(path, PutMultipartOptions::default())
                            .await
                            .map_err(|e| self.fail(e, key))?;
                        guard.upload = Some(upload);
                    }
                    self.send_part(key, part, &digests, guard).await?;
                    part_index += 1;
                    part_size = self.part_size_for(part_index);
                }
            }
            // Surface a failed part early instead of at the end.
            if let Some(done) = guard.parts.try_join_next() {
                part_result(done, key, &self.bucket)?;
            }
        }
        let last = buf.freeze();
        if guard.upload.is_none() {
            // Everything fit in one part: a single atomic PUT.
            let lane = digests.update(last.clone()).await;
            let values = finish_digests(&mut digests, lane).await?;
            self.s3
                .put_opts(path, PutPayload::from(last), PutOptions::default())
                .await
                .map_err(|e| self.fail(e, key))?;
            return Ok(PutOutcome::of(size, values));
        }
        if !last.is_empty() {
            self.send_part(key, last, &digests, guard).await?;
        }
        while let Some(done) = guard.parts.join_next().await {
            part_result(done, key, &self.bucket)?;
        }
        let values = finish_digests(&mut digests, Ok(())).await?;
        if let Some(upload) = guard.upload.as_mut() {
            upload.complete().await.map_err(|e| self.fail(e, key))?;
        }
        // Completed: nothing to abort any more.
        guard.upload = None;
        Ok(PutOutcome::of(size, values))
    }

    /// How a chunk of `len` bytes is cut into parts: the sizes, each at
    /// least the part size (or the whole chunk when it is smaller) and less
    /// than twice it.
    fn chunk_parts(&self, len: u64) -> Vec<u64> {
        let target = self.part_size as u64;
        let n = (len / target.max(1)).max(1);
        let (base, extra) = (len / n, len % n);
        (0..n).map(|i| base + u64::from(i < extra)).collect()
    }

    /// The body of one staged chunk into parts `first..`, hashed on the way.
    async fn append_inner(
        &self,
        chunk: &StagedChunk<'_>,
        path: &Path,
        mut body: ByteStream,
        digests: &StreamDigests,
        parts: &mut JoinSet<(usize, object_store::Result<PartId>)>,
    ) -> Result<Vec<String>, BlobError> {
        let sizes = self.chunk_parts(chunk.len);
        let first = chunk.parts.len();
        if first + sizes.len() > MAX_PARTS {
            return Err(BlobError::Io(std::io::Error::other(format!(
                "staged upload {}: more than {MAX_PARTS} S3 parts (use bigger chunks)",
                chunk.key
            ))));
        }
        let mut done: Vec<Option<String>> = vec![None; sizes.len()];
        let mut collect = |finished: (usize, object_store::Result<PartId>)| {
            let (i, result) = finished;
            let id = result.map_err(|e| self.fail(e, chunk.key))?;
            if let Some(slot) = done.get_mut(i - first) {
                *slot = Some(id.content_id);
            }
            Ok::<(), BlobError>(())
        };
        let mut size: u64 = 0;
        let mut part = 0usize;
        let mut buf = BytesMut::new();
        let want =
            |part: usize| usize::try_from(sizes.get(part).copied().unwrap_or(0)).unwrap_or(0);
        while let Some(item) = body.next().await {
            let mut data = item.map_err(BlobError::Source)?;
            size = size.saturating_add(data.len() as u64);
            if size > chunk.len {
                return Err(BlobError::TooLarge { limit: chunk.len });
            }
            while !data.is_empty() {
                if buf.is_empty() {
                    buf.reserve(want(part));
                }
                let take = data.len().min(want(part) - buf.len());
                buf.extend_from_slice(&data.split_to(take));
                if buf.len() == want(part) {
                    let bytes = buf.split().freeze();
                    if digests.update(bytes.clone()).await.is_err() {
                        return Err(BlobError::Io(std::io::Error::other(
                            "digest lane stopped unexpectedly",
                        )));
                    }
                    while parts.len() >= self.concurrency {
                        match parts.join_next().await {
                            Some(finished) => collect(join_part(finished)?)?,
                            None => break,
                        }
                    }
                    let (s3, path, id, index) = (
                        Arc::clone(&self.s3),
                        path.clone(),
                        chunk.handle.to_owned(),
                        first + part,
                    );
                    parts.spawn(async move {
                        let result = s3
                            .put_part(&path, &id, index, PutPayload::from(bytes))
                            .await;
                        (index, result)
                    });
                    part += 1;
                }
            }
            if let Some(finished) = parts.try_join_next() {
                collect(join_part(finished)?)?;
            }
        }
        if size < chunk.len {
            return Err(BlobError::Source(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the chunk ended after {size} of its {} bytes", chunk.len),
            )));
        }
        while let Some(finished) = parts.join_next().await {
            collect(join_part(finished)?)?;
        }
        done.into_iter()
            .map(|id| {
                id.ok_or_else(|| {
                    BlobError::Io(std::io::Error::other("an S3 part upload went missing"))
                })
            })
            .collect()
    }

    /// Hand `part` to the digest lanes and start its upload, first waiting
    /// for a slot when `concurrency` parts are already in flight.
    async fn send_part(
        &self,
        key: &str,
        part: Bytes,
        digests: &StreamDigests,
        guard: &mut UploadGuard,
    ) -> Result<(), BlobError> {
        if digests.update(part.clone()).await.is_err() {
            return Err(BlobError::Io(std::io::Error::other(
                "digest lane stopped unexpectedly",
            )));
        }
        while guard.parts.len() >= self.concurrency {
            match guard.parts.join_next().await {
                Some(done) => part_result(done, key, &self.bucket)?,
                None => break,
            }
        }
        let Some(upload) = guard.upload.as_mut() else {
            return Err(BlobError::Io(std::io::Error::other(
                "multipart upload not started",
            )));
        };
        let future = upload.put_part(PutPayload::from(part));
        guard.parts.spawn(future);
        Ok(())
    }
}

fn join_part(
    done: Result<(usize, object_store::Result<PartId>), tokio::task::JoinError>,
) -> Result<(usize, object_store::Result<PartId>), BlobError> {
    done.map_err(|e| {
        BlobError::Io(std::io::Error::other(format!(
            "S3 part upload task failed: {e}"
        )))
    })
}

async fn finish_digests(
    digests: &mut StreamDigests,
    lane: Result<(), crate::lane::LaneStopped>,
) -> Result<DigestValues, BlobError> {
    let finished = digests.finish().await;
    match (lane, finished) {
        (_, Err(e)) => Err(BlobError::Io(e)),
        (Err(_), Ok(_)) => Err(BlobError::Io(std::io::Error::other(
            "digest lane stopped unexpectedly",
        ))),
        (Ok(()), Ok(digests)) => Ok(digests),
    }
}

fn part_result(
    done: Result<object_store::Result<()>, tokio::task::JoinError>,
    key: &str,
    bucket: &str,
) -> Result<(), BlobError> {
    match done {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(errors::map_err(e, key, bucket)),
        Err(e) => Err(BlobError::Io(std::io::Error::other(format!(
            "S3 part upload task failed: {e}"
        )))),
    }
}

/// The multipart upload of one put and its part uploads in flight. Aborted
/// by [`UploadGuard::abort`] on error paths, and by `Drop` (spawned on the
/// runtime) when the put future is dropped; disarmed by taking `upload`.
struct UploadGuard {
    upload: Option<Box<dyn MultipartUpload>>,
    parts: JoinSet<object_store::Result<()>>,
}

impl UploadGuard {
    async fn abort(&mut self, key: &str) {
        self.parts.shutdown().await;
        if let Some(mut upload) = self.upload.take() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(key, error = %e, "could not abort S3 multipart upload (sweep_staging will)");
            }
        }
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.parts.abort_all();
        if let Some(mut upload) = self.upload.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        if let Err(e) = upload.abort().await {
                            tracing::warn!(error = %e, "could not abort S3 multipart upload of a cancelled put (sweep_staging will)");
                        }
                    });
                }
                Err(_) => tracing::warn!(
                    "S3 multipart upload of a cancelled put left for sweep_staging (no runtime)"
                ),
            }
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn health_check(&self) -> Result<(), BlobError> {
        S3BlobStore::check(self).await
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: u64,
    ) -> Result<PutOutcome, BlobError> {
        let path = self.path_for(key)?;
        let mut guard = UploadGuard {
            upload: None,
            parts: JoinSet::new(),
        };
        let started = std::time::Instant::now();
        let result = self.put_inner(key, &path, body, max_size, &mut guard).await;
        match result {
            Ok(outcome) => {
                tracing::debug!(
                    key,
                    size = outcome.size,
                    total_ms = started.elapsed().as_millis() as u64,
                    "blob committed to S3"
                );
                Ok(outcome)
            }
            Err(e) => {
                guard.abort(key).await;
                Err(e)
            }
        }
    }

    async fn get_stream(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<BlobRead, BlobError> {
        let path = self.path_for(key)?;
        let empty_range = matches!(&range, Some(r) if r.start >= r.end);
        if empty_range {
            // S3 cannot serve an empty range: answer from the metadata.
            let meta = self.head(&path, key).await?;
            let start = range.map_or(0, |r| r.start).min(meta.size);
            return Ok(BlobRead {
                total_size: meta.size,
                range: start..start,
                stream: Box::pin(futures_util::stream::empty()),
            });
        }
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.s3.get_opts(&path, options).await {
            Ok(result) => result,
            Err(object_store::Error::Generic { source, .. })
                if error_chain(source.as_ref()).contains("416") =>
            {
                // Range starts at/after the end (object shrank since the
                // caller clamped): an empty read, like the local backend.
                let meta = self.head(&path, key).await?;
                return Ok(BlobRead {
                    total_size: meta.size,
                    range: meta.size..meta.size,
                    stream: Box::pin(futures_util::stream::empty()),
                });
            }
            Err(e) => return Err(self.fail(e, key)),
        };
        let total_size = result.meta.size;
        let range = result.range.clone();
        let (key, bucket) = (key.to_owned(), self.bucket.clone());
        let stream = result
            .into_stream()
            .map_err(move |e| std::io::Error::other(errors::map_err(e, &key, &bucket)));
        Ok(BlobRead {
            total_size,
            range,
            stream: Box::pin(stream),
        })
    }

    async fn stat(&self, key: &str) -> Result<BlobMeta, BlobError> {
        let path = self.path_for(key)?;
        let meta = self.head(&path, key).await?;
        Ok(BlobMeta { size: meta.size })
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path_for(key)?;
        match self.s3.delete(&path).await.map_err(|e| self.fail(e, key)) {
            Ok(()) | Err(BlobError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let invalid = || BlobError::InvalidKey(prefix.to_owned());
        if !prefix.bytes().all(|b| b == b'/' || is_key_byte(b)) {
            return Err(invalid());
        }
        // object_store lists whole path segments: list the deepest
        // "directory" the prefix names completely, then filter by string.
        let dir_key = match prefix.rfind('/') {
            Some(i) => {
                let dir_key = &prefix[..i];
                validate_key(dir_key).map_err(|_| invalid())?;
                dir_key
            }
            None => "",
        };
        let dir = self.dir_path(dir_key)?;
        let strip = self.object_key("");
        let mut keys = Vec::new();
        let mut listing = self.s3.list(dir.as_ref());
        while let Some(item) = listing.next().await {
            let meta = item.map_err(|e| self.fail(e, prefix))?;
            let full = meta.location.as_ref();
            if let Some(key) = full.strip_prefix(&strip) {
                // Objects outside the key space (`lost+found/…`) are not ours to list.
                if key.starts_with(prefix) && validate_key(key).is_ok() {
                    keys.push(key.to_owned());
                }
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<crate::ListedBlob>, BlobError> {
        self.list_objects_impl(prefix).await
    }

    async fn move_to_lost_found(&self, key: &str) -> Result<String, BlobError> {
        self.move_to_lost_found_impl(key).await
    }

    async fn redirect_url(
        &self,
        key: &str,
        expires: Duration,
    ) -> Result<Option<String>, BlobError> {
        self.presigned_get_url(key, expires).await.map(Some)
    }

    fn staged_min_chunk(&self) -> u64 {
        MIN_PART_SIZE as u64
    }

    async fn staged_create(&self, key: &str) -> Result<String, BlobError> {
        if !key.ends_with(STAGED_KEY_SUFFIX) {
            return Err(BlobError::InvalidKey(key.to_owned()));
        }
        let path = self.path_for(key)?;
        self.s3
            .create_multipart(&path)
            .await
            .map_err(|e| self.fail(e, key))
    }

    async fn staged_append(
        &self,
        chunk: StagedChunk<'_>,
        body: ByteStream,
    ) -> Result<StagedProgress, BlobError> {
        let path = self.path_for(chunk.key)?;
        if chunk.len < MIN_PART_SIZE as u64 && !chunk.last {
            return Err(BlobError::Io(std::io::Error::other(format!(
                "a chunk other than the last must be at least {MIN_PART_SIZE} bytes on S3"
            ))));
        }
        let mut digests = StreamDigests::resume(DIGEST_DEPTH, chunk.digests.clone());
        let mut parts = JoinSet::new();
        let appended = self
            .append_inner(&chunk, &path, body, &digests, &mut parts)
            .await;
        // Cancel part uploads still in flight on failure (their parts are
        // overwritten by the next attempt, or dropped at completion).
        parts.shutdown().await;
        let new_parts = appended?;
        let digests = match digests.finish_state().await {
            Ok(d) => d,
            Err(e) => return Err(BlobError::Io(e)),
        };
        Ok(StagedProgress { digests, new_parts })
    }

    async fn staged_commit(
        &self,
        key: &str,
        handle: &str,
        parts: &[String],
        size: u64,
    ) -> Result<(), BlobError> {
        let path = self.path_for(key)?;
        if parts.is_empty() {
            return Err(BlobError::Io(std::io::Error::other(format!(
                "staged upload {key} has no parts to commit"
            ))));
        }
        let ids = parts
            .iter()
            .map(|p| PartId {
                content_id: p.clone(),
            })
            .collect();
        self.s3
            .complete_multipart(&path, &handle.to_owned(), ids)
            .await
            .map_err(|e| self.fail(e, key))?;
        let meta = self.head(&path, key).await?;
        if meta.size != size {
            // Never leave an object whose size the caller did not expect.
            let _ = self.s3.delete(&path).await;
            return Err(BlobError::Io(std::io::Error::other(format!(
                "staged upload {key} completed with {} bytes, expected {size}",
                meta.size
            ))));
        }
        Ok(())
    }

    async fn staged_abort(&self, key: &str, handle: &str) -> Result<(), BlobError> {
        let path = self.path_for(key)?;
        let aborted = self.s3.abort_multipart(&path, &handle.to_owned()).await;
        match aborted.map_err(|e| self.fail(e, key)) {
            Ok(()) | Err(BlobError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn staged_leftovers(&self, older_than: Duration) -> Result<Vec<StagedRef>, BlobError> {
        let uploads = match self.pending_uploads().await {
            Ok(uploads) => uploads,
            Err(e @ (BlobError::Unavailable(_) | BlobError::Inaccessible(_))) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list S3 multipart uploads; rely on a lifecycle rule");
                return Ok(Vec::new());
            }
        };
        let now = chrono::Utc::now();
        let min_age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        Ok(uploads
            .into_iter()
            .filter(|u| u.key.ends_with(STAGED_KEY_SUFFIX))
            .filter(|u| match u.initiated {
                Some(at) => now.signed_duration_since(at) >= min_age,
                None => older_than.is_zero(),
            })
            .map(|u| StagedRef {
                key: u.key,
                handle: u.upload_id,
            })
            .collect())
    }

    /// Aborts the incomplete multipart uploads under the prefix that are
    /// older than the sweep minimum age. A server that does not implement
    /// ListMultipartUploads counts as nothing to sweep (logged).
    async fn sweep_staging(&self) -> Result<u64, BlobError> {
        let uploads = match self.pending_uploads().await {
            Ok(uploads) => uploads,
            Err(e @ (BlobError::Unavailable(_) | BlobError::Inaccessible(_))) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list S3 multipart uploads; rely on a lifecycle rule");
                return Ok(0);
            }
        };
        let now = chrono::Utc::now();
        let min_age =
            chrono::Duration::from_std(self.sweep_min_age).unwrap_or(chrono::Duration::MAX);
        let mut removed = 0;
        // Staged uploads belong to upload sessions, which outlive restarts.
        for upload in uploads
            .into_iter()
            .filter(|u| !u.key.ends_with(STAGED_KEY_SUFFIX))
        {
            let old_enough = match upload.initiated {
                Some(at) => now.signed_duration_since(at) >= min_age,
                None => self.sweep_min_age.is_zero(),
            };
            if old_enough {
                self.abort_upload(&upload).await?;
                tracing::info!(key = %upload.key, upload_id = %upload.upload_id, "aborted stale S3 multipart upload");
                removed += 1;
            }
        }
        Ok(removed)
    }
}

// ------------------------------------------- ListMultipartUploads (raw)

/// Characters left as-is in SigV4 canonical URIs/queries: A-Z a-z 0-9 - _ . ~
const AWS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode_query(s: &str) -> String {
    utf8_percent_encode(s, AWS_ENCODE).to_string()
}

fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, AWS_ENCODE).to_string()
}

#[derive(Debug, Default)]
struct UploadsPage {
    uploads: Vec<RawUpload>,
    truncated: bool,
    next_key: Option<String>,
    next_upload_id: Option<String>,
}

#[derive(Debug)]
struct RawUpload {
    key: String,
    upload_id: String,
    initiated: Option<chrono::DateTime<chrono::Utc>>,
}

/// A minimal reader of the ListMultipartUploadsResult document (the
/// elements we need are flat and never nested in each other).
fn parse_list_uploads(xml: &str) -> UploadsPage {
    let mut page = UploadsPage::default();
    let mut rest = xml;
    while let Some(start) = rest.find("<Upload>") {
        let after = &rest[start + "<Upload>".len()..];
        let Some(end) = after.find("</Upload>") else {
            break;
        };
        let upload = &after[..end];
        if let (Some(key), Some(id)) = (errors::tag(upload, "Key"), errors::tag(upload, "UploadId"))
        {
            page.uploads.push(RawUpload {
                key: errors::unescape(key),
                upload_id: errors::unescape(id),
                initiated: errors::tag(upload, "Initiated")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.trim()).ok())
                    .map(|t| t.with_timezone(&chrono::Utc)),
            });
        }
        rest = &after[end..];
    }
    // Page-level elements, outside the <Upload> blocks.
    let head = match xml.find("<Upload>") {
        Some(i) => &xml[..i],
        None => xml,
    };
    let tail = match xml.rfind("</Upload>") {
        Some(i) => &xml[i..],
        None => "",
    };
    let page_tag = |name: &str| {
        errors::tag(head, name)
            .or_else(|| errors::tag(tail, name))
            .map(errors::unescape)
    };
    page.truncated = page_tag("IsTruncated").is_some_and(|t| t.trim() == "true");
    page.next_key = page_tag("NextKeyMarker").filter(|s| !s.is_empty());
    page.next_upload_id = page_tag("NextUploadIdMarker").filter(|s| !s.is_empty());
    page
}

mod aside;
mod errors;
#[cfg(test)]
mod tests;
