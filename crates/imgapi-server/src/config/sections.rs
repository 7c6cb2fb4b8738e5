//! The values of the enumerated and table-valued configuration keys, as
//! the file (TOML) and the environment (JSON) spell them.

use std::path::PathBuf;

use serde::Deserialize;

/// How requests are authenticated (api.md §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    None,
    Signature,
}

/// The `[database]` table: `url = "sqlite://…" | "postgres://…"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DatabaseSection {
    pub(super) url: Option<String>,
}

/// Where image files and icons live (`[storage]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageConfig {
    /// `<data_dir>/files` on local disk.
    #[default]
    Local,
    /// An S3-compatible bucket; credentials from the standard AWS
    /// environment variables.
    S3 {
        /// `http(s)://host:port`; absent = AWS S3 of `region`.
        endpoint: Option<String>,
        bucket: String,
        #[serde(default = "default_region")]
        region: String,
        /// Key prefix inside the bucket (several registries can share one).
        #[serde(default)]
        prefix: String,
        /// Answer GetImageFile with a 302 to a presigned object URL (after
        /// the usual authorisation and logging) instead of proxying bytes.
        #[serde(default)]
        redirect_downloads: bool,
        /// Also keep `<data_dir>/files` as a second store, for
        /// AdminChangeImageStor and `storage=local` (single-instance only:
        /// other instances cannot read this machine's disk).
        #[serde(default)]
        local_secondary: bool,
        #[serde(default)]
        credentials: S3Credentials,
        /// Seconds to wait for a connection to the store.
        #[serde(default = "default_connect_timeout_secs")]
        connect_timeout_secs: u64,
        /// Seconds to wait for the answer to a request without a body
        /// (get, head, list, delete): the store's 503 comes this soon.
        #[serde(default = "default_first_byte_timeout_secs")]
        first_byte_timeout_secs: u64,
        /// Seconds without a byte of an answer (or, for a part upload,
        /// without its answer) before the request fails.
        #[serde(default = "default_stall_timeout_secs")]
        stall_timeout_secs: u64,
    },
}

fn default_connect_timeout_secs() -> u64 {
    3
}

fn default_first_byte_timeout_secs() -> u64 {
    5
}

fn default_stall_timeout_secs() -> u64 {
    30
}

/// Where an S3 store's credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum S3Credentials {
    /// The AWS environment variables (or web-identity / container
    /// credentials the environment names); none set stops the start-up.
    #[default]
    Environment,
    /// The AWS credential chain including the instance metadata service
    /// (169.254.169.254): only when the configuration asks for it.
    Instance,
}

impl S3Credentials {
    /// [`S3Credentials::missing`] in the process environment (the config
    /// module is where the environment is read).
    #[allow(clippy::disallowed_methods)]
    pub fn missing_from_env(self, section: &str) -> Option<String> {
        self.missing(section, |k| std::env::var(k).ok())
    }

    /// Whether the credentials are configured; `None` when they are, else
    /// the one line that says what to set (`section`: `storage`, `export`).
    /// `env` reads the environment (a parameter so tests need not touch
    /// the process's own).
    pub fn missing(self, section: &str, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        if self == S3Credentials::Instance {
            return None;
        }
        let set = |k: &str| env(k).is_some_and(|v| !v.trim().is_empty());
        let keys = set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY");
        let named_elsewhere = set("AWS_WEB_IDENTITY_TOKEN_FILE")
            || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            || set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        if keys || named_elsewhere {
            return None;
        }
        Some(format!(
            "[{section}] kind = \"s3\" has no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or `credentials = \"instance\"` in [{section}] to use the machine's role through the cloud metadata service"
        ))
    }
}

/// `[retention]` (docs/lifecycle.md "Retention rules"): rules that
/// remove old image versions, and how often they run by themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Hours between scheduled runs; 0 = only on demand (RunRetention).
    #[serde(default)]
    pub interval_hours: u64,
    /// `[[retention.rules]]`, listed as `config-1`, `config-2`, ….
    #[serde(default)]
    pub rules: Vec<RetentionRuleConfig>,
}

/// One `[[retention.rules]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRuleConfig {
    /// Absent = the images of every owner.
    #[serde(default)]
    pub owner: Option<uuid::Uuid>,
    /// Image name, or a pattern with `*` and `?`.
    pub name: String,
    #[serde(default)]
    pub keep_versions: Option<u32>,
    #[serde(default)]
    pub keep_days: Option<u32>,
}

impl RetentionRuleConfig {
    /// The rule as the planner takes it.
    pub fn spec(&self) -> imgapi_domain::retention::RuleSpec {
        imgapi_domain::retention::RuleSpec {
            owner: self.owner,
            name: self.name.clone(),
            keep_versions: self.keep_versions,
            keep_days: self.keep_days,
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

#[cfg(test)]
mod tests {
    use super::S3Credentials;

    #[test]
    fn s3_credentials_must_be_configured() {
        let none = |_: &str| None;
        let msg = S3Credentials::Environment.missing("storage", none);
        assert!(msg.as_deref().is_some_and(
            |m| m.contains("AWS_ACCESS_KEY_ID") && m.contains("credentials = \"instance\"")
        ));
        let keys = |k: &str| {
            matches!(k, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY").then(|| "x".to_string())
        };
        assert_eq!(S3Credentials::Environment.missing("storage", keys), None);
        let half = |k: &str| (k == "AWS_ACCESS_KEY_ID").then(|| "x".to_string());
        assert!(S3Credentials::Environment.missing("export", half).is_some());
        let web = |k: &str| (k == "AWS_WEB_IDENTITY_TOKEN_FILE").then(|| "/t".to_string());
        assert_eq!(S3Credentials::Environment.missing("storage", web), None);
        assert_eq!(S3Credentials::Instance.missing("storage", none), None);
    }
}

/// How the legacy DSAPI `/datasets` endpoints answer (api.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DsapiMode {
    /// 301 redirects to the matching `/images` URL (the original's behaviour).
    #[default]
    Redirect,
    /// v1 dataset manifests and files, for SDC 6.5-era clients (docs/dsapi.md).
    Serve,
}

/// Where ExportImage writes manifests and files (`[export]`, api.md §5.23).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExportConfig {
    /// Under a local (or mounted) directory: `<dir>/<manta_path>`.
    Local { dir: PathBuf },
    /// In an S3-compatible bucket: object `<prefix>/<manta_path>`;
    /// credentials as for `[storage]`.
    S3 {
        endpoint: Option<String>,
        bucket: String,
        #[serde(default = "default_region")]
        region: String,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        credentials: S3Credentials,
    },
}

/// `[docker]`: Docker/OCI registries (AdminImportDockerImage,
/// AdminPushDockerImage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// `host:port` (or `host`) of registries reached over plain http, as
    /// dockerd's `insecure-registries`; every other registry: https only.
    pub insecure_registries: Vec<String>,
}

/// `[quotas]`: per-owner limits and write-once versions
/// (docs/lifecycle.md). A limit of 0 is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// Image records an owner may have.
    pub default_images: u64,
    /// Bytes (files and icons) an owner may store.
    pub default_bytes: u64,
    /// Per-owner limits replacing the defaults (`[quotas.owners.<uuid>]`).
    pub owners: std::collections::BTreeMap<uuid::Uuid, OwnerQuota>,
    /// Refuse a second image with the same (owner, name, version).
    pub write_once_versions: bool,
}

/// One owner's limits in `[quotas.owners.<uuid>]`; an absent key keeps
/// the default, 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OwnerQuota {
    pub images: Option<u64>,
    pub bytes: Option<u64>,
}

/// `[simplestreams]`: serve the public `lxd` images as a simplestreams
/// image server for `lxc` / `incus` (docs/lxd.md). Off unless enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimplestreamsConfig {
    pub enabled: bool,
}

/// `[lifecycle]`: the recycle bin and the removal of abandoned uploads
/// (docs/lifecycle.md). The defaults keep the original's behaviour:
/// DeleteImage deletes at once, unactivated images stay.
/// Fractions are allowed (`0.5` days = 12 hours).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Days a deleted image stays in the recycle bin; 0 = no bin.
    pub recycle_days: f64,
    /// Unactivated images older than this many hours are removed; 0 = never.
    pub abandoned_upload_hours: f64,
    /// Seconds between two sweeps (expired bin entries, abandoned uploads).
    pub sweep_interval_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            recycle_days: 0.0,
            abandoned_upload_hours: 0.0,
            sweep_interval_secs: 300,
        }
    }
}

impl LifecycleConfig {
    /// Whether DeleteImage moves images to the bin.
    pub fn recycles(&self) -> bool {
        self.recycle_days > 0.0
    }

    /// How long a bin entry stays, in ms.
    pub fn recycle_ms(&self) -> i64 {
        duration_ms(self.recycle_days * 86_400_000.0)
    }

    /// How old an unactivated image must be to be removed, in ms.
    pub fn abandoned_ms(&self) -> i64 {
        duration_ms(self.abandoned_upload_hours * 3_600_000.0)
    }

    /// Why these values are unusable, if they are.
    pub(super) fn invalid(&self) -> Option<&'static str> {
        let usable = |v: f64| v.is_finite() && v >= 0.0;
        if !usable(self.recycle_days) {
            Some("`recycle_days` must be a number of days, 0 or more")
        } else if !usable(self.abandoned_upload_hours) {
            Some("`abandoned_upload_hours` must be a number of hours, 0 or more")
        } else if self.sweep_interval_secs == 0 {
            Some("`sweep_interval_secs` must be positive")
        } else {
            None
        }
    }
}

/// `[changes]`: the change log behind `GET /changes` and webhooks
/// (docs/events.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangesConfig {
    /// Hours an event stays in the log before the sweeper purges it.
    pub retention_hours: f64,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        ChangesConfig {
            retention_hours: 168.0,
        }
    }
}

impl ChangesConfig {
    /// How long an event is kept, in ms.
    pub fn retention_ms(&self) -> i64 {
        duration_ms(self.retention_hours * 3_600_000.0)
    }

    /// Why these values are unusable, if they are.
    pub(super) fn invalid(&self) -> Option<&'static str> {
        if self.retention_hours.is_finite() && self.retention_hours > 0.0 {
            None
        } else {
            Some("`retention_hours` must be a positive number of hours")
        }
    }
}

/// `[signing]`: image signatures (docs/signing.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// ActivateImage requires a valid signature by a key of the image's
    /// owner or of an operator.
    pub require_for_activation: bool,
    /// An OpenSSH allowed_signers file of keys trusted as operators' (for
    /// countersignatures, and for servers without HTTP Signature keys).
    pub allowed_signers: Option<std::path::PathBuf>,
}

/// Milliseconds as an integer, saturating (validated values are finite).
#[allow(clippy::cast_possible_truncation)]
fn duration_ms(ms: f64) -> i64 {
    ms.clamp(0.0, i64::MAX as f64) as i64
}

/// `[lxd]`: LXD simplestreams servers (AdminImportLxdImage, `imgapi
/// mirror --upstream-simplestreams`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LxdConfig {
    /// Remote name → simplestreams server URL (the `REMOTE` of
    /// `alias=REMOTE:ALIAS`). None by default.
    pub remotes: std::collections::BTreeMap<String, String>,
}

/// The `[remote]` table: what this server may fetch from other servers
/// (import-remote, import from a URL or a source IMGAPI; docs/mirroring.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Also plain `http:` URLs (sources, file URLs); default https only.
    pub allow_http: bool,
    /// Also loopback, private (RFC 1918), link-local, ULA, CGNAT,
    /// unspecified, multicast and other reserved addresses.
    pub allow_private_addresses: bool,
    /// When not empty, only these hosts (exact name or IP literal; a
    /// leading `.` matches subdomains).
    pub allowed_hosts: Vec<String>,
    /// Redirects followed per request, each hop checked again.
    pub max_redirects: usize,
    pub connect_timeout_secs: u64,
    /// A transfer that receives nothing for this long is aborted.
    pub read_timeout_secs: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            allow_http: false,
            allow_private_addresses: false,
            allowed_hosts: Vec::new(),
            max_redirects: 5,
            connect_timeout_secs: 10,
            read_timeout_secs: 60,
        }
    }
}

/// One `[[channels]]` table (api.md §1.7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Echoed by ListChannels exactly as configured (`true` or `false`).
    #[serde(default)]
    pub default: Option<bool>,
}

/// `[webhooks]` (docs/webhooks.md): delivery of the change log to HTTP
/// receivers, and endpoints defined in the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Consecutive failed attempts after which an endpoint is dead
    /// (dead-lettered) until an operator resumes it.
    #[serde(default = "default_webhook_max_failures")]
    pub max_failures: u32,
    /// The longest one delivery (connect, send, answer) may take.
    #[serde(default = "default_webhook_timeout_secs")]
    pub timeout_secs: u64,
    /// How long an instance holds an endpoint while delivering it; another
    /// instance takes over this long after one dies. Longer than
    /// `timeout_secs`.
    #[serde(default = "default_webhook_lease_secs")]
    pub lease_secs: u64,
    /// How often each instance looks for new events and due endpoints.
    #[serde(default = "default_webhook_poll_ms")]
    pub poll_interval_ms: u64,
    /// `[[webhooks.endpoints]]`, upserted by name at start-up.
    #[serde(default)]
    pub endpoints: Vec<WebhookEndpointConfig>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            max_failures: default_webhook_max_failures(),
            timeout_secs: default_webhook_timeout_secs(),
            lease_secs: default_webhook_lease_secs(),
            poll_interval_ms: default_webhook_poll_ms(),
            endpoints: Vec::new(),
        }
    }
}

/// 300 consecutive failures: with the backoff (1 s doubling, at most
/// 5 min) that is about 24 h of failing (docs/webhooks.md).
fn default_webhook_max_failures() -> u32 {
    300
}

fn default_webhook_timeout_secs() -> u64 {
    10
}

fn default_webhook_lease_secs() -> u64 {
    30
}

fn default_webhook_poll_ms() -> u64 {
    250
}

impl WebhooksConfig {
    /// Why the section is unusable, if it is.
    pub(super) fn invalid(&self) -> Option<String> {
        if self.max_failures == 0 {
            return Some("`max_failures` must be at least 1".into());
        }
        if self.timeout_secs == 0 {
            return Some("`timeout_secs` must be positive".into());
        }
        if self.lease_secs <= self.timeout_secs {
            return Some(format!(
                "`lease_secs` ({}) must be longer than `timeout_secs` ({}): a delivery must end before its lease does",
                self.lease_secs, self.timeout_secs
            ));
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Some("`poll_interval_ms` must be from 10 to 60000".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if endpoint.name.trim().is_empty() {
                return Some(format!("endpoints[{i}]: `name` must not be empty"));
            }
            if !names.insert(endpoint.name.as_str()) {
                return Some(format!(
                    "endpoints[{i}]: the name \"{}\" is used twice",
                    endpoint.name
                ));
            }
            if endpoint.secret.is_empty() {
                return Some(format!(
                    "endpoints[{i}] (\"{}\"): `secret` must not be empty",
                    endpoint.name
                ));
            }
        }
        None
    }
}

/// One `[[webhooks.endpoints]]` table.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointConfig {
    /// Unique; the endpoint's identity across restarts (its cursor is kept
    /// under this name).
    pub name: String,
    pub url: String,
    /// The HMAC-SHA256 key of `X-Imgapi-Signature`.
    pub secret: String,
    /// Event types delivered (`image.created`, …); absent = every type.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// The secret stays out of logs.
impl std::fmt::Debug for WebhookEndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpointConfig")
            .field("name", &self.name)
            .field("url", &imgapi_domain::redact::redact_url(&self.url))
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}
