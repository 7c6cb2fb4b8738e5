//! Upload sessions as both SQL backends store them: the row form of an
//! [`UploadSession`], the statements, and the decoding of a row.

use std::marker::PhantomData;

use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::{decode_uuid, ScalarStatement, SqlBackend, Statement, Write};
use crate::{MetaError, UploadLease, UploadSession, UploadStore};

/// The SQL form of a session's columns.
pub(crate) struct UploadRow {
    pub(crate) id: Uuid,
    pub(crate) uuid: String,
    pub(crate) image_uuid: String,
    pub(crate) params: String,
    pub(crate) stor: String,
    pub(crate) blob_key: String,
    pub(crate) handle: String,
    pub(crate) offset: i64,
    pub(crate) size: Option<i64>,
    pub(crate) parts: String,
    pub(crate) digests: String,
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: i64,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_expires_ms: Option<i64>,
}

fn to_i64(n: u64, what: &str, id: Uuid) -> Result<i64, MetaError> {
    i64::try_from(n).map_err(|_| MetaError::Backend(format!("upload {id}: {what} {n} too large")))
}

impl UploadRow {
    pub(crate) fn of(s: &UploadSession) -> Result<UploadRow, MetaError> {
        let params = json!({
            "compression": s.compression,
            "sha1": s.sha1,
            "dataset_guid": s.dataset_guid,
        });
        let parts = serde_json::to_string(&s.parts)
            .map_err(|e| MetaError::Backend(format!("cannot encode upload {}: {e}", s.id)))?;
        Ok(UploadRow {
            id: s.id,
            uuid: s.id.to_string(),
            image_uuid: s.image_uuid.to_string(),
            params: params.to_string(),
            stor: s.stor.clone(),
            blob_key: s.blob_key.clone(),
            handle: s.handle.clone(),
            offset: to_i64(s.offset, "offset", s.id)?,
            size: s.size.map(|n| to_i64(n, "size", s.id)).transpose()?,
            parts,
            digests: s.digests.clone(),
            created_ms: s.created_ms,
            expires_ms: s.expires_ms,
            lease_owner: s.lease.as_ref().map(|l| l.owner.clone()),
            lease_expires_ms: s.lease.as_ref().map(|l| l.expires_ms),
        })
    }
}

/// Column list matching [`RawUpload`]'s field order (`committed` is the
/// offset: `offset` is an SQL keyword).
macro_rules! upload_columns {
    () => {
        "id, image_uuid, params, stor, blob_key, handle, committed, size, parts, digests, \
         created_ms, expires_ms, lease_owner, lease_expires_ms"
    };
}
pub(crate) use upload_columns;

/// The lease claim, without a `RETURNING` clause (which PostgreSQL adds).
/// Under PostgreSQL's READ COMMITTED a racing claim waits for the row
/// lock, then re-checks the lease condition on the committed row (SQLite
/// has a single writer): one claim wins.
macro_rules! claim_upload_sql {
    () => {
        "UPDATE upload_sessions SET lease_owner = $1, lease_expires_ms = $2 \
         WHERE id = $3 AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < $4)"
    };
}
pub(crate) use claim_upload_sql;

const INSERT: &str = concat!(
    "INSERT INTO upload_sessions (",
    upload_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);

const RENEW: &str =
    "UPDATE upload_sessions SET lease_expires_ms = $1 WHERE id = $2 AND lease_owner = $3";

const ADVANCE: &str = "UPDATE upload_sessions SET \
     committed = $1, size = $2, parts = $3, digests = $4, expires_ms = $5, \
     lease_owner = NULL, lease_expires_ms = NULL \
    WHERE id = $6 AND lease_owner = $7 AND committed = $8";

const RELEASE: &str = "UPDATE upload_sessions \
    SET lease_owner = NULL, lease_expires_ms = NULL WHERE id = $1 AND lease_owner = $2";

/// Prefixes compared with `substr` (a `LIKE` would need escaping and is
/// case-insensitive in SQLite); the lengths are in characters, as both
/// databases count them.
const RELEASE_STALE: &str = "UPDATE upload_sessions \
    SET lease_owner = NULL, lease_expires_ms = NULL \
    WHERE substr(lease_owner, 1, CAST($1 AS INTEGER)) = $2 \
     AND substr(lease_owner, 1, CAST($3 AS INTEGER)) <> $4";

const DELETE: &str = "DELETE FROM upload_sessions WHERE id = $1";

const DELETE_EXPIRED: &str = "DELETE FROM upload_sessions \
    WHERE id = $1 AND expires_ms < $2 \
     AND (lease_owner IS NULL OR lease_expires_ms IS NULL OR lease_expires_ms < $2)";

const BY_ID: &str = concat!(
    "SELECT ",
    upload_columns!(),
    " FROM upload_sessions WHERE id = $1"
);

const EXPIRED: &str = concat!(
    "SELECT ",
    upload_columns!(),
    " FROM upload_sessions WHERE expires_ms < $1 ORDER BY expires_ms, id LIMIT $2"
);

const HANDLES: &str = "SELECT handle FROM upload_sessions";

const OF_IMAGE: &str = concat!(
    "SELECT ",
    upload_columns!(),
    " FROM upload_sessions WHERE image_uuid = $1 ORDER BY created_ms, id"
);

/// Give `owner` the lease of session `id` until `expires_ms` if it is
/// absent or expired at `now_ms`.
pub(crate) struct UploadClaim {
    pub(crate) id: Uuid,
    pub(crate) owner: String,
    pub(crate) now_ms: i64,
    pub(crate) expires_ms: i64,
}

/// A session write, as a backend applies it.
pub(crate) enum UploadWrite {
    Insert(UploadRow),
    /// Take the lease ([`claim_upload_sql!`]).
    Claim(UploadClaim),
    Renew {
        id: Uuid,
        owner: String,
        expires_ms: i64,
    },
    Advance {
        row: UploadRow,
        owner: String,
        from_offset: i64,
    },
    Release {
        id: Uuid,
        owner: String,
    },
    /// [`UploadStore::release_stale_upload_leases`].
    ReleaseStale {
        holder: String,
        current: String,
    },
    Delete(Uuid),
    DeleteExpired {
        id: Uuid,
        now_ms: i64,
    },
}

impl UploadWrite {
    /// The session an insert creates: a unique violation means it exists.
    pub(crate) fn inserted(&self) -> Option<Uuid> {
        match self {
            UploadWrite::Insert(row) => Some(row.id),
            _ => None,
        }
    }
}

/// The upload-session statements for database `DB`.
pub(crate) struct UploadSql<DB>(PhantomData<DB>);

impl<DB> UploadSql<DB>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The statement performing `write`.
    pub(crate) fn write(write: &UploadWrite) -> Statement<DB> {
        match write {
            UploadWrite::Insert(row) => Self::insert(row),
            UploadWrite::Claim(claim) => Self::claim(claim_upload_sql!(), claim),
            UploadWrite::Renew {
                id,
                owner,
                expires_ms,
            } => Self::renew(*id, owner, *expires_ms),
            UploadWrite::Advance {
                row,
                owner,
                from_offset,
            } => Self::advance(row, owner, *from_offset),
            UploadWrite::Release { id, owner } => Self::release(*id, owner),
            UploadWrite::ReleaseStale { holder, current } => Self::release_stale(holder, current),
            UploadWrite::Delete(id) => Self::delete(*id),
            UploadWrite::DeleteExpired { id, now_ms } => Self::delete_expired(*id, *now_ms),
        }
    }

    fn insert(row: &UploadRow) -> Statement<DB> {
        sqlx::query(INSERT)
            .bind(&row.uuid)
            .bind(&row.image_uuid)
            .bind(&row.params)
            .bind(&row.stor)
            .bind(&row.blob_key)
            .bind(&row.handle)
            .bind(row.offset)
            .bind(row.size)
            .bind(&row.parts)
            .bind(&row.digests)
            .bind(row.created_ms)
            .bind(row.expires_ms)
            .bind(&row.lease_owner)
            .bind(row.lease_expires_ms)
    }

    /// Bind the parameters of `sql`, a [`claim_upload_sql!`] statement.
    pub(crate) fn claim(sql: &'static str, claim: &UploadClaim) -> Statement<DB> {
        sqlx::query(sql)
            .bind(claim.owner.clone())
            .bind(claim.expires_ms)
            .bind(claim.id.to_string())
            .bind(claim.now_ms)
    }

    fn renew(id: Uuid, owner: &str, expires_ms: i64) -> Statement<DB> {
        sqlx::query(RENEW)
            .bind(expires_ms)
            .bind(id.to_string())
            .bind(owner.to_owned())
    }

    /// Record `row`'s progress if `owner` holds the lease and the stored
    /// offset is `from_offset`.
    fn advance(row: &UploadRow, owner: &str, from_offset: i64) -> Statement<DB> {
        sqlx::query(ADVANCE)
            .bind(row.offset)
            .bind(row.size)
            .bind(&row.parts)
            .bind(&row.digests)
            .bind(row.expires_ms)
            .bind(&row.uuid)
            .bind(owner.to_owned())
            .bind(from_offset)
    }

    fn release(id: Uuid, owner: &str) -> Statement<DB> {
        sqlx::query(RELEASE)
            .bind(id.to_string())
            .bind(owner.to_owned())
    }

    fn release_stale(holder: &str, current: &str) -> Statement<DB> {
        let chars = |s: &str| i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
        sqlx::query(RELEASE_STALE)
            .bind(chars(holder))
            .bind(holder.to_owned())
            .bind(chars(current))
            .bind(current.to_owned())
    }

    fn delete(id: Uuid) -> Statement<DB> {
        sqlx::query(DELETE).bind(id.to_string())
    }

    fn delete_expired(id: Uuid, now_ms: i64) -> Statement<DB> {
        sqlx::query(DELETE_EXPIRED)
            .bind(id.to_string())
            .bind(now_ms)
    }

    /// Rows of [`Self::decode`]'s shape: the session `id`.
    fn by_id(id: Uuid) -> Statement<DB> {
        sqlx::query(BY_ID).bind(id.to_string())
    }

    /// Rows of [`Self::decode`]'s shape: up to `limit` sessions expired
    /// before `now_ms`, oldest expiry first.
    fn expired(now_ms: i64, limit: u32) -> Statement<DB> {
        sqlx::query(EXPIRED).bind(now_ms).bind(i64::from(limit))
    }

    /// Rows of [`Self::decode`]'s shape: the sessions of `image`.
    fn of_image(image: Uuid) -> Statement<DB> {
        sqlx::query(OF_IMAGE).bind(image.to_string())
    }

    fn handles() -> ScalarStatement<'static, DB, String> {
        sqlx::query_scalar(HANDLES)
    }

    /// A row of [`upload_columns!`] as a session; `sql_err` classifies a
    /// column that cannot be read.
    pub(crate) fn decode(
        row: &DB::Row,
        sql_err: impl Fn(sqlx::Error) -> MetaError,
    ) -> Result<UploadSession, MetaError> {
        let raw = || -> Result<RawUpload, sqlx::Error> {
            Ok(RawUpload {
                id: row.try_get(0)?,
                image_uuid: row.try_get(1)?,
                params: row.try_get(2)?,
                stor: row.try_get(3)?,
                blob_key: row.try_get(4)?,
                handle: row.try_get(5)?,
                offset: row.try_get(6)?,
                size: row.try_get(7)?,
                parts: row.try_get(8)?,
                digests: row.try_get(9)?,
                created_ms: row.try_get(10)?,
                expires_ms: row.try_get(11)?,
                lease_owner: row.try_get(12)?,
                lease_expires_ms: row.try_get(13)?,
            })
        };
        raw().map_err(sql_err)?.decode()
    }
}

#[async_trait]
impl<B> UploadStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> Option<String>: Encode<'a, B::Db>,
    for<'a> Option<i64>: Encode<'a, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn insert_upload(&self, upload: &UploadSession) -> Result<(), MetaError> {
        self.write(Write::Upload(UploadWrite::Insert(UploadRow::of(upload)?)))
            .await?;
        Ok(())
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadSession>, MetaError> {
        let row = UploadSql::<B::Db>::by_id(id)
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        row.map(|r| UploadSql::<B::Db>::decode(&r, |e| self.sql_err(e)))
            .transpose()
    }

    async fn claim_upload(
        &self,
        id: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<UploadSession>, MetaError> {
        let claim = UploadClaim {
            id,
            owner: owner.to_string(),
            now_ms,
            expires_ms,
        };
        self.claim_upload_row(claim).await
    }

    async fn renew_upload(
        &self,
        id: Uuid,
        owner: &str,
        expires_ms: i64,
    ) -> Result<bool, MetaError> {
        let owner = owner.to_string();
        let renew = UploadWrite::Renew {
            id,
            owner,
            expires_ms,
        };
        Ok(self.write(Write::Upload(renew)).await? > 0)
    }

    async fn advance_upload(
        &self,
        upload: &UploadSession,
        owner: &str,
        from_offset: u64,
    ) -> Result<bool, MetaError> {
        let advance = UploadWrite::Advance {
            row: UploadRow::of(upload)?,
            owner: owner.to_string(),
            from_offset: i64::try_from(from_offset).unwrap_or(i64::MAX),
        };
        Ok(self.write(Write::Upload(advance)).await? > 0)
    }

    async fn release_upload(&self, id: Uuid, owner: &str) -> Result<bool, MetaError> {
        let owner = owner.to_string();
        Ok(self
            .write(Write::Upload(UploadWrite::Release { id, owner }))
            .await?
            > 0)
    }

    async fn release_stale_upload_leases(
        &self,
        holder: &str,
        current: &str,
    ) -> Result<u64, MetaError> {
        let release = UploadWrite::ReleaseStale {
            holder: holder.to_string(),
            current: current.to_string(),
        };
        let released = self.write(Write::Upload(release)).await?;
        Ok(u64::try_from(released).unwrap_or(0))
    }

    async fn delete_upload(&self, id: Uuid) -> Result<bool, MetaError> {
        Ok(self.write(Write::Upload(UploadWrite::Delete(id))).await? > 0)
    }

    async fn delete_expired_upload(&self, id: Uuid, now_ms: i64) -> Result<bool, MetaError> {
        let delete = UploadWrite::DeleteExpired { id, now_ms };
        Ok(self.write(Write::Upload(delete)).await? > 0)
    }

    async fn expired_uploads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        let rows = UploadSql::<B::Db>::expired(now_ms, limit)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|r| UploadSql::<B::Db>::decode(r, |e| self.sql_err(e)))
            .collect()
    }

    async fn uploads_of_image(&self, image: Uuid) -> Result<Vec<UploadSession>, MetaError> {
        let rows = UploadSql::<B::Db>::of_image(image)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|r| UploadSql::<B::Db>::decode(r, |e| self.sql_err(e)))
            .collect()
    }

    async fn upload_handles(&self) -> Result<Vec<String>, MetaError> {
        UploadSql::<B::Db>::handles()
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))
    }
}

/// The columns of a `SELECT upload_columns!()`, as read from either backend.
struct RawUpload {
    id: String,
    image_uuid: String,
    params: String,
    stor: String,
    blob_key: String,
    handle: String,
    offset: i64,
    size: Option<i64>,
    parts: String,
    digests: String,
    created_ms: i64,
    expires_ms: i64,
    lease_owner: Option<String>,
    lease_expires_ms: Option<i64>,
}

impl RawUpload {
    fn decode(self) -> Result<UploadSession, MetaError> {
        let corrupt = |detail: String| MetaError::Corrupt {
            uuid: self.id.clone(),
            detail,
        };
        let params: Value = serde_json::from_str(&self.params)
            .map_err(|e| corrupt(format!("upload params: {e}")))?;
        let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
        let parts: Vec<String> =
            serde_json::from_str(&self.parts).map_err(|e| corrupt(format!("upload parts: {e}")))?;
        let offset = u64::try_from(self.offset)
            .map_err(|_| corrupt(format!("negative offset {}", self.offset)))?;
        let size = self
            .size
            .map(|n| u64::try_from(n).map_err(|_| corrupt(format!("negative size {n}"))))
            .transpose()?;
        let lease = match (&self.lease_owner, self.lease_expires_ms) {
            (Some(owner), Some(expires_ms)) => Some(UploadLease {
                owner: owner.clone(),
                expires_ms,
            }),
            _ => None,
        };
        Ok(UploadSession {
            id: decode_uuid(&self.id)?,
            image_uuid: decode_uuid(&self.image_uuid)?,
            compression: text("compression").unwrap_or_default(),
            sha1: text("sha1"),
            dataset_guid: text("dataset_guid"),
            stor: self.stor,
            blob_key: self.blob_key,
            handle: self.handle,
            offset,
            size,
            parts,
            digests: self.digests,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            lease,
        })
    }
}
