//! Local filesystem backend: one file per key under a root directory.
//!
//! Layout: `<root>/<key>` (key segments become directories) and
//! `<root>/.staging/<uuid>.part` for puts in progress. `.staging` is on the
//! same filesystem as the objects, so committing is a `rename(2)`.
//!
//! Put pipeline (`put_stream`): the request body is read on the async task,
//! counted against `max_size`, and coalesced into ~1 MiB buffers; each buffer
//! is shared (refcounted, not copied) with three lanes (see `lane.rs`) that
//! run in parallel on the blocking pool: the file writer, SHA-1 and MD5. A
//! fourth lane nudged every [`DEFAULT_WRITEBACK_EVERY`] bytes calls
//! `fdatasync` on a second handle so the disk starts writing while the body
//! is still arriving (otherwise Linux keeps everything dirty in the page
//! cache and the final fsync pays for the whole file at the end). Commit:
//! fsync the file, rename it into place (creating parent directories), fsync
//! the parent directories that changed. Any failure, or dropping the future,
//! removes the staging file.
//!
//! Get pipeline (`get_stream`): a reader task reads chunks (no extra copy)
//! on the blocking pool, or inline from the page cache when many read at
//! once, and keeps some ready ahead of the consumer, within a memory budget
//! shared by all readers (see `read.rs`).
//!
//! Staged uploads (resumable sessions): one part file per upload,
//! `<root>/.staging/sessions/<handle>.part`, created (and its directory
//! entry fsynced) by `staged_create`. Each `staged_append` takes the file's
//! `flock` (see [`lock_staged`]: no write of an earlier, failed append can
//! land after it), truncates the file to the committed offset (dropping
//! what a failed append left), writes the chunk through the same
//! writer/digest/flusher lanes as a put, and returns after `fdatasync`. `staged_commit` trims the file to the final size and
//! commits it exactly like a put (fsync, rename, fsync the directories).
//! `sweep_staging` leaves `sessions/` alone: those files belong to sessions
//! that outlive restarts, and are removed by `staged_abort` or by the
//! session sweeper through `staged_leftovers`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::digest::{DigestValues, Digests, StreamDigests};
use crate::lane::Lane;
use crate::{
    BlobError, BlobMeta, BlobRead, BlobStore, ByteStream, PutOutcome, StagedChunk, StagedProgress,
    StagedRef, STAGED_KEY_SUFFIX,
};
use read::{read_stream, Readers};

/// Name of the staging directory under the root; reserved, never a key.
pub const STAGING_DIR: &str = ".staging";
/// Directory of the staged uploads' part files, under the staging directory.
pub const SESSIONS_DIR: &str = "sessions";

/// Size of the buffers handed to the writer and digest lanes, and of the
/// chunks a read yields.
const CHUNK: usize = 1 << 20;
/// Buffers queued per put lane (memory per put is bounded by about
/// `(LANE_DEPTH + 2) * CHUNK` whatever the object size).
const LANE_DEPTH: usize = 4;
/// Default interval, in bytes written, between early `fdatasync` calls.
pub const DEFAULT_WRITEBACK_EVERY: u64 = 32 << 20;
/// The same for staged-upload chunks, at most: every chunk ends with an
/// `fdatasync` the client waits for, so the less is still dirty then, the
/// shorter the pause between chunks (measured: 64 MiB chunks went from
/// 0.87x to 0.9x+ of a plain PUT's throughput).
const STAGED_WRITEBACK_EVERY: u64 = 4 << 20;
/// Longest accepted key, in bytes.
const MAX_KEY_LEN: usize = 1024;
/// Longest accepted key segment, in bytes (NAME_MAX on common filesystems).
const MAX_SEGMENT_LEN: usize = 255;

/// Blob store on a local directory. Cheap to share (`Arc<dyn BlobStore>`).
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    staging: PathBuf,
    writeback_every: u64,
    readers: Arc<Readers>,
}

impl LocalBlobStore {
    /// Open (creating if needed) a store rooted at `root`, with its staging
    /// directory `<root>/.staging`. Does not sweep staging leftovers: call
    /// [`BlobStore::sweep_staging`] at start-up.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        fs::create_dir_all(root)?;
        let staging = root.join(STAGING_DIR);
        fs::create_dir_all(&staging)?;
        Ok(LocalBlobStore {
            root: root.to_path_buf(),
            staging,
            writeback_every: DEFAULT_WRITEBACK_EVERY,
            readers: Arc::default(),
        })
    }

    /// Start writing back a put's data to disk every `bytes` bytes instead
    /// of only at the final fsync; `0` disables early write-back.
    #[must_use]
    pub fn with_writeback_every(mut self, bytes: u64) -> Self {
        self.writeback_every = bytes;
        self
    }

    /// Bytes of read buffers charged to the read budget now (tests).
    #[cfg(test)]
    pub(crate) fn read_bytes_charged(&self) -> usize {
        self.readers.charged()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of entries currently in the staging directory (puts in
    /// progress or leftovers of interrupted ones; not the staged uploads).
    pub fn staging_entries(&self) -> Result<usize, BlobError> {
        Ok(fs::read_dir(&self.staging)?
            .filter(|e| e.as_ref().map_or(true, |e| e.file_name() != SESSIONS_DIR))
            .count())
    }

    /// Number of staged uploads' part files (sessions in progress).
    pub fn staged_entries(&self) -> Result<usize, BlobError> {
        match fs::read_dir(self.staging.join(SESSIONS_DIR)) {
            Ok(entries) => Ok(entries.count()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// The part file of the staged upload `handle` (a 32-digit hex name,
    /// checked, so a handle can never name anything else).
    fn staged_path(&self, handle: &str) -> Result<PathBuf, BlobError> {
        if handle.len() != 32 || !handle.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BlobError::InvalidKey(format!("staged upload {handle}")));
        }
        Ok(self
            .staging
            .join(SESSIONS_DIR)
            .join(format!("{handle}.part")))
    }

    /// The file path of `key`, after validating it.
    fn path_for(&self, key: &str) -> Result<PathBuf, BlobError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    async fn put_to_staging(
        &self,
        staging: &Path,
        head: Bytes,
        body: ByteStream,
        max_size: u64,
    ) -> Result<(File, PutOutcome), BlobError> {
        let path = staging.to_path_buf();
        let file = blocking(move || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(BlobError::Io)
        })
        .await?;
        let mut pipe =
            PutPipeline::spawn(file, self.writeback_every, StreamDigests::spawn(LANE_DEPTH))?;
        let size = pump(&mut pipe, head, body, max_size, false).await?;
        let (file, digests) = pipe.finish().await?;
        Ok((file, PutOutcome::of(size, digests.values())))
    }
}

/// Feed `head` then `body` to the pipeline in ~[`CHUNK`] buffers. More than
/// `max` bytes fail with `TooLarge { limit: max }`; with `exact`, a body
/// that ends before `max` bytes fails with `Source(UnexpectedEof)`.
/// Returns the bytes fed.
async fn pump(
    pipe: &mut PutPipeline,
    head: Bytes,
    mut body: ByteStream,
    max: u64,
    exact: bool,
) -> Result<u64, BlobError> {
    let mut size: u64 = head.len() as u64;
    let mut pending = BytesMut::from(&head[..]);
    if pending.len() >= CHUNK {
        pipe.push(pending.split().freeze()).await?;
    }
    while let Some(item) = body.next().await {
        let chunk = item.map_err(BlobError::Source)?;
        size = size.saturating_add(chunk.len() as u64);
        if size > max {
            return Err(BlobError::TooLarge { limit: max });
        }
        if pending.is_empty() && chunk.len() >= CHUNK {
            pipe.push(chunk).await?;
            continue;
        }
        if pending.is_empty() {
            pending.reserve(CHUNK.max(chunk.len()));
        }
        pending.extend_from_slice(&chunk);
        if pending.len() >= CHUNK {
            pipe.push(pending.split().freeze()).await?;
        }
    }
    if exact && size < max {
        return Err(BlobError::Source(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the chunk ended after {size} of its {max} bytes"),
        )));
    }
    if !pending.is_empty() {
        pipe.push(pending.freeze()).await?;
    }
    Ok(size)
}

/// The writer, digest and flusher lanes of one put.
struct PutPipeline {
    writer: Lane<File>,
    digests: StreamDigests,
    flusher: Option<Lane<File>>,
    writeback_every: u64,
    since_flush: u64,
}

impl PutPipeline {
    fn spawn(file: File, writeback_every: u64, digests: StreamDigests) -> Result<Self, BlobError> {
        let flusher = if writeback_every > 0 {
            let handle = file.try_clone()?;
            Some(Lane::spawn(handle, 1, |f: &mut File, _: &[u8]| {
                f.sync_data()
            }))
        } else {
            None
        };
        Ok(PutPipeline {
            writer: Lane::spawn(file, LANE_DEPTH, |f: &mut File, b: &[u8]| f.write_all(b)),
            digests,
            flusher,
            writeback_every,
            since_flush: 0,
        })
    }

    async fn push(&mut self, buf: Bytes) -> Result<(), BlobError> {
        let len = buf.len() as u64;
        let sent = match self.writer.send(buf.clone()).await {
            Ok(()) => self.digests.update(buf).await,
            Err(e) => Err(e),
        };
        if sent.is_err() {
            return Err(self.stopped_error().await);
        }
        self.since_flush += len;
        if self.since_flush >= self.writeback_every {
            if let Some(flusher) = &self.flusher {
                if flusher.nudge(Bytes::new()).is_err() {
                    return Err(self.stopped_error().await);
                }
            }
            self.since_flush = 0;
        }
        Ok(())
    }

    /// A lane stopped early: find out why.
    async fn stopped_error(&mut self) -> BlobError {
        if let Err(e) = self.writer.finish().await {
            return BlobError::Io(e);
        }
        if let Some(flusher) = &mut self.flusher {
            if let Err(e) = flusher.finish().await {
                return BlobError::Io(e);
            }
        }
        match self.digests.finish_state().await {
            Err(e) => BlobError::Io(e),
            Ok(_) => BlobError::Io(io::Error::other("blob pipeline stopped unexpectedly")),
        }
    }

    /// Wait for every lane; returns the file (all bytes written, not yet
    /// synced) and the running digests.
    async fn finish(mut self) -> Result<(File, Digests), BlobError> {
        let file = self.writer.finish().await?;
        if let Some(flusher) = &mut self.flusher {
            flusher.finish().await?;
        }
        let digests = self.digests.finish_state().await?;
        Ok((file, digests))
    }
}

/// Removes the staging file unless disarmed: on error paths via
/// [`StagingGuard::discard`], when the put future is dropped via `Drop`.
struct StagingGuard {
    path: Option<PathBuf>,
}

impl StagingGuard {
    fn disarm(mut self) {
        self.path = None;
    }

    async fn discard(mut self) {
        if let Some(path) = self.path.take() {
            let _ = tokio::task::spawn_blocking(move || remove_staging(&path)).await;
        }
    }
}

impl Drop for StagingGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_staging(&path);
        }
    }
}

fn remove_staging(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not remove staging file")
        }
    }
}

/// Make the staged file durable and visible under `dest`.
/// Read up to [`CHUNK`] bytes of `body`; `true` when the body ended within
/// them (a small object).
async fn read_head(body: &mut ByteStream, max_size: u64) -> Result<(Bytes, bool), BlobError> {
    let mut head = BytesMut::new();
    while head.len() < CHUNK {
        match body.next().await {
            None => return Ok((head.freeze(), true)),
            Some(Err(e)) => return Err(BlobError::Source(e)),
            Some(Ok(chunk)) => {
                if (head.len() + chunk.len()) as u64 > max_size {
                    return Err(BlobError::TooLarge { limit: max_size });
                }
                head.extend_from_slice(&chunk);
            }
        }
    }
    Ok((head.freeze(), false))
}

/// Write, hash and commit a small object in one go.
fn write_small(
    data: &[u8],
    staging: &Path,
    dest: &Path,
    root: &Path,
) -> Result<PutOutcome, BlobError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(staging)?;
    file.write_all(data)?;
    commit(file, staging, dest, root)?;
    Ok(PutOutcome::of(
        data.len() as u64,
        DigestValues {
            sha1: crate::digest::sha1_hex(data),
            md5_base64: crate::digest::md5_base64(data),
            sha256: crate::digest::sha256_hex(data),
        },
    ))
}

fn commit(file: File, staging: &Path, dest: &Path, root: &Path) -> Result<(), BlobError> {
    file.sync_all()?;
    drop(file);
    let parent = dest.parent().unwrap_or(root);
    // A concurrent delete may remove a parent directory it found empty between
    // our create_dir_all and rename: recreate and retry.
    let mut attempts = 0;
    let first_existing = loop {
        let first_existing = create_parents(parent, root)?;
        match fs::rename(staging, dest) {
            Ok(()) => break first_existing,
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    };
    // Persist the new directory entry, and those of any directories we had to
    // create, up to the first one that already existed.
    let mut dir = parent;
    loop {
        File::open(dir)?.sync_all()?;
        if dir == first_existing {
            break;
        }
        match dir.parent() {
            Some(up) if up.starts_with(root) => dir = up,
            _ => break,
        }
    }
    Ok(())
}

/// `create_dir_all(dir)`; returns the deepest ancestor of `dir` (or `dir`
/// itself) that existed before.
fn create_parents<'a>(dir: &'a Path, root: &'a Path) -> io::Result<&'a Path> {
    let mut existing = dir;
    while !existing.is_dir() && existing != root {
        match existing.parent() {
            Some(up) => existing = up,
            None => break,
        }
    }
    if existing != dir {
        fs::create_dir_all(dir)?;
    }
    Ok(existing)
}

/// How long an append waits for an earlier writer of the same part file.
const STAGED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Take the exclusive lock (`flock`) of a staged part file, held for as
/// long as `file` (and handles cloned from it) stay open. An append that
/// failed or was cancelled may leave one write or `fdatasync` still
/// running on the blocking pool, detached; its handles keep the lock until
/// it is done, so the next append (or the commit), which truncates to the
/// committed offset and writes there, can never be overwritten by it.
fn lock_staged(file: &File, handle: &str) -> Result<(), BlobError> {
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < STAGED_LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(BlobError::Io(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("staged upload {handle} is still being written by an earlier request"),
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// Run blocking filesystem work off the async runtime.
async fn blocking<T, F>(f: F) -> Result<T, BlobError>
where
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(io::Error::other(format!("blob task failed: {e}"))))?
}

fn invalid(key: &str) -> BlobError {
    BlobError::InvalidKey(key.to_owned())
}

pub(crate) fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn valid_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && seg.len() <= MAX_SEGMENT_LEN
        && seg.bytes().all(is_key_byte)
}

/// A key is a relative path of '/'-separated segments made of
/// `[A-Za-z0-9._-]`, none empty, `.` or `..`, whose first segment is not the
/// staging directory. So a key can never name anything outside the root.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(invalid(key));
    }
    for (i, seg) in key.split('/').enumerate() {
        if !valid_segment(seg) || (i == 0 && seg == STAGING_DIR) {
            return Err(invalid(key));
        }
    }
    Ok(())
}

fn not_found_as(key: &str) -> impl Fn(io::Error) -> BlobError + '_ {
    move |e| {
        if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory {
            BlobError::NotFound(key.to_owned())
        } else {
            BlobError::Io(e)
        }
    }
}

/// Open `path` for reading as a regular file, or `NotFound`.
fn open_regular(key: &str, path: &Path) -> Result<(File, u64), BlobError> {
    let file = File::open(path).map_err(not_found_as(key))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(BlobError::NotFound(key.to_owned()));
    }
    Ok((file, meta.len()))
}

/// Collect the keys of regular files under `dir` (whose key is `dir_key`,
/// empty for the root) that start with `prefix`.
fn walk(
    dir: &Path,
    dir_key: &str,
    prefix: &str,
    skip_staging: bool,
    out: &mut Vec<String>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // No such prefix directory (or it is an object): nothing to list.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            // Removed while we were listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !valid_segment(&name) || (skip_staging && name == STAGING_DIR) {
            continue;
        }
        let key = if dir_key.is_empty() {
            name
        } else {
            format!("{dir_key}/{name}")
        };
        // Prune subtrees that cannot contain a match.
        if !(key.starts_with(prefix) || prefix.starts_with(&key)) {
            continue;
        }
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if file_type.is_dir() {
            walk(&entry.path(), &key, prefix, false, out)?;
        } else if file_type.is_file() && key.starts_with(prefix) {
            out.push(key);
        }
    }
    Ok(())
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    /// The root is still a directory and the staging directory (where
    /// every put starts) can be listed: catches an unmounted or removed
    /// store without touching any file.
    async fn health_check(&self) -> Result<(), BlobError> {
        let root = tokio::fs::metadata(&self.root).await?;
        if !root.is_dir() {
            return Err(BlobError::Io(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", self.root.display()),
            )));
        }
        let mut staging = tokio::fs::read_dir(&self.staging).await?;
        staging.next_entry().await?;
        Ok(())
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: u64,
    ) -> Result<PutOutcome, BlobError> {
        let dest = self.path_for(key)?;
        let staging = self
            .staging
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let guard = StagingGuard {
            path: Some(staging.clone()),
        };
        let started = std::time::Instant::now();
        let mut body = body;
        let result = match read_head(&mut body, max_size).await {
            // Small bodies (icons, tiny files) are written, hashed and
            // committed in one blocking step: the lanes' thread hand-offs
            // would cost more than the work.
            Ok((head, true)) => {
                let root = self.root.clone();
                let staging = staging.clone();
                blocking(move || write_small(&head, &staging, &dest, &root)).await
            }
            Ok((head, false)) => match self.put_to_staging(&staging, head, body, max_size).await {
                Ok((file, outcome)) => {
                    let root = self.root.clone();
                    let staging = staging.clone();
                    blocking(move || commit(file, &staging, &dest, &root))
                        .await
                        .map(|()| outcome)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let streamed = started.elapsed();
        match result {
            Ok(outcome) => {
                guard.disarm();
                tracing::debug!(
                    key,
                    size = outcome.size,
                    stream_ms = streamed.as_millis() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    "blob committed"
                );
                Ok(outcome)
            }
            Err(e) => {
                guard.discard().await;
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
        let key = key.to_owned();
        let (file, total_size, range) = blocking(move || {
            let (file, total) = open_regular(&key, &path)?;
            // The caller clamps; clamp again so a stale range cannot read past
            // the end or go backwards. (Reads are positioned: no seek.)
            let range = match range {
                Some(r) => {
                    let end = r.end.min(total);
                    r.start.min(end)..end
                }
                None => 0..total,
            };
            Ok((file, total, range))
        })
        .await?;
        let stream = read_stream(&self.readers, file, range.clone());
        Ok(BlobRead {
            total_size,
            range,
            stream,
        })
    }

    async fn stat(&self, key: &str) -> Result<BlobMeta, BlobError> {
        let path = self.path_for(key)?;
        let key = key.to_owned();
        blocking(move || {
            let meta = fs::metadata(&path).map_err(not_found_as(&key))?;
            if !meta.is_file() {
                return Err(BlobError::NotFound(key));
            }
            Ok(BlobMeta { size: meta.len() })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path_for(key)?;
        let root = self.root.clone();
        blocking(move || {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => return Ok(()), // a key prefix, not a blob
                Ok(_) => match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e.into()),
                },
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.kind() == io::ErrorKind::NotADirectory =>
                {
                    return Ok(())
                }
                Err(e) => return Err(e.into()),
            }
            // Best effort: remove parent directories left empty.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == root || !d.starts_with(&root) || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        if !prefix.bytes().all(|b| b == b'/' || is_key_byte(b)) {
            return Err(invalid(prefix));
        }
        // Start at the deepest directory the prefix names completely.
        let (dir_key, start) = match prefix.rfind('/') {
            Some(i) => {
                let dir_key = &prefix[..i];
                validate_key(dir_key).map_err(|_| invalid(prefix))?;
                (dir_key.to_owned(), self.root.join(dir_key))
            }
            None => (String::new(), self.root.clone()),
        };
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut keys = Vec::new();
            walk(&start, &dir_key, &prefix, dir_key.is_empty(), &mut keys)?;
            keys.sort_unstable();
            Ok(keys)
        })
        .await
    }

    async fn list_objects(&self, prefix: &str) -> Result<Vec<crate::ListedBlob>, BlobError> {
        let keys = self.list(prefix).await?;
        self.list_objects_impl(keys).await
    }

    async fn move_to_lost_found(&self, key: &str) -> Result<String, BlobError> {
        self.move_to_lost_found_impl(key).await
    }

    async fn staged_create(&self, key: &str) -> Result<String, BlobError> {
        validate_key(key)?;
        if !key.ends_with(STAGED_KEY_SUFFIX) {
            return Err(invalid(key));
        }
        let handle = uuid::Uuid::new_v4().simple().to_string();
        let path = self.staged_path(&handle)?;
        blocking(move || {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            fs::create_dir_all(&dir)?;
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            file.sync_all()?;
            // The new entry survives a crash once its directory is synced.
            File::open(&dir)?.sync_all()?;
            Ok(())
        })
        .await?;
        Ok(handle)
    }

    async fn staged_append(
        &self,
        chunk: StagedChunk<'_>,
        body: ByteStream,
    ) -> Result<StagedProgress, BlobError> {
        let path = self.staged_path(chunk.handle)?;
        let offset = chunk.offset;
        let handle = chunk.handle.to_owned();
        let file = blocking(move || {
            let mut file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(not_found_as(&handle))?;
            lock_staged(&file, &handle)?;
            let have = file.metadata()?.len();
            if have < offset {
                return Err(BlobError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("staged upload {handle} holds {have} bytes, fewer than its committed {offset}"),
                )));
            }
            // Drop whatever a failed append left after the committed bytes.
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await?;
        let digests = StreamDigests::resume(LANE_DEPTH, chunk.digests);
        let writeback = match self.writeback_every {
            0 => 0,
            every => every.min(STAGED_WRITEBACK_EVERY),
        };
        let mut pipe = PutPipeline::spawn(file, writeback, digests)?;
        pump(&mut pipe, Bytes::new(), body, chunk.len, true).await?;
        let (file, digests) = pipe.finish().await?;
        blocking(move || file.sync_data().map_err(BlobError::Io)).await?;
        Ok(StagedProgress {
            digests,
            new_parts: Vec::new(),
        })
    }

    async fn staged_commit(
        &self,
        key: &str,
        handle: &str,
        _parts: &[String],
        size: u64,
    ) -> Result<(), BlobError> {
        let dest = self.path_for(key)?;
        let path = self.staged_path(handle)?;
        let root = self.root.clone();
        let handle = handle.to_owned();
        blocking(move || {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(not_found_as(&handle))?;
            lock_staged(&file, &handle)?;
            let have = file.metadata()?.len();
            if have < size {
                return Err(BlobError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("staged upload {handle} holds {have} bytes, fewer than {size}"),
                )));
            }
            file.set_len(size)?;
            commit(file, &path, &dest, &root)
        })
        .await
    }

    async fn staged_abort(&self, _key: &str, handle: &str) -> Result<(), BlobError> {
        let path = self.staged_path(handle)?;
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn staged_leftovers(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<StagedRef>, BlobError> {
        let dir = self.staging.join(SESSIONS_DIR);
        blocking(move || {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let now = std::time::SystemTime::now();
            let mut out = Vec::new();
            for entry in entries {
                let Ok(entry) = entry else { continue };
                let name = entry.file_name();
                let Some(handle) = name.to_str().and_then(|n| n.strip_suffix(".part")) else {
                    continue;
                };
                let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                    continue;
                };
                if now.duration_since(modified).unwrap_or_default() >= older_than {
                    out.push(StagedRef {
                        key: String::new(),
                        handle: handle.to_owned(),
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn sweep_staging(&self) -> Result<u64, BlobError> {
        let staging = self.staging.clone();
        blocking(move || {
            fs::create_dir_all(&staging)?;
            let mut removed = 0;
            for entry in fs::read_dir(&staging)? {
                let entry = entry?;
                if entry.file_name() == SESSIONS_DIR {
                    continue; // staged uploads of live sessions
                }
                let path = entry.path();
                let result = if entry.file_type()?.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match result {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if removed > 0 {
                tracing::info!(removed, "removed staging leftovers of interrupted puts");
            }
            Ok(removed)
        })
        .await
    }
}

mod aside;
mod read;
#[cfg(test)]
mod tests;
