//! Metadata store: image records, jobs, upload sessions, usage and run
//! locks, persisted by one backend behind [`MetaStore`] (one trait per
//! role: [`ImageStore`], [`JobStore`], [`UploadStore`], [`UsageStore`],
//! [`RunLockStore`], [`ImageFlagsStore`], [`RetentionRuleStore`],
//! [`RecycleBinStore`], [`QuotaStore`], [`ChangeStore`], [`WebhookStore`],
//! [`MirrorCursorStore`], [`ImageSignatureStore`]).
//!
//! Services call stores; stores never call services. Every backend passes the
//! same conformance suite ([`testsuite`], feature `testing`).

use std::str::FromStr;
use std::sync::Arc;

mod changes;
mod error;
mod flags;
mod images;
mod jobs;
mod mirror_cursors;
pub mod postgres;
mod quotas;
mod recycle_bin;
mod retention;
mod run_lock;
mod signatures;
mod sql;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;
mod uploads;
mod usage;
mod webhooks;

pub use changes::{ChangeLogBounds, ChangeStore, StoredChange};
pub use error::MetaError;
pub use flags::{FlagsChange, ImageFlags, ImageFlagsStore};
pub use images::{ImageStore, Revision, StoredImage};
pub use jobs::{JobExecution, JobLease, JobRecord, JobStore};
pub use mirror_cursors::{MirrorCursor, MirrorCursorKey, MirrorCursorStore};
pub use postgres::PostgresStore;
pub use quotas::{
    QuotaLimits, QuotaOverride, QuotaStore, QuotaUse, ReservationRequest, ReserveOutcome,
};
pub use recycle_bin::{BinEntry, BinUsage, RecycleBinStore};
pub use retention::{RetentionRuleStore, StoredRetentionRule};
pub use run_lock::{RunLock, RunLockAttempt, RunLockStore};
pub use signatures::{ImageSignatureStore, StoredSignature};
pub use sqlite::SqliteStore;
pub use uploads::{UploadLease, UploadSession, UploadStore};
pub use usage::{BillingTagUsage, OwnerUsage, Usage, UsageStore};
pub use webhooks::{StoredWebhook, WebhookProgress, WebhookSource, WebhookStore};

/// The contract every metadata backend keeps: all its roles. Implement
/// the role traits; this one comes with them.
pub trait MetaStore:
    ImageStore
    + JobStore
    + UploadStore
    + UsageStore
    + RunLockStore
    + ImageFlagsStore
    + RetentionRuleStore
    + RecycleBinStore
    + QuotaStore
    + ChangeStore
    + WebhookStore
    + MirrorCursorStore
    + ImageSignatureStore
{
}

impl<T> MetaStore for T where
    T: ImageStore
        + JobStore
        + UploadStore
        + UsageStore
        + RunLockStore
        + ImageFlagsStore
        + RetentionRuleStore
        + RecycleBinStore
        + QuotaStore
        + ChangeStore
        + WebhookStore
        + MirrorCursorStore
        + ImageSignatureStore
        + ImageSignatureStore
{
}

/// Which metadata backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

impl FromStr for Engine {
    type Err = String;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            // Only the scheme: the rest of a URL may hold a password.
            other => Err(format!(
                "unknown database engine `{other}` (options: sqlite, postgres; \
                 e.g. sqlite:///var/imgapi/meta.db, postgres://USER@HOST:5432/DATABASE)"
            )),
        }
    }
}

/// Open the metadata store a database URL names: SQLite
/// ([`SqliteStore::open_url`]) or PostgreSQL ([`PostgresStore::connect`]).
/// Schema migrations run before this returns.
pub async fn open(url: &str) -> Result<Arc<dyn MetaStore>, MetaError> {
    match url.parse::<Engine>().map_err(MetaError::Backend)? {
        Engine::Sqlite => Ok(Arc::new(SqliteStore::open_url(url).await?)),
        Engine::Postgres => Ok(Arc::new(PostgresStore::connect(url).await?)),
    }
}
