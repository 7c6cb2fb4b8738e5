//! AppState: everything a request needs, built once from the Config.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imgapi_blob::local::LocalBlobStore;
use imgapi_blob::s3::{S3BlobStore, S3Config, S3Timeouts};
use imgapi_blob::BlobStore;
use imgapi_domain::redact::redact_url;
use imgapi_domain::RuleContext;
use imgapi_meta::MetaStore;

use crate::config::{AuthType, ChannelConfig, Config, StorageConfig};

/// Shared state of a running server.
pub struct AppState {
    pub config: Config,
    pub meta: Arc<dyn MetaStore>,
    /// Where new files go.
    pub blobs: Arc<dyn BlobStore>,
    /// Further stores files may live in (`files[].stor` names the store).
    pub extra_blobs: Vec<Arc<dyn BlobStore>>,
    pub auth_keys: Arc<crate::auth_keys::AuthKeys>,
    /// `[signing] allowed_signers`: keys trusted as operators' for image
    /// signatures (empty when not configured).
    pub operator_signers: Arc<imgapi_signing::AllowedSigners>,
    pub list_cache: crate::service::list_cache::ListCache,
    /// The last round of `GET /health` checks.
    pub health: crate::service::health::HealthCache,
    pub accounts: Arc<dyn crate::accounts::AccountDirectory>,
    /// Outbound HTTP under the `[remote]` policy (remote imports).
    pub remote: crate::service::import::fetch::Fetcher,
    /// The Docker/OCI registry client (`[docker]`, `[remote]` policy).
    pub registry: crate::service::docker::registry::RegistryClient,
    /// This instance's job identity (leases) and job-runner wake-up.
    pub jobs: crate::service::import::jobs::Jobs,
    /// This instance (and run) as a holder of upload-session leases.
    pub upload_leases: crate::service::uploads::LeaseHolder,
    /// ExportImage's target (`[export]`); `None` = not configured.
    pub export: Option<crate::service::export::ExportTarget>,
    pub hostname: String,
    pub started: Instant,
    /// Prometheus registry (disabled for tools and with metrics off).
    pub metrics: crate::telemetry::Metrics,
}

pub type App = Arc<AppState>;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("[signing] allowed_signers: {0}")]
    Signing(String),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open metadata database {url}: {source}")]
    Meta {
        url: String,
        source: imgapi_meta::MetaError,
    },
    #[error("cannot open file storage {location}: {source}")]
    Blob {
        location: String,
        source: imgapi_blob::BlobError,
    },
    #[error("cannot load auth keys from {path}: {source}")]
    AuthKeys {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("account directory: {0}")]
    AccountDirectory(#[from] crate::accounts::DirectoryError),
    #[error("outbound HTTP client: {0}")]
    Remote(String),
    /// S3 storage without credentials (no call to a metadata service
    /// nobody configured).
    #[error("{0}")]
    Credentials(String),
}

impl AppState {
    /// Open the stores named by the config and sweep upload leftovers.
    pub async fn open(config: Config) -> Result<App, StartupError> {
        Self::open_inner(config, false).await
    }

    /// Open the stores named by the config for an admin command that runs
    /// beside a server on the same configuration (`imgapi mirror`): no
    /// staging sweep (it would remove the server's uploads in progress)
    /// and no export target. No job runner runs unless the caller starts
    /// one.
    pub async fn open_for_tool(config: Config) -> Result<App, StartupError> {
        Self::open_inner(config, true).await
    }

    async fn open_inner(config: Config, tool: bool) -> Result<App, StartupError> {
        let (auth_keys, stats) = crate::auth_keys::AuthKeys::load(
            config.auth_keys.clone(),
            config.auth_keys_dir.clone(),
        )
        .map_err(|source| StartupError::AuthKeys {
            path: config.auth_keys_dir.clone().unwrap_or_default(),
            source,
        })?;
        let operator_signers = match &config.signing.allowed_signers {
            Some(path) => {
                let signers = imgapi_signing::AllowedSigners::read(path)
                    .map_err(|e| StartupError::Signing(e.to_string()))?;
                for skipped in &signers.skipped {
                    tracing::warn!(file = %path.display(), "[signing] allowed_signers: {skipped}");
                }
                signers
            }
            None => imgapi_signing::AllowedSigners::default(),
        };
        if config.auth_type == AuthType::Signature {
            tracing::info!(
                users = stats.users,
                keys = stats.keys,
                skipped = stats.skipped,
                "auth keys loaded"
            );
        }
        if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
            crate::tls::acceptor(cert, key)?; // fail at start-up, naming the bad file
        }
        let accounts = crate::accounts::open(&config.account_directory).await?;
        let remote =
            crate::service::import::fetch::Fetcher::new(&config.remote, &config.server_name)
                .map_err(StartupError::Remote)?;
        let registry = crate::service::docker::registry::RegistryClient::new(
            &config.remote,
            &config.docker,
            &config.server_name,
        )
        .map_err(StartupError::Remote)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let url = config.database_url();
        let meta = imgapi_meta::open(&url)
            .await
            .map_err(|source| StartupError::Meta {
                url: redact_url(&url).into_owned(),
                source,
            })?;
        let metrics = if !tool && (config.metrics_listen.is_some() || config.metrics_on_main) {
            crate::telemetry::Metrics::new()
        } else {
            crate::telemetry::Metrics::disabled()
        };
        let meta_breaker = crate::breaker::for_meta(&meta, &url, &metrics);
        let meta = crate::telemetry::backend::meter_meta(meta, &metrics, &url, meta_breaker);
        let first_byte = match &config.storage {
            StorageConfig::S3 {
                first_byte_timeout_secs,
                ..
            } => Some(Duration::from_secs(*first_byte_timeout_secs)),
            StorageConfig::Local => None,
        };
        let guarded_blobs = |blobs: Arc<dyn BlobStore>| {
            let breaker = crate::breaker::for_blobs(&blobs, &metrics);
            let first_byte = first_byte.filter(|_| breaker.is_some());
            crate::telemetry::backend::meter_blobs(blobs, &metrics, breaker, first_byte)
        };
        let blobs = guarded_blobs(open_blobs(&config).await?);
        let extra_blobs: Vec<_> = open_extra_blobs(&config)?
            .into_iter()
            .map(guarded_blobs)
            .collect();
        for extra in extra_blobs.iter().filter(|_| !tool) {
            if let Err(e) = extra.sweep_staging().await {
                tracing::warn!(error = %e, store = extra.kind(), "could not sweep staging area");
            }
        }
        let export = match &config.export {
            Some(cfg) if !tool => Some(
                crate::service::export::ExportTarget::open(cfg)
                    .await
                    .map_err(|source| StartupError::Blob {
                        location: crate::service::export::ExportTarget::describe(cfg),
                        source,
                    })?,
            ),
            _ => None,
        };
        if !tool {
            match blobs.sweep_staging().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "swept interrupted uploads"),
                Err(e) => tracing::warn!(error = %e, "could not sweep staging area"),
            }
        }
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        let upload_leases = crate::service::uploads::LeaseHolder::new(&hostname, config.listen);
        Ok(Arc::new(AppState {
            config,
            meta,
            blobs,
            extra_blobs,
            auth_keys: Arc::new(auth_keys),
            operator_signers: Arc::new(operator_signers),
            list_cache: Default::default(),
            health: Default::default(),
            accounts,
            remote,
            registry,
            export,
            jobs: crate::service::import::jobs::Jobs::new(&hostname),
            upload_leases,
            hostname,
            started: Instant::now(),
            metrics,
        }))
    }

    pub fn rules(&self) -> RuleContext {
        RuleContext {
            mode: self.config.mode,
            channels_enabled: self.channels_enabled(),
        }
    }

    pub fn body_idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.body_idle_timeout_secs)
    }

    /// The store a file with `stor` lives in (records written before a
    /// store change may name another configured store).
    pub fn blob_store(&self, stor: &str) -> Option<&Arc<dyn BlobStore>> {
        if stor.is_empty() || stor == self.blobs.kind() {
            return Some(&self.blobs);
        }
        self.extra_blobs.iter().find(|b| b.kind() == stor)
    }

    /// Every configured storage type, the default first.
    pub fn storage_kinds(&self) -> Vec<&'static str> {
        std::iter::once(self.blobs.kind())
            .chain(self.extra_blobs.iter().map(|b| b.kind()))
            .collect()
    }

    /// GetImageFile redirects to the object store.
    pub fn redirect_downloads(&self) -> bool {
        matches!(
            self.config.storage,
            StorageConfig::S3 {
                redirect_downloads: true,
                ..
            }
        )
    }

    pub fn channels_enabled(&self) -> bool {
        !self.config.channels.is_empty()
    }

    pub fn channels(&self) -> &[ChannelConfig] {
        &self.config.channels
    }

    pub fn default_channel(&self) -> Option<&ChannelConfig> {
        self.config
            .channels
            .iter()
            .find(|c| c.default == Some(true))
    }
}

/// The configured blob store, checked to be reachable.
pub(crate) async fn open_blobs(config: &Config) -> Result<Arc<dyn BlobStore>, StartupError> {
    match &config.storage {
        StorageConfig::Local => {
            let dir = config.files_dir();
            let store = LocalBlobStore::open(&dir).map_err(|source| StartupError::Blob {
                location: dir.display().to_string(),
                source,
            })?;
            Ok(Arc::new(store))
        }
        StorageConfig::S3 {
            endpoint,
            bucket,
            region,
            prefix,
            redirect_downloads: _,
            local_secondary: _,
            credentials,
            connect_timeout_secs,
            first_byte_timeout_secs: _,
            stall_timeout_secs,
        } => {
            if let Some(why) = credentials.missing_from_env("storage") {
                return Err(StartupError::Credentials(why));
            }
            let location = format!(
                "s3 bucket {bucket:?} at {}",
                endpoint.as_deref().unwrap_or("AWS")
            );
            let timeouts = S3Timeouts {
                connect: Duration::from_secs(*connect_timeout_secs),
                stall: Duration::from_secs(*stall_timeout_secs),
            };
            let config = S3Config {
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
                region: region.clone(),
                prefix: prefix.clone(),
                access_key_id: None,
                secret_access_key: None,
            };
            let store =
                S3BlobStore::open_with(config, timeouts).map_err(|source| StartupError::Blob {
                    location: location.clone(),
                    source,
                })?;
            store
                .check()
                .await
                .map_err(|source| StartupError::Blob { location, source })?;
            Ok(Arc::new(store))
        }
    }
}

/// The local second store of an S3 set-up, when asked for.
pub(crate) fn open_extra_blobs(config: &Config) -> Result<Vec<Arc<dyn BlobStore>>, StartupError> {
    match &config.storage {
        StorageConfig::S3 {
            local_secondary: true,
            ..
        } => {
            let dir = config.files_dir();
            let store = LocalBlobStore::open(&dir).map_err(|source| StartupError::Blob {
                location: dir.display().to_string(),
                source,
            })?;
            Ok(vec![Arc::new(store)])
        }
        _ => Ok(Vec::new()),
    }
}
