//! The change feed (docs/events.md): `GET /changes` reads the change log
//! (`imgapi_meta::ChangeStore`) with each event filtered as GetImage
//! filters its image for the caller, and long-polls for new events.

use std::time::Duration;

use imgapi_domain::access;
use imgapi_meta::{ChangeLogBounds, StoredChange};
use imgapi_types::{ChangeEvent, ChangesPage};
use tokio::time::Instant;
use uuid::Uuid;

use super::uploads::iso_of_ms;
use super::ServiceError;
use crate::app::AppState;

/// Events in a page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most events in one page.
pub const MAX_LIMIT: u32 = 1000;
/// Longest long-poll, in seconds: below the idle timeouts of common
/// proxies.
pub const MAX_WAIT_SECS: u64 = 60;
/// Most log rows one request reads (events hidden from the caller
/// included), so a caller who sees little never makes the server walk the
/// whole log at once: it gets a `next` past what was read and asks again.
const MAX_SCANNED: usize = 10_000;
/// How often a long poll looks at the log's end. The log is in the
/// database, so this also sees the writes of other instances.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// A ListChanges request.
#[derive(Debug, Clone)]
pub struct ChangesQuery {
    /// Events after this sequence number; 0 = from the oldest kept.
    pub since: i64,
    /// At most this many events; 0 = none, `next` = the log's end.
    pub limit: u32,
    /// How long to wait for an event when there is none yet.
    pub wait: Duration,
    /// The caller's account (GetImage's `account` rule).
    pub account: Option<Uuid>,
    /// Only images in this channel (GetImage's `channel` rule).
    pub channel: Option<String>,
}

/// An event as clients see it.
pub fn to_wire(change: &StoredChange) -> ChangeEvent {
    ChangeEvent {
        seq: change.seq,
        time: iso_of_ms(change.time_ms),
        kind: change.kind,
        uuid: change.uuid.to_string(),
        owner: change.image.owner.to_string(),
        name: change.image.name.clone(),
        version: change.image.version.clone(),
        fields: change.fields.clone(),
    }
}

/// ListChanges: the events after `since` the caller may see, waiting up
/// to `wait` for one when there is none.
pub async fn list(app: &AppState, query: &ChangesQuery) -> Result<ChangesPage, ServiceError> {
    let bounds = log_bounds(app).await?;
    check_cursor(query.since, bounds)?;
    if query.limit == 0 {
        return Ok(ChangesPage {
            events: Vec::new(),
            next: bounds.last_seq,
        });
    }
    let deadline = Instant::now() + query.wait;
    let mut at = query.since;
    let mut end = bounds.last_seq;
    loop {
        if end > at {
            let page = scan(app, query, at).await?;
            if !page.events.is_empty() || Instant::now() >= deadline {
                return Ok(page);
            }
            at = page.next;
        }
        // Nothing for this caller yet: wait for the log to grow.
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(ChangesPage {
                    events: Vec::new(),
                    next: at,
                });
            }
            tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
            end = log_bounds(app).await?.last_seq;
            if end > at {
                break;
            }
        }
    }
}

async fn log_bounds(app: &AppState) -> Result<ChangeLogBounds, ServiceError> {
    app.meta
        .change_log_bounds()
        .await
        .map_err(ServiceError::meta("error reading the change log"))
}

/// 410 ChangesExpired for a cursor the log cannot continue: events after
/// it were purged, or it is ahead of the log (a cursor of another
/// database, e.g. before a restore).
fn check_cursor(since: i64, bounds: ChangeLogBounds) -> Result<(), ServiceError> {
    let resync = "resynchronize (list every image) and follow again from the `next` of \
                  GET /changes?limit=0";
    if since > 0 && since < bounds.purged_through {
        return Err(ServiceError::ChangesExpired(format!(
            "the events after {since} are no longer kept (the change log starts after {}): {resync}",
            bounds.purged_through
        )));
    }
    if since > bounds.last_seq {
        return Err(ServiceError::ChangesExpired(format!(
            "{since} is ahead of this registry's change log (its latest event is {}): the cursor \
             belongs to another database; {resync}",
            bounds.last_seq
        )));
    }
    Ok(())
}

/// Read the log after `from` until `limit` visible events or the end of
/// what one request may read.
async fn scan(
    app: &AppState,
    query: &ChangesQuery,
    from: i64,
) -> Result<ChangesPage, ServiceError> {
    let limit = query.limit.min(MAX_LIMIT) as usize;
    // A caller who sees everything needs exactly `limit` rows; others
    // read ahead, most rows being hidden from them.
    let batch = if query.account.is_none() && query.channel.is_none() {
        query.limit.min(MAX_LIMIT)
    } else {
        query.limit.clamp(200, MAX_LIMIT)
    };
    let mut events = Vec::new();
    let mut next = from;
    let mut scanned = 0;
    loop {
        let rows = app
            .meta
            .changes_after(next, batch)
            .await
            .map_err(ServiceError::meta("error reading the change log"))?;
        let full = rows.len() == batch as usize;
        for change in &rows {
            next = change.seq;
            scanned += 1;
            if visible(query, change) {
                events.push(to_wire(change));
                if events.len() == limit {
                    return Ok(ChangesPage { events, next });
                }
            }
        }
        if !full || scanned >= MAX_SCANNED {
            return Ok(ChangesPage { events, next });
        }
    }
}

/// Whether GetImage would show the event's image to the caller: channel
/// membership, then visibility to the account.
fn visible(query: &ChangesQuery, change: &StoredChange) -> bool {
    if let Some(channel) = &query.channel {
        if !change.image.in_channel(channel) {
            return false;
        }
    }
    match query.account {
        Some(account) => access::visible_to(&change.image, account),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_outside_the_log_are_expired() {
        let bounds = ChangeLogBounds {
            purged_through: 10,
            last_seq: 20,
        };
        assert!(check_cursor(0, bounds).is_ok(), "0 = from the oldest kept");
        assert!(
            check_cursor(10, bounds).is_ok(),
            "nothing after 10 was purged"
        );
        assert!(check_cursor(20, bounds).is_ok());
        assert!(matches!(
            check_cursor(9, bounds),
            Err(ServiceError::ChangesExpired(_))
        ));
        assert!(matches!(
            check_cursor(21, bounds),
            Err(ServiceError::ChangesExpired(_))
        ));
    }
}
