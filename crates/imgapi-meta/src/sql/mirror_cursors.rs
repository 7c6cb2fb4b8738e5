//! Mirror cursors as both SQL backends store them (`mirror_cursors`,
//! migration 0010): one upsert and one lookup.

use std::marker::PhantomData;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{SqlBackend, Statement, Write};
use crate::{MetaError, MirrorCursor, MirrorCursorKey, MirrorCursorStore};

const PUT: &str = "INSERT INTO mirror_cursors (upstream, filters, cursor, updated_ms) \
    VALUES ($1, $2, $3, $4) \
    ON CONFLICT (upstream, filters) DO UPDATE \
    SET cursor = excluded.cursor, updated_ms = excluded.updated_ms";
const GET: &str = "SELECT cursor, updated_ms FROM mirror_cursors \
    WHERE upstream = $1 AND filters = $2";

/// A cursor write, as a backend applies it.
pub(crate) struct MirrorCursorWrite {
    key: MirrorCursorKey,
    cursor: MirrorCursor,
}

/// The mirror-cursor statements for database `DB`.
pub(crate) struct MirrorCursorSql<DB>(PhantomData<DB>);

impl<DB> MirrorCursorSql<DB>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    /// The statement performing `write`.
    pub(crate) fn write(write: &MirrorCursorWrite) -> Statement<DB> {
        sqlx::query(PUT)
            .bind(write.key.upstream.clone())
            .bind(write.key.filters.clone())
            .bind(write.cursor.cursor)
            .bind(write.cursor.updated_ms)
    }
}

#[async_trait]
impl<B> MirrorCursorStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn mirror_cursor(
        &self,
        key: &MirrorCursorKey,
    ) -> Result<Option<MirrorCursor>, MetaError> {
        let row = sqlx::query(GET)
            .bind(key.upstream.clone())
            .bind(key.filters.clone())
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let decode = |i: usize| row.try_get::<i64, _>(i).map_err(|e| self.sql_err(e));
        Ok(Some(MirrorCursor {
            cursor: decode(0)?,
            updated_ms: decode(1)?,
        }))
    }

    async fn put_mirror_cursor(
        &self,
        key: &MirrorCursorKey,
        cursor: MirrorCursor,
    ) -> Result<(), MetaError> {
        let write = MirrorCursorWrite {
            key: key.clone(),
            cursor,
        };
        self.write(Write::MirrorCursor(write)).await?;
        Ok(())
    }
}
