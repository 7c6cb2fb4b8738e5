//! Blob store for image files and icons behind [`BlobStore`].
//!
//! Contract highlights: `put_stream` computes size, SHA-1 and MD5 in the same
//! pass as it writes, enforces a size cap while streaming, and makes the
//! object visible under its key only once every byte is durably written
//! (atomic commit); a failed or interrupted put leaves nothing behind.
//! Every backend passes [`testsuite`] (feature `testing`).

use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

mod digest;
mod error;
mod lane;
pub mod local;
pub mod s3;
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;

pub use error::BlobError;
pub use local::LocalBlobStore;
pub use s3::{S3BlobStore, S3Config};

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
}

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

    /// Stream `body` into `key`. Returns size and digests. Fails with
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

    /// Remove staging leftovers of interrupted puts (run at start-up).
    /// Returns how many were removed.
    async fn sweep_staging(&self) -> Result<u64, BlobError>;

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
