//! CNCF distribution (`docker-registry serve`) as a plain child process.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::token::{Grant, TokenIssuer, TokenUser};
use crate::{free_port, Error};

const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// How the registry authenticates.
#[derive(Clone, Debug)]
pub enum RegistryKind {
    /// Anyone may pull and push.
    Open,
    /// HTTP Basic against an htpasswd (bcrypt) file of these `(user, password)`.
    Basic { users: Vec<(String, String)> },
    /// The Bearer token flow, with an in-process [`TokenIssuer`] that knows
    /// these users and grants `anonymous` to requests without credentials.
    Token {
        users: Vec<TokenUser>,
        anonymous: Vec<Grant>,
    },
}

/// A running registry; killed (by PID) when dropped.
pub struct Registry {
    port: u16,
    config_path: PathBuf,
    child: Option<Child>,
    issuer: Option<TokenIssuer>,
    /// Config, htpasswd and log.
    work: TempDir,
    storage: TempDir,
}

impl Registry {
    /// Writes the configuration, starts `docker-registry serve` on a free
    /// port and waits until `GET /v2/` answers.
    pub async fn start(kind: RegistryKind) -> Result<Registry, Error> {
        let work = tempfile::tempdir().map_err(Error::io("create the registry work dir"))?;
        let storage = tempfile::tempdir().map_err(Error::io("create the registry storage dir"))?;
        let (auth, issuer) = match kind {
            RegistryKind::Open => (String::new(), None),
            RegistryKind::Basic { users } => (htpasswd_auth(work.path(), &users)?, None),
            RegistryKind::Token { users, anonymous } => {
                let issuer = TokenIssuer::start(users, anonymous)?;
                (token_auth(&issuer), Some(issuer))
            }
        };
        let port = free_port()?;
        let config_path = work.path().join("config.yml");
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-registry-secret\n{auth}",
            storage.path().display()
        );
        std::fs::write(&config_path, config).map_err(Error::io("write the registry config"))?;
        let mut registry = Registry {
            port,
            config_path,
            child: None,
            issuer,
            work,
            storage,
        };
        registry.spawn().await?;
        Ok(registry)
    }

    /// `127.0.0.1:PORT`, as it appears in repository names.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host_port())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's storage root (`docker/registry/v2/…` below it).
    pub fn storage_dir(&self) -> &Path {
        self.storage.path()
    }

    /// Where the registry keeps the blob `sha256:<hex>`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let prefix = hex.get(..2).unwrap_or(hex);
        self.storage
            .path()
            .join("docker/registry/v2/blobs/sha256")
            .join(prefix)
            .join(hex)
            .join("data")
    }

    /// Overwrites the stored blob with bytes of the same length that no
    /// longer match its digest; the registry keeps serving it under the old
    /// digest. A second call restores it (each byte is XORed with 0x5a).
    pub fn corrupt_blob(&self, digest: &str) -> Result<(), Error> {
        let path = self.blob_path(digest);
        let mut bytes =
            std::fs::read(&path).map_err(Error::io(format!("read {}", path.display())))?;
        for b in bytes.iter_mut() {
            *b ^= 0x5a;
        }
        std::fs::write(&path, bytes).map_err(Error::io(format!("write {}", path.display())))
    }

    /// The registry's stderr (its log), for diagnosing a failed test.
    pub fn log_path(&self) -> PathBuf {
        self.work.path().join("registry.log")
    }

    /// The token issuer of a [`RegistryKind::Token`] registry.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// Kills the process (by PID); storage and port stay for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and storage.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), Error> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(Error::io("open the registry log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(Error::io("clone the log handle"))?)
            .stderr(log)
            .spawn()
            .map_err(Error::io("start docker-registry"))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Any HTTP answer to `GET /v2/` (401 with auth) means it serves.
    async fn wait_ready(&mut self) -> Result<(), Error> {
        let client = reqwest::Client::new();
        let url = format!("{}/v2/", self.url());
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if client.get(&url).send().await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(self.startup_error(&format!("exited with {status}")));
                }
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(self.startup_error("did not answer GET /v2/ in time"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn startup_error(&self, what: &str) -> Error {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        Error::other(format!("docker-registry {what}; its log:\n{log}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn htpasswd_auth(dir: &Path, users: &[(String, String)]) -> Result<String, Error> {
    let mut entries = String::new();
    for (user, password) in users {
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .map_err(Error::io("run htpasswd"))?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("htpasswd -Bbn {user} …"),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let _ = writeln!(entries, "{}", line.trim());
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, entries).map_err(Error::io("write htpasswd"))?;
    Ok(format!(
        "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
        path.display()
    ))
}

fn token_auth(issuer: &TokenIssuer) -> String {
    format!(
        "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
        issuer.realm(),
        issuer.service(),
        issuer.issuer(),
        issuer.cert_path().display()
    )
}
