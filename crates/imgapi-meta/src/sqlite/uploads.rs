//! Upload sessions (SQLite): [`UploadStore`], and the session writes the
//! writer task applies.

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;
use sqlx::Sqlite;
use uuid::Uuid;

use super::{affected, map_err, map_insert_err, Op, SqliteStore};
use crate::sql::uploads::{claim_upload_sql, UploadRow, UploadSql};
use crate::{MetaError, UploadSession, UploadStore};

type Sql = UploadSql<Sqlite>;

/// A session write, as queued for the writer task.
pub(super) enum UploadWrite {
    Insert(UploadRow),
    Claim {
        id: Uuid,
        owner: String,
        now_ms: i64,
        expires_ms: i64,
    },
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
    Delete(Uuid),
    DeleteExpired {
        id: Uuid,
        now_ms: i64,
    },
}

/// Perform `write` on `conn`, inside the writer's transaction: the rows
/// it touched.
pub(super) async fn apply(
    conn: &mut SqliteConnection,
    write: &UploadWrite,
) -> Result<i64, MetaError> {
    let statement = match write {
        UploadWrite::Insert(row) => {
            Sql::insert(row)
                .execute(conn)
                .await
                .map_err(|e| map_insert_err(e, row.id))?;
            return Ok(1);
        }
        UploadWrite::Claim {
            id,
            owner,
            now_ms,
            expires_ms,
        } => Sql::claim(claim_upload_sql!(), *id, owner, *now_ms, *expires_ms),
        UploadWrite::Renew {
            id,
            owner,
            expires_ms,
        } => Sql::renew(*id, owner, *expires_ms),
        UploadWrite::Advance {
            row,
            owner,
            from_offset,
        } => Sql::advance(row, owner, *from_offset),
        UploadWrite::Release { id, owner } => Sql::release(*id, owner),
        UploadWrite::Delete(id) => Sql::delete(*id),
        UploadWrite::DeleteExpired { id, now_ms } => Sql::delete_expired(*id, *now_ms),
    };
    affected(statement.execute(conn).await)
}

#[async_trait]
impl UploadStore for SqliteStore {
    async fn insert_upload(&self, upload: &UploadSession) -> Result<(), MetaError> {
        self.write_upload(UploadWrite::Insert(UploadRow::of(upload)?))
            .await?;
        Ok(())
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<UploadSession>, MetaError> {
        let row = Sql::by_id(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?;
        row.map(|r| Sql::decode(&r, map_err)).transpose()
    }

    async fn claim_upload(
        &self,
        id: Uuid,
        owner: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<UploadSession>, MetaError> {
        let claim = UploadWrite::Claim {
            id,
            owner: owner.to_string(),
            now_ms,
            expires_ms,
        };
        if self.write_upload(claim).await? == 0 {
            return Ok(None);
        }
        self.get_upload(id).await
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
        Ok(self.write_upload(renew).await? > 0)
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
        Ok(self.write_upload(advance).await? > 0)
    }

    async fn release_upload(&self, id: Uuid, owner: &str) -> Result<bool, MetaError> {
        let owner = owner.to_string();
        Ok(self
            .write_upload(UploadWrite::Release { id, owner })
            .await?
            > 0)
    }

    async fn delete_upload(&self, id: Uuid) -> Result<bool, MetaError> {
        Ok(self.write_upload(UploadWrite::Delete(id)).await? > 0)
    }

    async fn delete_expired_upload(&self, id: Uuid, now_ms: i64) -> Result<bool, MetaError> {
        let delete = UploadWrite::DeleteExpired { id, now_ms };
        Ok(self.write_upload(delete).await? > 0)
    }

    async fn expired_uploads(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        let rows = Sql::expired(now_ms, limit)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(|r| Sql::decode(r, map_err)).collect()
    }

    async fn upload_handles(&self) -> Result<Vec<String>, MetaError> {
        Sql::handles()
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)
    }
}

impl SqliteStore {
    async fn write_upload(&self, write: UploadWrite) -> Result<i64, MetaError> {
        self.writes.run(Op::Upload(write)).await
    }
}
