//! Image records as both SQL backends store them: the derived form of a
//! record (search and sort columns, side-table rows, computed from an
//! [`ImageRecord`] once, outside any transaction), the statements on the
//! main table, and the decoding of a row.

use std::marker::PhantomData;

use async_trait::async_trait;
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::tags::search_pairs;
use imgapi_domain::ImageRecord;
use imgapi_types::ChangeKind;
use sqlx::database::HasStatementCache;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::changes::EventRow;
use super::list_query::list_query;
use super::{decode_uuids, is_unique_violation, ScalarStatement, SqlBackend, Statement, Write};
use crate::{ImageStore, MetaError, Revision, StoredImage};

/// One record as written: the derived columns and side-table rows.
/// Built by the caller (serialising is the costly part), so a backend's
/// transaction only runs SQL.
pub(crate) struct Columns {
    pub(crate) id: Uuid,
    pub(crate) uuid: String,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) state: &'static str,
    pub(crate) activated: bool,
    pub(crate) disabled: bool,
    pub(crate) public: bool,
    pub(crate) image_type: String,
    pub(crate) os: String,
    pub(crate) origin: Option<String>,
    /// `published_at` in ms since the epoch; `None` when absent or unparsable.
    pub(crate) published_ms: Option<i64>,
    /// The authoritative record, as JSON text.
    pub(crate) record: String,
    /// Tag search form (manifest.md §7): `(key, normalised value)`.
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) billing_tags: Vec<String>,
    pub(crate) channels: Vec<String>,
    pub(crate) acl: Vec<String>,
}

impl Columns {
    pub(crate) fn of(image: &ImageRecord) -> Result<Self, MetaError> {
        let record = serde_json::to_string(image).map_err(|e| {
            MetaError::Backend(format!("cannot serialise image {}: {e}", image.uuid))
        })?;
        Ok(Columns {
            id: image.uuid,
            uuid: image.uuid.to_string(),
            owner: image.owner.to_string(),
            name: image.name.clone(),
            version: image.version.clone(),
            state: image.state.as_str(),
            activated: image.activated,
            disabled: image.disabled,
            public: image.public,
            image_type: image.image_type.clone(),
            os: image.os.clone(),
            origin: image.origin.map(|o| o.to_string()),
            published_ms: image.published_at_ms(),
            record,
            tags: image.tags.as_ref().map(search_pairs).unwrap_or_default(),
            billing_tags: image.billing_tags.clone().unwrap_or_default(),
            channels: image.channels.clone().unwrap_or_default(),
            acl: image.acl.iter().map(Uuid::to_string).collect(),
        })
    }
}

/// A stored record's JSON back into an [`ImageRecord`].
pub(crate) fn decode_record(uuid: &str, record: &str) -> Result<ImageRecord, MetaError> {
    serde_json::from_str(record).map_err(|e| MetaError::Corrupt {
        uuid: uuid.to_owned(),
        detail: e.to_string(),
    })
}

/// The statements writing a main row, `$1`…`$13` bound by
/// [`ImageSql::bind_columns`]; `$next_revision` is the dialect's SQL
/// expression for the revision this write takes, `$now_ms` for the time
/// (ms since the epoch) an inserted row records as `created_ms`. Each
/// yields the revision written.
macro_rules! image_writes {
    ($next_revision:literal, $now_ms:literal) => {
        $crate::sql::images::ImageWrites {
            insert: concat!(
                $crate::sql::images::insert_image_sql!($next_revision, $now_ms),
                " RETURNING revision"
            ),
            upsert: concat!(
                $crate::sql::images::insert_image_sql!($next_revision, $now_ms),
                " ON CONFLICT (uuid) DO UPDATE SET \
                  revision = excluded.revision, owner = excluded.owner, name = excluded.name, \
                  version = excluded.version, state = excluded.state, \
                  activated = excluded.activated, disabled = excluded.disabled, \
                  public = excluded.public, type = excluded.type, os = excluded.os, \
                  origin = excluded.origin, published_ms = excluded.published_ms, \
                  record = excluded.record \
                 RETURNING revision"
            ),
            update: concat!(
                "UPDATE images SET revision = ",
                $next_revision,
                ", owner = $2, name = $3, version = $4, state = $5, activated = $6, \
                 disabled = $7, public = $8, type = $9, os = $10, origin = $11, \
                 published_ms = $12, record = $13 \
                 WHERE uuid = $1 AND revision = $14 \
                 RETURNING revision"
            ),
        }
    };
}

/// The `INSERT` of a main row that [`image_writes!`] builds on.
macro_rules! insert_image_sql {
    ($next_revision:literal, $now_ms:literal) => {
        concat!(
            "INSERT INTO images \
             (uuid, revision, owner, name, version, state, activated, disabled, public, \
              type, os, origin, published_ms, record, created_ms) \
             VALUES ($1, ",
            $next_revision,
            ", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, ",
            $now_ms,
            ")"
        )
    };
}
pub(crate) use image_writes;
pub(crate) use insert_image_sql;

/// Why an image write failed: already decided, or an SQL error for the
/// backend to classify.
pub(crate) enum WriteFailure {
    Meta(MetaError),
    Sql(sqlx::Error),
}

impl From<sqlx::Error> for WriteFailure {
    fn from(e: sqlx::Error) -> Self {
        WriteFailure::Sql(e)
    }
}

/// How a dialect writes a main row and its side tables (tags, billing
/// tags, channels, acl): the part of an image write that differs.
#[async_trait]
pub(crate) trait ImageDialect: Database {
    /// The main-row statements ([`image_writes!`]).
    const WRITES: ImageWrites;

    /// The one statement that numbers and inserts a change-log event
    /// ([`super::changes::insert_events`]): it takes `change_log.last_seq +
    /// 1` and moves the counter to it, binding `$1`…`$5` as time_ms, kind,
    /// uuid, fields, record.
    const EVENT_INSERT: &'static str;

    /// Rows a statement touched (sqlx has no common accessor).
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// Delete the side rows of `row`.
    async fn clear_side_rows(conn: &mut Self::Connection, row: &Columns)
        -> Result<(), sqlx::Error>;

    /// Write the side rows of a main row that has none (freshly inserted,
    /// or cleared by [`Self::clear_side_rows`]).
    async fn insert_side_rows(
        conn: &mut Self::Connection,
        row: &Columns,
    ) -> Result<(), sqlx::Error>;
}

/// The statements writing a main row (see [`image_writes!`]).
pub(crate) struct ImageWrites {
    /// Insert a new row (a taken uuid is a unique violation).
    pub(crate) insert: &'static str,
    /// Insert or overwrite the row.
    pub(crate) upsert: &'static str,
    /// Overwrite the row if it is at revision `$14`; no row otherwise.
    pub(crate) update: &'static str,
}

/// `dependents` restricted to one channel: `$channel_match` is the
/// dialect's condition that `image_channels c` row has channel `$2`.
macro_rules! dependents_in_channel_sql {
    ($channel_match:literal) => {
        concat!(
            "SELECT uuid FROM images WHERE origin = $1 AND EXISTS \
             (SELECT 1 FROM image_channels c WHERE c.uuid = images.uuid AND ",
            $channel_match,
            ") ORDER BY COALESCE(published_ms, 0), uuid"
        )
    };
}
pub(crate) use dependents_in_channel_sql;

const BY_UUID: &str = "SELECT revision, record FROM images WHERE uuid = $1";
const EXISTS: &str = "SELECT 1 FROM images WHERE uuid = $1";
const IN_BIN: &str = "SELECT 1 FROM recycle_bin WHERE uuid = $1";
/// The image's deprecation time goes into the bin with it (its
/// `image_lifecycle` row goes with the record; a protected image is never
/// binned), so a restore brings it back.
const BIN_INSERT: &str = "INSERT INTO recycle_bin \
     (uuid, owner, name, version, size, record, deleted_ms, expires_ms, deleted_by, \
      deprecated_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
      (SELECT deprecated_ms FROM image_lifecycle WHERE uuid = $1))";
const BIN_TAKE: &str =
    "DELETE FROM recycle_bin WHERE uuid = $1 RETURNING record, deprecated_ms, deleted_ms";
const RESTORE_DEPRECATION: &str = "INSERT INTO image_lifecycle \
     (uuid, deprecated_ms, protected, updated_ms, updated_by) VALUES ($1, $2, $3, $4, $5)";
const BIN_DELETE: &str = "DELETE FROM recycle_bin WHERE uuid = $1 RETURNING record";
const DELETE: &str = "DELETE FROM images WHERE uuid = $1 RETURNING record";
const RECORD: &str = "SELECT record FROM images WHERE uuid = $1";
const AT_REVISION: &str = "SELECT record FROM images WHERE uuid = $1 AND revision = $2";
const FLAGS: &str = "SELECT deprecated_ms, protected FROM image_lifecycle WHERE uuid = $1";
const DELETE_AT_REVISION: &str = "DELETE FROM images WHERE uuid = $1 AND revision = $2";
const DEPENDENTS: &str =
    "SELECT uuid FROM images WHERE origin = $1 ORDER BY COALESCE(published_ms, 0), uuid";
const PING: &str = "SELECT 1";
const COUNT_BY_STATE: &str = "SELECT state, COUNT(*) FROM images GROUP BY state ORDER BY state";

/// The image statements for database `DB`.
pub(crate) struct ImageSql<DB>(PhantomData<DB>);

impl<DB> ImageSql<DB>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Bind `$1`…`$13` of an [`ImageWrites`] statement.
    pub(crate) fn bind_columns<'q>(
        sql: &'static str,
        c: &'q Columns,
    ) -> ScalarStatement<'q, DB, Revision> {
        sqlx::query_scalar(sql)
            .bind(&c.uuid)
            .bind(&c.owner)
            .bind(&c.name)
            .bind(&c.version)
            .bind(c.state.to_owned())
            .bind(c.activated)
            .bind(c.disabled)
            .bind(c.public)
            .bind(&c.image_type)
            .bind(&c.os)
            .bind(&c.origin)
            .bind(c.published_ms)
            .bind(&c.record)
    }

    /// The row of `uuid`, for [`Self::decode_stored`].
    fn by_uuid(uuid: Uuid) -> Statement<DB> {
        sqlx::query(BY_UUID).bind(uuid.to_string())
    }

    /// A row of [`Self::by_uuid`] as the stored record; `sql_err`
    /// classifies a column that cannot be read.
    fn decode_stored(
        row: &DB::Row,
        uuid: Uuid,
        sql_err: impl Fn(sqlx::Error) -> MetaError,
    ) -> Result<StoredImage, MetaError> {
        let revision: i64 = row.try_get(0).map_err(&sql_err)?;
        let record: String = row.try_get(1).map_err(&sql_err)?;
        Ok(StoredImage {
            image: decode_record(&uuid.to_string(), &record)?,
            revision,
        })
    }

    /// A `(uuid, record)` row of a ListImages query as the record.
    fn decode_listed(
        row: &DB::Row,
        sql_err: impl Fn(sqlx::Error) -> MetaError,
    ) -> Result<ImageRecord, MetaError> {
        let uuid: String = row.try_get(0).map_err(&sql_err)?;
        let record: String = row.try_get(1).map_err(&sql_err)?;
        decode_record(&uuid, &record)
    }

    /// The uuids of `origin`'s dependents.
    fn dependents(origin: Uuid) -> ScalarStatement<'static, DB, String> {
        sqlx::query_scalar(DEPENDENTS).bind(origin.to_string())
    }

    /// The uuids of `origin`'s dependents in `channel`; `sql` is the
    /// backend's [`dependents_in_channel_sql!`].
    fn dependents_in_channel(
        sql: &'static str,
        origin: Uuid,
        channel: &str,
    ) -> ScalarStatement<'static, DB, String> {
        sqlx::query_scalar(sql)
            .bind(origin.to_string())
            .bind(channel.to_owned())
    }

    fn count_by_state() -> sqlx::query::QueryAs<'static, DB, (String, i64), DB::Arguments> {
        sqlx::query_as(COUNT_BY_STATE)
    }
}

impl<DB> ImageSql<DB>
where
    DB: ImageDialect,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Decode<'a, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    /// Perform `write` on `conn`, inside the caller's transaction, and add
    /// the change-log events it makes to `events` (for the backend to
    /// number and insert last, [`super::changes::insert_events`]). Yields
    /// the new revision, or for `Delete` the number of rows deleted. On
    /// `Err` the caller rolls back whatever it did.
    pub(crate) async fn apply(
        conn: &mut DB::Connection,
        write: &ImageWrite,
        events: &mut Vec<EventRow>,
    ) -> Result<i64, WriteFailure> {
        match write {
            ImageWrite::Insert(row) => {
                let revision = Self::insert_row(conn, row).await?;
                DB::insert_side_rows(conn, row).await?;
                events.push(EventRow::whole(ChangeKind::Created, &row.uuid, &row.record));
                Ok(revision)
            }
            ImageWrite::Update { row, expected } => {
                let old = Self::record(conn, &row.uuid).await?;
                let updated = Self::bind_columns(DB::WRITES.update, row)
                    .bind(*expected)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(revision) = updated else {
                    return Err(Self::missed_write(conn, row.id).await);
                };
                Self::replace_side_rows(conn, row).await?;
                // Read before the update, which matched `expected`: the
                // record it replaced.
                if let Some(old) = old {
                    events.extend(EventRow::replaced(&row.uuid, &old, &row.record));
                }
                Ok(revision)
            }
            ImageWrite::Put(row) => {
                let old = Self::record(conn, &row.uuid).await?;
                let revision = Self::bind_columns(DB::WRITES.upsert, row)
                    .fetch_one(&mut *conn)
                    .await?;
                Self::replace_side_rows(conn, row).await?;
                match old {
                    Some(old) => events.extend(EventRow::replaced(&row.uuid, &old, &row.record)),
                    None => {
                        events.push(EventRow::whole(ChangeKind::Created, &row.uuid, &row.record))
                    }
                }
                Ok(revision)
            }
            ImageWrite::Rename {
                old_uuid,
                expected,
                row,
            } => {
                // Checked first so a stale revision is reported before a
                // taken new uuid; the DELETE below re-checks it atomically.
                let current: Option<String> = sqlx::query_scalar(AT_REVISION)
                    .bind(old_uuid.to_string())
                    .bind(*expected)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(old_record) = current else {
                    return Err(Self::missed_write(conn, *old_uuid).await);
                };
                // The new row first, so the lifecycle flags can move to it
                // before the old row's go by ON DELETE CASCADE (with its
                // side rows).
                let revision = Self::insert_row(conn, row).await?;
                DB::insert_side_rows(conn, row).await?;
                super::flags::carry::<DB>(conn, *old_uuid, row.id).await?;
                let deleted = sqlx::query(DELETE_AT_REVISION)
                    .bind(old_uuid.to_string())
                    .bind(*expected)
                    .execute(&mut *conn)
                    .await?;
                if DB::rows_affected(&deleted) != 1 {
                    return Err(Self::missed_write(conn, *old_uuid).await);
                }
                let old_uuid = old_uuid.to_string();
                // They signed the old uuid: no signature carries over.
                super::signatures::remove_all::<DB>(conn, &old_uuid).await?;
                events.push(EventRow::whole(ChangeKind::Deleted, &old_uuid, &old_record));
                events.push(EventRow::whole(ChangeKind::Created, &row.uuid, &row.record));
                Ok(revision)
            }
            ImageWrite::Flags(write) => {
                let uuid = write.uuid.to_string();
                let old: Option<(Option<i64>, bool)> = sqlx::query_as(FLAGS)
                    .bind(uuid.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                let outcome = super::flags::apply::<DB>(conn, write).await?;
                let (old_deprecated, old_protected) = old.unwrap_or((None, false));
                let change = &write.change;
                let mut fields = Vec::new();
                if change.deprecated_ms.is_some_and(|d| d != old_deprecated) {
                    fields.push("deprecated_at".to_owned());
                }
                if change.protected.is_some_and(|p| p != old_protected) {
                    fields.push("protected".to_owned());
                }
                if !fields.is_empty() {
                    // flags::apply found the image.
                    if let Some(record) = Self::record(conn, &uuid).await? {
                        events.push(EventRow {
                            kind: ChangeKind::LifecycleChanged,
                            uuid,
                            fields,
                            record,
                        });
                    }
                }
                Ok(outcome)
            }
            // The record leaves `images` only if still at `expected`;
            // otherwise the bin row goes with the rolled-back transaction.
            ImageWrite::ToBin { row, expected } => {
                sqlx::query(BIN_INSERT)
                    .bind(&row.uuid)
                    .bind(&row.owner)
                    .bind(&row.name)
                    .bind(&row.version)
                    .bind(row.size)
                    .bind(&row.record)
                    .bind(row.deleted_ms)
                    .bind(row.expires_ms)
                    .bind(&row.deleted_by)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| {
                        // Binned before and re-created meanwhile (put).
                        if is_unique_violation(&e) {
                            WriteFailure::Meta(MetaError::AlreadyExists(row.id))
                        } else {
                            WriteFailure::Sql(e)
                        }
                    })?;
                let deleted = sqlx::query(DELETE_AT_REVISION)
                    .bind(&row.uuid)
                    .bind(*expected)
                    .execute(&mut *conn)
                    .await?;
                if DB::rows_affected(&deleted) != 1 {
                    return Err(Self::missed_write(conn, row.id).await);
                }
                events.push(EventRow::whole(
                    ChangeKind::Recycled,
                    &row.uuid,
                    &row.record,
                ));
                Ok(0)
            }
            ImageWrite::FromBin(uuid) => {
                let taken = sqlx::query(BIN_TAKE)
                    .bind(uuid.to_string())
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(taken) = taken else {
                    return Err(WriteFailure::Meta(MetaError::NotFound(*uuid)));
                };
                let record: String = taken.try_get(0)?;
                let deprecated_ms: Option<i64> = taken.try_get(1)?;
                let deleted_ms: i64 = taken.try_get(2)?;
                let image =
                    decode_record(&uuid.to_string(), &record).map_err(WriteFailure::Meta)?;
                let row = Columns::of(&image).map_err(WriteFailure::Meta)?;
                let revision = Self::insert_row(conn, &row).await?;
                DB::insert_side_rows(conn, &row).await?;
                if let Some(deprecated_ms) = deprecated_ms {
                    sqlx::query(RESTORE_DEPRECATION)
                        .bind(&row.uuid)
                        .bind(deprecated_ms)
                        .bind(false)
                        .bind(deleted_ms)
                        .bind("restored".to_owned())
                        .execute(&mut *conn)
                        .await?;
                }
                events.push(EventRow::whole(ChangeKind::Restored, &row.uuid, &record));
                Ok(revision)
            }
            ImageWrite::DropFromBin(uuid) => {
                let uuid = uuid.to_string();
                let deleted: Option<String> = sqlx::query_scalar(BIN_DELETE)
                    .bind(uuid.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                if deleted.is_some() {
                    super::signatures::remove_all::<DB>(conn, &uuid).await?;
                }
                Ok(Self::removed(ChangeKind::Purged, &uuid, deleted, events))
            }
            // Side rows go by ON DELETE CASCADE; signatures (kept while an
            // image is in the recycle bin) explicitly.
            ImageWrite::Delete(uuid) => {
                let uuid = uuid.to_string();
                let deleted: Option<String> = sqlx::query_scalar(DELETE)
                    .bind(uuid.clone())
                    .fetch_optional(&mut *conn)
                    .await?;
                if deleted.is_some() {
                    super::signatures::remove_all::<DB>(conn, &uuid).await?;
                }
                Ok(Self::removed(ChangeKind::Deleted, &uuid, deleted, events))
            }
            ImageWrite::Signature(write) => {
                let changed = super::signatures::apply::<DB>(conn, write).await?;
                if changed > 0 {
                    let uuid = write.uuid().to_string();
                    let kind = match write {
                        super::signatures::SignatureWrite::Put { .. } => ChangeKind::SignatureAdded,
                        super::signatures::SignatureWrite::Remove { .. } => {
                            ChangeKind::SignatureRemoved
                        }
                    };
                    // A removal may follow the image into the recycle bin:
                    // then there is no record to show, and no event.
                    if let Some(record) = Self::record(conn, &uuid).await? {
                        events.push(EventRow {
                            kind,
                            uuid,
                            fields: vec![write.key_id().to_owned()],
                            record,
                        });
                    }
                }
                Ok(changed)
            }
        }
    }

    /// The stored record of `uuid` (JSON text), if any.
    async fn record(conn: &mut DB::Connection, uuid: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(RECORD)
            .bind(uuid.to_owned())
            .fetch_optional(conn)
            .await
    }

    /// The outcome of a removal that returned `deleted` (the record, if a
    /// row went), with its event.
    fn removed(
        kind: ChangeKind,
        uuid: &str,
        deleted: Option<String>,
        events: &mut Vec<EventRow>,
    ) -> i64 {
        match deleted {
            Some(record) => {
                events.push(EventRow::whole(kind, uuid, &record));
                1
            }
            None => 0,
        }
    }

    /// Insert the main row; a uuid taken by an image or a recycle-bin
    /// entry is `AlreadyExists`.
    async fn insert_row(
        conn: &mut DB::Connection,
        row: &Columns,
    ) -> Result<Revision, WriteFailure> {
        let binned = sqlx::query(IN_BIN)
            .bind(&row.uuid)
            .fetch_optional(&mut *conn)
            .await?;
        if binned.is_some() {
            return Err(WriteFailure::Meta(MetaError::AlreadyExists(row.id)));
        }
        Self::bind_columns(DB::WRITES.insert, row)
            .fetch_one(conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    WriteFailure::Meta(MetaError::AlreadyExists(row.id))
                } else {
                    WriteFailure::Sql(e)
                }
            })
    }

    async fn replace_side_rows(
        conn: &mut DB::Connection,
        row: &Columns,
    ) -> Result<(), sqlx::Error> {
        DB::clear_side_rows(conn, row).await?;
        DB::insert_side_rows(conn, row).await
    }

    /// Why a conditional write on `uuid` matched no row: gone, or moved on.
    async fn missed_write(conn: &mut DB::Connection, uuid: Uuid) -> WriteFailure {
        let found = sqlx::query(EXISTS)
            .bind(uuid.to_string())
            .fetch_optional(conn)
            .await;
        match found {
            Ok(Some(_)) => WriteFailure::Meta(MetaError::Conflict(uuid)),
            Ok(None) => WriteFailure::Meta(MetaError::NotFound(uuid)),
            Err(e) => WriteFailure::Sql(e),
        }
    }
}

/// [`ImageSql::count_by_state`]'s rows as counts.
fn state_counts(rows: Vec<(String, i64)>) -> Vec<(String, u64)> {
    rows.into_iter()
        .map(|(state, n)| (state, u64::try_from(n).unwrap_or(0)))
        .collect()
}

/// A write on the images table, as a backend applies it in one transaction.
pub(crate) enum ImageWrite {
    Insert(Columns),
    Update {
        row: Columns,
        expected: Revision,
    },
    Put(Columns),
    /// Replace `old_uuid` (at `expected`) by `row`, which has another uuid.
    Rename {
        old_uuid: Uuid,
        expected: Revision,
        row: Columns,
    },
    Delete(Uuid),
    /// Change the lifecycle flags of an image (`crate::ImageFlagsStore`).
    Flags(super::flags::FlagsWrite),
    /// Move the record (at `expected`) into the recycle bin.
    ToBin {
        row: BinRow,
        expected: Revision,
    },
    /// Move a recycle-bin entry back into `images`.
    FromBin(Uuid),
    /// Remove a recycle-bin entry.
    DropFromBin(Uuid),
    /// Add, replace or remove a signature (`crate::ImageSignatureStore`).
    Signature(super::signatures::SignatureWrite),
}

/// A recycle-bin row as written.
pub(crate) struct BinRow {
    pub(crate) id: Uuid,
    pub(crate) uuid: String,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) size: i64,
    pub(crate) record: String,
    pub(crate) deleted_ms: i64,
    pub(crate) expires_ms: i64,
    pub(crate) deleted_by: Option<String>,
}

impl BinRow {
    pub(crate) fn of(entry: &crate::BinEntry) -> Result<Self, MetaError> {
        let image = &entry.image;
        let record = serde_json::to_string(image).map_err(|e| {
            MetaError::Backend(format!("cannot serialise image {}: {e}", image.uuid))
        })?;
        Ok(BinRow {
            id: image.uuid,
            uuid: image.uuid.to_string(),
            owner: image.owner.to_string(),
            name: image.name.clone(),
            version: image.version.clone(),
            size: i64::try_from(entry.size()).unwrap_or(i64::MAX),
            record,
            deleted_ms: entry.deleted_ms,
            expires_ms: entry.expires_ms,
            deleted_by: entry.deleted_by.clone(),
        })
    }
}

impl ImageWrite {
    pub(crate) fn insert(image: &ImageRecord) -> Result<Self, MetaError> {
        Ok(ImageWrite::Insert(Columns::of(image)?))
    }

    pub(crate) fn update(image: &ImageRecord, expected: Revision) -> Result<Self, MetaError> {
        let row = Columns::of(image)?;
        Ok(ImageWrite::Update { row, expected })
    }

    pub(crate) fn put(image: &ImageRecord) -> Result<Self, MetaError> {
        Ok(ImageWrite::Put(Columns::of(image)?))
    }

    /// A rename, or a plain update where the uuid stays.
    pub(crate) fn rename(
        old_uuid: Uuid,
        expected: Revision,
        image: &ImageRecord,
    ) -> Result<Self, MetaError> {
        if old_uuid == image.uuid {
            return Self::update(image, expected);
        }
        let row = Columns::of(image)?;
        Ok(ImageWrite::Rename {
            old_uuid,
            expected,
            row,
        })
    }

    /// The image a conflict is reported for.
    pub(crate) fn key(&self) -> Uuid {
        match self {
            ImageWrite::Insert(row) | ImageWrite::Update { row, .. } | ImageWrite::Put(row) => {
                row.id
            }
            ImageWrite::Rename { old_uuid, .. } => *old_uuid,
            ImageWrite::Flags(write) => write.uuid,
            ImageWrite::Signature(write) => write.uuid(),
            ImageWrite::ToBin { row, .. } => row.id,
            ImageWrite::Delete(uuid)
            | ImageWrite::FromBin(uuid)
            | ImageWrite::DropFromBin(uuid) => *uuid,
        }
    }
}

#[async_trait]
impl<B> ImageStore for B
where
    B: SqlBackend,
    B::Db: HasStatementCache,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> bool: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> Option<String>: Encode<'a, B::Db>,
    for<'a> Option<i64>: Encode<'a, B::Db> + Decode<'a, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn get(&self, uuid: Uuid) -> Result<Option<StoredImage>, MetaError> {
        let row = ImageSql::<B::Db>::by_uuid(uuid)
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        row.map(|row| ImageSql::<B::Db>::decode_stored(&row, uuid, |e| self.sql_err(e)))
            .transpose()
    }

    async fn insert(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.write(Write::Image(ImageWrite::insert(image)?)).await
    }

    async fn update(&self, image: &ImageRecord, expected: Revision) -> Result<Revision, MetaError> {
        let update = ImageWrite::update(image, expected)?;
        self.write(Write::Image(update)).await
    }

    async fn put(&self, image: &ImageRecord) -> Result<Revision, MetaError> {
        self.write(Write::Image(ImageWrite::put(image)?)).await
    }

    async fn rename(
        &self,
        old_uuid: Uuid,
        expected: Revision,
        image: &ImageRecord,
    ) -> Result<Revision, MetaError> {
        let rename = ImageWrite::rename(old_uuid, expected, image)?;
        self.write(Write::Image(rename)).await
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, MetaError> {
        Ok(self.write(Write::Image(ImageWrite::Delete(uuid))).await? > 0)
    }

    async fn list(&self, query: &ImageQuery) -> Result<Vec<ImageRecord>, MetaError> {
        if query.matches_nothing() {
            return Ok(Vec::new());
        }
        let mut statement = list_query::<B::Db>(&B::LIST_DIALECT, query);
        let rows = statement
            .build()
            .persistent(B::PREPARE_LISTS)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|row| ImageSql::<B::Db>::decode_listed(row, |e| self.sql_err(e)))
            .collect()
    }

    async fn dependents(
        &self,
        origin: Uuid,
        channel: Option<&str>,
    ) -> Result<Vec<Uuid>, MetaError> {
        let statement = match channel {
            None => ImageSql::<B::Db>::dependents(origin),
            Some(channel) => {
                ImageSql::<B::Db>::dependents_in_channel(B::DEPENDENTS_IN_CHANNEL, origin, channel)
            }
        };
        let rows = statement
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        decode_uuids(&rows)
    }

    async fn count_by_state(&self) -> Result<Vec<(String, u64)>, MetaError> {
        let rows = ImageSql::<B::Db>::count_by_state()
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(state_counts(rows))
    }

    async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query(PING)
            .fetch_one(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(())
    }

    async fn generation(&self) -> Result<i64, MetaError> {
        sqlx::query_scalar(B::GENERATION)
            .fetch_one(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))
    }
}
