//! Typed configuration, layered: built-in defaults → TOML file → `IMGAPI_*`
//! environment variables. This is the only module that reads the environment.
//!
//! Every key is listed in [`KEYS`], from which `docs/config.md` is generated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use imgapi_domain::Mode;
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
struct DatabaseSection {
    url: Option<String>,
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
    },
}

fn default_region() -> String {
    "us-east-1".into()
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
    },
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

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub mode: Mode,
    pub auth_type: AuthType,
    pub data_dir: PathBuf,
    /// `sqlite://PATH`; default `sqlite://<data_dir>/imgapi.sqlite`.
    pub database_url: Option<String>,
    pub server_name: String,
    pub admin_uuid: Option<uuid::Uuid>,
    pub channels: Vec<ChannelConfig>,
    pub log_level: String,
    /// username → OpenSSH public key lines (HTTP Signature, keyId = username).
    pub auth_keys: std::collections::BTreeMap<String, Vec<String>>,
    /// Directory of `<username>.keys` files.
    pub auth_keys_dir: Option<PathBuf>,
    /// Where image files and icons are stored.
    pub storage: StorageConfig,
    /// Where owner / account existence is checked (dc mode).
    pub account_directory: crate::accounts::AccountDirectoryConfig,
    /// Outbound fetch policy (`[remote]`).
    pub remote: RemoteConfig,
    /// This datacenter's name (ImportFromDatacenter).
    pub datacenter_name: Option<String>,
    /// Datacenter name → that datacenter's IMGAPI URL (`[datacenters]`).
    pub datacenters: std::collections::BTreeMap<String, String>,
    /// username → account uuid: signed users that act for one account
    /// (as CloudAPI's `account=` would) instead of as operators.
    pub user_accounts: std::collections::BTreeMap<String, uuid::Uuid>,
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_connections: usize,
    pub header_read_timeout_secs: u64,
    pub max_header_bytes: usize,
    pub body_idle_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    /// `/datasets`: redirect (default) or serve v1 manifests.
    pub dsapi: DsapiMode,
    /// ExportImage target; `None` = 503 StorageUnsupported.
    pub export: Option<ExportConfig>,
    /// Resumable upload sessions untouched for this long are swept
    /// (docs/uploads.md). Seconds.
    pub upload_session_ttl_secs: u64,
    /// Where `/metrics` (Prometheus text format) is served on a listener
    /// of its own; `None` = nowhere but, with `metrics_on_main`, the API.
    pub metrics_listen: Option<SocketAddr>,
    /// Also answer `GET /metrics` on the API listener.
    pub metrics_on_main: bool,
    /// Serve the read-only HTML catalog at `/catalog` (issue 8).
    pub catalog: bool,
}

/// A documented configuration key.
pub struct KeyDoc {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// Every configuration key, its environment variable and default.
pub const KEYS: &[KeyDoc] = &[
    KeyDoc { key: "listen", env: "IMGAPI_LISTEN", default: "127.0.0.1:8080", doc: "Address and port the HTTP API listens on." },
    KeyDoc { key: "mode", env: "IMGAPI_MODE", default: "public", doc: "`public`, `private` or `dc` (api.md §1.4): decides visibility and validation rules." },
    KeyDoc { key: "auth_type", env: "IMGAPI_AUTH_TYPE", default: "none", doc: "`none` (nothing is checked: dc mode behind a firewall) or `signature` (HTTP Signature with SSH keys, api.md §1.5)." },
    KeyDoc { key: "auth_keys", env: "IMGAPI_AUTH_KEYS", default: "(none)", doc: "Table username → list of OpenSSH public key lines accepted for HTTP Signature auth (keyId = username). In the environment: a JSON object." },
    KeyDoc { key: "storage", env: "IMGAPI_STORAGE", default: "kind = \"local\"", doc: "Where image files and icons live: `kind = \"local\"` (`<data_dir>/files`) or `kind = \"s3\"` with `bucket`, optional `endpoint` (http(s)://host:port of an S3-compatible server, path-style), `region` (us-east-1), `prefix`, `redirect_downloads` (false: when true, GetImageFile answers 302 to a 15-minute presigned URL), `local_secondary` (false: also keep `<data_dir>/files` as a second store for AdminChangeImageStor between s3 and local; single instance only); credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. In the environment: a JSON object." },
    KeyDoc { key: "account_directory", env: "IMGAPI_ACCOUNT_DIRECTORY", default: "kind = \"none\"", doc: "dc mode: where owner existence is checked (OwnerDoesNotExist). `kind = \"none\"` accepts any uuid; `\"static\"` with `accounts = [uuids]`; `\"ldap\"` with `url` (ldap://), `base_dn`, optional `bind_dn`, `bind_password`, `timeout_secs` (5), `cache_ttl_secs` (60; 10 for misses). In the environment: a JSON object." },
    KeyDoc { key: "remote", env: "IMGAPI_REMOTE", default: "allow_http = false, allow_private_addresses = false, allowed_hosts = [], max_redirects = 5, connect_timeout_secs = 10, read_timeout_secs = 60", doc: "`[remote]`: what the server may fetch for AdminImportRemoteImage, AdminImportImageFromSource, AddImageFileFromSource and AddImageFileFromUrl (docs/mirroring.md). `allow_http`: also `http:` URLs; `allow_private_addresses`: also loopback, RFC 1918, link-local, ULA, CGNAT, unspecified, multicast and reserved addresses (every resolved address is checked, at connect time too); `allowed_hosts`: when not empty, only these hosts (a leading `.` also matches subdomains); `max_redirects`: redirects followed, each hop checked again; timeouts for connecting and for a transfer that receives nothing. URLs of `datacenters` are trusted and not checked. In the environment: a JSON object." },
    KeyDoc { key: "datacenter_name", env: "IMGAPI_DATACENTER_NAME", default: "(none)", doc: "This datacenter's name, for ImportFromDatacenter (api.md §5.21)." },
    KeyDoc { key: "datacenters", env: "IMGAPI_DATACENTERS", default: "(none)", doc: "Table datacenter name → that datacenter's IMGAPI URL (the original's `imgapiUrlFromDatacenter`): where ImportFromDatacenter copies from. In the environment: a JSON object." },
    KeyDoc { key: "user_accounts", env: "IMGAPI_USER_ACCOUNTS", default: "(none)", doc: "Table username → account uuid. A signed user listed here always acts for that account (as if `account=<uuid>` were passed: sees what the account may see, changes only its images, no operator endpoints); unlisted signed users are operators. In the environment: a JSON object." },
    KeyDoc { key: "auth_keys_dir", env: "IMGAPI_AUTH_KEYS_DIR", default: "(none)", doc: "Directory of `<username>.keys` files (one OpenSSH public key per line, `#` comments); re-read by POST /authkeys/reload without a restart." },
    KeyDoc { key: "data_dir", env: "IMGAPI_DATA_DIR", default: "./data", doc: "Directory holding the SQLite database and the image files (`files/`)." },
    KeyDoc { key: "database_url", env: "IMGAPI_DATABASE_URL", default: "sqlite://<data_dir>/imgapi.sqlite", doc: "Metadata database: `sqlite://PATH` (embedded default) or `postgres://user:password@host:port/db` (scale-out; several instances may share it). Also accepted as `[database] url`." },
    KeyDoc { key: "server_name", env: "IMGAPI_SERVER_NAME", default: "imgapi/4.11.0", doc: "Value of the `Server` response header." },
    KeyDoc { key: "admin_uuid", env: "IMGAPI_ADMIN_UUID", default: "(none)", doc: "dc mode: the operator account; imports with the zero owner get this owner." },
    KeyDoc { key: "channels", env: "IMGAPI_CHANNELS", default: "(none)", doc: "`[[channels]]` tables with `name`, `description`, `default`. In the environment: a JSON array of the same objects. No channels = a server without channels." },
    KeyDoc { key: "tls_cert", env: "IMGAPI_TLS_CERT", default: "(none)", doc: "PEM certificate chain. With `tls_key` the server speaks HTTPS on `listen` (rustls); without both, plain HTTP." },
    KeyDoc { key: "tls_key", env: "IMGAPI_TLS_KEY", default: "(none)", doc: "PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`." },
    KeyDoc { key: "max_connections", env: "IMGAPI_MAX_CONNECTIONS", default: "1024", doc: "Concurrent connections served; one more gets an immediate 503 ServiceUnavailableError and is closed." },
    KeyDoc { key: "header_read_timeout_secs", env: "IMGAPI_HEADER_READ_TIMEOUT_SECS", default: "10", doc: "A client must send a request's whole header section within this time (slowloris protection); also bounds idle keep-alive waits." },
    KeyDoc { key: "max_header_bytes", env: "IMGAPI_MAX_HEADER_BYTES", default: "65536", doc: "Largest request line + headers accepted (URI included); larger requests get 431." },
    KeyDoc { key: "body_idle_timeout_secs", env: "IMGAPI_BODY_IDLE_TIMEOUT_SECS", default: "120", doc: "An upload that sends no byte for this long is aborted (and leaves nothing behind)." },
    KeyDoc { key: "shutdown_grace_secs", env: "IMGAPI_SHUTDOWN_GRACE_SECS", default: "30", doc: "On SIGTERM/SIGINT: stop accepting, let in-flight requests finish for at most this long." },
    KeyDoc { key: "dsapi", env: "IMGAPI_DSAPI", default: "redirect", doc: "Legacy DSAPI `/datasets` (api.md §6): `redirect` answers 301 to the matching `/images` URL (the original's behaviour); `serve` answers with v1 dataset manifests of the active public images and serves their files at `/datasets/<uuid>/<file>` (docs/dsapi.md)." },
    KeyDoc { key: "export", env: "IMGAPI_EXPORT", default: "(none)", doc: "Where ExportImage (`?action=export&manta_path=…`) writes an image's manifest and file: `kind = \"local\"` with `dir` (written under `<dir>/<manta_path>`), or `kind = \"s3\"` with `bucket`, optional `endpoint`, `region` (us-east-1), `prefix` (credentials as for `storage`). Absent = ExportImage answers 503 StorageUnsupported. In the environment: a JSON object." },
    KeyDoc { key: "upload_session_ttl_secs", env: "IMGAPI_UPLOAD_SESSION_TTL_SECS", default: "86400", doc: "Resumable upload sessions (docs/uploads.md) that receive no chunk for this long expire: their staged bytes (part file or S3 multipart upload) and record are removed by a sweep that runs at start-up and every few minutes (every TTL/4, at most 5 min)." },
    KeyDoc { key: "metrics_listen", env: "IMGAPI_METRICS_LISTEN", default: "127.0.0.1:9108", doc: "Address of a listener of its own serving `GET /metrics` (Prometheus text format, no authentication; docs/operating.md#monitoring). Empty = no metrics listener. Bind it to a private interface." },
    KeyDoc { key: "metrics_on_main", env: "IMGAPI_METRICS_ON_MAIN", default: "false", doc: "Also answer `GET /metrics` on the API listener (`listen`), without authentication, for set-ups that scrape one port only. With neither this nor `metrics_listen`, no metrics are recorded." },
    KeyDoc { key: "catalog", env: "IMGAPI_CATALOG", default: "true", doc: "Serve the read-only HTML catalog (`GET /catalog`, `GET /catalog/:uuid`): the images the caller may see, as ListImages and GetImage show them, with search, a page per image and download links. No JavaScript. `false` = both paths answer 404." },
    KeyDoc { key: "log_level", env: "IMGAPI_LOG_LEVEL", default: "info", doc: "Log filter (tracing `EnvFilter` syntax). Audit lines are logged at info." },
];

/// The file form: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    mode: Option<String>,
    auth_type: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database: Option<DatabaseSection>,
    server_name: Option<String>,
    admin_uuid: Option<String>,
    channels: Option<Vec<ChannelConfig>>,
    log_level: Option<String>,
    auth_keys: Option<std::collections::BTreeMap<String, Vec<String>>>,
    auth_keys_dir: Option<PathBuf>,
    user_accounts: Option<std::collections::BTreeMap<String, uuid::Uuid>>,
    #[serde(default)]
    account_directory: crate::accounts::AccountDirectoryConfig,
    remote: Option<RemoteConfig>,
    datacenter_name: Option<String>,
    datacenters: Option<std::collections::BTreeMap<String, String>>,
    storage: Option<StorageConfig>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    max_header_bytes: Option<usize>,
    body_idle_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    dsapi: Option<String>,
    export: Option<ExportConfig>,
    upload_session_ttl_secs: Option<u64>,
    metrics_listen: Option<String>,
    metrics_on_main: Option<bool>,
    catalog: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            mode: Mode::Public,
            auth_type: AuthType::None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            server_name: format!("imgapi/{}", imgapi_types::API_VERSION),
            admin_uuid: None,
            channels: Vec::new(),
            log_level: "info".into(),
            auth_keys: std::collections::BTreeMap::new(),
            auth_keys_dir: None,
            user_accounts: std::collections::BTreeMap::new(),
            account_directory: Default::default(),
            remote: RemoteConfig::default(),
            datacenter_name: None,
            datacenters: std::collections::BTreeMap::new(),
            storage: StorageConfig::Local,
            tls_cert: None,
            tls_key: None,
            max_connections: 1024,
            header_read_timeout_secs: 10,
            max_header_bytes: 65536,
            body_idle_timeout_secs: 120,
            shutdown_grace_secs: 30,
            dsapi: DsapiMode::Redirect,
            export: None,
            upload_session_ttl_secs: 86_400,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9108))),
            metrics_on_main: false,
            catalog: true,
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// Defaults, overlaid by the file (if any), overlaid by `IMGAPI_*` vars.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut layer = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        // The one place the environment is read (clippy.toml bans it elsewhere).
        #[allow(clippy::disallowed_methods)]
        layer.overlay_env(|name| std::env::var(name).ok())?;
        Config::from_layer(layer)
    }

    /// Build from a TOML string only (tests).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let layer = toml::from_str::<FileConfig>(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        Config::from_layer(layer)
    }

    fn from_layer(layer: FileConfig) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        if let Some(listen) = layer.listen {
            cfg.listen = listen
                .parse()
                .map_err(|e| invalid("listen", format!("{listen:?}: {e}")))?;
        }
        if let Some(mode) = layer.mode {
            cfg.mode = mode.parse().map_err(|e: String| invalid("mode", e))?;
        }
        if let Some(auth) = layer.auth_type {
            cfg.auth_type = match auth.as_str() {
                "none" => AuthType::None,
                "signature" => AuthType::Signature,
                other => {
                    return Err(invalid(
                        "auth_type",
                        format!("unknown auth type `{other}` (options: none, signature)"),
                    ))
                }
            };
        }
        if let Some(dir) = layer.data_dir {
            cfg.data_dir = dir;
        }
        cfg.database_url = match (layer.database_url, layer.database.and_then(|d| d.url)) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "database_url",
                    "set either `database_url` or `[database] url`, not both",
                ))
            }
            (a, b) => a.or(b),
        };
        if let Some(name) = layer.server_name {
            cfg.server_name = name;
        }
        if let Some(admin) = layer.admin_uuid {
            let parsed = uuid::Uuid::parse_str(&admin)
                .map_err(|e| invalid("admin_uuid", format!("{admin:?}: {e}")))?;
            cfg.admin_uuid = Some(parsed);
        }
        if let Some(channels) = layer.channels {
            validate_channels(&channels)?;
            cfg.channels = channels;
        }
        if let Some(level) = layer.log_level {
            cfg.log_level = level;
        }
        if let Some(keys) = layer.auth_keys {
            cfg.auth_keys = keys;
        }
        cfg.auth_keys_dir = layer.auth_keys_dir;
        if let Some(map) = layer.user_accounts {
            cfg.user_accounts = map;
        }
        layer
            .account_directory
            .validate()
            .map_err(|e| invalid("account_directory", e.to_string()))?;
        cfg.account_directory = layer.account_directory;
        apply_remote(
            &mut cfg,
            layer.remote,
            layer.datacenter_name,
            layer.datacenters,
        )?;
        if let Some(storage) = layer.storage {
            if let StorageConfig::S3 { bucket, .. } = &storage {
                if bucket.is_empty() {
                    return Err(invalid("storage", "`bucket` must not be empty"));
                }
            }
            cfg.storage = storage;
        }
        match (layer.tls_cert, layer.tls_key) {
            (Some(c), Some(k)) => {
                cfg.tls_cert = Some(c);
                cfg.tls_key = Some(k);
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "tls_cert",
                    "`tls_cert` and `tls_key` must be set together",
                ))
            }
        }
        if let Some(dsapi) = layer.dsapi {
            cfg.dsapi = match dsapi.as_str() {
                "redirect" => DsapiMode::Redirect,
                "serve" => DsapiMode::Serve,
                other => {
                    return Err(invalid(
                        "dsapi",
                        format!("unknown dsapi mode `{other}` (options: redirect, serve)"),
                    ))
                }
            };
        }
        if let Some(export) = layer.export {
            match &export {
                ExportConfig::Local { dir } if dir.as_os_str().is_empty() => {
                    return Err(invalid("export", "`dir` must not be empty"))
                }
                ExportConfig::S3 { bucket, .. } if bucket.is_empty() => {
                    return Err(invalid("export", "`bucket` must not be empty"))
                }
                _ => {}
            }
            cfg.export = Some(export);
        }
        set_positive(
            &mut cfg.max_connections,
            layer.max_connections,
            "max_connections",
        )?;
        set_positive(
            &mut cfg.header_read_timeout_secs,
            layer.header_read_timeout_secs,
            "header_read_timeout_secs",
        )?;
        set_positive(
            &mut cfg.max_header_bytes,
            layer.max_header_bytes,
            "max_header_bytes",
        )?;
        set_positive(
            &mut cfg.body_idle_timeout_secs,
            layer.body_idle_timeout_secs,
            "body_idle_timeout_secs",
        )?;
        set_positive(
            &mut cfg.shutdown_grace_secs,
            layer.shutdown_grace_secs,
            "shutdown_grace_secs",
        )?;
        set_positive(
            &mut cfg.upload_session_ttl_secs,
            layer.upload_session_ttl_secs,
            "upload_session_ttl_secs",
        )?;
        if let Some(addr) = layer.metrics_listen {
            cfg.metrics_listen = match addr.trim() {
                "" => None,
                a => Some(
                    a.parse()
                        .map_err(|e| invalid("metrics_listen", format!("{addr:?}: {e}")))?,
                ),
            };
        }
        if let Some(on) = layer.metrics_on_main {
            cfg.metrics_on_main = on;
        }
        if let Some(on) = layer.catalog {
            cfg.catalog = on;
        }
        Ok(cfg)
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("imgapi.sqlite").display())
        })
    }

    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }

    pub fn serve_limits(&self) -> crate::serve::ServeLimits {
        crate::serve::ServeLimits {
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_header_bytes: self.max_header_bytes,
            tls_handshake_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

impl FileConfig {
    fn overlay_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("IMGAPI_LISTEN") {
            self.listen = Some(v);
        }
        if let Some(v) = get("IMGAPI_MODE") {
            self.mode = Some(v);
        }
        if let Some(v) = get("IMGAPI_AUTH_TYPE") {
            self.auth_type = Some(v);
        }
        if let Some(v) = get("IMGAPI_DATA_DIR") {
            self.data_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("IMGAPI_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("IMGAPI_SERVER_NAME") {
            self.server_name = Some(v);
        }
        if let Some(v) = get("IMGAPI_ADMIN_UUID") {
            self.admin_uuid = Some(v);
        }
        env_json(
            &get,
            "IMGAPI_CHANNELS",
            "channels",
            "a JSON array of channel objects",
            &mut self.channels,
        )?;
        if let Some(v) = get("IMGAPI_LOG_LEVEL") {
            self.log_level = Some(v);
        }
        env_json(
            &get,
            "IMGAPI_AUTH_KEYS",
            "auth_keys",
            "a JSON object of key lists",
            &mut self.auth_keys,
        )?;
        env_json(
            &get,
            "IMGAPI_STORAGE",
            "storage",
            "a JSON storage object",
            &mut self.storage,
        )?;
        if let Some(v) = get("IMGAPI_ACCOUNT_DIRECTORY") {
            self.account_directory = serde_json::from_str(&v).map_err(|e| {
                invalid(
                    "account_directory",
                    format!("IMGAPI_ACCOUNT_DIRECTORY is not a JSON directory object: {e}"),
                )
            })?;
        }
        env_json(
            &get,
            "IMGAPI_REMOTE",
            "remote",
            "a JSON object of [remote] keys",
            &mut self.remote,
        )?;
        if let Some(v) = get("IMGAPI_DATACENTER_NAME") {
            self.datacenter_name = Some(v);
        }
        env_json(
            &get,
            "IMGAPI_DATACENTERS",
            "datacenters",
            "a JSON object of URLs",
            &mut self.datacenters,
        )?;
        env_json(
            &get,
            "IMGAPI_USER_ACCOUNTS",
            "user_accounts",
            "a JSON object of account uuids",
            &mut self.user_accounts,
        )?;
        if let Some(v) = get("IMGAPI_DSAPI") {
            self.dsapi = Some(v);
        }
        env_json(
            &get,
            "IMGAPI_EXPORT",
            "export",
            "a JSON export object",
            &mut self.export,
        )?;
        if let Some(v) = get("IMGAPI_AUTH_KEYS_DIR") {
            self.auth_keys_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = get("IMGAPI_TLS_CERT") {
            self.tls_cert = Some(PathBuf::from(v));
        }
        if let Some(v) = get("IMGAPI_TLS_KEY") {
            self.tls_key = Some(PathBuf::from(v));
        }
        env_number(
            &get,
            "IMGAPI_MAX_CONNECTIONS",
            "max_connections",
            &mut self.max_connections,
        )?;
        env_number(
            &get,
            "IMGAPI_HEADER_READ_TIMEOUT_SECS",
            "header_read_timeout_secs",
            &mut self.header_read_timeout_secs,
        )?;
        env_number(
            &get,
            "IMGAPI_MAX_HEADER_BYTES",
            "max_header_bytes",
            &mut self.max_header_bytes,
        )?;
        env_number(
            &get,
            "IMGAPI_BODY_IDLE_TIMEOUT_SECS",
            "body_idle_timeout_secs",
            &mut self.body_idle_timeout_secs,
        )?;
        env_number(
            &get,
            "IMGAPI_SHUTDOWN_GRACE_SECS",
            "shutdown_grace_secs",
            &mut self.shutdown_grace_secs,
        )?;
        env_number(
            &get,
            "IMGAPI_UPLOAD_SESSION_TTL_SECS",
            "upload_session_ttl_secs",
            &mut self.upload_session_ttl_secs,
        )?;
        if let Some(v) = get("IMGAPI_METRICS_LISTEN") {
            self.metrics_listen = Some(v);
        }
        if let Some(v) = get("IMGAPI_METRICS_ON_MAIN") {
            let on = v.trim().parse().map_err(|_| {
                invalid(
                    "metrics_on_main",
                    format!("IMGAPI_METRICS_ON_MAIN={v:?} is not true or false"),
                )
            })?;
            self.metrics_on_main = Some(on);
        }
        if let Some(v) = get("IMGAPI_CATALOG") {
            let on = v.trim().parse().map_err(|_| {
                invalid(
                    "catalog",
                    format!("IMGAPI_CATALOG={v:?} is not true or false"),
                )
            })?;
            self.catalog = Some(on);
        }
        Ok(())
    }
}

/// `var`, when set, parsed as JSON into `slot`; `what` describes the
/// expected value in the error.
fn env_json<T: serde::de::DeserializeOwned>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    key: &'static str,
    what: &str,
    slot: &mut Option<T>,
) -> Result<(), ConfigError> {
    if let Some(v) = get(var) {
        let parsed = serde_json::from_str(&v)
            .map_err(|e| invalid(key, format!("{var} is not {what}: {e}")))?;
        *slot = Some(parsed);
    }
    Ok(())
}

fn env_number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    key: &'static str,
    slot: &mut Option<T>,
) -> Result<(), ConfigError> {
    if let Some(v) = get(var) {
        let parsed = v
            .trim()
            .parse()
            .map_err(|_| invalid(key, format!("{var}={v:?} is not a number")))?;
        *slot = Some(parsed);
    }
    Ok(())
}

fn set_positive<T: PartialOrd + Default + Copy>(
    slot: &mut T,
    value: Option<T>,
    key: &'static str,
) -> Result<(), ConfigError> {
    match value {
        Some(v) if v <= T::default() => Err(invalid(key, "must be greater than 0")),
        Some(v) => {
            *slot = v;
            Ok(())
        }
        None => Ok(()),
    }
}

/// `[remote]`, `datacenter_name` and `[datacenters]`, checked.
fn apply_remote(
    cfg: &mut Config,
    remote: Option<RemoteConfig>,
    datacenter_name: Option<String>,
    datacenters: Option<std::collections::BTreeMap<String, String>>,
) -> Result<(), ConfigError> {
    if let Some(remote) = remote {
        if remote.connect_timeout_secs == 0 || remote.read_timeout_secs == 0 {
            return Err(invalid("remote", "timeouts must be greater than 0"));
        }
        if remote.allowed_hosts.iter().any(|h| h.trim().is_empty()) {
            return Err(invalid("remote", "`allowed_hosts` has an empty entry"));
        }
        cfg.remote = remote;
    }
    if let Some(name) = datacenter_name {
        if name.is_empty() {
            return Err(invalid("datacenter_name", "must not be empty"));
        }
        cfg.datacenter_name = Some(name);
    }
    for (name, url) in datacenters.iter().flatten() {
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if name.is_empty() || !scheme_ok {
            return Err(invalid(
                "datacenters",
                format!("{name:?} = {url:?}: expected a name and an http(s):// URL"),
            ));
        }
    }
    if let Some(map) = datacenters {
        cfg.datacenters = map;
    }
    Ok(())
}

fn validate_channels(channels: &[ChannelConfig]) -> Result<(), ConfigError> {
    for ch in channels {
        let mut chars = ch.name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            return Err(invalid(
                "channels",
                format!("channel name {:?} must match ^[a-z][a-z0-9_-]*$", ch.name),
            ));
        }
    }
    let defaults = channels.iter().filter(|c| c.default == Some(true)).count();
    if defaults > 1 {
        return Err(invalid(
            "channels",
            "at most one channel may have `default = true`",
        ));
    }
    for (i, ch) in channels.iter().enumerate() {
        if channels[..i].iter().any(|c| c.name == ch.name) {
            return Err(invalid(
                "channels",
                format!("channel {:?} is listed twice", ch.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_config() {
        let cfg = Config::from_toml("").ok();
        assert_eq!(cfg, Some(Config::default()));
        let cfg = Config::default();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.mode, Mode::Public);
    }

    /// The example configs and the systemd unit's paths stay loadable.
    #[test]
    fn example_configs_parse() {
        let embedded = Config::from_toml(include_str!("../../../etc/examples/embedded.toml"))
            .map_err(|e| e.to_string());
        assert!(
            matches!(embedded, Ok(ref c) if c.data_dir == std::path::Path::new("/var/lib/imgapi")),
            "{embedded:?}"
        );
        let scaled = Config::from_toml(include_str!("../../../etc/examples/scaled-out.toml"))
            .map_err(|e| e.to_string());
        assert!(
            matches!(scaled, Ok(ref c) if matches!(c.storage, StorageConfig::S3 { .. })),
            "{scaled:?}"
        );
    }

    #[test]
    fn channels_and_errors() {
        let cfg = Config::from_toml(
            "mode = \"private\"\n[[channels]]\nname = \"dev\"\ndescription = \"d\"\ndefault = true\n[[channels]]\nname = \"release\"\n",
        );
        assert!(matches!(cfg, Ok(ref c) if c.channels.len() == 2 && c.mode == Mode::Private));
        let err = Config::from_toml("mode = \"bogus\"")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid value for `mode`: unknown mode `bogus` (options: public, private, dc)")
        );
        assert!(Config::from_toml("[[channels]]\nname = \"Bad\"").is_err());
        assert!(Config::from_toml("bogus_key = 1").is_err());
    }

    #[test]
    fn example_config_lists_every_key_and_parses() {
        let text = include_str!("../../../etc/imgapi.toml");
        for k in KEYS {
            assert!(
                text.contains(k.key),
                "etc/imgapi.toml does not mention `{}`",
                k.key
            );
            assert!(
                text.contains(k.env),
                "etc/imgapi.toml does not mention `{}`",
                k.env
            );
        }
        assert!(Config::from_toml(text).is_ok());
    }

    #[test]
    fn database_table_form() {
        let cfg = Config::from_toml("[database]\nurl = \"postgres://db/imgapi\"\n");
        assert!(matches!(cfg, Ok(ref c) if c.database_url() == "postgres://db/imgapi"));
        let both = Config::from_toml(
            "database_url = \"sqlite://x\"\n[database]\nurl = \"postgres://db/x\"\n",
        );
        assert!(both.is_err());
    }

    #[test]
    fn dsapi_and_export() {
        let cfg = Config::from_toml(
            "dsapi = \"serve\"\n[export]\nkind = \"local\"\ndir = \"/srv/export\"\n",
        );
        assert!(matches!(cfg, Ok(ref c) if c.dsapi == DsapiMode::Serve
            && c.export == Some(ExportConfig::Local { dir: PathBuf::from("/srv/export") })));
        let cfg = Config::from_toml("[export]\nkind = \"s3\"\nbucket = \"b\"\n");
        assert!(matches!(cfg, Ok(ref c) if c.dsapi == DsapiMode::Redirect
            && matches!(&c.export, Some(ExportConfig::S3 { region, prefix, .. })
                if region == "us-east-1" && prefix.is_empty())));
        assert!(Config::from_toml("dsapi = \"proxy\"").is_err());
        assert!(Config::from_toml("[export]\nkind = \"s3\"\nbucket = \"\"\n").is_err());
        assert!(Config::from_toml("[export]\nkind = \"local\"\n").is_err());
        let mut layer = FileConfig::default();
        let env = |k: &str| match k {
            "IMGAPI_DSAPI" => Some("serve".to_string()),
            "IMGAPI_EXPORT" => Some(r#"{"kind":"local","dir":"/x"}"#.to_string()),
            _ => None,
        };
        assert!(layer.overlay_env(env).is_ok());
        let cfg = Config::from_layer(layer).ok();
        assert!(matches!(cfg, Some(ref c) if c.dsapi == DsapiMode::Serve && c.export.is_some()));
    }

    #[test]
    fn remote_and_datacenters() {
        let cfg = Config::default();
        assert_eq!(cfg.remote, RemoteConfig::default());
        assert!(!cfg.remote.allow_http && !cfg.remote.allow_private_addresses);
        assert_eq!(cfg.remote.max_redirects, 5);
        let cfg = Config::from_toml(
            "datacenter_name = \"us-east-1\"\n[remote]\nallow_http = true\nallowed_hosts = [\"images.example.com\"]\n[datacenters]\nus-west-1 = \"https://imgapi.us-west-1.example.com\"\n",
        );
        assert!(matches!(cfg, Ok(ref c) if c.remote.allow_http
            && c.remote.read_timeout_secs == 60
            && c.remote.allowed_hosts == ["images.example.com"]
            && c.datacenter_name.as_deref() == Some("us-east-1")
            && c.datacenters.len() == 1));
        assert!(Config::from_toml("[remote]\nbogus = 1\n").is_err());
        assert!(Config::from_toml("[remote]\nread_timeout_secs = 0\n").is_err());
        assert!(Config::from_toml("[datacenters]\nx = \"ftp://x\"\n").is_err());
        let mut layer = FileConfig::default();
        let env = |k: &str| match k {
            "IMGAPI_REMOTE" => Some(r#"{"allow_private_addresses":true}"#.to_string()),
            "IMGAPI_DATACENTER_NAME" => Some("dc1".to_string()),
            "IMGAPI_DATACENTERS" => Some(r#"{"dc2":"http://10.0.0.2"}"#.to_string()),
            _ => None,
        };
        assert!(layer.overlay_env(env).is_ok());
        let cfg = Config::from_layer(layer).ok();
        assert!(
            matches!(cfg, Some(ref c) if c.remote.allow_private_addresses
            && c.datacenters.get("dc2").map(String::as_str) == Some("http://10.0.0.2"))
        );
    }

    #[test]
    fn metrics_keys() {
        let cfg = Config::default();
        assert_eq!(
            cfg.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9108")
        );
        assert!(!cfg.metrics_on_main);
        let cfg = Config::from_toml("metrics_listen = \"\"\nmetrics_on_main = true\n");
        assert!(matches!(cfg, Ok(ref c) if c.metrics_listen.is_none() && c.metrics_on_main));
        let cfg = Config::from_toml("metrics_listen = \"0.0.0.0:9200\"\n");
        assert!(matches!(cfg, Ok(ref c) if c.metrics_listen.map(|a| a.port()) == Some(9200)));
        assert!(Config::from_toml("metrics_listen = \"nowhere\"\n").is_err());
        let mut layer = FileConfig::default();
        let env = |k: &str| match k {
            "IMGAPI_METRICS_LISTEN" => Some(String::new()),
            "IMGAPI_METRICS_ON_MAIN" => Some("true".to_string()),
            _ => None,
        };
        assert!(layer.overlay_env(env).is_ok());
        let cfg = Config::from_layer(layer).ok();
        assert!(matches!(cfg, Some(ref c) if c.metrics_listen.is_none() && c.metrics_on_main));
        let mut layer = FileConfig::default();
        assert!(layer
            .overlay_env(|k| (k == "IMGAPI_METRICS_ON_MAIN").then(|| "yes".to_string()))
            .is_err());
    }

    #[test]
    fn env_overlay() {
        let mut layer = FileConfig::default();
        let env = |k: &str| match k {
            "IMGAPI_MODE" => Some("dc".to_string()),
            "IMGAPI_CHANNELS" => Some(r#"[{"name":"dev","default":true}]"#.to_string()),
            _ => None,
        };
        assert!(layer.overlay_env(env).is_ok());
        let cfg = Config::from_layer(layer).ok();
        assert!(matches!(cfg, Some(ref c) if c.mode == Mode::Dc && c.channels.len() == 1));
    }
}
