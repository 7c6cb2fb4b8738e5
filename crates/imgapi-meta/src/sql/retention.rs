//! Retention rules as both SQL backends store them (`retention_rules`,
//! migration 0007): the statements and the decoding of a row.

use std::marker::PhantomData;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::{decode_uuid, SqlBackend, Statement, Write};
use crate::{MetaError, RetentionRuleStore, StoredRetentionRule};

const INSERT: &str = "INSERT INTO retention_rules \
    (id, owner, name, keep_versions, keep_days, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
const DELETE: &str = "DELETE FROM retention_rules WHERE id = $1";
const ALL: &str = "SELECT id, owner, name, keep_versions, keep_days, created_at \
    FROM retention_rules ORDER BY created_at, id";

/// A rule write, as a backend applies it.
pub(crate) enum RetentionWrite {
    Insert(StoredRetentionRule),
    Delete(Uuid),
}

impl RetentionWrite {
    /// The rule an insert creates: a unique violation means it exists.
    pub(crate) fn inserted(&self) -> Option<Uuid> {
        match self {
            RetentionWrite::Insert(rule) => Some(rule.id),
            RetentionWrite::Delete(_) => None,
        }
    }
}

/// The retention-rule statements for database `DB`.
pub(crate) struct RetentionSql<DB>(PhantomData<DB>);

impl<DB> RetentionSql<DB>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The statement performing `write`.
    pub(crate) fn write(write: &RetentionWrite) -> Statement<DB> {
        match write {
            RetentionWrite::Insert(rule) => sqlx::query(INSERT)
                .bind(rule.id.to_string())
                .bind(rule.owner.map(|o| o.to_string()))
                .bind(rule.name.clone())
                .bind(rule.keep_versions.map(i64::from))
                .bind(rule.keep_days.map(i64::from))
                .bind(rule.created_at.clone()),
            RetentionWrite::Delete(id) => sqlx::query(DELETE).bind(id.to_string()),
        }
    }

    fn decode(row: &DB::Row) -> Result<StoredRetentionRule, sqlx::Error> {
        let id: String = row.try_get(0)?;
        let owner: Option<String> = row.try_get(1)?;
        let keep = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
        let corrupt =
            |e: MetaError| sqlx::Error::Decode(Box::new(std::io::Error::other(e.to_string())));
        Ok(StoredRetentionRule {
            id: decode_uuid(&id).map_err(corrupt)?,
            owner: owner
                .as_deref()
                .map(decode_uuid)
                .transpose()
                .map_err(corrupt)?,
            name: row.try_get(2)?,
            keep_versions: keep(row.try_get(3)?),
            keep_days: keep(row.try_get(4)?),
            created_at: row.try_get(5)?,
        })
    }
}

#[async_trait]
impl<B> RetentionRuleStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> Option<String>: Encode<'a, B::Db> + Decode<'a, B::Db>,
    for<'a> Option<i64>: Encode<'a, B::Db> + Decode<'a, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn retention_rules(&self) -> Result<Vec<StoredRetentionRule>, MetaError> {
        let rows = sqlx::query(ALL)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|r| RetentionSql::<B::Db>::decode(r).map_err(|e| self.sql_err(e)))
            .collect()
    }

    async fn insert_retention_rule(&self, rule: &StoredRetentionRule) -> Result<(), MetaError> {
        let insert = RetentionWrite::Insert(rule.clone());
        self.write(Write::Retention(insert)).await?;
        Ok(())
    }

    async fn delete_retention_rule(&self, id: Uuid) -> Result<bool, MetaError> {
        let delete = RetentionWrite::Delete(id);
        Ok(self.write(Write::Retention(delete)).await? > 0)
    }
}
