//! The change log as both SQL backends store it (`image_events`,
//! `change_log`, migration 0008): the events an image write derives, their
//! insertion (the last statements of the write's transaction), and
//! [`crate::ChangeStore`] for every [`SqlBackend`].

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use imgapi_types::ChangeKind;
use serde_json::{Map, Value};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::images::{decode_record, ImageDialect};
use super::{decode_uuid, SqlBackend, Write};
use crate::{ChangeLogBounds, ChangeStore, MetaError, StoredChange};

const AFTER: &str = "SELECT seq, time_ms, kind, uuid, fields, record FROM image_events \
                     WHERE seq > $1 ORDER BY seq LIMIT $2";
const BOUNDS: &str = "SELECT purged_through, last_seq FROM change_log WHERE id = 1";
/// The first event young enough to keep: the purge stops before it (found
/// by walking the log from its start, so only purged rows are read).
const FIRST_KEPT: &str = "SELECT seq FROM image_events WHERE time_ms >= $1 ORDER BY seq LIMIT 1";
const LAST_SEQ: &str = "SELECT last_seq FROM change_log WHERE id = 1";
/// Takes the counter row's lock (a no-op update) so no event commits while
/// a purge decides what to remove.
const LOCK_COUNTER: &str = "UPDATE change_log SET last_seq = last_seq WHERE id = 1";
const PURGE: &str = "DELETE FROM image_events WHERE seq <= $1";
const MARK_PURGED: &str =
    "UPDATE change_log SET purged_through = $1 WHERE id = 1 AND purged_through < $1";
const CONTINUE_AFTER: &str =
    "UPDATE change_log SET last_seq = $1, purged_through = $1 WHERE id = 1 AND last_seq < $1";

/// One event as an image write derives it, before it has a number.
pub(crate) struct EventRow {
    pub(crate) kind: ChangeKind,
    pub(crate) uuid: String,
    pub(crate) fields: Vec<String>,
    /// The record the event's visibility is judged on, as JSON text.
    pub(crate) record: String,
}

impl EventRow {
    /// An event about the whole record (created, removed, restored).
    pub(crate) fn whole(kind: ChangeKind, uuid: &str, record: &str) -> Self {
        EventRow {
            kind,
            uuid: uuid.to_owned(),
            fields: Vec::new(),
            record: record.to_owned(),
        }
    }

    /// The event of a write that replaced record `old` by `new` (JSON
    /// texts), `None` when no field changed.
    pub(crate) fn replaced(uuid: &str, old: &str, new: &str) -> Option<Self> {
        let old = as_object(old);
        let new_map = as_object(new);
        let keys: BTreeSet<&String> = old.keys().chain(new_map.keys()).collect();
        let fields: Vec<String> = keys
            .into_iter()
            .filter(|k| old.get(*k) != new_map.get(*k))
            .cloned()
            .collect();
        if fields.is_empty() {
            return None;
        }
        let kind = replaced_kind(&fields, &old, &new_map);
        Some(EventRow {
            kind,
            uuid: uuid.to_owned(),
            fields,
            record: new.to_owned(),
        })
    }
}

/// A stored record's JSON as a map (empty if it is not an object, which a
/// stored record always is).
fn as_object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// What a replacement that changed `fields` (sorted) was.
fn replaced_kind(
    fields: &[String],
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> ChangeKind {
    let is_true = |map: &Map<String, Value>, key: &str| map.get(key) == Some(&Value::Bool(true));
    let only = |name: &str| fields.len() == 1 && fields[0] == name;
    if !is_true(old, "activated") && is_true(new, "activated") {
        return ChangeKind::Activated;
    }
    if is_true(old, "disabled") != is_true(new, "disabled") {
        return if is_true(new, "disabled") {
            ChangeKind::Disabled
        } else {
            ChangeKind::Enabled
        };
    }
    if only("files") {
        return ChangeKind::FileAdded;
    }
    if only("icon") {
        return ChangeKind::IconChanged;
    }
    if only("acl") {
        return ChangeKind::AclChanged;
    }
    if only("channels") {
        let set = |map: &Map<String, Value>| -> BTreeSet<String> {
            map.get("channels")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (before, after) = (set(old), set(new));
        if after.is_superset(&before) {
            return ChangeKind::ChannelAdded;
        }
        if after.is_subset(&before) {
            return ChangeKind::ChannelRemoved;
        }
    }
    ChangeKind::Updated
}

/// Now, ms since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Number and insert `events`, inside the caller's transaction. Run last
/// before COMMIT: the `change_log` row lock it takes orders the commits of
/// every writer, which is what makes the numbers gapless in commit order.
pub(crate) async fn insert_events<DB>(
    conn: &mut DB::Connection,
    events: &[EventRow],
) -> Result<(), sqlx::Error>
where
    DB: ImageDialect,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    if events.is_empty() {
        return Ok(());
    }
    let time_ms = now_ms();
    for event in events {
        let fields = serde_json::to_string(&event.fields).unwrap_or_else(|_| "[]".to_owned());
        sqlx::query(DB::EVENT_INSERT)
            .bind(time_ms)
            .bind(event.kind.as_str().to_owned())
            .bind(event.uuid.clone())
            .bind(fields)
            .bind(event.record.clone())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A write on the change log itself.
pub(crate) enum ChangesWrite {
    /// [`ChangeStore::purge_changes_before`].
    PurgeBefore(i64),
    /// [`ChangeStore::continue_change_log_after`].
    ContinueAfter(i64),
}

/// Apply `write` inside the caller's transaction: the events purged.
pub(crate) async fn apply<DB>(
    conn: &mut DB::Connection,
    write: &ChangesWrite,
) -> Result<i64, sqlx::Error>
where
    DB: ImageDialect,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let before_ms = match write {
        ChangesWrite::PurgeBefore(before_ms) => before_ms,
        ChangesWrite::ContinueAfter(seq) => {
            let moved = sqlx::query(CONTINUE_AFTER)
                .bind(*seq)
                .execute(&mut *conn)
                .await?;
            if DB::rows_affected(&moved) == 0 {
                return Ok(0);
            }
            // Events of this log numbered up to `seq` would pose as the
            // other log's.
            let purged = sqlx::query(PURGE).bind(*seq).execute(&mut *conn).await?;
            return Ok(super::affected_rows(DB::rows_affected(&purged)));
        }
    };
    // Every writer numbers its events through the counter row, so holding
    // its lock first keeps the two reads below about one log: without it,
    // on PostgreSQL an event committed between them (after FIRST_KEPT found
    // nothing young, before LAST_SEQ counted it) was purged at once.
    sqlx::query(LOCK_COUNTER).execute(&mut *conn).await?;
    let first_kept: Option<i64> = sqlx::query_scalar(FIRST_KEPT)
        .bind(*before_ms)
        .fetch_optional(&mut *conn)
        .await?;
    let through = match first_kept {
        Some(seq) => seq - 1,
        None => sqlx::query_scalar(LAST_SEQ).fetch_one(&mut *conn).await?,
    };
    if through <= 0 {
        return Ok(0);
    }
    let purged = sqlx::query(PURGE).bind(through).execute(&mut *conn).await?;
    sqlx::query(MARK_PURGED)
        .bind(through)
        .execute(&mut *conn)
        .await?;
    Ok(super::affected_rows(DB::rows_affected(&purged)))
}

/// A row of [`AFTER`] as an event.
fn decode<DB>(row: &DB::Row) -> Result<StoredChange, MetaError>
where
    DB: Database,
    for<'a> String: Decode<'a, DB> + Type<DB>,
    for<'a> i64: Decode<'a, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let column = |e: sqlx::Error| MetaError::Backend(format!("cannot read the change log: {e}"));
    let seq: i64 = row.try_get(0).map_err(column)?;
    let time_ms: i64 = row.try_get(1).map_err(column)?;
    let kind: String = row.try_get(2).map_err(column)?;
    let uuid: String = row.try_get(3).map_err(column)?;
    let fields: String = row.try_get(4).map_err(column)?;
    let record: String = row.try_get(5).map_err(column)?;
    let corrupt = |detail: String| MetaError::Corrupt {
        uuid: uuid.clone(),
        detail: format!("change {seq}: {detail}"),
    };
    Ok(StoredChange {
        seq,
        time_ms,
        kind: ChangeKind::parse(&kind).ok_or_else(|| corrupt(format!("unknown kind `{kind}`")))?,
        uuid: decode_uuid(&uuid)?,
        fields: serde_json::from_str(&fields).map_err(|e| corrupt(e.to_string()))?,
        image: decode_record(&uuid, &record)?,
    })
}

#[async_trait]
impl<B> ChangeStore for B
where
    B: SqlBackend,
    for<'a> String: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    for<'a> i64: Encode<'a, B::Db> + Decode<'a, B::Db> + Type<B::Db>,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
{
    async fn changes_after(&self, since: i64, limit: u32) -> Result<Vec<StoredChange>, MetaError> {
        let rows = sqlx::query(AFTER)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        rows.iter().map(decode::<B::Db>).collect()
    }

    async fn change_log_bounds(&self) -> Result<ChangeLogBounds, MetaError> {
        let (purged_through, last_seq): (i64, i64) = sqlx::query_as(BOUNDS)
            .fetch_one(self.read_pool())
            .await
            .map_err(|e| self.sql_err(e))?;
        Ok(ChangeLogBounds {
            purged_through,
            last_seq,
        })
    }

    async fn purge_changes_before(&self, before_ms: i64) -> Result<u64, MetaError> {
        let purged = self
            .write(Write::Changes(ChangesWrite::PurgeBefore(before_ms)))
            .await?;
        Ok(u64::try_from(purged).unwrap_or(0))
    }

    async fn continue_change_log_after(&self, seq: i64) -> Result<(), MetaError> {
        self.write(Write::Changes(ChangesWrite::ContinueAfter(seq)))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(old: &str, new: &str) -> Option<(ChangeKind, Vec<String>)> {
        EventRow::replaced("u", old, new).map(|e| (e.kind, e.fields))
    }

    #[test]
    fn replacements_are_named_by_what_changed() {
        assert!(kind(r#"{"a":1}"#, r#"{"a":1}"#).is_none());
        assert_eq!(
            kind(
                r#"{"activated":false,"state":"unactivated"}"#,
                r#"{"activated":true,"state":"active","published_at":"x"}"#
            ),
            Some((
                ChangeKind::Activated,
                vec!["activated".into(), "published_at".into(), "state".into()]
            ))
        );
        assert_eq!(
            kind(
                r#"{"state":"active"}"#,
                r#"{"disabled":true,"state":"disabled"}"#
            )
            .map(|k| k.0),
            Some(ChangeKind::Disabled)
        );
        assert_eq!(
            kind(r#"{"disabled":true}"#, r#"{}"#).map(|k| k.0),
            Some(ChangeKind::Enabled)
        );
        assert_eq!(
            kind(r#"{}"#, r#"{"files":[1]}"#).map(|k| k.0),
            Some(ChangeKind::FileAdded)
        );
        assert_eq!(
            kind(r#"{"acl":[1]}"#, r#"{}"#).map(|k| k.0),
            Some(ChangeKind::AclChanged)
        );
        assert_eq!(
            kind(r#"{"channels":["a"]}"#, r#"{"channels":["a","b"]}"#).map(|k| k.0),
            Some(ChangeKind::ChannelAdded)
        );
        assert_eq!(
            kind(r#"{"channels":["a","b"]}"#, r#"{"channels":["b"]}"#).map(|k| k.0),
            Some(ChangeKind::ChannelRemoved)
        );
        assert_eq!(
            kind(
                r#"{"name":"a","version":"1"}"#,
                r#"{"name":"b","version":"1"}"#
            ),
            Some((ChangeKind::Updated, vec!["name".into()]))
        );
    }
}
