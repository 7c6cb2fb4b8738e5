//! Quota overrides and reservations as both SQL backends run them (see
//! [`crate::quotas`]): the statements and the check-then-reserve step.
//! A backend supplies the transaction (serialized per owner) and the one
//! statement its dialect words differently: the owner's use.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use crate::sql::decode_uuid;
use crate::sql::usage::count;
use crate::{MetaError, QuotaOverride, QuotaUse, ReservationRequest, ReserveOutcome};

/// One statement (one snapshot) reading an owner's use and live
/// reservations: `$owner_use` is the backend's `SELECT` of the use (`$1` =
/// owner → `(images, bytes)`), joined with the reservations of `$1` live
/// at `$2` → `(images, bytes, reserved images, reserved bytes)`. Under READ
/// COMMITTED every statement has its own snapshot, and an upload commits
/// its record and then (another transaction) releases its reservation:
/// read by two statements, the use could predate the record and the
/// reservations postdate the release, counting that upload nowhere.
macro_rules! use_and_reserved_sql {
    ($owner_use:literal) => {
        concat!(
            "SELECT u.*, r.* FROM (",
            $owner_use,
            ") AS u, (SELECT CAST(COALESCE(SUM(images), 0) AS BIGINT), \
             CAST(COALESCE(SUM(bytes), 0) AS BIGINT) \
             FROM quota_reservations WHERE owner = $1 AND expires_ms > $2) AS r"
        )
    };
}
pub(crate) use use_and_reserved_sql;

const DROP_EXPIRED: &str = "DELETE FROM quota_reservations WHERE owner = $1 AND expires_ms <= $2";
/// Another image of `$1` with name `$2` and version `$3` than `$4`, in
/// `images` or claimed by a live reservation (at `$5`): ONE statement, so
/// one snapshot (a create commits its record, then releases its claim).
const VERSION_TAKEN: &str = "SELECT uuid FROM images \
     WHERE owner = $1 AND name = $2 AND version = $3 AND uuid <> $4 \
     UNION ALL SELECT image_uuid FROM quota_reservations \
     WHERE owner = $1 AND name = $2 AND version = $3 AND image_uuid <> $4 \
     AND expires_ms > $5 LIMIT 1";
const UPSERT_RESERVATION: &str = "INSERT INTO quota_reservations \
     (id, owner, image_uuid, images, bytes, name, version, expires_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (id) DO UPDATE SET images = quota_reservations.images + excluded.images, \
     bytes = quota_reservations.bytes + excluded.bytes, expires_ms = excluded.expires_ms";
pub(crate) const RELEASE: &str = "DELETE FROM quota_reservations WHERE id = $1";
pub(crate) const LIST_OVERRIDES: &str =
    "SELECT owner, images, bytes FROM quota_overrides ORDER BY owner";
pub(crate) const GET_OVERRIDE: &str =
    "SELECT owner, images, bytes FROM quota_overrides WHERE owner = $1";
pub(crate) const PUT_OVERRIDE: &str = "INSERT INTO quota_overrides (owner, images, bytes) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (owner) DO UPDATE SET images = excluded.images, bytes = excluded.bytes";
pub(crate) const DELETE_OVERRIDE: &str = "DELETE FROM quota_overrides WHERE owner = $1";

/// A limit as stored (`i64`).
pub(crate) fn to_column(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What `owner` uses and has reserved at `now_ms` (`use_sql`: the
/// backend's [`use_and_reserved_sql!`]).
pub(crate) async fn quota_use<DB>(
    conn: &mut DB::Connection,
    use_sql: &'static str,
    owner: Uuid,
    now_ms: i64,
) -> Result<QuotaUse, sqlx::Error>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let row = sqlx::query::<DB>(use_sql)
        .bind(owner.to_string())
        .bind(now_ms)
        .fetch_one(&mut *conn)
        .await?;
    Ok(QuotaUse {
        images: count(row.try_get::<i64, _>(0)?),
        bytes: count(row.try_get::<i64, _>(1)?),
        reserved_images: count(row.try_get::<i64, _>(2)?),
        reserved_bytes: count(row.try_get::<i64, _>(3)?),
    })
}

/// The body of [`crate::QuotaStore::reserve`], inside a transaction the
/// backend has serialized per owner.
pub(crate) async fn reserve_in<DB>(
    conn: &mut DB::Connection,
    use_sql: &'static str,
    req: &ReservationRequest,
    backend: &(dyn Fn(sqlx::Error) -> MetaError + Send + Sync),
) -> Result<ReserveOutcome, MetaError>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let owner = req.owner.to_string();
    let image = req.image.to_string();
    sqlx::query::<DB>(DROP_EXPIRED)
        .bind(owner.clone())
        .bind(req.now_ms)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    if let Some((name, version)) = &req.claim_version {
        let taken: Option<String> = sqlx::query_scalar::<DB, String>(VERSION_TAKEN)
            .bind(owner.clone())
            .bind(name.clone())
            .bind(version.clone())
            .bind(image.clone())
            .bind(req.now_ms)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
        if let Some(uuid) = taken {
            return Ok(ReserveOutcome::VersionTaken(decode_uuid(&uuid)?));
        }
    }
    let usage = quota_use::<DB>(conn, use_sql, req.owner, req.now_ms)
        .await
        .map_err(backend)?;
    let over = |limit: u64, used: u64, reserved: u64, asked: u64| {
        asked > 0 && limit > 0 && used.saturating_add(reserved).saturating_add(asked) > limit
    };
    if over(
        req.limits.images,
        usage.images,
        usage.reserved_images,
        req.images,
    ) {
        return Ok(ReserveOutcome::OverImages(usage));
    }
    if over(
        req.limits.bytes,
        usage.bytes,
        usage.reserved_bytes,
        req.bytes,
    ) {
        return Ok(ReserveOutcome::OverBytes(usage));
    }
    let (name, version) = match &req.claim_version {
        Some((n, v)) => (Some(n.clone()), Some(v.clone())),
        None => (None, None),
    };
    sqlx::query::<DB>(UPSERT_RESERVATION)
        .bind(req.id.to_string())
        .bind(owner)
        .bind(image)
        .bind(to_column(req.images))
        .bind(to_column(req.bytes))
        .bind(name)
        .bind(version)
        .bind(req.expires_ms)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(ReserveOutcome::Granted)
}

/// One `(owner, images, bytes)` row of `quota_overrides`.
pub(crate) fn decode_override(
    (owner, images, bytes): (String, Option<i64>, Option<i64>),
) -> Result<QuotaOverride, MetaError> {
    Ok(QuotaOverride {
        owner: decode_uuid(&owner)?,
        images: images.map(count),
        bytes: bytes.map(count),
    })
}
