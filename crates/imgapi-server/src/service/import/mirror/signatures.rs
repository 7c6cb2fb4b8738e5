//! Signatures on a mirror (docs/mirroring.md, "Signatures"): an image
//! copied here brings the upstream's signatures, each verified again
//! against the copy; a present image picks up those added upstream later
//! and loses those removed upstream (not the mirror's own
//! countersignatures: signatures by keys this server knows).
//!
//! A full run must stay cheap for N unchanged images: the upstream's lists
//! are fetched ahead, [`PREFETCH_CONCURRENCY`] at a time, and the local
//! signatures are read in one pass, so an image whose signatures already
//! match costs one concurrent request and no query of its own. An upstream
//! without the endpoint (an original IMGAPI) is recognised by its first 404
//! and asked no more in that run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::{stream, StreamExt};
use imgapi_domain::ImageRecord;
use imgapi_meta::StoredSignature;
use uuid::Uuid;

use super::error::SyncError;
use super::{label, upstream_activated, Run};
use crate::service::import::fetch::FetchError;
use crate::service::import::signatures::{
    apply, fetch_signatures, local_signatures, plan, SignatureSync, SourceSignatures,
};

/// Signature lists asked of the upstream at once by a full run.
const PREFETCH_CONCURRENCY: usize = 8;
/// Local signatures read per query by a full run.
const LOCAL_PAGE: u32 = 1000;

impl Run<'_> {
    /// A full run's look-ahead: the upstream's signatures of every listed,
    /// activated image, and every local signature.
    pub(super) async fn prefetch_signatures(&mut self, order: &[Uuid]) {
        if self.src.dsapi {
            return;
        }
        let wanted: Vec<Uuid> = order
            .iter()
            .copied()
            .filter(|u| self.upstream.get(u).is_some_and(upstream_activated))
            .collect();
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

    /// The upstream's signatures of `uuid`: fetched ahead, or now.
    pub(super) async fn upstream_signatures_of(
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
        let local = local_signatures(self.app, uuid)
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
