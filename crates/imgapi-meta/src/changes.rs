//! The change log (docs/events.md): one event per committed image write,
//! written in the write's own transaction, numbered without gaps in commit
//! order. The [`ChangeStore`] role reads and trims it; the events
//! themselves are written by the image writes ([`crate::ImageStore`],
//! [`crate::ImageFlagsStore`], [`crate::RecycleBinStore`]).

use async_trait::async_trait;
use imgapi_domain::ImageRecord;
use imgapi_types::ChangeKind;
use uuid::Uuid;

use crate::MetaError;

/// One event of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChange {
    /// Position in the log: strictly increasing in commit order, no gaps.
    pub seq: i64,
    /// When the write was applied, ms since the epoch (the writing
    /// instance's clock).
    pub time_ms: i64,
    pub kind: ChangeKind,
    pub uuid: Uuid,
    /// Top-level record fields the write changed, sorted.
    pub fields: Vec<String>,
    /// The record after the write (before it, for a removal): what the
    /// event's visibility is judged on, as GetImage judges the image.
    pub image: ImageRecord,
}

/// What the log holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeLogBounds {
    /// Events up to this sequence number were purged (0: none ever).
    pub purged_through: i64,
    /// The latest sequence number handed out (0: no event yet).
    pub last_seq: i64,
}

/// Reading and trimming the change log.
#[async_trait]
pub trait ChangeStore: Send + Sync + 'static {
    /// Events with `seq > since`, oldest first, at most `limit`.
    async fn changes_after(&self, since: i64, limit: u32) -> Result<Vec<StoredChange>, MetaError>;

    /// The log's bounds, read in one statement.
    async fn change_log_bounds(&self) -> Result<ChangeLogBounds, MetaError>;

    /// Purge the events written before `before_ms` (and every event
    /// before them, so the log stays gapless); the number purged.
    async fn purge_changes_before(&self, before_ms: i64) -> Result<u64, MetaError>;

    /// Go on numbering after `seq`, the end of another database's log
    /// (`imgapi migrate`): a follower that had read that log to its end
    /// goes on here; a cursor before `seq` names events this log does not
    /// have, so it reads as purged. Nothing happens when this log is
    /// already past `seq` (a rerun).
    async fn continue_change_log_after(&self, seq: i64) -> Result<(), MetaError>;
}
