//! Consumer side: the sources config file and the local image store.
//!
//! Store layout: `<store>/<uuid>/{manifest.json,file}` per installed image;
//! `<store>/.tmp-<uuid>/` while importing (renamed into place when complete);
//! `<store>/.lock-<uuid>` (holding the importer's pid) while importing;
//! `<store>/.del-<uuid>/` while deleting.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use imgapi_client::Client;
use serde_json::{json, Value};
use uuid::Uuid;

use super::Failure;
use crate::cli::{Cli, Command};

pub const TMP_PREFIX: &str = ".tmp-";
pub const LOCK_PREFIX: &str = ".lock-";
pub const DEL_PREFIX: &str = ".del-";

/// One configured source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub url: String,
    /// An OpenSSH allowed_signers file: images from this source (and their
    /// origin chains) must be signed by one of its keys (docs/signing.md).
    pub trust: Option<PathBuf>,
}

impl Source {
    /// Its `sources.json` entry: `{"url"}`, plus `"trust"` when set.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"url": self.url});
        if let Some(trust) = &self.trust {
            v["trust"] = json!(trust.display().to_string());
        }
        v
    }
}

/// Shared state for one consumer invocation.
pub struct Local {
    pub config_dir: PathBuf,
    pub store: PathBuf,
    pub json: bool,
    user: Option<String>,
    key: Option<PathBuf>,
    channel: Option<String>,
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let Some(config_dir) = crate::profile::config_dir(cli.config_dir.as_deref()) else {
        return Err(Failure::usage(
            "$HOME is not set: give --config-dir (or IMGADM_CONFIG_DIR)",
        ));
    };
    let store = cli.store.unwrap_or_else(|| config_dir.join("images"));
    let local = Local {
        config_dir,
        store,
        json: cli.json,
        user: cli.user,
        key: cli.key,
        channel: cli.channel,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::other(format!("cannot start runtime: {e}")))?;
    rt.block_on(async {
        match cli.command {
            Command::Sources(a) => super::sources::run(&local, a),
            Command::Avail(a) => super::avail::run(&local, a).await,
            Command::Import(a) => super::import::run(&local, a).await,
            Command::Installed(a) => super::installed::run(&local, a),
            Command::Vacuum(a) => super::vacuum::run(&local, a),
            _ => Err(Failure::other("publisher verb dispatched as consumer verb")),
        }
    })
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Failure {
    move |e| Failure::other(format!("{what}: {e}"))
}

impl Local {
    fn sources_path(&self) -> PathBuf {
        self.config_dir.join("sources.json")
    }

    /// The configured source URLs, in order (none if there is no config file).
    pub fn sources(&self) -> Result<Vec<String>, Failure> {
        Ok(self.source_entries()?.into_iter().map(|s| s.url).collect())
    }

    /// The configured sources with their trust files, in order.
    pub fn source_entries(&self) -> Result<Vec<Source>, Failure> {
        let path = self.sources_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Failure::other(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Failure::other(format!("invalid {}: {e}", path.display())))?;
        let list = v.get("sources").and_then(Value::as_array).ok_or_else(|| {
            Failure::other(format!("invalid {}: no \"sources\" array", path.display()))
        })?;
        list.iter()
            .map(|s| {
                let url = s
                    .get("url")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Failure::other(format!("invalid {}: source without url", path.display()))
                    })?;
                let trust = match s.get("trust") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(t)) => Some(PathBuf::from(t)),
                    Some(_) => {
                        return Err(Failure::other(format!(
                            "invalid {}: the trust of source {url} is not a path",
                            path.display()
                        )))
                    }
                };
                Ok(Source { url, trust })
            })
            .collect()
    }

    /// Replace the sources file atomically (write a temporary file, rename).
    pub fn save_source_entries(&self, sources: &[Source]) -> Result<(), Failure> {
        std::fs::create_dir_all(&self.config_dir).map_err(io_err(format!(
            "cannot create {}",
            self.config_dir.display()
        )))?;
        let v = json!({
            "sources": sources.iter().map(Source::to_json).collect::<Vec<_>>()
        });
        let path = self.sources_path();
        let tmp = self.config_dir.join("sources.json.tmp");
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))?;
        write_synced(&tmp, format!("{text}\n").as_bytes())?;
        std::fs::rename(&tmp, &path).map_err(io_err(format!("cannot write {}", path.display())))
    }

    /// A client for one source (signed when `--user` is given).
    pub fn client(&self, url: &str) -> Result<Client, Failure> {
        let mut client =
            Client::new(url)?.with_user_agent(concat!("imgadm/", env!("CARGO_PKG_VERSION")));
        if let Some(signer) = super::signer(self.user.as_deref(), self.key.as_deref())? {
            client = client.with_signer(signer);
        }
        if let Some(channel) = &self.channel {
            client = client.with_channel(channel.as_str());
        }
        Ok(client)
    }

    pub fn image_dir(&self, uuid: &Uuid) -> PathBuf {
        self.store.join(uuid.to_string())
    }

    pub fn tmp_dir(&self, uuid: &Uuid) -> PathBuf {
        self.store.join(format!("{TMP_PREFIX}{uuid}"))
    }

    pub fn lock_path(&self, uuid: &Uuid) -> PathBuf {
        self.store.join(format!("{LOCK_PREFIX}{uuid}"))
    }

    /// The manifest of an installed image, `None` if it is not installed.
    pub fn installed(&self, uuid: &Uuid) -> Result<Option<Value>, Failure> {
        let path = self.image_dir(uuid).join("manifest.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Failure::other(format!("invalid {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::other(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// All installed images' manifests, sorted by name then version.
    pub fn all_installed(&self) -> Result<Vec<Value>, Failure> {
        let entries = match std::fs::read_dir(&self.store) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Failure::other(format!(
                    "cannot read {}: {e}",
                    self.store.display()
                )))
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(format!("cannot read {}", self.store.display())))?;
            let name = entry.file_name();
            let Some(uuid) = name.to_str().and_then(|n| Uuid::parse_str(n).ok()) else {
                continue;
            };
            if let Some(m) = self.installed(&uuid)? {
                out.push(m);
            }
        }
        let key = |m: &Value| {
            let get = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (get("name"), get("version"), get("uuid"))
        };
        out.sort_by_key(key);
        Ok(out)
    }
}

/// Write `data` to `path` and fsync it.
pub fn write_synced(path: &Path, data: &[u8]) -> Result<(), Failure> {
    let mut f =
        std::fs::File::create(path).map_err(io_err(format!("cannot create {}", path.display())))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io_err(format!("cannot write {}", path.display())))
}

/// Whether a process with this pid is alive (Linux: `/proc/<pid>` exists).
pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Is the lock file at `path` stale (its owner is gone)? A lock whose
/// content is not a pid counts as stale only after a minute (its creator may
/// not have written the pid yet).
pub fn lock_is_stale(path: &Path) -> bool {
    match std::fs::read_to_string(path) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) => !pid_alive(pid),
            Err(_) => std::fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 60),
        },
        Err(_) => false,
    }
}

/// An import lock on one image; removed when dropped.
pub struct Lock(PathBuf);

impl Lock {
    /// Take the lock with `create_new`. A lock left by a dead process is
    /// taken over; one held by a live process is an error.
    pub fn acquire(path: PathBuf, uuid: &Uuid) -> Result<Lock, Failure> {
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    let _ = f.sync_all();
                    return Ok(Lock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if lock_is_stale(&path) {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    break;
                }
                Err(e) => {
                    return Err(Failure::other(format!(
                        "cannot create lock {}: {e}",
                        path.display()
                    )))
                }
            }
        }
        Err(Failure::other(format!(
            "image {uuid} is already being imported by another process (lock {}); \
             if no import is running, run `imgadm vacuum`",
            path.display()
        )))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
