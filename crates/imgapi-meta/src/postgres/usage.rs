//! Usage aggregates (PostgreSQL): [`UsageStore`], see [`crate::usage`].

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::PostgresStore;
use crate::sql::usage::{assemble, OwnerRow, TagRow};
use crate::{MetaError, Usage, UsageStore};

/// Per image: owner, state, number of files, their bytes, icon, its bytes.
/// `$1` = an owner uuid to restrict to, or NULL. The record is text (kept
/// byte for byte); it is parsed as jsonb here, once per image.
macro_rules! per_image {
    () => {
        "WITH rec AS (
    SELECT uuid, owner, state, record::jsonb AS r
    FROM images
    WHERE $1::text IS NULL OR owner = $1::text
), per AS (
    SELECT uuid, owner, state,
        CASE WHEN jsonb_typeof(r->'files') = 'array'
            THEN jsonb_array_length(r->'files') ELSE 0 END AS files,
        COALESCE((SELECT SUM((f->>'size')::bigint) FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof(r->'files') = 'array' THEN r->'files' ELSE '[]'::jsonb END
        ) AS f), 0) AS file_bytes,
        CASE WHEN jsonb_typeof(r->'icon') = 'object' THEN 1 ELSE 0 END AS icons,
        COALESCE((r->'icon'->>'size')::bigint, 0) AS icon_bytes
    FROM rec
)
"
    };
}

async fn usage(
    pool: &PgPool,
    owner: Option<Uuid>,
    err: impl Fn(sqlx::Error) -> MetaError,
) -> Result<Usage, MetaError> {
    let owner = owner.map(|o| o.to_string());
    let owners_sql = concat!(
        per_image!(),
        "        SELECT owner, COUNT(*)::bigint, (COUNT(*) FILTER (WHERE state = 'active'))::bigint,
            COALESCE(SUM(files), 0)::bigint, COALESCE(SUM(file_bytes), 0)::bigint,
            COALESCE(SUM(icons), 0)::bigint, COALESCE(SUM(icon_bytes), 0)::bigint
        FROM per GROUP BY owner ORDER BY owner"
    );
    let tags_sql = concat!(
        per_image!(),
        "        SELECT per.owner, t.tag, COUNT(*)::bigint,
            COALESCE(SUM(per.file_bytes + per.icon_bytes), 0)::bigint
        FROM per JOIN image_billing_tags AS t ON t.uuid = per.uuid
        GROUP BY per.owner, t.tag ORDER BY per.owner, t.tag"
    );
    // Both queries in one REPEATABLE READ snapshot.
    let mut tx = pool.begin().await.map_err(&err)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(&err)?;
    let owners: Vec<OwnerRow> = sqlx::query_as(owners_sql)
        .bind(owner.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
    let tags: Vec<TagRow> = sqlx::query_as(tags_sql)
        .bind(owner.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(&err)?;
    tx.rollback().await.map_err(&err)?;
    assemble(owners, tags)
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn usage(&self, owner: Option<Uuid>) -> Result<Usage, MetaError> {
        usage(&self.pool, owner, |e| self.err(e)).await
    }
}
