//! BlobError: what a blob backend can report.

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("object exceeds the maximum allowed size of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The body stream failed (e.g. the client disconnected).
    #[error("reading the upload failed: {0}")]
    Source(std::io::Error),
    /// The backend is unreachable (→ 503 StorageIsDown).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend answers but refuses the store's requests: its bucket
    /// does not exist or the credentials may not use it. The text names the
    /// bucket and the cause and is fit for a client (→ 503 StorageIsDown).
    #[error("storage is unavailable: {0}")]
    Inaccessible(String),
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}
