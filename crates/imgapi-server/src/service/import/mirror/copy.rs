//! Importing what is missing here, or unfinished: origins first, then
//! the record, file, icon and activation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use imgapi_domain::image::now_iso;
use imgapi_domain::redact::redact_url;
use imgapi_domain::{ImageFile, ImageRecord, ImageState};
use imgapi_meta::{JobExecution, JobRecord, MetaError, StoredImage};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::error::SyncError;
use super::update::synced;
use super::{label, upstream_activated, Outcome, Run, MIRROR_IMPORT, PROGRESS_EVERY};
use crate::service::images::{activated, delete_image, modify, Removal};
use crate::service::import::chain::{self, Origin, WalkError};
use crate::service::import::icon::{fetch_icon, store_fetched_icon};
use crate::service::import::manifest::{
    fetch_manifest, manifest_origin, manifest_str, remote_file, RemoteFile,
};
use crate::service::import::steps::{add_verified_file_counted, create_from_manifest};
use crate::sizes::human_bytes;

impl Run<'_> {
    pub(super) async fn sync_listed(
        &mut self,
        uuid: Uuid,
        m: &Map<String, Value>,
    ) -> Result<Outcome, SyncError> {
        if !upstream_activated(m) {
            let state = manifest_str(m, "state").unwrap_or("without a state");
            return Ok(Outcome::Skipped(format!("{state} upstream")));
        }
        let Some(remote) = remote_file(m) else {
            return Err(SyncError::NoFile);
        };
        let Some(stored) = self.load(uuid).await? else {
            self.ensure_origins(uuid, m).await?;
            return self.import_new(uuid, m, remote).await.map(Outcome::New);
        };
        if let Some(conflict) = conflict(&stored.image, &remote) {
            return Ok(Outcome::Conflict(conflict));
        }
        if !stored.image.activated {
            self.ensure_origins(uuid, m).await?;
            let detail = self.finish(stored, m, remote, false).await?;
            return Ok(Outcome::New(format!(
                " (finished an interrupted import){detail}"
            )));
        }
        self.update(stored, m).await
    }

    /// The missing (or unfinished) origins of `m`, base first, imported.
    async fn ensure_origins(
        &mut self,
        child: Uuid,
        m: &Map<String, Value>,
    ) -> Result<(), SyncError> {
        let this = &*self;
        let chain = chain::missing_origins(manifest_origin(m), &[child], |origin| async move {
            let local = this.load(origin).await?;
            if local.as_ref().is_some_and(|s| s.image.activated) {
                return Ok(Origin::Present);
            }
            let manifest = match this.upstream.get(&origin) {
                Some(m) => m.clone(),
                None => fetch_manifest(this.app, &this.origin_src, origin, None)
                    .await
                    .map_err(|cause| SyncError::OriginManifest { origin, cause })?,
            };
            if !upstream_activated(&manifest) {
                return Err(SyncError::OriginNotActive(origin));
            }
            let next = manifest_origin(&manifest);
            Ok(Origin::Missing {
                item: (manifest, local),
                next,
            })
        })
        .await
        .map_err(|e| match e {
            WalkError::TooLongOrLoops => SyncError::OriginChain,
            WalkError::Visit(e) => e,
        })?;
        for (origin, (manifest, local)) in chain {
            self.handled.insert(origin);
            let what = label(origin, &manifest);
            let done = match remote_file(&manifest) {
                None => Err(SyncError::NoFile),
                Some(remote) => match local {
                    None => self.import_new(origin, &manifest, remote).await,
                    Some(stored) => match conflict(&stored.image, &remote) {
                        Some(c) => Err(SyncError::Conflict(c)),
                        None => self.finish(stored, &manifest, remote, false).await,
                    },
                },
            };
            match done {
                Ok(detail) => {
                    self.summary.new += 1;
                    let verb = if self.opts.dry_run {
                        "would import"
                    } else {
                        "new"
                    };
                    self.say(&what, &format!("{verb} (origin of {child}){detail}"));
                }
                Err(e) => {
                    self.fail(Some(origin), &what, &e);
                    return Err(SyncError::Origin {
                        origin,
                        cause: Box::new(e),
                    });
                }
            }
        }
        Ok(())
    }

    /// Create the record, then [`Run::finish`]; on failure the record is
    /// deleted again (nothing partial stays).
    async fn import_new(
        &mut self,
        uuid: Uuid,
        m: &Map<String, Value>,
        remote: RemoteFile,
    ) -> Result<String, SyncError> {
        if self.opts.dry_run {
            self.summary.bytes += remote.size;
            return Ok(format!(", {}", human_bytes(remote.size)));
        }
        create_from_manifest(
            self.app,
            uuid,
            m.clone(),
            Some(true),
            None,
            self.local_channel.as_deref(),
        )
        .await
        .map_err(SyncError::Create)?;
        let stored = self.load_existing(uuid).await?;
        match self.finish(stored, m, remote, true).await {
            Ok(detail) => Ok(detail),
            Err(cause) => Err(match self.discard(uuid).await {
                Ok(()) => cause,
                Err(cleanup) => SyncError::NotDiscarded {
                    cause: Box::new(cause),
                    cleanup: Box::new(cleanup),
                },
            }),
        }
    }

    /// Delete an unfinished record this run created.
    async fn discard(&self, uuid: Uuid) -> Result<(), SyncError> {
        match self.load(uuid).await? {
            Some(stored) if !stored.image.activated => {
                delete_image(self.app, stored, None, None, Removal::Immediate)
                    .await
                    .map_err(SyncError::Step)
            }
            _ => Ok(()),
        }
    }

    /// File (unless already complete), icon, activation, the
    /// `mirror-import` row, then the manifest fields as upstream.
    async fn finish(
        &mut self,
        stored: StoredImage,
        m: &Map<String, Value>,
        remote: RemoteFile,
        created_now: bool,
    ) -> Result<String, SyncError> {
        let uuid = stored.image.uuid;
        if !created_now && self.busy(uuid).await? {
            return Err(SyncError::Busy);
        }
        if self.opts.dry_run {
            let complete = match stored.image.files.first() {
                Some(f) => self.file_complete(f, &remote).await,
                None => false,
            };
            let size = if complete { 0 } else { remote.size };
            self.summary.bytes += size;
            return Ok(format!(", {}", human_bytes(size)));
        }
        // Asked before the transfer: an upstream that cannot tell its
        // signatures fails the image before its bytes are fetched.
        self.upstream_signatures.remove(&uuid);
        let signatures = self.fresh_upstream_signatures(uuid).await?;
        let mut received = 0;
        let complete = match stored.image.files.first() {
            Some(f) => self.file_complete(f, &remote).await,
            None => false,
        };
        let stored = if complete {
            stored
        } else {
            received += self.transfer(stored, remote).await?;
            self.load_existing(uuid).await?
        };
        let stored = if m.get("icon") == Some(&Value::Bool(true))
            && !self.src.dsapi
            && stored.image.icon.is_none()
        {
            let resp = fetch_icon(self.app, self.src_of(uuid), uuid)
                .await
                .map_err(SyncError::Step)?;
            let record = store_fetched_icon(self.app, stored, resp)
                .await
                .map_err(SyncError::Icon)?;
            let size = record.icon.as_ref().map_or(0, |i| i.size);
            self.summary.bytes += size;
            received += size;
            self.load_existing(uuid).await?
        } else {
            stored
        };
        // Before activation: an image is never active here without the
        // upstream's signatures that verify against it.
        let mut signed = self.sync_signatures(&stored.image, &signatures).await?;
        let stored = if stored.image.activated {
            stored
        } else {
            modify(self.app, stored, true, activated)
                .await
                .map_err(SyncError::Activate)?;
            self.load_existing(uuid).await?
        };
        if let Err(e) = self.record_mirrored(uuid).await {
            self.say(
                &uuid.to_string(),
                &format!("warning: imported, but not recorded as mirrored ({e}); --delete will not remove it"),
            );
        }
        if !created_now {
            // The manifest may have changed since the interrupted run.
            let desired = self.desired(uuid, m).await?;
            let rules = self.app.rules();
            let record = modify(self.app, stored, true, |img| synced(img, &desired, &rules))
                .await
                .map_err(SyncError::Update)?;
            // Signed fields may have changed with it: the upstream's
            // signatures are of its record as it is now.
            let again = self.sync_signatures(&record, &signatures).await?;
            signed.carried += again.carried;
            signed.removed.extend(again.removed);
            signed.refused = again.refused;
        }
        let disabled = if m.get("disabled") == Some(&Value::Bool(true)) {
            " (disabled, as upstream)"
        } else {
            ""
        };
        let signed = if signed.is_empty() {
            String::new()
        } else {
            format!(", {}", signed.describe())
        };
        Ok(format!("{disabled}, {}{signed}", human_bytes(received)))
    }

    /// The local file is the upstream's, and its blob is there.
    async fn file_complete(&self, file: &ImageFile, remote: &RemoteFile) -> bool {
        if file.sha1 != remote.sha1 || file.size != remote.size {
            return false;
        }
        let Some(key) = file.blob_key.as_deref() else {
            return false;
        };
        match self.app.blob_store(&file.stor) {
            Some(store) => store.stat(key).await.is_ok_and(|m| m.size == file.size),
            None => false,
        }
    }

    /// Fetch the file (verified), reporting progress; the bytes received.
    async fn transfer(
        &mut self,
        stored: StoredImage,
        remote: RemoteFile,
    ) -> Result<u64, SyncError> {
        let uuid = stored.image.uuid;
        let total = remote.size;
        let counter = Arc::new(AtomicU64::new(0));
        let app = self.app;
        let src = self.src_of(uuid).clone();
        let fetch = add_verified_file_counted(
            app,
            stored,
            &src,
            &app.blobs,
            remote,
            Some(Arc::clone(&counter)),
        );
        tokio::pin!(fetch);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                done = &mut fetch => break done,
                _ = tick.tick() => {
                    self.reporter.transfer(uuid, counter.load(Ordering::Relaxed), total);
                }
            }
        };
        let received = counter.load(Ordering::Relaxed);
        self.summary.bytes += received;
        result.map_err(SyncError::Step)?;
        Ok(received)
    }

    /// An unfinished job (a server's import-remote) works on this image.
    async fn busy(&self, uuid: Uuid) -> Result<bool, SyncError> {
        let jobs = self
            .app
            .meta
            .image_jobs(uuid)
            .await
            .map_err(SyncError::Jobs)?;
        Ok(jobs.iter().any(|j| !j.execution.is_finished()))
    }

    /// This mirror (this upstream) imported the image.
    pub(super) async fn mirrored_here(&self, uuid: Uuid) -> Result<bool, MetaError> {
        let jobs = self.app.meta.image_jobs(uuid).await?;
        Ok(jobs.iter().any(|j| {
            j.name == MIRROR_IMPORT
                && j.execution == JobExecution::Succeeded
                && j.params.get("source").and_then(Value::as_str) == Some(self.source_id.as_str())
        }))
    }

    /// Record the import as a finished `mirror-import` job row (once).
    async fn record_mirrored(&self, uuid: Uuid) -> Result<(), MetaError> {
        if self.mirrored_here(uuid).await? {
            return Ok(());
        }
        let now = now_iso();
        let job = JobRecord {
            uuid: Uuid::new_v4(),
            image_uuid: uuid,
            name: MIRROR_IMPORT.into(),
            execution: JobExecution::Succeeded,
            params: json!({"task": MIRROR_IMPORT, "source": self.source_id}),
            chain_results: vec![json!({
                "name": "mirror",
                "image_uuid": uuid,
                "result": format!("imported from {}", redact_url(&self.source_id)),
                "error": "",
                "started_at": now,
                "finished_at": now,
            })],
            created_at: now.clone(),
            started_at: Some(now.clone()),
            finished_at: Some(now),
            lease: None,
            attempts: 0,
        };
        self.app.meta.insert_job(&job).await
    }
}

/// Why a local image is not the upstream's (a different file, or a local
/// placeholder), if it is not.
fn conflict(local: &ImageRecord, remote: &RemoteFile) -> Option<String> {
    if matches!(local.state, ImageState::Creating | ImageState::Failed) {
        return Some(format!(
            "a local {} placeholder has this uuid",
            local.state.as_str()
        ));
    }
    let file = local.files.first()?;
    (file.sha1 != remote.sha1).then(|| {
        format!(
            "the local image has files[0].sha1 {}, the upstream's is {}",
            file.sha1, remote.sha1
        )
    })
}
