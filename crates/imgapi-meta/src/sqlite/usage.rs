//! Usage aggregates (SQLite): [`UsageStore`], see [`crate::usage`].

use async_trait::async_trait;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

use super::{map_err, SqliteStore};
use crate::sql::usage::{assemble, OwnerRow, TagRow};
use crate::{MetaError, Usage, UsageStore};

/// Per image: owner, state, number of files, their bytes, icon, its bytes.
/// `?1` = an owner uuid to restrict to, or NULL.
macro_rules! per_image {
    () => {
        "WITH per AS (
    SELECT uuid, owner, state,
        (SELECT COUNT(*) FROM json_each(record, '$.files')) AS files,
        (SELECT COALESCE(SUM(json_extract(value, '$.size')), 0)
            FROM json_each(record, '$.files')) AS file_bytes,
        CASE WHEN json_type(record, '$.icon') = 'object' THEN 1 ELSE 0 END AS icons,
        COALESCE(json_extract(record, '$.icon.size'), 0) AS icon_bytes
    FROM images
    WHERE ?1 IS NULL OR owner = ?1
)
"
    };
}

async fn usage(pool: &SqlitePool, owner: Option<Uuid>) -> Result<Usage, MetaError> {
    let owner = owner.map(|o| o.to_string());
    let owners_sql = concat!(
        per_image!(),
        "        SELECT owner, COUNT(*), COALESCE(SUM(state = 'active'), 0),
            COALESCE(SUM(files), 0), COALESCE(SUM(file_bytes), 0),
            COALESCE(SUM(icons), 0), COALESCE(SUM(icon_bytes), 0)
        FROM per GROUP BY owner ORDER BY owner"
    );
    let tags_sql = concat!(
        per_image!(),
        "        SELECT per.owner, t.tag, COUNT(*), COALESCE(SUM(per.file_bytes + per.icon_bytes), 0)
        FROM per JOIN image_billing_tags AS t ON t.uuid = per.uuid
        GROUP BY per.owner, t.tag ORDER BY per.owner, t.tag"
    );
    // One read transaction: in WAL mode both queries read the snapshot
    // taken by the first one.
    let mut tx = pool.begin().await.map_err(map_err)?;
    let owners: Vec<OwnerRow> = sqlx::query_as(owners_sql)
        .bind(owner.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
    let tags: Vec<TagRow> = sqlx::query_as(tags_sql)
        .bind(owner.as_deref())
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
    tx.rollback().await.map_err(map_err)?;
    assemble(owners, tags)
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn usage(&self, owner: Option<Uuid>) -> Result<Usage, MetaError> {
        usage(&self.reader, owner).await
    }
}
