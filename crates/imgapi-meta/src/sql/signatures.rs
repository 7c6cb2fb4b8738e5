//! Image signatures as both SQL backends store them (`image_signatures`):
//! [`crate::ImageSignatureStore`] for every [`SqlBackend`]. Changes are
//! image writes ([`ImageWrite::Signature`]) so their events are in the
//! change log with them.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::images::{ImageDialect, ImageWrite, WriteFailure};
use super::{decode_uuid, SqlBackend, Write};
use crate::{ImageSignatureStore, MetaError, Revision, StoredSignature};

/// A SELECT of whole signature rows followed by `$rest`.
macro_rules! signatures {
    ($rest:literal) => {
        concat!(
            "SELECT uuid, key_id, fingerprint, algorithm, public_key, signature, added_ms, \
             added_by FROM image_signatures ",
            $rest
        )
    };
}

const OF_IMAGE: &str = signatures!("WHERE uuid = $1 ORDER BY added_ms, key_id");
const AFTER: &str =
    signatures!("WHERE uuid > $1 OR (uuid = $1 AND key_id > $2) ORDER BY uuid, key_id LIMIT $3");
const UPSERT: &str = "INSERT INTO image_signatures \
     (uuid, key_id, fingerprint, algorithm, public_key, signature, added_ms, added_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (uuid, key_id) DO UPDATE SET \
     fingerprint = excluded.fingerprint, algorithm = excluded.algorithm, \
     public_key = excluded.public_key, signature = excluded.signature, \
     added_ms = excluded.added_ms, added_by = excluded.added_by";
const REMOVE: &str = "DELETE FROM image_signatures WHERE uuid = $1 AND key_id = $2";
/// Every signature of an image that leaves for good.
const REMOVE_ALL: &str = "DELETE FROM image_signatures WHERE uuid = $1";
const REVISION: &str = "SELECT revision FROM images WHERE uuid = $1";

/// A change of one image's signatures, as an image write applies it.
pub(crate) enum SignatureWrite {
    Put {
        signature: StoredSignature,
        expected: Option<Revision>,
    },
    Remove {
        uuid: Uuid,
        key_id: String,
    },
}

impl SignatureWrite {
    pub(crate) fn uuid(&self) -> Uuid {
        match self {
            SignatureWrite::Put { signature, .. } => signature.uuid,
            SignatureWrite::Remove { uuid, .. } => *uuid,
        }
    }

    pub(crate) fn key_id(&self) -> &str {
        match self {
            SignatureWrite::Put { signature, .. } => &signature.key_id,
            SignatureWrite::Remove { key_id, .. } => key_id,
        }
    }
}

/// Apply `write` inside the caller's transaction. A put on a missing image
/// is `NotFound`, on another revision than expected `Conflict`; yields the
/// rows changed (0: a removal of nothing).
pub(crate) async fn apply<DB>(
    conn: &mut DB::Connection,
    write: &SignatureWrite,
) -> Result<i64, WriteFailure>
where
    DB: ImageDialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    match write {
        SignatureWrite::Put {
            signature,
            expected,
        } => {
            let uuid = signature.uuid;
            let revision: Option<i64> = sqlx::query_scalar(REVISION)
                .bind(uuid.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            match (revision, expected) {
                (None, _) => return Err(WriteFailure::Meta(MetaError::NotFound(uuid))),
                (Some(found), Some(expected)) if found != *expected => {
                    return Err(WriteFailure::Meta(MetaError::Conflict(uuid)))
                }
                _ => {}
            }
            sqlx::query(UPSERT)
                .bind(uuid.to_string())
                .bind(signature.key_id.clone())
                .bind(signature.fingerprint.clone())
                .bind(signature.algorithm.clone())
                .bind(signature.public_key.clone())
                .bind(signature.signature.clone())
                .bind(signature.added_ms)
                .bind(signature.added_by.clone())
                .execute(&mut *conn)
                .await?;
            Ok(1)
        }
        SignatureWrite::Remove { uuid, key_id } => {
            let done = sqlx::query(REMOVE)
                .bind(uuid.to_string())
                .bind(key_id.clone())
                .execute(&mut *conn)
                .await?;
            Ok(super::affected_rows(DB::rows_affected(&done)))
        }
    }
}

/// Remove every signature of `uuid` (the image left for good).
pub(crate) async fn remove_all<DB>(conn: &mut DB::Connection, uuid: &str) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    sqlx::query(REMOVE_ALL)
        .bind(uuid.to_owned())
        .execute(conn)
        .await?;
    Ok(())
}

fn decode<B, R>(backend: &B, row: &R) -> Result<StoredSignature, MetaError>
where
    B: SqlBackend,
    R: Row<Database = B::Db>,
    for<'a> String: Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Decode<'a, B::Db> + Type<B::Db>,
    usize: ColumnIndex<R>,
{
    let text = |i: usize| row.try_get::<String, _>(i).map_err(|e| backend.sql_err(e));
    Ok(StoredSignature {
        uuid: decode_uuid(&text(0)?)?,
        key_id: text(1)?,
        fingerprint: text(2)?,
        algorithm: text(3)?,
        public_key: text(4)?,
        signature: text(5)?,
        added_ms: row.try_get::<i64, _>(6).map_err(|e| backend.sql_err(e))?,
        added_by: text(7)?,
    })
}

#[async_trait]
impl<B> ImageSignatureStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c sqlx::Pool<B::Db>: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn image_signatures(&self, uuid: Uuid) -> Result<Vec<StoredSignature>, MetaError> {
        let rows = sqlx::query(OF_IMAGE)
            .bind(uuid.to_string())
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter().map(|row| decode(self, row)).collect()
    }

    async fn put_image_signature(
        &self,
        signature: &StoredSignature,
        expected: Option<Revision>,
    ) -> Result<(), MetaError> {
        let write = SignatureWrite::Put {
            signature: signature.clone(),
            expected,
        };
        self.write(Write::Image(ImageWrite::Signature(write)))
            .await?;
        Ok(())
    }

    async fn remove_image_signature(&self, uuid: Uuid, key_id: &str) -> Result<bool, MetaError> {
        let write = SignatureWrite::Remove {
            uuid,
            key_id: key_id.to_owned(),
        };
        Ok(self
            .write(Write::Image(ImageWrite::Signature(write)))
            .await?
            > 0)
    }

    async fn image_signatures_after(
        &self,
        after: Option<(Uuid, String)>,
        limit: u32,
    ) -> Result<Vec<StoredSignature>, MetaError> {
        let (uuid, key_id) = after.map(|(u, k)| (u.to_string(), k)).unwrap_or_default();
        let rows = sqlx::query(AFTER)
            .bind(uuid)
            .bind(key_id)
            .bind(i64::from(limit))
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter().map(|row| decode(self, row)).collect()
    }
}
