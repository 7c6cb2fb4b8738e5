//! Webhook endpoints as both SQL backends store them (`webhooks`,
//! migration 0009): the statements, the lease claims and the decoding of a
//! row. Every write goes through the backend's write path (SQLite's single
//! writer, PostgreSQL statements under READ COMMITTED, where a racing
//! conditional UPDATE waits for the row lock and re-checks its condition
//! on the committed row: one claim wins).

use std::marker::PhantomData;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::{decode_uuid, SqlBackend, Statement, Write};
use crate::{MetaError, StoredWebhook, WebhookProgress, WebhookSource, WebhookStore};

macro_rules! webhook_columns {
    () => {
        "id, name, url, secret, events, source, cursor, failures, next_attempt_ms, \
         last_error, last_status, dead, dead_since_ms, lease_holder, lease_expires_ms, \
         created_ms, delivered, last_delivered_ms"
    };
}

const INSERT: &str = concat!(
    "INSERT INTO webhooks (",
    webhook_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
);

/// A configured endpoint: a new row, or the definition of the row of that
/// name replaced (its cursor and delivery state stay).
const UPSERT: &str = concat!(
    "INSERT INTO webhooks (",
    webhook_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
     ON CONFLICT (name) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
     events = excluded.events, source = excluded.source"
);

const ALL: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks ORDER BY created_ms, id"
);
const BY_ID: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE id = $1"
);
const BY_NAME: &str = concat!(
    "SELECT ",
    webhook_columns!(),
    " FROM webhooks WHERE name = $1"
);
const DELETE: &str = "DELETE FROM webhooks WHERE id = $1";

/// The lease goes to `$1` when the endpoint is live and nobody else holds
/// an unexpired lease at `$4`.
const CLAIM: &str = "UPDATE webhooks SET lease_holder = $1, lease_expires_ms = $2 \
    WHERE id = $3 AND dead = FALSE \
     AND (lease_holder IS NULL OR lease_holder = $1 \
          OR lease_expires_ms IS NULL OR lease_expires_ms < $4)";

/// Only the lease holder writes progress; the cursor never moves back; a
/// dead-lettered endpoint loses its lease.
const PROGRESS: &str = "UPDATE webhooks SET \
     cursor = CASE WHEN cursor < $1 THEN $1 ELSE cursor END, \
     delivered = delivered + $2, failures = $3, next_attempt_ms = $4, \
     last_error = $5, last_status = $6, dead = $7, dead_since_ms = $8, \
     lease_expires_ms = CASE WHEN $7 THEN NULL ELSE $9 END, \
     last_delivered_ms = COALESCE($10, last_delivered_ms), \
     lease_holder = CASE WHEN $7 THEN NULL ELSE lease_holder END \
    WHERE id = $11 AND lease_holder = $12";

const RELEASE: &str = "UPDATE webhooks SET lease_holder = NULL, lease_expires_ms = NULL \
    WHERE id = $1 AND lease_holder = $2";

/// Ending the lease too: a delivery in flight cannot record its step, so
/// the next one starts from the state written here.
const RESUME: &str = "UPDATE webhooks SET dead = FALSE, dead_since_ms = NULL, failures = 0, \
     next_attempt_ms = 0, lease_holder = NULL, lease_expires_ms = NULL, \
     cursor = COALESCE($2, cursor) \
    WHERE id = $1";

/// An endpoint write, as a backend applies it.
pub(crate) enum WebhookWrite {
    Insert(StoredWebhook),
    Upsert(StoredWebhook),
    Delete(Uuid),
    Claim {
        id: Uuid,
        holder: String,
        now_ms: i64,
        expires_ms: i64,
    },
    Progress {
        id: Uuid,
        holder: String,
        progress: WebhookProgress,
    },
    Release {
        id: Uuid,
        holder: String,
    },
    Resume {
        id: Uuid,
        cursor: Option<i64>,
    },
}

impl WebhookWrite {
    /// The endpoint an insert creates: a unique violation (id or name)
    /// means it exists.
    pub(crate) fn inserted(&self) -> Option<Uuid> {
        match self {
            WebhookWrite::Insert(hook) => Some(hook.id),
            _ => None,
        }
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The webhook statements for database `DB`.
pub(crate) struct WebhookSql<DB>(PhantomData<DB>);

impl<DB> WebhookSql<DB>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Decode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Decode<'a, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The statement performing `write`.
    pub(crate) fn write(write: &WebhookWrite) -> Statement<DB> {
        match write {
            WebhookWrite::Insert(hook) => Self::bind_row(INSERT, hook),
            WebhookWrite::Upsert(hook) => Self::bind_row(UPSERT, hook),
            WebhookWrite::Delete(id) => sqlx::query(DELETE).bind(id.to_string()),
            WebhookWrite::Claim {
                id,
                holder,
                now_ms,
                expires_ms,
            } => sqlx::query(CLAIM)
                .bind(holder.clone())
                .bind(*expires_ms)
                .bind(id.to_string())
                .bind(*now_ms),
            WebhookWrite::Progress {
                id,
                holder,
                progress: p,
            } => sqlx::query(PROGRESS)
                .bind(p.cursor)
                .bind(i64_of(p.delivered))
                .bind(i64::from(p.failures))
                .bind(p.next_attempt_ms)
                .bind(p.last_error.clone())
                .bind(p.last_status.map(i64::from))
                .bind(p.dead_since_ms.is_some())
                .bind(p.dead_since_ms)
                .bind(p.lease_expires_ms)
                .bind(p.last_delivered_ms)
                .bind(id.to_string())
                .bind(holder.clone()),
            WebhookWrite::Release { id, holder } => sqlx::query(RELEASE)
                .bind(id.to_string())
                .bind(holder.clone()),
            WebhookWrite::Resume { id, cursor } => {
                sqlx::query(RESUME).bind(id.to_string()).bind(*cursor)
            }
        }
    }

    fn bind_row(sql: &'static str, hook: &StoredWebhook) -> Statement<DB> {
        let events = hook
            .events
            .as_ref()
            .map(|e| serde_json::to_string(e).unwrap_or_else(|_| "[]".to_owned()));
        sqlx::query(sql)
            .bind(hook.id.to_string())
            .bind(hook.name.clone())
            .bind(hook.url.clone())
            .bind(hook.secret.clone())
            .bind(events)
            .bind(hook.source.as_str().to_owned())
            .bind(hook.cursor)
            .bind(i64::from(hook.failures))
            .bind(hook.next_attempt_ms)
            .bind(hook.last_error.clone())
            .bind(hook.last_status.map(i64::from))
            .bind(hook.dead)
            .bind(hook.dead_since_ms)
            .bind(hook.lease_holder.clone())
            .bind(hook.lease_expires_ms)
            .bind(hook.created_ms)
            .bind(i64_of(hook.delivered))
            .bind(hook.last_delivered_ms)
    }

    fn decode(row: &DB::Row) -> Result<StoredWebhook, sqlx::Error> {
        let corrupt = |what: String| sqlx::Error::Decode(Box::new(std::io::Error::other(what)));
        let id: String = row.try_get(0)?;
        let events: Option<String> = row.try_get(4)?;
        let events = events
            .map(|text| serde_json::from_str::<Vec<String>>(&text))
            .transpose()
            .map_err(|e| corrupt(format!("webhook {id}: bad events column: {e}")))?;
        let source: String = row.try_get(5)?;
        let failures: i64 = row.try_get(7)?;
        let last_status: Option<i64> = row.try_get(10)?;
        let delivered: i64 = row.try_get(16)?;
        Ok(StoredWebhook {
            id: decode_uuid(&id).map_err(|e| corrupt(e.to_string()))?,
            name: row.try_get(1)?,
            url: row.try_get(2)?,
            secret: row.try_get(3)?,
            events,
            source: WebhookSource::parse(&source)
                .ok_or_else(|| corrupt(format!("webhook {id}: bad source {source:?}")))?,
            cursor: row.try_get(6)?,
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            next_attempt_ms: row.try_get(8)?,
            last_error: row.try_get(9)?,
            last_status: last_status.and_then(|s| u16::try_from(s).ok()),
            dead: row.try_get(11)?,
            dead_since_ms: row.try_get(12)?,
            lease_holder: row.try_get(13)?,
            lease_expires_ms: row.try_get(14)?,
            created_ms: row.try_get(15)?,
            delivered: u64::try_from(delivered).unwrap_or(0),
            last_delivered_ms: row.try_get(17)?,
        })
    }
}

#[async_trait]
impl<B> WebhookStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> bool: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> Option<String>: Encode<'a, B::Db> + Decode<'a, B::Db>,
    for<'a> Option<i64>: Encode<'a, B::Db> + Decode<'a, B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn webhooks(&self) -> Result<Vec<StoredWebhook>, MetaError> {
        let rows = sqlx::query(ALL)
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter()
            .map(|r| WebhookSql::<B::Db>::decode(r).map_err(|e| self.sql_err(e)))
            .collect()
    }

    async fn get_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>, MetaError> {
        let row = sqlx::query(BY_ID)
            .bind(id.to_string())
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        row.as_ref()
            .map(|r| WebhookSql::<B::Db>::decode(r).map_err(|e| self.sql_err(e)))
            .transpose()
    }

    async fn insert_webhook(&self, hook: &StoredWebhook) -> Result<(), MetaError> {
        self.write(Write::Webhook(WebhookWrite::Insert(hook.clone())))
            .await?;
        Ok(())
    }

    async fn upsert_webhook_by_name(
        &self,
        hook: &StoredWebhook,
    ) -> Result<StoredWebhook, MetaError> {
        self.write(Write::Webhook(WebhookWrite::Upsert(hook.clone())))
            .await?;
        let row = sqlx::query(BY_NAME)
            .bind(hook.name.clone())
            .fetch_optional(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        match row {
            Some(row) => WebhookSql::<B::Db>::decode(&row).map_err(|e| self.sql_err(e)),
            // Deleted by another instance between the two statements.
            None => Err(MetaError::NotFound(hook.id)),
        }
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool, MetaError> {
        Ok(self.write(Write::Webhook(WebhookWrite::Delete(id))).await? > 0)
    }

    async fn claim_webhook(
        &self,
        id: Uuid,
        holder: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<StoredWebhook>, MetaError> {
        let claim = WebhookWrite::Claim {
            id,
            holder: holder.to_owned(),
            now_ms,
            expires_ms,
        };
        if self.write(Write::Webhook(claim)).await? == 0 {
            return Ok(None);
        }
        // Nobody else can take an unexpired lease meanwhile: the row read
        // is the one claimed (a resume or delete in between shows in the
        // holder's next progress write, which then fails).
        let hook = self.get_webhook(id).await?;
        Ok(hook.filter(|h| h.lease_holder.as_deref() == Some(holder)))
    }

    async fn record_webhook_progress(
        &self,
        id: Uuid,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool, MetaError> {
        let write = WebhookWrite::Progress {
            id,
            holder: holder.to_owned(),
            progress: progress.clone(),
        };
        Ok(self.write(Write::Webhook(write)).await? > 0)
    }

    async fn release_webhook(&self, id: Uuid, holder: &str) -> Result<bool, MetaError> {
        let write = WebhookWrite::Release {
            id,
            holder: holder.to_owned(),
        };
        Ok(self.write(Write::Webhook(write)).await? > 0)
    }

    async fn resume_webhook(&self, id: Uuid, cursor: Option<i64>) -> Result<bool, MetaError> {
        let write = WebhookWrite::Resume { id, cursor };
        Ok(self.write(Write::Webhook(write)).await? > 0)
    }
}
