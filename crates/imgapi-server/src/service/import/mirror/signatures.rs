//! Signatures on a mirror (docs/mirroring.md, "Signatures"): an image
//! copied here brings the upstream's signatures, each verified again
//! against the copy; a present image picks up those added upstream later
//! and loses those removed upstream (not the mirror's own
//! countersignatures: signatures by keys this server knows).
//!
//! A full run must stay cheap for N unchanged images. When the upstream
//! has a change feed and an earlier complete run saved its position, only
//! the images the feed names since then have their lists asked for (one
//! or two feed requests instead of N); otherwise every listed image's list
//! is asked for, [`PREFETCH_CONCURRENCY`] at a time. The local signatures
//! are read in one pass, so an image whose signatures already match costs
//! no query of its own. An upstream without the endpoint (an original
//! IMGAPI) is recognised by its first 404 and asked no more in that run.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{stream, StreamExt};
use imgapi_domain::ImageRecord;
use imgapi_meta::{MirrorCursor, MirrorCursorKey, StoredSignature};
use imgapi_types::ChangesPage;
use serde_json::Value;
use uuid::Uuid;

use super::error::SyncError;
use super::follow::cursor_key;
use super::{label, upstream_activated, Run, Upstream};
use crate::app::AppState;
use crate::service::import::fetch::FetchError;
use crate::service::import::signatures::{
    apply, fetch_signatures, plan, SignatureSync, SourceSignatures,
};
use crate::service::lifecycle::now_ms;

/// Signature lists asked of the upstream at once by a full run.
const PREFETCH_CONCURRENCY: usize = 8;
/// Local signatures read per query by a full run.
const LOCAL_PAGE: u32 = 1000;
/// Events per feed page, and the most pages read to find what changed
/// since the last run (beyond that, every list is asked for instead).
const FEED_PAGE: &str = "1000";
const MAX_FEED_PAGES: usize = 20;

/// The upstream's change feed head (`GET /changes?limit=0`), taken before
/// a full run lists the upstream; `None` without a feed (an original
/// IMGAPI, a DSAPI server) or when it cannot be had.
pub(super) async fn feed_head(app: &AppState, upstream: &Upstream) -> Option<i64> {
    if upstream.src.dsapi {
        return None;
    }
    feed_page(app, upstream, 0, "0").await.map(|p| p.next)
}

async fn feed_page(
    app: &AppState,
    upstream: &Upstream,
    since: i64,
    limit: &str,
) -> Option<ChangesPage> {
    let since = since.to_string();
    let url = upstream
        .src
        .changes_url(&[("since", since.as_str()), ("limit", limit)]);
    let map = app.remote.get_object(url, upstream.src.trust).await.ok()?;
    serde_json::from_value(Value::Object(map)).ok()
}

/// Where a full run's signature look-ahead is saved: beside `--follow`'s
/// cursor, under the same upstream and filters, marked apart.
fn signatures_key(opts: &super::MirrorOptions, source_id: &str) -> MirrorCursorKey {
    let key = cursor_key(opts, source_id);
    MirrorCursorKey {
        upstream: key.upstream,
        filters: format!("signatures;{}", key.filters),
    }
}

impl Run<'_> {
    /// A full run's look-ahead: the upstream's signatures of the listed,
    /// activated images that may have changed since the last complete run
    /// (all of them without a saved position), and every local signature.
    /// `head` is the upstream's feed head taken before the listing.
    pub(super) async fn prefetch_signatures(&mut self, order: &[Uuid], head: Option<i64>) {
        if self.src.dsapi {
            return;
        }
        let changed = match head {
            Some(head) => self.changed_since_last_run(head).await,
            None => None,
        };
        let wanted: Vec<Uuid> = order
            .iter()
            .copied()
            .filter(|u| self.upstream.get(u).is_some_and(upstream_activated))
            .filter(|u| changed.as_ref().is_none_or(|c| c.contains(u)))
            .collect();
        if let Some(changed) = changed {
            // Not named by the feed since the last complete run: their
            // signatures upstream are as that run left them.
            self.signatures_unchanged = order
                .iter()
                .copied()
                .filter(|u| !changed.contains(u))
                .collect();
        }
        if wanted.is_empty() {
            return;
        }
        let unsupported = AtomicBool::new(false);
        let (app, src, unsupported) = (self.app, &self.src, &unsupported);
        let fetched: Vec<(Uuid, Result<SourceSignatures, FetchError>)> = stream::iter(wanted)
            .map(|uuid| async move {
                if unsupported.load(Ordering::Relaxed) {
                    return (uuid, Ok(SourceSignatures::Unsupported));
                }
                let got = fetch_signatures(app, src, uuid).await;
                if matches!(got, Ok(SourceSignatures::Unsupported)) {
                    unsupported.store(true, Ordering::Relaxed);
                }
                (uuid, got)
            })
            .buffer_unordered(PREFETCH_CONCURRENCY)
            .collect()
            .await;
        self.upstream_signatures = fetched.into_iter().collect();
        self.local_signatures = self.all_local_signatures().await;
    }

    /// The images the upstream's feed names between the position saved by
    /// the last complete run and `head`; `None` when that cannot be told
    /// (no saved position, an expired one, a feed that fails, too many
    /// events): then every list is asked for.
    async fn changed_since_last_run(&self, head: i64) -> Option<HashSet<Uuid>> {
        let key = signatures_key(self.opts, &self.source_id);
        let mut since = self.app.meta.mirror_cursor(&key).await.ok()??.cursor;
        let upstream = Upstream {
            src: self.src.clone(),
            origin_src: self.origin_src.clone(),
            source_id: self.source_id.clone(),
        };
        let mut changed = HashSet::new();
        for _ in 0..MAX_FEED_PAGES {
            if since >= head {
                return Some(changed);
            }
            let page = feed_page(self.app, &upstream, since, FEED_PAGE).await?;
            if page.events.is_empty() || page.next <= since {
                return Some(changed);
            }
            changed.extend(
                page.events
                    .iter()
                    .filter_map(|e| Uuid::parse_str(&e.uuid).ok()),
            );
            since = page.next;
        }
        None
    }

    /// After a complete run (nothing failed, not stopped, not a dry run):
    /// save `head`, so that the next run asks only for what the feed names
    /// after it. A failure is told; the next run then asks for every list.
    pub(super) async fn save_signatures_position(&mut self, head: Option<i64>) {
        let Some(head) = head else { return };
        if self.opts.dry_run || self.summary.stopped || self.summary.failed > 0 {
            return;
        }
        let key = signatures_key(self.opts, &self.source_id);
        let saved = MirrorCursor {
            cursor: head,
            updated_ms: now_ms(),
        };
        if let Err(e) = self.app.meta.put_mirror_cursor(&key, saved).await {
            self.reporter.line(&format!(
                "imgapi mirror: cannot save the signature look-ahead position {head}: {e}"
            ));
        }
    }

    /// Every local signature by image; `None` when they cannot be read
    /// (each image then reads its own).
    async fn all_local_signatures(&self) -> Option<HashMap<Uuid, Vec<StoredSignature>>> {
        let mut out: HashMap<Uuid, Vec<StoredSignature>> = HashMap::new();
        let mut after = None;
        loop {
            let page = match self
                .app
                .meta
                .image_signatures_after(after.clone(), LOCAL_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the local signatures at once; reading them per image");
                    return None;
                }
            };
            let full = page.len() >= LOCAL_PAGE as usize;
            after = page.last().map(|s| (s.uuid, s.key_id.clone()));
            for signature in page {
                out.entry(signature.uuid).or_default().push(signature);
            }
            if !full || after.is_none() {
                return Some(out);
            }
        }
    }

    /// The upstream's signatures of `uuid`: fetched ahead, or now;
    /// `Unsupported` (nothing to do) for an image the feed shows unchanged
    /// upstream since the last complete run.
    pub(super) async fn upstream_signatures_of(
        &mut self,
        uuid: Uuid,
    ) -> Result<SourceSignatures, SyncError> {
        if self.signatures_unchanged.contains(&uuid) {
            return Ok(SourceSignatures::Unsupported);
        }
        self.fresh_upstream_signatures(uuid).await
    }

    /// The upstream's signatures of `uuid`, asked now unless fetched ahead.
    pub(super) async fn fresh_upstream_signatures(
        &mut self,
        uuid: Uuid,
    ) -> Result<SourceSignatures, SyncError> {
        let got = match self.upstream_signatures.remove(&uuid) {
            Some(got) => got,
            None => fetch_signatures(self.app, self.src_of(uuid), uuid).await,
        };
        got.map_err(SyncError::Signatures)
    }

    /// Bring the signatures of `image` (as stored here now, or for a dry
    /// run as it would be) in line with `upstream`'s list. Removals only
    /// on an image this mirror imported from this upstream.
    pub(super) async fn sync_signatures(
        &mut self,
        image: &ImageRecord,
        upstream: &SourceSignatures,
    ) -> Result<SignatureSync, SyncError> {
        let uuid = image.uuid;
        if matches!(upstream, SourceSignatures::Unsupported) {
            return Ok(SignatureSync::default());
        }
        // The run's one-pass read says whether anything differs; what is
        // written is planned from a fresh read.
        if let Some(all) = &self.local_signatures {
            let local = all.get(&uuid).map(Vec::as_slice).unwrap_or_default();
            if plan(self.app, image, upstream, local, true).is_empty() {
                return Ok(SignatureSync::default());
            }
        }
        let local = crate::service::signatures::stored_signatures(self.app, uuid)
            .await
            .map_err(SyncError::SignatureStore)?;
        let mut planned = plan(self.app, image, upstream, &local, true);
        if !planned.gone.is_empty()
            && !self
                .mirrored_here(uuid)
                .await
                .map_err(SyncError::Provenance)?
        {
            planned.gone.clear();
        }
        let sync = apply(self.app, image, &planned, self.opts.dry_run)
            .await
            .map_err(SyncError::SignatureStore)?;
        self.count_signatures(&sync);
        Ok(sync)
    }

    pub(super) fn count_signatures(&mut self, sync: &SignatureSync) {
        self.summary.signatures_carried += sync.carried;
        self.summary.signatures_refused += sync.refused.len();
        self.summary.signatures_removed += sync.removed.len();
    }

    /// The line of an image whose only change was its signatures.
    pub(super) fn say_signatures(
        &mut self,
        uuid: Uuid,
        m: &serde_json::Map<String, serde_json::Value>,
        sync: &SignatureSync,
    ) {
        if sync.is_empty() {
            return;
        }
        let what = label(uuid, m);
        let text = if self.opts.dry_run {
            format!("would sync {}", sync.describe())
        } else {
            sync.describe()
        };
        self.say(&what, &text);
    }
}
