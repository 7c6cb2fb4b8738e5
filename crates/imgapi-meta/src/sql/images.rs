//! Image records as both SQL backends store them: the derived form of a
//! record (search and sort columns, side-table rows, computed from an
//! [`ImageRecord`] once, outside any transaction), the statements on the
//! main table, and the decoding of a row.

use std::marker::PhantomData;

use async_trait::async_trait;
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::tags::search_pairs;
use imgapi_domain::ImageRecord;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::{decode_uuids, ScalarStatement, SqlBackend, Statement, Write};
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
fn decode_record(uuid: &str, record: &str) -> Result<ImageRecord, MetaError> {
    serde_json::from_str(record).map_err(|e| MetaError::Corrupt {
        uuid: uuid.to_owned(),
        detail: e.to_string(),
    })
}

/// The statements writing a main row, `$1`…`$13` bound by
/// [`ImageSql::bind_columns`]; `$next_revision` is the dialect's SQL
/// expression for the revision this write takes. Each yields the revision
/// written.
macro_rules! image_writes {
    ($next_revision:literal) => {
        $crate::sql::images::ImageWrites {
            insert: concat!(
                "INSERT INTO images \
                 (uuid, revision, owner, name, version, state, activated, disabled, public, \
                  type, os, origin, published_ms, record) \
                 VALUES ($1, ",
                $next_revision,
                ", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 RETURNING revision"
            ),
            upsert: concat!(
                "INSERT INTO images \
                 (uuid, revision, owner, name, version, state, activated, disabled, public, \
                  type, os, origin, published_ms, record) \
                 VALUES ($1, ",
                $next_revision,
                ", $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (uuid) DO UPDATE SET \
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
pub(crate) use image_writes;

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
const DELETE: &str = "DELETE FROM images WHERE uuid = $1";
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

    /// A row if the image `uuid` exists (why a conditional write missed).
    pub(crate) fn exists(uuid: Uuid) -> Statement<DB> {
        sqlx::query(EXISTS).bind(uuid.to_string())
    }

    /// Delete `uuid` (its side rows go by ON DELETE CASCADE).
    pub(crate) fn delete(uuid: Uuid) -> Statement<DB> {
        sqlx::query(DELETE).bind(uuid.to_string())
    }

    /// Delete `uuid` if it is at revision `expected`.
    pub(crate) fn delete_at_revision(uuid: Uuid, expected: Revision) -> Statement<DB> {
        sqlx::query(DELETE_AT_REVISION)
            .bind(uuid.to_string())
            .bind(expected)
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
            ImageWrite::Delete(uuid) => *uuid,
        }
    }
}

#[async_trait]
impl<B> ImageStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> bool: Encode<'a, B::Db> + Type<B::Db>,
    for<'a> Option<String>: Encode<'a, B::Db>,
    for<'a> Option<i64>: Encode<'a, B::Db>,
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
        let rows = self.list_rows(query).await?;
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
