//! Jobs, run in-process: the `import-remote-image` job of
//! AdminImportRemoteImage (api.md §5.20) and ImportFromDatacenter (§5.21),
//! and ListImageJobs (§5.25).
//!
//! A job is a row of the metadata store (`imgapi_meta::JobRecord`). Each
//! instance runs a [`Runner`] that claims unfinished jobs whose lease is
//! absent or expired, at most [`MAX_RUNNING`] at a time, and renews the
//! lease of each while it works on it. So with several instances sharing
//! one database exactly one runs a job; a job whose instance died is taken
//! over once its lease ([`LEASE`]) runs out; one whose instance shut down
//! gracefully is released at once. Every step is recorded in the job's
//! `chain_results` before and after it runs, and every step is idempotent:
//! a resumed job finds the images it already imported and does not fetch
//! a file that is already complete.
//!
//! The import job, for each missing origin base first, then the image:
//! `import_image` (the manifest, as AdminImportImageFromSource),
//! `add_file` (verified against the source's size and sha1, as
//! AddImageFileFromSource), `add_icon` (when the source has one) and
//! `activate_image`. Each step is tried twice. If the job fails, it
//! deletes what it created, newest first (`cleanup`), so no partial image
//! remains, and ends `failed` with the error in the failing step.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use imgapi_domain::image::now_iso;
use imgapi_meta::{JobExecution, JobLease, JobRecord, StoredImage};
use imgapi_types::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{oneshot, Mutex, Notify};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use super::images::{activated, delete_image, modify};
use super::import::{
    add_verified_file, copy_icon, create_from_manifest, fetch_manifest, manifest_error, remote_file,
};
use super::remote::{Source, Trust};
use super::ServiceError;
use crate::app::{App, AppState};

/// The workflow name of import jobs (ListImageJobs' `task`).
pub const IMPORT_REMOTE_IMAGE: &str = "import-remote-image";
/// How long a claimed job stays with its instance without a renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often a running job's lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// How often the runner looks for jobs to take over.
const POLL_EVERY: Duration = Duration::from_secs(10);
/// Jobs one instance runs at once.
pub const MAX_RUNNING: usize = 4;
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

/// This instance's identity as a lease holder, and the runner's wake-up.
#[derive(Debug)]
pub struct Jobs {
    instance: String,
    wake: Notify,
}

impl Jobs {
    pub fn new(hostname: &str) -> Jobs {
        Jobs {
            instance: format!("{hostname}/{}", Uuid::new_v4()),
            wake: Notify::new(),
        }
    }

    /// The lease owner name of this instance.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Tell the runner a job is waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// The inputs of an import job, stored as its `params` (plus `task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportJob {
    pub image_uuid: Uuid,
    /// The source IMGAPI's URL.
    pub source: String,
    /// Origins to import before the image, base first.
    pub origins: Vec<Uuid>,
    pub skip_owner_check: bool,
    /// Local channel for the imported images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// ImportFromDatacenter: the account copying its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
    /// ImportFromDatacenter: the datacenter copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
}

impl ImportJob {
    fn params(&self) -> Value {
        let mut params = Map::new();
        params.insert("task".into(), Value::from(IMPORT_REMOTE_IMAGE));
        if let Ok(Value::Object(fields)) = serde_json::to_value(self) {
            params.extend(fields);
        }
        Value::Object(params)
    }

    /// The source, trusted only when it is still the configured URL of the
    /// job's datacenter.
    fn source(&self, app: &AppState) -> Result<Source, String> {
        let trusted = self
            .datacenter
            .as_ref()
            .and_then(|dc| app.config.datacenters.get(dc))
            .is_some_and(|url| {
                *url == self.source
                    || Source::parse(url, Trust::Trusted).is_ok_and(|s| s.as_str() == self.source)
            });
        let trust = if trusted {
            Trust::Trusted
        } else {
            Trust::Checked
        };
        Source::parse(&self.source, trust)
    }
}

/// What AdminImportRemoteImage / ImportFromDatacenter answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedJob {
    pub image_uuid: Uuid,
    pub job_uuid: Uuid,
}

/// One `chain_results` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Step {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_uuid: Option<Uuid>,
    /// What the step did ("" while it runs or when it failed).
    result: String,
    /// Why it failed ("" otherwise).
    error: String,
    started_at: String,
    /// `null` while it runs.
    finished_at: Option<String>,
}

impl Step {
    fn of(v: &Value) -> Option<Step> {
        serde_json::from_value(v.clone()).ok()
    }

    fn value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn new_job(import: &ImportJob) -> JobRecord {
    JobRecord {
        uuid: Uuid::new_v4(),
        image_uuid: import.image_uuid,
        name: IMPORT_REMOTE_IMAGE.into(),
        execution: JobExecution::Queued,
        params: import.params(),
        chain_results: Vec::new(),
        created_at: now_iso(),
        started_at: None,
        finished_at: None,
        lease: None,
        attempts: 0,
    }
}

/// Queue an import job and wake this instance's runner.
pub async fn create_import_job(
    app: &AppState,
    import: ImportJob,
) -> Result<StartedJob, ServiceError> {
    let job = new_job(&import);
    app.meta
        .insert_job(&job)
        .await
        .map_err(ServiceError::meta("error creating the import job"))?;
    app.jobs.wake();
    Ok(StartedJob {
        image_uuid: job.image_uuid,
        job_uuid: job.uuid,
    })
}

/// The image is already here, active, with the source's file: a job that
/// has already succeeded.
pub async fn record_already_present(
    app: &AppState,
    import: ImportJob,
) -> Result<StartedJob, ServiceError> {
    let mut job = new_job(&import);
    let now = now_iso();
    job.execution = JobExecution::Succeeded;
    job.started_at = Some(now.clone());
    job.finished_at = Some(now.clone());
    job.chain_results = vec![Step {
        name: "check".into(),
        image_uuid: Some(import.image_uuid),
        result: "image already present: active, with the same files[0].sha1 as the source".into(),
        error: String::new(),
        started_at: now.clone(),
        finished_at: Some(now),
    }
    .value()];
    app.meta
        .insert_job(&job)
        .await
        .map_err(ServiceError::meta("error recording the import job"))?;
    Ok(StartedJob {
        image_uuid: job.image_uuid,
        job_uuid: job.uuid,
    })
}

// ---------------------------------------------------------------------------
// ListImageJobs (§5.25)

/// ListImageJobs (api.md §5.25): the image's jobs, newest first, filtered
/// by `task` (the job name) and `execution`. The image is loaded as usual;
/// when it does not exist at all (an import in progress, or a failed one
/// that removed it) its jobs are still listed, for an operator, or for
/// the account that started them.
pub async fn list_image_jobs(
    app: &AppState,
    uuid: Uuid,
    account: Option<&str>,
    channel: Option<&str>,
    task: Option<&str>,
    execution: Option<&str>,
) -> Result<Vec<Value>, ServiceError> {
    let gone = match super::load_image(app, uuid, account, channel).await {
        Ok(_) => None,
        Err(ServiceError::NotFound(message)) => Some(message),
        Err(e) => return Err(e),
    };
    if let Some(message) = &gone {
        let exists = app
            .meta
            .get(uuid)
            .await
            .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
            .is_some();
        if exists {
            return Err(ServiceError::NotFound(message.clone()));
        }
    }
    if let Some(e) = execution.filter(|e| JobExecution::parse(e).is_none()) {
        return Err(ServiceError::invalid_parameter(
            format!(
                "invalid execution \"{e}\" (must be one of queued, running, succeeded, failed, canceled)"
            ),
            vec![FieldError::invalid("execution")],
        ));
    }
    let jobs = app
        .meta
        .image_jobs(uuid)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading the jobs of {uuid}"
        )))?;
    let account = account.and_then(|a| Uuid::parse_str(a).ok());
    let listed: Vec<Value> = jobs
        .iter()
        .rev()
        .filter(|j| task.is_none_or(|t| j.name == t))
        .filter(|j| execution.is_none_or(|e| j.execution.as_str() == e))
        .filter(|j| gone.is_none() || visible_without_image(j, account))
        .map(job_object)
        .collect();
    match gone {
        Some(message) if listed.is_empty() => Err(ServiceError::NotFound(message)),
        _ => Ok(listed),
    }
}

fn visible_without_image(job: &JobRecord, account: Option<Uuid>) -> bool {
    match account {
        None => true,
        Some(acc) => job.params.get("account").and_then(Value::as_str) == Some(&acc.to_string()),
    }
}

/// `GET /jobs/:uuid`: one job, or 404.
pub async fn get_job(app: &AppState, uuid: Uuid) -> Result<Value, ServiceError> {
    let job = app
        .meta
        .get_job(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading job {uuid}")))?
        .ok_or_else(|| ServiceError::not_found(format!("job {uuid} not found")))?;
    Ok(job_object(&job))
}

/// The wire form of a job: the workflow API's job object, in part. As
/// there, the steps run on failure (`cleanup`) are `onerror_results`, so
/// the last of `chain_results` is the step that failed (sdc-clients looks
/// there for the error). A password in the source URL is masked.
pub fn job_object(job: &JobRecord) -> Value {
    let (onerror, chain): (Vec<Value>, Vec<Value>) = job
        .chain_results
        .iter()
        .cloned()
        .partition(|s| s.get("name").and_then(Value::as_str) == Some("cleanup"));
    let mut params = job.params.clone();
    if let Some(source) = params.get_mut("source") {
        if let Some(masked) = source.as_str().and_then(mask_password) {
            *source = Value::from(masked);
        }
    }
    let mut m = Map::new();
    m.insert("uuid".into(), Value::from(job.uuid.to_string()));
    m.insert("name".into(), Value::from(job.name.clone()));
    m.insert("execution".into(), Value::from(job.execution.as_str()));
    m.insert("image_uuid".into(), Value::from(job.image_uuid.to_string()));
    m.insert("params".into(), params);
    m.insert("chain_results".into(), Value::Array(chain));
    m.insert("onerror_results".into(), Value::Array(onerror));
    m.insert("created_at".into(), Value::from(job.created_at.clone()));
    if let Some(s) = &job.started_at {
        m.insert("started_at".into(), Value::from(s.clone()));
    }
    if let Some(s) = &job.finished_at {
        m.insert("finished_at".into(), Value::from(s.clone()));
    }
    Value::Object(m)
}

/// `url` with its password replaced by `***`, when it has one.
fn mask_password(url: &str) -> Option<String> {
    let mut parsed = reqwest::Url::parse(url).ok()?;
    parsed.password()?;
    parsed.set_password(Some("***")).ok()?;
    Some(parsed.to_string())
}

// ---------------------------------------------------------------------------
// The runner

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
                tracing::warn!(job = %uuid, error = %message, "import job failed");
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
        let (params, attempts) = {
            let mut job = self.job.lock().await;
            if job.started_at.is_none() {
                job.started_at = Some(now_iso());
                self.save(&mut job).await?;
            }
            (job.params.clone(), job.attempts)
        };
        if attempts > MAX_ATTEMPTS {
            return Err(Abort::Failed(format!(
                "gave up after {MAX_ATTEMPTS} runs that did not finish"
            )));
        }
        let import: ImportJob = serde_json::from_value(params)
            .map_err(|e| Abort::Failed(format!("invalid job params: {e}")))?;
        let src = import.source(&self.app).map_err(Abort::Failed)?;
        let mut images = import.origins.clone();
        images.push(import.image_uuid);
        for uuid in images {
            self.ensure_image(&import, &src, uuid).await?;
        }
        Ok(())
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
                        .map_err(|e| manifest_error(uuid, &e))?;
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
                            .map_err(|e| manifest_error(uuid, &e))?;
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
            let manifest = fetch_manifest(app, src, uuid, None)
                .await
                .map_err(|e| manifest_error(uuid, &e))?;
            let remote = remote_file(&manifest).ok_or_else(|| {
                ServiceError::RemoteSource(format!(
                    "Unable to get stream for image file {uuid}. Error from remote: image {uuid} has no file"
                ))
            })?;
            if let Some(f) = stored.image.files.first() {
                if f.sha1 == remote.sha1 && f.size == remote.size && self.blob_present(f).await {
                    return Ok("file already complete".to_string());
                }
            }
            let record = add_verified_file(app, stored, src, &app.blobs, remote).await?;
            let sha1 = record.files.first().map(|f| f.sha1.clone()).unwrap_or_default();
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
                Ok(Some(stored)) => match delete_image(&self.app, stored, None, None).await {
                    Ok(()) => deleted.push(uuid.to_string()),
                    Err(ServiceError::NotFound(_)) => {}
                    Err(e) => errors.push(format!("{uuid}: {e}")),
                },
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn job_object_splits_cleanup_and_masks_passwords() {
        let import = ImportJob {
            image_uuid: Uuid::nil(),
            source: "https://u:secret@images.example.com/".into(),
            origins: vec![],
            skip_owner_check: false,
            channel: None,
            account: None,
            datacenter: None,
        };
        let mut job = new_job(&import);
        let step = |name: &str, error: &str| Step {
            name: name.into(),
            image_uuid: None,
            result: String::new(),
            error: error.into(),
            started_at: "t".into(),
            finished_at: Some("t".into()),
        };
        job.chain_results = vec![
            step("add_file", "boom").value(),
            step("cleanup", "").value(),
        ];
        let v = job_object(&job);
        assert_eq!(v["params"]["task"], "import-remote-image");
        assert_eq!(v["params"]["source"], "https://u:***@images.example.com/");
        assert_eq!(v["chain_results"].as_array().unwrap().len(), 1);
        assert_eq!(v["chain_results"][0]["error"], "boom");
        assert_eq!(v["onerror_results"][0]["name"], "cleanup");
        assert_eq!(mask_password("https://images.example.com/"), None);
    }
}
