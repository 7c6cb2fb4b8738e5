//! Where `imgapi mirror --follow` is in an upstream's change feed: the
//! [`MirrorCursorStore`] role. A restarted mirror resumes from its cursor
//! instead of listing the whole upstream again.

use async_trait::async_trait;

use crate::MetaError;

/// Which mirror a cursor belongs to: the upstream (its URL, credentials
/// redacted) and the mirror's filters (a canonical text of them), since
/// another filter set has seen other images.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MirrorCursorKey {
    pub upstream: String,
    pub filters: String,
}

/// A saved position in an upstream's change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MirrorCursor {
    /// The `since` of the next `GET /changes`: every event up to it is
    /// applied here.
    pub cursor: i64,
    /// When it was saved (ms since the epoch).
    pub updated_ms: i64,
}

/// Change-feed cursors of mirrors into this registry.
#[async_trait]
pub trait MirrorCursorStore: Send + Sync + 'static {
    /// The saved cursor of `key`, if any.
    async fn mirror_cursor(&self, key: &MirrorCursorKey)
        -> Result<Option<MirrorCursor>, MetaError>;

    /// Save (insert or replace) the cursor of `key`.
    async fn put_mirror_cursor(
        &self,
        key: &MirrorCursorKey,
        cursor: MirrorCursor,
    ) -> Result<(), MetaError>;
}
