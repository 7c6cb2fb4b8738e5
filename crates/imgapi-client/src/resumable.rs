//! Resumable uploads through upload sessions (an IMGAPI extension, see the
//! server's docs/uploads.md): the `upload_session_*` calls, and
//! [`Client::add_image_file_resumable`], which sends a file in chunks,
//! survives failures (asking the server how much it has and going on from
//! there) and, given a state directory, reruns.
//!
//! The file is read once in order: the SHA-1 and SHA-256 checked at the
//! end are computed while chunks are read for sending (bytes the server
//! already had from an earlier run are hashed from disk first), never in a
//! separate pass.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::{header, Method};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

use crate::{Client, ClientError, FileInfo, Hashers, Image, Reporter, UploadSessionBody};

/// Default chunk size of resumable uploads: 64 MiB.
pub const DEFAULT_UPLOAD_CHUNK: u64 = 64 << 20;
/// Read size within a chunk.
const PIECE: usize = 1 << 20;
/// Failures in a row (without any progress) before a resumable upload
/// gives up.
const UPLOAD_ATTEMPTS: u32 = 6;
/// First wait after a failure; doubled up to [`MAX_BACKOFF`].
const UPLOAD_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// How [`Client::add_image_file_resumable_with`] works.
#[derive(Debug, Clone)]
pub struct ResumableOptions {
    /// Bytes per chunk (raised to the server's `chunk_size_min`).
    pub chunk_size: u64,
    /// Where to remember sessions between runs (one small JSON file per
    /// upload, keyed by server, image uuid, file path, size and mtime);
    /// `None`: resume within this run only.
    pub state_dir: Option<PathBuf>,
    /// Expected SHA-1 (hex) of the file (the manifest's `files[0].sha1`):
    /// the server refuses other bytes.
    pub expected_sha1: Option<String>,
}

impl Default for ResumableOptions {
    fn default() -> Self {
        ResumableOptions {
            chunk_size: DEFAULT_UPLOAD_CHUNK,
            state_dir: None,
            expected_sha1: None,
        }
    }
}

/// What a state file remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SavedUpload {
    server: String,
    image_uuid: String,
    path: String,
    size: u64,
    mtime_ms: u128,
    upload_id: String,
}

/// The state file of one upload, and what identifies the upload.
struct StateFile {
    path: Option<PathBuf>,
    key: SavedUpload,
}

impl StateFile {
    fn new(
        dir: Option<&Path>,
        server: &str,
        uuid: &Uuid,
        file: &Path,
        size: u64,
        mtime: SystemTime,
    ) -> Self {
        let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let key = SavedUpload {
            server: server.to_string(),
            image_uuid: uuid.to_string(),
            path: absolute.to_string_lossy().into_owned(),
            size,
            mtime_ms: mtime
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default(),
            upload_id: String::new(),
        };
        let path = dir.map(|d| {
            let mut h = Sha1::new();
            for part in [&key.server, &key.image_uuid, &key.path] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            h.update(key.size.to_le_bytes());
            h.update(key.mtime_ms.to_le_bytes());
            d.join(format!("upload-{}.json", hex::encode(h.finalize())))
        });
        StateFile { path, key }
    }

    /// The remembered upload id, if the state file is there and is about
    /// this very upload (same server, image, file, size and mtime).
    async fn load(&self) -> Option<String> {
        let text = tokio::fs::read_to_string(self.path.as_ref()?).await.ok()?;
        let saved: SavedUpload = serde_json::from_str(&text).ok()?;
        let same = SavedUpload {
            upload_id: saved.upload_id.clone(),
            ..self.key.clone()
        };
        (saved == same && !saved.upload_id.is_empty()).then_some(saved.upload_id)
    }

    /// Remember `upload_id` (best effort: a failure only costs resuming
    /// across runs).
    async fn save(&self, upload_id: &str) {
        let Some(path) = &self.path else { return };
        let saved = SavedUpload {
            upload_id: upload_id.to_string(),
            ..self.key.clone()
        };
        let Ok(text) = serde_json::to_string_pretty(&saved) else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = tokio::fs::create_dir_all(dir).await;
        }
        let tmp = path.with_extension("json.tmp");
        if tokio::fs::write(&tmp, text).await.is_ok() {
            let _ = tokio::fs::rename(&tmp, path).await;
        }
    }

    async fn remove(&self) {
        if let Some(path) = &self.path {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

/// Transport failures, timeouts, 5xx, 408, 409 (session busy) and 416 (a
/// chunk that did not start at the server's offset) are worth a retry
/// after asking the server for its offset.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Http(_) => true,
        ClientError::Api { status, .. } => *status >= 500 || matches!(*status, 408 | 409 | 416),
        _ => false,
    }
}

/// The server has no session endpoint (an original IMGAPI): 404 naming the
/// path or 405.
fn no_sessions(e: &ClientError) -> bool {
    match e {
        ClientError::Api { status: 405, .. } => true,
        ClientError::Api {
            status: 404,
            message,
            ..
        } => message.contains("/file/uploads"),
        _ => false,
    }
}

/// Running hashes of the file, fed in order exactly once per byte.
struct Progress {
    hashers: Hashers,
    /// Bytes `0..hashed` are in `hashers`.
    hashed: u64,
    /// Bytes reported to the reporter so far (never reported twice).
    reported: u64,
}

impl Client {
    fn session_path(uuid: &Uuid, id: Option<&str>) -> String {
        match id {
            Some(id) => format!("/images/{uuid}/file/uploads/{id}"),
            None => format!("/images/{uuid}/file/uploads"),
        }
    }

    async fn session_body(resp: reqwest::Response) -> Result<UploadSessionBody, ClientError> {
        Self::decode(resp).await
    }

    /// `POST /images/:uuid/file/uploads`: start an upload session.
    pub async fn upload_session_create(
        &self,
        uuid: &Uuid,
        compression: &str,
        sha1: Option<&str>,
        size: Option<u64>,
    ) -> Result<UploadSessionBody, ClientError> {
        let size = size.map(|s| s.to_string());
        let mut query = vec![("compression", compression)];
        if let Some(sha1) = sha1 {
            query.push(("sha1", sha1));
        }
        if let Some(size) = &size {
            query.push(("size", size));
        }
        let url = self.url(&Self::session_path(uuid, None), &query)?;
        let resp = self.request(Method::POST, url)?.send().await?;
        Self::session_body(resp).await
    }

    /// `GET /images/:uuid/file/uploads/:id`: the session's offset.
    pub async fn upload_session_get(
        &self,
        uuid: &Uuid,
        upload_id: &str,
    ) -> Result<UploadSessionBody, ClientError> {
        let url = self.url(&Self::session_path(uuid, Some(upload_id)), &[])?;
        let resp = self
            .send_retrying(|| self.request(Method::GET, url.clone()))
            .await?;
        Self::session_body(resp).await
    }

    /// `PUT /images/:uuid/file/uploads/:id`: `len` bytes of `body` as the
    /// chunk starting at `start` (`total` = the file's size, when known).
    pub async fn upload_session_put_chunk(
        &self,
        uuid: &Uuid,
        upload_id: &str,
        start: u64,
        len: u64,
        total: Option<u64>,
        body: reqwest::Body,
    ) -> Result<UploadSessionBody, ClientError> {
        if len == 0 {
            return Err(ClientError::Decode("an empty chunk cannot be sent".into()));
        }
        let url = self.url(&Self::session_path(uuid, Some(upload_id)), &[])?;
        let total = total.map_or_else(|| "*".to_string(), |t| t.to_string());
        let resp = self
            .request(Method::PUT, url)?
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{total}", start + len - 1),
            )
            .header(header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await?;
        Self::session_body(resp).await
    }

    /// `POST /images/:uuid/file/uploads/:id?action=finish`: verify and
    /// commit; returns the image (with `files[0]`).
    pub async fn upload_session_finish(
        &self,
        uuid: &Uuid,
        upload_id: &str,
        sha1: Option<&str>,
        sha256: Option<&str>,
        size: Option<u64>,
    ) -> Result<Image, ClientError> {
        let size = size.map(|s| s.to_string());
        let mut query = vec![("action", "finish")];
        if let Some(sha1) = sha1 {
            query.push(("sha1", sha1));
        }
        if let Some(sha256) = sha256 {
            query.push(("sha256", sha256));
        }
        if let Some(size) = &size {
            query.push(("size", size));
        }
        let url = self.url(&Self::session_path(uuid, Some(upload_id)), &query)?;
        let resp = self.request(Method::POST, url)?.send().await?;
        Self::decode(resp).await
    }

    /// `DELETE /images/:uuid/file/uploads/:id`: abort the session.
    pub async fn upload_session_abort(
        &self,
        uuid: &Uuid,
        upload_id: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(&Self::session_path(uuid, Some(upload_id)), &[])?;
        let resp = self.request(Method::DELETE, url)?.send().await?;
        Self::check(resp).await.map(|_| ())
    }

    /// [`Client::add_image_file_resumable_with`] with the default options
    /// (64 MiB chunks, no state across runs).
    pub async fn add_image_file_resumable(
        &self,
        uuid: &Uuid,
        path: &Path,
        compression: &str,
        reporter: Option<&dyn Reporter>,
    ) -> Result<Image, ClientError> {
        self.add_image_file_resumable_with(
            uuid,
            path,
            compression,
            &ResumableOptions::default(),
            reporter,
        )
        .await
    }

    /// Upload `path` as image `uuid`'s file through an upload session.
    ///
    /// Starts a session, or continues the one remembered in
    /// `options.state_dir` for this server, image and file (same path, size
    /// and mtime). Sends `options.chunk_size` chunks; after a failure
    /// (connection cut, server restarted, 5xx) it waits (0.5 s, doubling up
    /// to 8 s), asks the server for its offset and goes on from there,
    /// giving up after six failures in a row with no progress. Finishes with
    /// the SHA-1, SHA-256 and size computed while reading, and checks the
    /// image the server answers with. The reporter starts at the bytes the
    /// server already has. A server without the session endpoint (404 for
    /// the path, 405) gets a plain `PUT` ([`Client::add_image_file_checked`]).
    pub async fn add_image_file_resumable_with(
        &self,
        uuid: &Uuid,
        path: &Path,
        compression: &str,
        options: &ResumableOptions,
        reporter: Option<&dyn Reporter>,
    ) -> Result<Image, ClientError> {
        let meta = tokio::fs::metadata(path).await?;
        let size = meta.len();
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let state = StateFile::new(
            options.state_dir.as_deref(),
            self.base.as_str(),
            uuid,
            path,
            size,
            mtime,
        );
        let expected_sha1 = options.expected_sha1.as_deref();
        let mut session = None;
        if let Some(id) = state.load().await {
            match self.upload_session_get(uuid, &id).await {
                Ok(body) => session = Some(body),
                Err(e) if e.is_not_found() => state.remove().await,
                Err(e) => return Err(e),
            }
        }
        let session = match session {
            Some(s) => s,
            None => {
                match self
                    .upload_session_create(uuid, compression, expected_sha1, Some(size))
                    .await
                {
                    Ok(s) => {
                        state.save(&s.upload_id).await;
                        s
                    }
                    Err(e) if no_sessions(&e) => {
                        return self
                            .add_image_file_checked(
                                uuid,
                                path,
                                compression,
                                expected_sha1,
                                reporter,
                            )
                            .await
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let id = session.upload_id.clone();
        let chunk = options.chunk_size.max(session.chunk_size_min).max(1);
        let mut offset = session.offset.min(size);
        let mut progress = Progress {
            hashers: Hashers::default(),
            hashed: 0,
            reported: offset,
        };
        // What the server already has (an earlier run) is hashed from disk.
        hash_range(path, &mut progress, offset).await?;
        if let Some(r) = reporter {
            r.on_start(Some(size), offset);
        }
        let mut failures = 0;
        let mut delay = UPLOAD_BACKOFF;
        while offset < size {
            let len = chunk.min(size - offset);
            let sent = self
                .send_chunk(uuid, &id, path, offset, len, size, &mut progress, reporter)
                .await;
            let error = match sent {
                Ok(body) if body.offset > offset => {
                    offset = body.offset.min(size);
                    failures = 0;
                    delay = UPLOAD_BACKOFF;
                    continue;
                }
                Ok(body) => ClientError::Decode(format!(
                    "the server's offset did not move past {} after a chunk",
                    body.offset
                )),
                Err(e) => e,
            };
            if !retryable(&error) {
                if error.is_not_found() {
                    state.remove().await;
                }
                return Err(error);
            }
            failures += 1;
            if failures >= UPLOAD_ATTEMPTS {
                return Err(error);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
            // Ask where to go on from (retrying a few times itself).
            match self.upload_session_get(uuid, &id).await {
                Ok(body) => {
                    if body.offset > offset {
                        failures = 0;
                    }
                    offset = body.offset.min(size);
                    hash_range(path, &mut progress, offset).await?;
                }
                Err(e) if retryable(&e) => {}
                Err(e) => return Err(e),
            }
        }
        hash_range(path, &mut progress, size).await?;
        let (sha1, sha256) = std::mem::take(&mut progress.hashers).finish();
        let image = self.finish_checked(uuid, &id, &sha1, &sha256, size).await;
        match &image {
            Ok(_) => state.remove().await,
            Err(ClientError::Api { status: 400, .. }) | Err(ClientError::Integrity { .. }) => {
                // Refused: the session is over.
                state.remove().await
            }
            Err(_) => {}
        }
        let image = image?;
        if let Some(r) = reporter {
            r.on_complete();
        }
        Ok(image)
    }

    /// Finish, retrying on transport failures; a finish whose answer was
    /// lost shows as a missing session whose image has the file.
    async fn finish_checked(
        &self,
        uuid: &Uuid,
        id: &str,
        sha1: &str,
        sha256: &str,
        size: u64,
    ) -> Result<Image, ClientError> {
        let mut delay = UPLOAD_BACKOFF;
        let mut attempt = 1;
        let image = loop {
            match self
                .upload_session_finish(uuid, id, Some(sha1), Some(sha256), Some(size))
                .await
            {
                Ok(image) => break image,
                Err(e) if attempt > 1 && e.is_not_found() => {
                    // Done by an earlier attempt whose answer was lost?
                    let image = self.get_image(uuid).await?;
                    let done = FileInfo::of(&image)
                        .is_some_and(|f| f.size == size && f.sha1.eq_ignore_ascii_case(sha1));
                    if done {
                        break image;
                    }
                    return Err(e);
                }
                Err(e) if retryable(&e) && attempt < UPLOAD_ATTEMPTS => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let info = FileInfo::of(&image)
            .ok_or_else(|| ClientError::Decode("uploaded image has no files[0]".into()))?;
        if info.size != size {
            return Err(ClientError::Integrity {
                expected: format!("size {size}"),
                actual: format!("size {}", info.size),
            });
        }
        if !info.sha1.eq_ignore_ascii_case(sha1) {
            return Err(ClientError::Integrity {
                expected: sha1.to_string(),
                actual: info.sha1,
            });
        }
        Ok(image)
    }

    /// Send bytes `offset..offset+len` of `path` as one chunk, streamed from
    /// disk; bytes not hashed yet are hashed as they are read.
    #[allow(clippy::too_many_arguments)]
    async fn send_chunk(
        &self,
        uuid: &Uuid,
        id: &str,
        path: &Path,
        offset: u64,
        len: u64,
        size: u64,
        progress: &mut Progress,
        reporter: Option<&dyn Reporter>,
    ) -> Result<UploadSessionBody, ClientError> {
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        // The stream must be 'static: it shares the progress through a mutex.
        let shared = Arc::new(Mutex::new(std::mem::replace(
            progress,
            Progress {
                hashers: Hashers::default(),
                hashed: 0,
                reported: 0,
            },
        )));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let stream_state = Arc::clone(&shared);
        let stream = futures_util::stream::try_unfold(
            (file, offset, offset + len),
            move |(mut file, at, end)| {
                let state = Arc::clone(&stream_state);
                let tx = tx.clone();
                async move {
                    if at >= end {
                        return Ok::<_, std::io::Error>(None);
                    }
                    let want = usize::try_from((end - at).min(PIECE as u64)).unwrap_or(PIECE);
                    let mut buf = vec![0u8; want];
                    file.read_exact(&mut buf).await?;
                    let next = at + want as u64;
                    {
                        let mut p = state.lock().unwrap_or_else(|e| e.into_inner());
                        if p.hashed >= at && p.hashed < next {
                            let from = usize::try_from(p.hashed - at).unwrap_or(0);
                            p.hashers.update(&buf[from..]);
                            p.hashed = next;
                        }
                        if next > p.reported {
                            let _ = tx.send(next - p.reported.max(at));
                            p.reported = next;
                        }
                    }
                    Ok(Some((Bytes::from(buf), (file, next, end))))
                }
            },
        );
        let send = self.upload_session_put_chunk(
            uuid,
            id,
            offset,
            len,
            Some(size),
            reqwest::Body::wrap_stream(stream),
        );
        tokio::pin!(send);
        let result = loop {
            tokio::select! {
                res = &mut send => break res,
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
        let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
        *progress = std::mem::replace(
            &mut *guard,
            Progress {
                hashers: Hashers::default(),
                hashed: 0,
                reported: 0,
            },
        );
        result
    }
}

/// Hash bytes `progress.hashed..upto` of `path` (read from disk).
async fn hash_range(path: &Path, progress: &mut Progress, upto: u64) -> Result<(), ClientError> {
    if progress.hashed >= upto {
        return Ok(());
    }
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(progress.hashed)).await?;
    let mut buf = vec![0u8; PIECE];
    while progress.hashed < upto {
        let want = usize::try_from((upto - progress.hashed).min(PIECE as u64)).unwrap_or(PIECE);
        file.read_exact(&mut buf[..want]).await?;
        progress.hashers.update(&buf[..want]);
        progress.hashed += want as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_are_keyed_by_the_upload() {
        let dir = Path::new("/state");
        let uuid = Uuid::from_u128(1);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        let a = StateFile::new(Some(dir), "http://a/", &uuid, Path::new("/f"), 10, t);
        let same = StateFile::new(Some(dir), "http://a/", &uuid, Path::new("/f"), 10, t);
        assert_eq!(a.path, same.path);
        for other in [
            StateFile::new(Some(dir), "http://b/", &uuid, Path::new("/f"), 10, t),
            StateFile::new(
                Some(dir),
                "http://a/",
                &Uuid::from_u128(2),
                Path::new("/f"),
                10,
                t,
            ),
            StateFile::new(Some(dir), "http://a/", &uuid, Path::new("/g"), 10, t),
            StateFile::new(Some(dir), "http://a/", &uuid, Path::new("/f"), 11, t),
            StateFile::new(
                Some(dir),
                "http://a/",
                &uuid,
                Path::new("/f"),
                10,
                t + Duration::from_secs(1),
            ),
        ] {
            assert_ne!(a.path, other.path);
        }
        assert_eq!(
            StateFile::new(None, "x", &uuid, Path::new("/f"), 1, t).path,
            None
        );
    }

    #[test]
    fn which_errors_are_retried() {
        let api = |status: u16, message: &str| ClientError::Api {
            status,
            rest_code: String::new(),
            message: message.into(),
            errors: Vec::new(),
        };
        for s in [500, 503, 408, 409, 416] {
            assert!(retryable(&api(s, "")), "{s}");
        }
        for s in [400, 404, 422] {
            assert!(!retryable(&api(s, "")), "{s}");
        }
        assert!(no_sessions(&api(405, "")));
        assert!(no_sessions(&api(
            404,
            "/images/x/file/uploads does not exist"
        )));
        assert!(!no_sessions(&api(404, "image x not found")));
    }
}
