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

use std::time::Duration;

use imgapi_domain::image::now_iso;
use imgapi_domain::redact::redact_url;
use imgapi_meta::{JobExecution, JobRecord};
use imgapi_types::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use uuid::Uuid;

use super::fetch::Trust;
use super::source::{Source, SourceError};
use crate::app::AppState;
use crate::service::ServiceError;

pub mod retention;
mod runner;

pub use runner::{start, Runner};

/// The workflow name of import jobs (ListImageJobs' `task`).
pub const IMPORT_REMOTE_IMAGE: &str = "import-remote-image";
/// How long a claimed job stays with its instance without a renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// Jobs one instance runs at once.
pub const MAX_RUNNING: usize = 4;

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
    fn source(&self, app: &AppState) -> Result<Source, SourceError> {
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
    let gone = match crate::service::load_image(app, uuid, account, channel).await {
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
        // A job about no image (a retention run, under the nil uuid) names
        // images of every owner: never listed here, only by its uuid to
        // the operator who started it.
        .filter(|j| !j.image_uuid.is_nil())
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
        if let Some(url) = source.as_str() {
            *source = Value::from(redact_url(url).into_owned());
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
    }
}
