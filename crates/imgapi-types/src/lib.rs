//! The IMGAPI wire contract shared by the server and clients.
//!
//! Nothing here does I/O: these are the shapes that cross the wire (each
//! with its JSON Schema, see [`schemas`]) and the single restCode table
//! from which `docs/errors.md` is generated.

pub mod changes;
pub mod docker;
pub mod error_body;
pub mod error_code;
pub mod image;
pub mod job;
pub mod lifecycle;
pub mod lxd;
pub mod quotas;
pub mod recycle_bin;
pub mod requirements;
pub mod retention;
pub mod schema;
pub mod server;
pub mod signatures;
pub mod uploads;
pub mod webhooks;

pub use changes::{ChangeEvent, ChangeKind, ChangesPage};
pub use docker::{
    DockerErrorMessage, DockerImageCreated, DockerMessage, DockerProgress, DockerProgressDetail,
    DockerProgressMessage, DockerPushResult, DockerStreamError, DOCKER_MESSAGE_TYPES,
};
pub use error_body::{ErrorBody, FieldCode, FieldError};
pub use error_code::RestCode;
pub use image::{DsapiDataset, DsapiFile, Image, ImageFile, ImageUser};
pub use job::{Job, JobParams, JobStep, StartedJob};
pub use lifecycle::ImageLifecycle;
pub use lxd::{LxdErrorMessage, LxdMessage, LxdProgress, LxdProgressMessage};
pub use quotas::{Quota, QuotaBytes, QuotaImages, QuotaOverrideBody, UsageQuota};
pub use recycle_bin::{RecycleBinUsage, RecycledImage};
pub use requirements::Requirements;
pub use retention::{RetentionPlan, RetentionPlanImage, RetentionRule};
pub use schema::{schemas, SCHEMA_NAMES};
pub use server::{
    Channel, Exported, Health, HealthCheck, HealthChecks, LogState, OwnerUsage, Ping, ServerState,
    TagUsage, Usage, UsageTotals,
};
pub use signatures::{AddSignatureBody, ImageSignature, ImageSignatures};
pub use uploads::{UploadSessionBody, UPLOAD_OFFSET_HEADER};
pub use webhooks::{Webhook, WebhookTestResult};

/// Owner given to imported images in public/private mode (api.md §1.4).
pub const UNSET_OWNER_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Maximum image file size: 20 GiB (api.md §7).
pub const MAX_IMAGE_FILE_SIZE: u64 = 21_474_836_480;

/// Maximum icon size: 128 KiB (api.md §7).
pub const MAX_ICON_SIZE: u64 = 131_072;

/// Default and maximum page size of ListImages (api.md §5.1).
pub const LIST_LIMIT_MAX: u32 = 1000;

/// Version reported by Ping and the `Server` header: the original's API level.
pub const API_VERSION: &str = "4.11.0";
