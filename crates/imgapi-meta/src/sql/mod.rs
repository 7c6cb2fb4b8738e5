//! What both SQL backends share: the row form of each record, the statement
//! texts, and how rows are bound and read back.
//!
//! One statement text serves both databases: `$n` is a numbered parameter
//! in PostgreSQL and in SQLite alike (sqlx binds SQLite's `$n` by number),
//! so a statement differs between the backends only where the dialects do
//! (how revisions are drawn, bulk inserts, index hints); those parts are
//! the backends' own.
//!
//! The statement builders are generic over the sqlx [`Database`]: each
//! role's builder type (`ImageSql`, `JobSql`, `UploadSql`) states once
//! which column types it binds and reads. [`crate::ImageStore`],
//! [`crate::JobStore`] and [`crate::UploadStore`] are implemented here once
//! for every [`SqlBackend`]; a backend supplies its pools, its error
//! mapping, its write path (the SQLite writer task, PostgreSQL
//! transactions) and the few statements its dialect words its own way.

use async_trait::async_trait;
use sqlx::{Database, Pool};
use uuid::Uuid;

use crate::{MetaError, UploadSession};
use images::ImageWrite;
use jobs::{AttemptsColumn, JobWrite};
use list_query::ListDialect;
use uploads::{UploadClaim, UploadWrite};

pub(crate) mod changes;
pub(crate) mod flags;
pub(crate) mod images;
pub(crate) mod jobs;
pub(crate) mod list_query;
pub(crate) mod mirror_cursors;
pub(crate) mod quotas;
pub(crate) mod recycle_bin;
pub(crate) mod retention;
pub(crate) mod signatures;
pub(crate) mod uploads;
pub(crate) mod usage;
pub(crate) mod webhooks;

/// A write, as a backend applies it (in one transaction).
pub(crate) enum Write {
    Image(ImageWrite),
    Job(JobWrite),
    Upload(UploadWrite),
    Retention(retention::RetentionWrite),
    Changes(changes::ChangesWrite),
    Webhook(webhooks::WebhookWrite),
    MirrorCursor(mirror_cursors::MirrorCursorWrite),
}

/// What a backend provides for the role implementations both SQL backends
/// share ([`crate::ImageStore`], [`crate::JobStore`],
/// [`crate::UploadStore`]): where reads run, how errors are classified, how
/// a write is applied, and the few statements its dialect words its own way.
#[async_trait]
pub(crate) trait SqlBackend: Send + Sync + 'static {
    type Db: Database;
    /// The integer type of the jobs' `attempts` column.
    type Attempts: AttemptsColumn;

    /// `dependents` restricted to a channel ([`images::dependents_in_channel_sql!`]).
    const DEPENDENTS_IN_CHANNEL: &'static str;
    /// The write generation ([`crate::ImageStore::generation`]), one `BIGINT`.
    const GENERATION: &'static str;
    /// How ListImages statements are worded ([`list_query::list_query`]).
    const LIST_DIALECT: ListDialect;
    /// Whether ListImages statements are prepared and cached
    /// (`sqlx::query::Query::persistent`).
    const PREPARE_LISTS: bool;

    /// The pool reads run on.
    fn read_pool(&self) -> &Pool<Self::Db>;

    /// Classify an error of the database.
    fn sql_err(&self, e: sqlx::Error) -> MetaError;

    /// Apply `write`: the new revision of an image write, else the rows it
    /// touched. An insert whose key is taken is `AlreadyExists`.
    async fn write(&self, write: Write) -> Result<i64, MetaError>;

    /// [`crate::UploadStore::claim_upload`]: the session as claimed.
    async fn claim_upload_row(
        &self,
        claim: UploadClaim,
    ) -> Result<Option<UploadSession>, MetaError>;
}

/// A statement with its parameters bound, ready to run.
pub(crate) type Statement<DB> = sqlx::query::Query<'static, DB, <DB as Database>::Arguments>;

/// A single-column statement with its parameters bound (borrowed for `'q`).
pub(crate) type ScalarStatement<'q, DB, T> =
    sqlx::query::QueryScalar<'q, DB, T, <DB as Database>::Arguments>;

/// A uuid column back into a [`Uuid`].
pub(crate) fn decode_uuid(text: &str) -> Result<Uuid, MetaError> {
    Uuid::parse_str(text).map_err(|e| MetaError::Corrupt {
        uuid: text.to_owned(),
        detail: format!("bad uuid column: {e}"),
    })
}

/// uuid columns back into [`Uuid`]s.
pub(crate) fn decode_uuids(texts: &[String]) -> Result<Vec<Uuid>, MetaError> {
    texts.iter().map(|text| decode_uuid(text)).collect()
}

/// Whether `e` says a unique key is taken (an insert of an existing key).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// Rows a statement touched, as the `i64` a write outcome carries.
pub(crate) fn affected_rows(rows: u64) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}
