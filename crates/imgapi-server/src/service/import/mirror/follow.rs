//! `imgapi mirror --follow`: after a first full run, follow the upstream's
//! change feed (`GET /changes`, docs/events.md) with long polls and apply
//! each change within seconds, by syncing just the images it names.
//!
//! - The upstream's head (`limit=0`'s `next`) is taken *before* the full
//!   run, so nothing that happens during it is missed (applying a change
//!   twice is harmless: a sync of an image already up to date does nothing).
//! - Each page's events are coalesced per image, and each image is synced
//!   as a full run would: its manifest is fetched again (what the upstream
//!   shows now is the truth, whatever the events said), imported or brought
//!   up to date when the mirror's filters pass it, and with `--delete`
//!   deleted when the upstream no longer shows it (gone, or outside the
//!   filters) and this mirror imported it.
//! - The cursor is saved in the metadata store after each applied page
//!   (`MirrorCursorStore`, keyed by the upstream and the filters): a
//!   restarted mirror resumes from it without a full run.
//! - 410 ChangesExpired (the cursor is older than what the upstream keeps,
//!   or ahead of it): a full run, then a new head.
//! - An upstream without a feed (404: an original IMGAPI; a DSAPI server):
//!   a full run every `--interval` (default [`DEFAULT_POLL`]), as before.
//! - Any other failure (the upstream down, a 5xx, the local database) is
//!   retried with backoff; the loop ends only when `stop` is set.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use imgapi_domain::redact::redact_url;
use imgapi_meta::{MirrorCursor, MirrorCursorKey};
use imgapi_types::ChangesPage;
use serde_json::Value;
use uuid::Uuid;

use super::list::matches_filters;
use super::{mirror, MirrorError, MirrorOptions, MirrorSummary, Reporter, Run, Upstream};
use crate::app::AppState;
use crate::service::import::fetch::FetchError;
use crate::service::import::manifest::fetch_manifest;
use crate::service::lifecycle::now_ms;

/// The polling interval for an upstream without a change feed when no
/// `--interval` is given.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
/// Longest long-poll wait asked for (the feed's maximum is 60 s).
const MAX_WAIT_SECS: u64 = 30;
/// Events per page.
const PAGE: &str = "100";
/// First delay after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Attempts at a page some image of which failed, before the cursor moves
/// past it anyway (the image then waits for the next full run).
const PAGE_ATTEMPTS: u32 = 5;
/// How often a wait looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How `--follow` runs.
#[derive(Debug, Clone, Default)]
pub struct FollowOptions {
    /// With a feed: also a full run this long after the last one (to catch
    /// what a feed cannot show an anonymous mirror, e.g. an image made
    /// private); `None`: full runs only at the start and after a 410.
    /// Without a feed: the polling interval ([`DEFAULT_POLL`] when `None`).
    pub interval: Option<Duration>,
}

/// What the upstream answered to `GET /changes`.
enum FeedAnswer {
    Page(ChangesPage),
    /// 410 ChangesExpired.
    Expired(String),
    /// No feed there (404, or another refusal of the route).
    NoFeed(String),
    /// Worth retrying (the upstream down, 5xx, 429, a bad answer).
    Failed(String),
}

/// The identity a cursor is saved under: the upstream's URL (credentials
/// redacted) and a canonical text of the filters. `--delete` is part of
/// it: switching it on calls for a full run, which deletes what a follow
/// without it kept.
pub(super) fn cursor_key(opts: &MirrorOptions, source_id: &str) -> MirrorCursorKey {
    let mut filters = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("channel", &opts.channel),
        ("name", &opts.name),
        ("os", &opts.os),
        ("owner", &opts.owner),
        ("type", &opts.image_type),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            filters.append_pair(key, v);
        }
    }
    if opts.delete {
        filters.append_pair("delete", "true");
    }
    MirrorCursorKey {
        upstream: redact_url(source_id).into_owned(),
        filters: filters.finish(),
    }
}

/// The uuids of a page's events, each once, in the order of their first
/// event (an origin created in the same page comes before its child).
fn coalesce(page: &ChangesPage) -> Vec<Uuid> {
    let mut seen = HashSet::new();
    page.events
        .iter()
        .filter_map(|e| Uuid::parse_str(&e.uuid).ok())
        .filter(|u| seen.insert(*u))
        .collect()
}

/// Exponential backoff between failures.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(FIRST_BACKOFF)
    }

    fn reset(&mut self) {
        self.0 = FIRST_BACKOFF;
    }

    /// The next delay (and double the one after).
    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        now
    }
}

/// Run `work` unless `stop` is set first (`None` then).
async fn until_stopped<T>(
    stop: &AtomicBool,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        tokio::select! {
            done = &mut work => return Some(done),
            () = tokio::time::sleep(STOP_POLL) => {}
        }
    }
}

/// Sleep for `delay`; `false` when `stop` was set meanwhile.
/// Report `message(seconds)`, then wait the next delay of `backoff`;
/// `false` when stopped meanwhile.
async fn retry_after(
    backoff: &mut Backoff,
    reporter: &mut dyn Reporter,
    stop: &AtomicBool,
    message: impl FnOnce(u64) -> String,
) -> bool {
    let delay = backoff.next();
    reporter.line(&message(delay.as_secs()));
    pause(stop, delay).await
}

async fn pause(stop: &AtomicBool, delay: Duration) -> bool {
    until_stopped(stop, tokio::time::sleep(delay))
        .await
        .is_some()
}

/// `GET <upstream>/changes?since=…&limit=…[&wait=…]`.
async fn ask(
    app: &AppState,
    upstream: &Upstream,
    since: i64,
    limit: &str,
    wait: Option<u64>,
) -> FeedAnswer {
    let since = since.to_string();
    let wait = wait.map(|w| w.to_string());
    let mut params = vec![("since", since.as_str()), ("limit", limit)];
    if let Some(w) = wait.as_deref() {
        params.push(("wait", w));
    }
    let url = upstream.src.changes_url(&params);
    match app.remote.get_object(url, upstream.src.trust).await {
        Ok(map) => match serde_json::from_value::<ChangesPage>(Value::Object(map)) {
            Ok(page) => FeedAnswer::Page(page),
            Err(e) => FeedAnswer::Failed(format!("an unreadable change feed page: {e}")),
        },
        Err(e @ FetchError::Status { status: 410, .. }) => FeedAnswer::Expired(e.to_string()),
        Err(e @ FetchError::Status { status, .. })
            if (400..500).contains(&status) && !matches!(status, 408 | 429) =>
        {
            FeedAnswer::NoFeed(format!("HTTP {status}: {e}"))
        }
        Err(e) => FeedAnswer::Failed(e.to_string()),
    }
}

/// Follow the upstream until `stop` is set (the image in progress is
/// finished first). Fails only on what no retry can mend: options that do
/// not go together, or an upstream URL that is invalid or refused.
pub async fn follow(
    app: &AppState,
    opts: &MirrorOptions,
    how: &FollowOptions,
    reporter: &mut dyn Reporter,
    stop: &AtomicBool,
) -> Result<(), MirrorError> {
    if opts.dry_run {
        return Err(MirrorError::Options(
            "--follow applies changes as they come: it cannot be a --dry-run".into(),
        ));
    }
    if opts.simplestreams {
        return Err(MirrorError::Options(
            "--follow needs an IMGAPI upstream (a simplestreams server has no change feed): use --interval".into(),
        ));
    }
    let upstream = Upstream::open(app, opts).await?;
    let key = cursor_key(opts, &upstream.source_id);
    let wait = MAX_WAIT_SECS
        .min(app.config.remote.read_timeout_secs.saturating_sub(5))
        .max(1);
    let poll_every = how.interval.unwrap_or(DEFAULT_POLL);
    let mut backoff = Backoff::new();

    // Where a previous follow stopped, if it did.
    let mut cursor = loop {
        match app.meta.mirror_cursor(&key).await {
            Ok(saved) => break saved.map(|c| c.cursor),
            Err(e) => {
                if !retry_after(&mut backoff, reporter, stop, |secs| {
                    format!("imgapi mirror: cannot read the saved cursor: {e}; retrying in {secs}s")
                })
                .await
                {
                    return Ok(());
                }
            }
        }
    };
    backoff.reset();
    if let Some(c) = cursor {
        reporter.line(&format!(
            "imgapi mirror: following {} from the saved cursor {c} (no full run)",
            key.upstream
        ));
    }
    let mut last_full = Instant::now();
    let mut polling = false;
    let mut failed_attempts = 0;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(since) = cursor else {
            // (Re)synchronize: the head first, then a full run.
            let head = if upstream.src.dsapi {
                FeedAnswer::NoFeed("a DSAPI server".into())
            } else {
                match until_stopped(stop, ask(app, &upstream, 0, "0", None)).await {
                    Some(answer) => answer,
                    None => return Ok(()),
                }
            };
            match head {
                FeedAnswer::Page(page) => {
                    polling = false;
                    reporter.line(&format!(
                        "imgapi mirror: the upstream's change feed is at {}: a full run, then following it",
                        page.next
                    ));
                    match full_run(app, opts, reporter, stop).await {
                        Some(true) => {}
                        Some(false) => {
                            if !retry_after(&mut backoff, reporter, stop, |secs| {
                                format!("imgapi mirror: trying again in {secs}s")
                            })
                            .await
                            {
                                return Ok(());
                            }
                            continue;
                        }
                        None => return Ok(()),
                    }
                    backoff.reset();
                    last_full = Instant::now();
                    save(app, &key, page.next, reporter).await;
                    cursor = Some(page.next);
                    reporter.line(&format!(
                        "imgapi mirror: following the upstream's change feed from {}",
                        page.next
                    ));
                }
                FeedAnswer::NoFeed(why) => {
                    if !polling {
                        polling = true;
                        reporter.line(&format!(
                            "imgapi mirror: the upstream has no change feed ({why}; an original IMGAPI?): \
                             polling it with a full run every {}s{}",
                            poll_every.as_secs(),
                            if how.interval.is_none() {
                                " (the default; --interval sets it)"
                            } else {
                                ""
                            }
                        ));
                    }
                    if full_run(app, opts, reporter, stop).await.is_none() {
                        return Ok(());
                    }
                    if !pause(stop, poll_every).await {
                        return Ok(());
                    }
                }
                FeedAnswer::Expired(why) | FeedAnswer::Failed(why) => {
                    if !retry_after(&mut backoff, reporter, stop, |secs| {
                        format!("imgapi mirror: cannot read the upstream's change feed: {why}; retrying in {secs}s")
                    })
                    .await
                    {
                        return Ok(());
                    }
                }
            }
            continue;
        };
        if how
            .interval
            .is_some_and(|every| last_full.elapsed() >= every)
        {
            reporter.line("imgapi mirror: a full run (--interval)");
            cursor = None;
            continue;
        }
        let answer = match until_stopped(stop, ask(app, &upstream, since, PAGE, Some(wait))).await {
            Some(answer) => answer,
            None => return Ok(()),
        };
        match answer {
            FeedAnswer::Page(page) => {
                backoff.reset();
                let uuids = coalesce(&page);
                let applied = if uuids.is_empty() {
                    true
                } else {
                    let mut run = Run::new(app, opts, &upstream, reporter);
                    run.quiet_skips = true;
                    let started = Instant::now();
                    run.apply_changes(&uuids, stop).await;
                    run.summary.took = started.elapsed();
                    let summary = run.summary;
                    if summary.stopped {
                        // The cursor stays: the rest of the page comes again.
                        return Ok(());
                    }
                    if summary_worth_telling(&summary) {
                        reporter.summary(&summary);
                    }
                    summary.ok()
                };
                if !applied && failed_attempts + 1 < PAGE_ATTEMPTS {
                    failed_attempts += 1;
                    if !retry_after(&mut backoff, reporter, stop, |secs| {
                        format!(
                            "imgapi mirror: applying the changes after {since} again in {secs}s (attempt {} of {PAGE_ATTEMPTS})",
                            failed_attempts + 1
                        )
                    })
                    .await
                    {
                        return Ok(());
                    }
                    continue;
                }
                if !applied {
                    reporter.line(&format!(
                        "imgapi mirror: going on past {}: the images that failed wait for the next full run",
                        page.next
                    ));
                }
                failed_attempts = 0;
                if page.next != since {
                    save(app, &key, page.next, reporter).await;
                    cursor = Some(page.next);
                }
            }
            FeedAnswer::Expired(why) => {
                reporter.line(&format!(
                    "imgapi mirror: the upstream no longer has the events after {since} ({why}): a full run"
                ));
                cursor = None;
            }
            FeedAnswer::NoFeed(why) => {
                reporter.line(&format!(
                    "imgapi mirror: the upstream's change feed is gone ({why})"
                ));
                cursor = None;
            }
            FeedAnswer::Failed(why) => {
                if !retry_after(&mut backoff, reporter, stop, |secs| {
                    format!("imgapi mirror: cannot read the upstream's change feed: {why}; retrying in {secs}s")
                })
                .await
                {
                    return Ok(());
                }
            }
        }
    }
}

/// A page summary with something to tell (not only unchanged images).
fn summary_worth_telling(s: &MirrorSummary) -> bool {
    s.new
        + s.updated
        + s.disabled
        + s.enabled
        + s.deleted
        + s.conflicts
        + s.failed
        + s.signatures_carried
        + s.signatures_refused
        + s.signatures_removed
        > 0
}

/// One full run, reported. `Some(true)` when it listed the upstream (some
/// images may have failed: they are tried again later), `Some(false)` when
/// it could not, `None` when it was stopped.
async fn full_run(
    app: &AppState,
    opts: &MirrorOptions,
    reporter: &mut dyn Reporter,
    stop: &AtomicBool,
) -> Option<bool> {
    match mirror(app, opts, reporter, stop).await {
        Ok(summary) => {
            reporter.summary(&summary);
            (!summary.stopped).then_some(true)
        }
        Err(e) => {
            reporter.line(&format!("imgapi mirror: {e}"));
            (!stop.load(Ordering::SeqCst)).then_some(false)
        }
    }
}

/// Save the cursor; a failure is told and the follow goes on (the cursor
/// in memory is right; a restart then applies some changes again).
async fn save(app: &AppState, key: &MirrorCursorKey, cursor: i64, reporter: &mut dyn Reporter) {
    let saved = MirrorCursor {
        cursor,
        updated_ms: now_ms(),
    };
    if let Err(e) = app.meta.put_mirror_cursor(key, saved).await {
        reporter.line(&format!(
            "imgapi mirror: cannot save the cursor {cursor}: {e}"
        ));
    }
}

impl Run<'_> {
    /// Sync the images a page of changes names, as a full run would: each
    /// manifest fetched again; imported or updated when the filters pass
    /// it; with `--delete`, deleted when the upstream no longer shows it
    /// and this mirror imported it.
    async fn apply_changes(&mut self, uuids: &[Uuid], stop: &AtomicBool) {
        let mut gone = Vec::new();
        for &uuid in uuids {
            if stop.load(Ordering::SeqCst) {
                self.summary.stopped = true;
                return;
            }
            match fetch_manifest(self.app, &self.src, uuid, None).await {
                Ok(m) if matches_filters(&m, self.opts) => {
                    self.upstream.insert(uuid, m);
                    self.process(uuid).await;
                }
                Ok(_) | Err(FetchError::Status { status: 404, .. }) => gone.push(uuid),
                Err(e) => self.fail(
                    Some(uuid),
                    &uuid.to_string(),
                    format!("cannot get the upstream manifest: {e}"),
                ),
            }
        }
        let mut records = Vec::new();
        for uuid in gone {
            match self.load(uuid).await {
                Ok(Some(stored)) => records.push(stored.image),
                Ok(None) => {}
                Err(e) => self.fail(Some(uuid), &uuid.to_string(), e),
            }
        }
        if self.opts.delete {
            self.delete_mirrored(records, stop).await;
            return;
        }
        for img in records {
            if let Ok(true) = self.mirrored_here(img.uuid).await {
                let what = format!("{} {}@{}", img.uuid, img.name, img.version);
                self.say(
                    &what,
                    "gone upstream (or outside the filters): kept (--delete would delete it)",
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use imgapi_types::{ChangeEvent, ChangeKind};

    use super::*;

    fn event(seq: i64, uuid: Uuid, kind: ChangeKind) -> ChangeEvent {
        ChangeEvent {
            seq,
            time: "2026-01-01T00:00:00.000Z".into(),
            kind,
            uuid: uuid.to_string(),
            owner: Uuid::nil().to_string(),
            name: "n".into(),
            version: "1".into(),
            fields: Vec::new(),
        }
    }

    #[test]
    fn a_page_names_each_image_once_in_first_event_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let page = ChangesPage {
            events: vec![
                event(1, b, ChangeKind::Created),
                event(2, a, ChangeKind::Created),
                event(3, b, ChangeKind::FileAdded),
                event(4, b, ChangeKind::Activated),
                event(5, a, ChangeKind::Deleted),
            ],
            next: 5,
        };
        assert_eq!(coalesce(&page), vec![b, a]);
    }

    #[test]
    fn cursor_keys_name_the_upstream_and_filters() {
        let opts = MirrorOptions {
            upstream: "https://user:secret@images.example.com/".into(),
            name: Some("~base".into()),
            channel: Some("release".into()),
            owner: Some(String::new()),
            ..MirrorOptions::default()
        };
        let key = cursor_key(&opts, &opts.upstream);
        assert!(!key.upstream.contains("secret"), "{key:?}");
        assert_eq!(key.filters, "channel=release&name=%7Ebase");
        let deleting = MirrorOptions {
            delete: true,
            ..opts.clone()
        };
        assert_ne!(cursor_key(&deleting, &opts.upstream), key);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..8).map(|_| b.next().as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next(), FIRST_BACKOFF);
    }
}
