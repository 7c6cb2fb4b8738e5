//! MetaError: what a metadata backend can report.

/// `Clone` so that a failed group commit can report its error to every
/// write in the batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    #[error("image {0} not found")]
    NotFound(uuid::Uuid),
    #[error("image uuid \"{0}\" already exists")]
    AlreadyExists(uuid::Uuid),
    #[error("image {0} was changed concurrently")]
    Conflict(uuid::Uuid),
    /// The database cannot be reached (→ 503).
    #[error("metadata database unavailable: {0}")]
    Unavailable(String),
    /// A stored record does not decode (treated as absent by callers? no: reported).
    #[error("corrupt record {uuid}: {detail}")]
    Corrupt { uuid: String, detail: String },
    #[error("metadata backend error: {0}")]
    Backend(String),
}
