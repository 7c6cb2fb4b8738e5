//! Per-owner quotas ([`QuotaStore`]): operator overrides of the configured
//! limits, and reservations that make "use + request ≤ limit" hold under
//! concurrent creates and uploads on any number of instances.
//!
//! A reservation is taken before an image record is inserted or an image
//! file streamed, and released once the record that makes the use real has
//! been committed (or the request failed). Checking and inserting a
//! reservation happen in one transaction serialized per owner (SQLite's
//! single write connection; a transaction-scoped advisory lock on the
//! owner in PostgreSQL), so two requests can never both see room for
//! themselves. Reservations expire, so those of a killed instance lapse.
//! Between a commit and the release both count: that errs on the side of
//! refusing, never of overshooting.
//!
//! The same reservation claims an (owner, name, version) triple for
//! write-once versions: a triple is taken when an image other than the
//! reserving one has it, or a live reservation of another image claims it.

use async_trait::async_trait;
use uuid::Uuid;

use crate::MetaError;

/// Limits of one owner; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    pub images: u64,
    pub bytes: u64,
}

/// An operator's override of one owner's limits, stored in the database.
/// `None` = the configured value applies; `Some(0)` = unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaOverride {
    pub owner: Uuid,
    pub images: Option<u64>,
    pub bytes: Option<u64>,
}

/// What one owner uses and has reserved (live reservations only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUse {
    /// Image records, whatever their state.
    pub images: u64,
    /// Bytes of their files and icons.
    pub bytes: u64,
    pub reserved_images: u64,
    pub reserved_bytes: u64,
}

/// A request to reserve room. A second request with the same `id` adds
/// its `images` and `bytes` to that reservation (growing it while a body
/// of unknown size streams in) and moves its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    pub id: Uuid,
    pub owner: Uuid,
    /// The image the reservation is for.
    pub image: Uuid,
    /// Image records to add (0 or 1).
    pub images: u64,
    /// Bytes to add.
    pub bytes: u64,
    pub limits: QuotaLimits,
    /// `(name, version)` to claim for write-once versions.
    pub claim_version: Option<(String, String)>,
    /// Now and the expiry, in ms since the epoch.
    pub now_ms: i64,
    pub expires_ms: i64,
}

/// What [`QuotaStore::reserve`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Granted,
    /// The image count would pass its limit (the use seen).
    OverImages(QuotaUse),
    /// The bytes would pass their limit (the use seen).
    OverBytes(QuotaUse),
    /// Write-once: this image already has the triple.
    VersionTaken(Uuid),
}

/// Quota overrides and reservations.
#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// Check room (and the version claim) and record the reservation, in
    /// one transaction serialized per owner. Expired reservations of the
    /// owner are dropped on the way.
    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, MetaError>;
    /// Drop a reservation (no error if it is gone).
    async fn release_reservation(&self, id: Uuid) -> Result<(), MetaError>;
    /// What `owner` uses and has reserved at `now_ms`.
    async fn quota_use(&self, owner: Uuid, now_ms: i64) -> Result<QuotaUse, MetaError>;
    /// Every override, by owner.
    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>, MetaError>;
    async fn quota_override(&self, owner: Uuid) -> Result<Option<QuotaOverride>, MetaError>;
    /// Create or replace the override of `o.owner`.
    async fn put_quota_override(&self, o: &QuotaOverride) -> Result<(), MetaError>;
    /// Whether there was one.
    async fn delete_quota_override(&self, owner: Uuid) -> Result<bool, MetaError>;
}
