//! Blob store for image files and icons behind [`BlobStore`].
//!
//! Contract highlights: `put_stream` computes size, SHA-1, MD5 and SHA-256
//! in the same pass as it writes, enforces a size cap while streaming, and makes the
//! object visible under its key only once every byte is durably written
//! (atomic commit); a failed or interrupted put leaves nothing behind.
//! Every backend passes [`testsuite`] (feature `testing`).
//!
//! Staged uploads (`staged_*`, the storage side of resumable upload
//! sessions): the bytes of one object arrive in chunks over many requests,
//! possibly handled by different instances. The backend keeps them out of
//! sight (a part file in the local staging area, an S3 multipart upload)
//! and makes them visible under their key only at `staged_commit`. The
//! caller (the server's upload-session service) persists what it needs to
//! continue: the backend handle, the committed length, the S3 part ids and
//! the running [`Digests`], which each chunk continues.

use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

mod digest;
mod error;
mod error_chain;
mod lane;
pub mod local;
pub mod s3;
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;

pub use digest::{DigestValues, Digests};
pub use error::BlobError;
pub use error_chain::{error_chain, error_chain_deduped};
pub use local::LocalBlobStore;
pub use s3::{S3BlobStore, S3Config, S3Timeouts};

/// A stream of body chunks. The error type is `std::io::Error` so a client
/// disconnect (or any source failure) can travel through it.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static>>;

/// What a completed put wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub size: u64,
    /// Lower-case hex SHA-1.
    pub sha1: String,
    /// Base64 MD5 (the `Content-MD5` form).
    pub md5_base64: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

impl PutOutcome {
    fn of(size: u64, digests: DigestValues) -> PutOutcome {
        PutOutcome {
            size,
            sha1: digests.sha1,
            md5_base64: digests.md5_base64,
            sha256: digests.sha256,
        }
    }
}

/// Suffix every staged upload's key must end with. Lets a backend tell the
/// incomplete uploads of sessions (kept until their session ends) from the
/// leftovers of interrupted plain puts (swept at start-up).
pub const STAGED_KEY_SUFFIX: &str = "-staged";

/// One chunk of a staged upload, as [`BlobStore::staged_append`] takes it.
#[derive(Debug)]
pub struct StagedChunk<'a> {
    /// The key the upload will be committed to (ends with [`STAGED_KEY_SUFFIX`]).
    pub key: &'a str,
    /// What [`BlobStore::staged_create`] returned.
    pub handle: &'a str,
    /// Bytes committed to the upload so far; the chunk starts here. Bytes
    /// stored beyond it by an earlier, failed append are overwritten.
    pub offset: u64,
    /// Exact length of the chunk: a body that ends sooner fails with
    /// `BlobError::Source` (`UnexpectedEof`), one that goes on fails with
    /// `BlobError::TooLarge { limit: len }`.
    pub len: u64,
    /// Part ids recorded for the upload so far (S3; empty for local). New
    /// parts are numbered after them.
    pub parts: &'a [String],
    /// The last chunk of the upload (S3: may be smaller than
    /// [`BlobStore::staged_min_chunk`]).
    pub last: bool,
    /// Running digests of the first `offset` bytes.
    pub digests: Digests,
}

/// What a successful [`BlobStore::staged_append`] stored.
#[derive(Debug)]
pub struct StagedProgress {
    /// Running digests of the first `offset + len` bytes.
    pub digests: Digests,
    /// Part ids of this chunk (S3), to append to the upload's list.
    pub new_parts: Vec<String>,
}

/// A staged upload found by [`BlobStore::staged_leftovers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRef {
    pub key: String,
    pub handle: String,
}

/// A committed object, as [`BlobStore::list_objects`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    pub key: String,
    pub size: u64,
    /// Last write (local: the file's mtime; S3: `LastModified`); `None`
    /// when the backend cannot tell.
    pub modified: Option<std::time::SystemTime>,
}

/// Name of the area outside the key space where
/// [`BlobStore::move_to_lost_found`] puts objects (not a valid key segment,
/// so never listed or overwritten by the store itself).
pub const LOST_FOUND: &str = "lost+found";

/// Metadata of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
}

/// A (possibly ranged) read.
pub struct BlobRead {
    /// Total size of the object.
    pub total_size: u64,
    /// The byte range being streamed (`0..total_size` for a full read).
    pub range: Range<u64>,
    pub stream: ByteStream,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Backend name as stored in `files[].stor` (`local`, `s3`).
    fn kind(&self) -> &'static str;

    /// Stream `body` into `key`. Returns size and digests (SHA-1, MD5,
    /// SHA-256, computed while writing). Fails with
    /// `BlobError::TooLarge` as soon as more than `max_size` bytes arrive,
    /// `BlobError::Source` if the body stream fails (client gone). On any
    /// error nothing is visible under `key` and no staging data remains.
    /// An existing object at `key` is replaced atomically.
    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: u64,
    ) -> Result<PutOutcome, BlobError>;

    /// Read `key`, whole or the given byte range (`start..end`, end exclusive,
    /// already clamped by the caller to the object's size).
    /// `BlobError::NotFound` if absent.
    async fn get_stream(&self, key: &str, range: Option<Range<u64>>)
        -> Result<BlobRead, BlobError>;

    /// Size of `key`; `BlobError::NotFound` if absent.
    async fn stat(&self, key: &str) -> Result<BlobMeta, BlobError>;

    /// Delete `key`; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), BlobError>;

    /// Every committed key under `prefix` (for integrity checks and sweeps).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;

    /// [`list`](BlobStore::list), with each object's size and last write
    /// time (integrity checks tell fresh uploads from orphans by age).
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ListedBlob>, BlobError> {
        let mut out = Vec::new();
        for key in self.list(prefix).await? {
            match self.stat(&key).await {
                Ok(meta) => out.push(ListedBlob {
                    key,
                    size: meta.size,
                    modified: None,
                }),
                Err(BlobError::NotFound(_)) => {} // deleted meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Move the committed object `key` out of the key space into the
    /// store's [`LOST_FOUND`] area, keeping its bytes (`imgapi check
    /// --repair` on an orphan): local `<root>/../lost+found/<key>` (a
    /// rename), S3 `<prefix>/lost+found/<key>` (a verified copy, then the
    /// original is deleted). An existing object there is never replaced
    /// (a `.1`, `.2`… suffix is added). Returns where the bytes are now.
    async fn move_to_lost_found(&self, key: &str) -> Result<String, BlobError>;

    /// One cheap call that tells whether the store answers (the health
    /// endpoint polls it, so it must not list or read much).
    async fn health_check(&self) -> Result<(), BlobError>;

    /// Remove staging leftovers of interrupted puts (run at start-up).
    /// Returns how many were removed. Staged uploads (sessions) are left
    /// alone.
    async fn sweep_staging(&self) -> Result<u64, BlobError>;

    /// Smallest chunk a staged upload accepts other than its last one
    /// (S3: 5 MiB, the minimum part size; local: 1).
    fn staged_min_chunk(&self) -> u64 {
        1
    }

    /// Start a staged upload that will become `key` (which must end with
    /// [`STAGED_KEY_SUFFIX`]). Returns the backend's handle for it (a part
    /// file name, an S3 upload id). Nothing is visible under `key` yet.
    async fn staged_create(&self, key: &str) -> Result<String, BlobError>;

    /// Store one chunk: `chunk.len` bytes of `body` at `chunk.offset`,
    /// hashed in the same pass (continuing `chunk.digests`). Returns once
    /// the bytes are durably stored. On error the upload is as before as
    /// far as the caller's records go (`offset`, `parts`); bytes written
    /// past `offset` are overwritten by the next append. A missing upload
    /// is `BlobError::NotFound`.
    async fn staged_append(
        &self,
        chunk: StagedChunk<'_>,
        body: ByteStream,
    ) -> Result<StagedProgress, BlobError>;

    /// Make the staged upload's first `size` bytes (in `parts`, for S3)
    /// visible under `key`, atomically; the staging data is gone afterwards.
    async fn staged_commit(
        &self,
        key: &str,
        handle: &str,
        parts: &[String],
        size: u64,
    ) -> Result<(), BlobError>;

    /// Drop a staged upload's data (missing = Ok). Never touches `key`
    /// itself: an upload already committed stays.
    async fn staged_abort(&self, key: &str, handle: &str) -> Result<(), BlobError>;

    /// Staged uploads untouched for at least `older_than` (local: part
    /// files by modification time; S3: multipart uploads by start time), for
    /// the sweep of uploads whose session record is gone.
    async fn staged_leftovers(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<StagedRef>, BlobError>;

    /// A time-limited URL from which a client can fetch `key` directly
    /// (downloads redirected to the object store), or `None` when the
    /// backend cannot hand out such URLs.
    async fn redirect_url(
        &self,
        _key: &str,
        _expires: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}
