//! The runner: claims unfinished jobs, runs their steps, renews their
//! leases, and cleans up after a failed job.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use imgapi_domain::image::now_iso;
use imgapi_meta::{JobExecution, JobLease, JobRecord, StoredImage};
use serde_json::Value;
use tokio::sync::{oneshot, Mutex};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use super::{ImportJob, Step, LEASE, MAX_RUNNING};
use crate::app::App;
use crate::service::images::{activated, delete_image, modify, Removal};
use crate::service::import::error::ImportError;
use crate::service::import::icon::copy_icon;
use crate::service::import::manifest::{fetch_manifest, remote_file};
use crate::service::import::signatures::{carry, fetch_signatures};
use crate::service::import::source::Source;
use crate::service::import::steps::{add_verified_file, create_from_manifest, source_file};
use crate::service::retention::{self, run::Deletion};
use crate::service::ServiceError;

/// How often a running job's lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// How often the runner looks for jobs to take over.
const POLL_EVERY: Duration = Duration::from_secs(10);
/// Runs of one job (claims) before it is failed instead of resumed.
const MAX_ATTEMPTS: u32 = 5;
/// Tries of each step (the original retries each step once).
const STEP_TRIES: u32 = 2;
const RETRY_DELAY: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lease_ms() -> i64 {
    i64::try_from(LEASE.as_millis()).unwrap_or(60_000)
}

/// The background task that claims and runs jobs for one instance.
pub struct Runner {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

/// Start this instance's runner: it looks for jobs at once (resuming those
/// left by a stopped instance), then whenever woken and every
/// [`POLL_EVERY`].
pub fn start(app: App) -> Runner {
    let (stop, stopped) = oneshot::channel();
    let handle = tokio::spawn(run_loop(app, stopped));
    Runner { stop, handle }
}

impl Runner {
    /// Stop: abort the running jobs (a partial file is never visible: the
    /// blob store commits atomically), then release their leases so that
    /// another instance, or this one restarted, resumes them at once.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.await;
    }
}

async fn run_loop(app: App, mut stopped: oneshot::Receiver<()>) {
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        while running.len() < MAX_RUNNING {
            let now = now_ms();
            match app
                .meta
                .claim_next_job(app.jobs.instance(), now, now + lease_ms())
                .await
            {
                Ok(Some(job)) => {
                    tracing::info!(job = %job.uuid, image = %job.image_uuid, attempt = job.attempts, "job claimed");
                    running.spawn(run_job(Arc::clone(&app), job));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look for jobs");
                    break;
                }
            }
        }
        tokio::select! {
            _ = &mut stopped => break,
            () = app.jobs.wake.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a job task ended abnormally");
                }
            }
        }
    }
    running.shutdown().await;
    match app.meta.release_jobs(app.jobs.instance()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "released the leases of interrupted jobs"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot release job leases; they expire by themselves")
        }
    }
}

/// Why a run stops early.
#[derive(Debug)]
enum Abort {
    /// The lease is gone (or cannot be written): someone else runs it now,
    /// or it resumes once the lease has expired.
    Lost,
    /// The job fails with this message.
    Failed(String),
}

/// One run of one job by this instance.
struct Run {
    app: App,
    owner: String,
    job: Mutex<JobRecord>,
}

async fn run_job(app: App, job: JobRecord) {
    let uuid = job.uuid;
    let run = Run {
        owner: app.jobs.instance().to_string(),
        app,
        job: Mutex::new(job),
    };
    tokio::select! {
        () = run.work_and_finish() => {}
        () = run.keep_lease() => {
            tracing::warn!(job = %uuid, "job lease lost; stopping this run");
        }
    }
}

impl Run {
    /// Write the job, extending the lease.
    async fn save(&self, job: &mut JobRecord) -> Result<(), Abort> {
        job.lease = Some(JobLease {
            owner: self.owner.clone(),
            expires_ms: now_ms() + lease_ms(),
        });
        match self.app.meta.update_job(job, &self.owner).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Abort::Lost),
            Err(e) => {
                tracing::warn!(job = %job.uuid, error = %e, "cannot record job progress");
                Err(Abort::Lost)
            }
        }
    }

    /// Renew the lease until it is lost (returns then). A database outage
    /// is ridden out while the lease lasts.
    async fn keep_lease(&self) {
        let mut last_ok = std::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let mut job = self.job.lock().await;
            let mut renewed = job.clone();
            renewed.lease = Some(JobLease {
                owner: self.owner.clone(),
                expires_ms: now_ms() + lease_ms(),
            });
            match self.app.meta.update_job(&renewed, &self.owner).await {
                Ok(true) => {
                    *job = renewed;
                    last_ok = std::time::Instant::now();
                }
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(job = %job.uuid, error = %e, "cannot renew job lease");
                    if last_ok.elapsed() + RENEW_EVERY >= LEASE {
                        return;
                    }
                }
            }
        }
    }

    async fn work_and_finish(&self) {
        let outcome = self.work().await;
        let execution = match outcome {
            Err(Abort::Lost) => return,
            Ok(()) => JobExecution::Succeeded,
            Err(Abort::Failed(message)) => {
                let uuid = self.job.lock().await.uuid;
                tracing::warn!(job = %uuid, error = %message, "job failed");
                if let Err(Abort::Lost) = self.cleanup().await {
                    return;
                }
                JobExecution::Failed
            }
        };
        let mut job = self.job.lock().await;
        let mut done = job.clone();
        done.execution = execution;
        done.finished_at = Some(now_iso());
        done.lease = None; // finished: the lease goes
        match self.app.meta.update_job(&done, &self.owner).await {
            Ok(true) => {
                *job = done;
                tracing::info!(job = %job.uuid, execution = job.execution.as_str(), "job finished");
            }
            Ok(false) => {}
            // Not recorded: the lease runs out and the job is resumed (its
            // steps find their work done) or, if it failed, failed again.
            Err(e) => tracing::warn!(job = %job.uuid, error = %e, "cannot record the end of a job"),
        }
    }

    async fn work(&self) -> Result<(), Abort> {
        let (params, attempts, name) = {
            let mut job = self.job.lock().await;
            if job.started_at.is_none() {
                job.started_at = Some(now_iso());
                self.save(&mut job).await?;
            }
            (job.params.clone(), job.attempts, job.name.clone())
        };
        if attempts > MAX_ATTEMPTS {
            return Err(Abort::Failed(format!(
                "gave up after {MAX_ATTEMPTS} runs that did not finish"
            )));
        }
        if name == retention::RETENTION_TASK {
            return self.retention().await;
        }
        let import: ImportJob = serde_json::from_value(params)
            .map_err(|e| Abort::Failed(format!("invalid job params: {e}")))?;
        let src = import
            .source(&self.app)
            .map_err(|e| Abort::Failed(e.to_string()))?;
        let mut images = import.origins.clone();
        images.push(import.image_uuid);
        for uuid in images {
            self.ensure_image(&import, &src, uuid).await?;
        }
        Ok(())
    }

    /// A retention job: plan, then delete each planned image (newest
    /// first, so an image goes before its origin), each a step; a
    /// `summary` step ends it. A resumed run plans again: what is gone is
    /// no longer planned.
    async fn retention(&self) -> Result<(), Abort> {
        let index = self.begin("plan", None).await?;
        let planned = retention::plan_now(&self.app).await;
        let outcome = match &planned {
            Ok(plan) => Ok(format!(
                "{} to delete, {} kept",
                plan.delete.len(),
                plan.kept.len()
            )),
            Err(e) => Err(e.to_string()),
        };
        self.end(index, &outcome).await?;
        let mut plan = planned.map_err(|e| Abort::Failed(format!("plan: {e}")))?;
        plan.delete.reverse();
        let (mut deleted, mut kept, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for image in &plan.delete {
            let uuid = image.image.uuid;
            let index = self.begin("delete_image", Some(uuid)).await?;
            let outcome = match retention::run::delete_planned(&self.app, image).await {
                Deletion::Deleted => {
                    deleted.push(uuid);
                    Ok(format!("deleted (rule {})", image.rule))
                }
                Deletion::Gone => Ok("already gone".to_string()),
                Deletion::Kept(why) => {
                    kept.push(uuid);
                    Ok(format!("kept: {why}"))
                }
                Deletion::Failed(e) => {
                    failed.push(uuid);
                    Err(e)
                }
            };
            self.end(index, &outcome).await?;
        }
        let list = |uuids: &[Uuid]| {
            uuids
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let summary = format!(
            "deleted {} [{}]; kept {} [{}]; failed {} [{}]",
            deleted.len(),
            list(&deleted),
            kept.len(),
            list(&kept),
            failed.len(),
            list(&failed)
        );
        let index = self.begin("summary", None).await?;
        let outcome = if failed.is_empty() {
            Ok(summary)
        } else {
            Err(summary)
        };
        self.end(index, &outcome).await?;
        match outcome {
            Ok(_) => Ok(()),
            Err(_) => Err(Abort::Failed(format!(
                "{} of {} deletions failed",
                failed.len(),
                plan.delete.len()
            ))),
        }
    }

    /// Images this job created: an `import_image` step that imported it,
    /// or that started and did not record its end (it may have).
    async fn created(&self) -> Vec<Uuid> {
        let job = self.job.lock().await;
        let mut out: Vec<Uuid> = Vec::new();
        for step in job.chain_results.iter().filter_map(Step::of) {
            let ours = step.name == "import_image"
                && (step.result == "imported" || step.finished_at.is_none());
            if let Some(uuid) = step.image_uuid.filter(|u| ours && !out.contains(u)) {
                out.push(uuid);
            }
        }
        out
    }

    /// Record the start of a step; returns its index.
    async fn begin(&self, name: &str, image: Option<Uuid>) -> Result<usize, Abort> {
        let mut job = self.job.lock().await;
        job.chain_results.push(
            Step {
                name: name.into(),
                image_uuid: image,
                result: String::new(),
                error: String::new(),
                started_at: now_iso(),
                finished_at: None,
            }
            .value(),
        );
        let index = job.chain_results.len() - 1;
        self.save(&mut job).await?;
        Ok(index)
    }

    /// Record the end of step `index`.
    async fn end(&self, index: usize, outcome: &Result<String, String>) -> Result<(), Abort> {
        let mut job = self.job.lock().await;
        if let Some(slot) = job.chain_results.get_mut(index) {
            if let Some(mut step) = Step::of(slot) {
                match outcome {
                    Ok(result) => step.result = result.clone(),
                    Err(error) => step.error = error.clone(),
                }
                step.finished_at = Some(now_iso());
                *slot = step.value();
            }
        }
        self.save(&mut job).await
    }

    /// Run a step (tried [`STEP_TRIES`] times), recorded in the chain.
    async fn step<F, Fut>(&self, name: &str, image: Uuid, f: F) -> Result<String, Abort>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<String, ServiceError>>,
    {
        let index = self.begin(name, Some(image)).await?;
        let mut outcome = Err(String::new());
        for attempt in 1..=STEP_TRIES {
            match f().await {
                Ok(result) => {
                    outcome = Ok(result);
                    break;
                }
                Err(e) => {
                    tracing::info!(step = name, image = %image, attempt, error = %e, "job step failed");
                    outcome = Err(e.to_string());
                    if attempt < STEP_TRIES {
                        tokio::time::sleep(RETRY_DELAY).await;
                    }
                }
            }
        }
        self.end(index, &outcome).await?;
        outcome.map_err(|e| Abort::Failed(format!("{name} {image}: {e}")))
    }

    async fn load(&self, uuid: Uuid) -> Result<Option<StoredImage>, ServiceError> {
        self.app
            .meta
            .get(uuid)
            .await
            .map_err(ServiceError::meta(format!("error loading image {uuid}")))
    }

    async fn load_existing(&self, uuid: Uuid) -> Result<StoredImage, ServiceError> {
        self.load(uuid)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("image {uuid} not found")))
    }

    /// Import, fill and activate one image unless already done.
    async fn ensure_image(
        &self,
        import: &ImportJob,
        src: &Source,
        uuid: Uuid,
    ) -> Result<(), Abort> {
        let app = &self.app;
        let ours = self.created().await.contains(&uuid);
        let local = self
            .load(uuid)
            .await
            .map_err(|e| Abort::Failed(e.to_string()))?;
        match local {
            None => {
                self.step("import_image", uuid, || async {
                    let manifest = fetch_manifest(app, src, uuid, None)
                        .await
                        .map_err(|source| ImportError::Manifest { uuid, source })?;
                    let skip = Some(import.skip_owner_check);
                    create_from_manifest(
                        app,
                        uuid,
                        manifest,
                        skip,
                        None,
                        import.channel.as_deref(),
                    )
                    .await?;
                    Ok("imported".to_string())
                })
                .await?;
            }
            Some(existing) if !ours => {
                // Imported meanwhile by someone else: fine if it is the
                // same, finished image; never ours to complete or delete.
                let result = self
                    .step("import_image", uuid, || async {
                        let manifest = fetch_manifest(app, src, uuid, None)
                            .await
                            .map_err(|source| ImportError::Manifest { uuid, source })?;
                        let same = remote_file(&manifest).is_some_and(|r| {
                            existing
                                .image
                                .files
                                .first()
                                .is_some_and(|f| f.sha1 == r.sha1)
                        });
                        if existing.image.activated && same {
                            Ok("already present".to_string())
                        } else {
                            Err(ServiceError::ImageUuidAlreadyExists(uuid))
                        }
                    })
                    .await?;
                if result == "already present" {
                    return Ok(());
                }
            }
            Some(_) => {}
        }
        self.step("add_file", uuid, || async {
            let stored = self.load_existing(uuid).await?;
            let remote = source_file(app, src, uuid).await?;
            if let Some(f) = stored.image.files.first() {
                if f.sha1 == remote.sha1 && f.size == remote.size && self.blob_present(f).await {
                    return Ok("file already complete".to_string());
                }
            }
            let record = add_verified_file(app, stored, src, &app.blobs, remote).await?;
            let sha1 = record
                .files
                .first()
                .map(|f| f.sha1.clone())
                .unwrap_or_default();
            Ok(format!("added file (sha1 {sha1})"))
        })
        .await?;
        let has_icon = self
            .load(uuid)
            .await
            .map_err(|e| Abort::Failed(e.to_string()))?
            .is_some_and(|s| s.image.icon.is_some());
        if !has_icon {
            self.copy_icon(src, uuid).await?;
        }
        // Before activation: an image is never active here without the
        // signatures it has at the source.
        self.copy_signatures(src, uuid).await?;
        self.step("activate_image", uuid, || async {
            let stored = self.load_existing(uuid).await?;
            if stored.image.activated {
                return Ok("already active".to_string());
            }
            modify(app, stored, true, activated).await?;
            Ok("activated".to_string())
        })
        .await?;
        Ok(())
    }

    async fn blob_present(&self, file: &imgapi_domain::ImageFile) -> bool {
        let Some(key) = file.blob_key.as_deref() else {
            return false;
        };
        match self.app.blob_store(&file.stor) {
            Some(store) => store.stat(key).await.is_ok_and(|m| m.size == file.size),
            None => false,
        }
    }

    /// The source's icon, when it has one (a step only then).
    async fn copy_icon(&self, src: &Source, uuid: Uuid) -> Result<(), Abort> {
        let app = &self.app;
        let has_icon = match fetch_manifest(app, src, uuid, None).await {
            Ok(m) => m.get("icon") == Some(&Value::Bool(true)),
            // Reported by the next step that needs the source.
            Err(_) => false,
        };
        if !has_icon {
            return Ok(());
        }
        self.step("add_icon", uuid, || async {
            let stored = self.load_existing(uuid).await?;
            copy_icon(app, src, stored, None).await?;
            Ok("added icon".to_string())
        })
        .await?;
        Ok(())
    }

    /// The source's signatures of `uuid`, each verified again against the
    /// copy; those that do not verify are refused (logged, named in the
    /// step's result), never stored. A step only when the source lists
    /// some, or when asking failed (the step retries, then fails the job:
    /// an import never silently loses signatures). A source without the
    /// endpoint (an original IMGAPI answers 404) has none.
    async fn copy_signatures(&self, src: &Source, uuid: Uuid) -> Result<(), Abort> {
        let app = &self.app;
        if let Ok(listed) = fetch_signatures(app, src, uuid).await {
            if listed.is_empty() {
                return Ok(());
            }
        }
        self.step("add_signatures", uuid, || async {
            let listed = fetch_signatures(app, src, uuid)
                .await
                .map_err(|source| ImportError::Signatures { uuid, source })?;
            let stored = self.load_existing(uuid).await?;
            let sync = carry(app, &stored.image, &listed).await?;
            let plural = if sync.carried == 1 { "" } else { "s" };
            let mut result = format!("added {} signature{plural}", sync.carried);
            if !sync.refused.is_empty() {
                result.push_str(&format!(
                    "; refused {} that do not verify against this copy: {}",
                    sync.refused.len(),
                    sync.refused.join("; ")
                ));
            }
            Ok(result)
        })
        .await?;
        Ok(())
    }

    /// Delete what this job created, newest first (a step of its own).
    async fn cleanup(&self) -> Result<(), Abort> {
        let created = self.created().await;
        if created.is_empty() {
            return Ok(());
        }
        let index = self.begin("cleanup", None).await?;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for uuid in created.iter().rev() {
            match self.load(*uuid).await {
                Ok(Some(stored)) => {
                    match delete_image(&self.app, stored, None, None, Removal::Immediate).await {
                        Ok(()) => deleted.push(uuid.to_string()),
                        Err(ServiceError::NotFound(_)) => {}
                        Err(e) => errors.push(format!("{uuid}: {e}")),
                    }
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("{uuid}: {e}")),
            }
        }
        let outcome = if errors.is_empty() {
            Ok(format!("deleted {}", deleted.join(", ")))
        } else {
            Err(errors.join("; "))
        };
        self.end(index, &outcome).await
    }
}
