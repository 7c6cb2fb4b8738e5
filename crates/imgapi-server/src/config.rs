//! Typed configuration, layered: built-in defaults → TOML file → `IMGAPI_*`
//! environment variables. This is the only module that reads the environment.
//!
//! Every key is declared once, in [`keys`]; `docs/config.md` is generated
//! from [`KEYS`].

#[macro_use]
mod declare;
mod env;
mod keys;
mod sections;

use std::path::{Path, PathBuf};

use keys::FileConfig;
pub use keys::{Config, KEYS};
use sections::DatabaseSection;
pub use sections::{
    AuthType, ChangesConfig, ChannelConfig, DockerConfig, DsapiMode, ExportConfig, LifecycleConfig,
    LxdConfig, OwnerQuota, QuotasConfig, RemoteConfig, RetentionConfig, RetentionRuleConfig,
    S3Credentials, SigningConfig, SimplestreamsConfig, StorageConfig, WebhookEndpointConfig,
    WebhooksConfig,
};

/// A documented configuration key.
pub struct KeyDoc {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
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
            cfg.auth_type = choice(
                "auth_type",
                "auth type",
                &auth,
                &[("none", AuthType::None), ("signature", AuthType::Signature)],
            )?;
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
        let account_directory = layer.account_directory.unwrap_or_default();
        account_directory
            .validate()
            .map_err(|e| invalid("account_directory", e.to_string()))?;
        cfg.account_directory = account_directory;
        apply_remote(
            &mut cfg,
            layer.remote,
            layer.datacenter_name,
            layer.datacenters,
        )?;
        if let Some(docker) = layer.docker {
            if docker
                .insecure_registries
                .iter()
                .any(|h| h.trim().is_empty())
            {
                return Err(invalid(
                    "docker",
                    "`insecure_registries` has an empty entry",
                ));
            }
            cfg.docker = docker;
        }
        if let Some(retention) = layer.retention {
            for (i, rule) in retention.rules.iter().enumerate() {
                rule.spec().validate().map_err(|e| {
                    invalid("retention", format!("rules[{}] (config-{}): {e}", i, i + 1))
                })?;
            }
            cfg.retention = retention;
        }
        if let Some(signing) = layer.signing {
            cfg.signing = signing;
        }
        if let Some(quotas) = layer.quotas {
            cfg.quotas = quotas;
        }
        if let Some(lxd) = layer.lxd {
            validate_lxd(&lxd)?;
            cfg.lxd = lxd;
        }
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
            cfg.dsapi = choice(
                "dsapi",
                "dsapi mode",
                &dsapi,
                &[
                    ("redirect", DsapiMode::Redirect),
                    ("serve", DsapiMode::Serve),
                ],
            )?;
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
        if let Some(simplestreams) = layer.simplestreams {
            cfg.simplestreams = simplestreams;
        }
        if let Some(lifecycle) = layer.lifecycle {
            if let Some(why) = lifecycle.invalid() {
                return Err(invalid("lifecycle", why));
            }
            cfg.lifecycle = lifecycle;
        }
        if let Some(changes) = layer.changes {
            if let Some(why) = changes.invalid() {
                return Err(invalid("changes", why));
            }
            cfg.changes = changes;
        }
        if let Some(webhooks) = layer.webhooks {
            if let Some(why) = webhooks.invalid() {
                return Err(invalid("webhooks", why));
            }
            cfg.webhooks = webhooks;
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

    /// Why `imgapi` must not serve with this configuration, if it must not.
    pub fn refusal_to_serve(&self) -> Option<&'static str> {
        (self.mode == imgapi_domain::Mode::Dc && !self.channels.is_empty())
            .then_some(DC_MODE_CHANNELS)
    }

    /// The metadata store is the embedded SQLite database (one server per
    /// `data_dir`).
    pub fn embedded_database(&self) -> bool {
        matches!(self.database_url().parse(), Ok(imgapi_meta::Engine::Sqlite))
    }
}

/// The refusal of dc mode with channels: the original IMGAPI in dc mode
/// accepts the configuration, lists the channels, then refuses every
/// image that has any.
pub const DC_MODE_CHANNELS: &str = "mode = \"dc\" with [[channels]] is not supported: in dc mode \
     every image with channels is refused (\"channels is invalid with an IMGAPI not configured \
     for channels\", as the original IMGAPI does); remove the [[channels]] entries (or \
     IMGAPI_CHANNELS), or use mode = \"public\" or \"private\"";

/// The value `options` names `value`, or an error listing the options.
fn choice<T: Copy>(
    key: &'static str,
    noun: &str,
    value: &str,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    match options.iter().find(|(name, _)| *name == value) {
        Some(&(_, chosen)) => Ok(chosen),
        None => {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            Err(invalid(
                key,
                format!("unknown {noun} `{value}` (options: {})", names.join(", ")),
            ))
        }
    }
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

/// `[lxd] remotes`: a name without `:` (it ends the remote part of an
/// alias) and an http(s) URL each.
fn validate_lxd(lxd: &LxdConfig) -> Result<(), ConfigError> {
    for (name, url) in &lxd.remotes {
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if name.is_empty() || name.contains(':') || !scheme_ok {
            return Err(invalid(
                "lxd",
                format!("remotes: {name:?} = {url:?}: expected a name without ':' and an http(s):// URL"),
            ));
        }
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
    use imgapi_domain::Mode;

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
    fn simplestreams_is_off_unless_enabled() {
        assert!(!Config::default().simplestreams.enabled);
        let cfg = Config::from_toml("[simplestreams]\nenabled = true\n");
        assert!(matches!(cfg, Ok(ref c) if c.simplestreams.enabled));
        assert!(Config::from_toml("[simplestreams]\nenable = true\n").is_err());
        let mut layer = FileConfig::default();
        let env =
            |k: &str| (k == "IMGAPI_SIMPLESTREAMS").then(|| r#"{"enabled":true}"#.to_string());
        assert!(layer.overlay_env(env).is_ok());
        let cfg = Config::from_layer(layer).ok();
        assert!(matches!(cfg, Some(ref c) if c.simplestreams.enabled));
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

    #[test]
    fn error_messages() {
        let toml_error = |text: &str| Config::from_toml(text).err().map(|e| e.to_string());
        assert_eq!(
            toml_error("auth_type = \"x\"").as_deref(),
            Some("invalid value for `auth_type`: unknown auth type `x` (options: none, signature)")
        );
        assert_eq!(
            toml_error("dsapi = \"proxy\"").as_deref(),
            Some(
                "invalid value for `dsapi`: unknown dsapi mode `proxy` (options: redirect, serve)"
            )
        );
        let env_error = |var: &'static str, value: &'static str| {
            FileConfig::default()
                .overlay_env(|k| (k == var).then(|| value.to_string()))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            env_error("IMGAPI_MAX_CONNECTIONS", "many").as_deref(),
            Some("invalid value for `max_connections`: IMGAPI_MAX_CONNECTIONS=\"many\" is not a number")
        );
        assert_eq!(
            env_error("IMGAPI_CATALOG", "yes").as_deref(),
            Some("invalid value for `catalog`: IMGAPI_CATALOG=\"yes\" is not true or false")
        );
        let directory = env_error("IMGAPI_ACCOUNT_DIRECTORY", "nope").unwrap_or_default();
        assert!(
            directory.starts_with(
                "invalid value for `account_directory`: IMGAPI_ACCOUNT_DIRECTORY is not a JSON directory object: "
            ),
            "{directory}"
        );
        assert_eq!(env_error("IMGAPI_LISTEN", "nowhere"), None);
    }

    /// The defaults the documentation shows are the defaults in force.
    #[test]
    fn documented_defaults_are_the_defaults() {
        let cfg = Config::default();
        let metrics_listen = cfg
            .metrics_listen
            .map(|a| a.to_string())
            .unwrap_or_default();
        let actual = [
            ("listen", cfg.listen.to_string()),
            ("data_dir", cfg.data_dir.display().to_string()),
            ("server_name", cfg.server_name.clone()),
            ("max_connections", cfg.max_connections.to_string()),
            (
                "header_read_timeout_secs",
                cfg.header_read_timeout_secs.to_string(),
            ),
            ("max_header_bytes", cfg.max_header_bytes.to_string()),
            (
                "body_idle_timeout_secs",
                cfg.body_idle_timeout_secs.to_string(),
            ),
            ("shutdown_grace_secs", cfg.shutdown_grace_secs.to_string()),
            (
                "upload_session_ttl_secs",
                cfg.upload_session_ttl_secs.to_string(),
            ),
            ("metrics_listen", metrics_listen),
            ("metrics_on_main", cfg.metrics_on_main.to_string()),
            ("catalog", cfg.catalog.to_string()),
            (
                "simplestreams",
                format!("enabled = {}", cfg.simplestreams.enabled),
            ),
            (
                "lifecycle",
                format!(
                    "recycle_days = {}, abandoned_upload_hours = {}, sweep_interval_secs = {}",
                    cfg.lifecycle.recycle_days,
                    cfg.lifecycle.abandoned_upload_hours,
                    cfg.lifecycle.sweep_interval_secs
                ),
            ),
            ("log_level", cfg.log_level.clone()),
        ];
        for (key, value) in actual {
            let shown = KEYS.iter().find(|k| k.key == key).map(|k| k.default);
            assert_eq!(shown, Some(value.as_str()), "{key}");
        }
    }
}
