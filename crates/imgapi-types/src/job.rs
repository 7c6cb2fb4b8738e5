//! Jobs: what `GET /jobs/:uuid` and ListImageJobs (api.md §5.25) answer,
//! and what AdminImportRemoteImage / ImportFromDatacenter answer when they
//! start one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The answer of AdminImportRemoteImage and ImportFromDatacenter: the
/// image being imported and the job importing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StartedJob {
    /// UUID of the image being imported.
    pub image_uuid: Uuid,
    /// UUID of the job (`GET /jobs/:uuid`).
    pub job_uuid: Uuid,
}

/// A job: the workflow API's job object, in part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    /// The job's UUID.
    pub uuid: Uuid,
    /// The job's task (`import-remote-image`, `mirror-import`).
    pub name: String,
    /// Where the job is.
    #[schemars(extend("enum" = ["queued", "running", "succeeded", "failed", "canceled"]))]
    pub execution: String,
    /// The image the job works on.
    pub image_uuid: Uuid,
    /// The job's inputs.
    pub params: JobParams,
    /// The steps run, in order; when the job failed, the last is the one that failed.
    pub chain_results: Vec<JobStep>,
    /// The clean-up steps run after a failure.
    pub onerror_results: Vec<JobStep>,
    /// When the job was queued (ISO 8601).
    pub created_at: String,
    /// When a runner first took the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the job ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A job's inputs. Import jobs carry all fields but the optional ones;
/// mirror jobs only `task` and `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobParams {
    /// The job's task, as its `name`.
    pub task: String,
    /// The image to import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<Uuid>,
    /// The source IMGAPI's URL (a password in it is shown as `***`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Origins imported before the image, base first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<Uuid>>,
    /// Whether the owner check was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_owner_check: Option<bool>,
    /// Local channel of the imported images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// ImportFromDatacenter: the account copying its image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
    /// ImportFromDatacenter: the datacenter copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Keys this version of the types does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct JobStep {
    /// The step (`import_image`, `add_file`, `add_icon`, `activate_image`,
    /// `check`, `cleanup`, `mirror`).
    pub name: String,
    /// The image the step worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<Uuid>,
    /// What the step did (empty while it runs or when it failed).
    pub result: String,
    /// Why it failed (empty otherwise).
    pub error: String,
    /// When the step started (ISO 8601).
    pub started_at: String,
    /// When it ended; `null` while it runs.
    pub finished_at: Option<String>,
}
