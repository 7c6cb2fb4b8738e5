//! One server per `data_dir` when the metadata store is the embedded
//! SQLite database: its writer task and start-up migrations assume they
//! are alone. The `imgapi` server command takes an exclusive lock on
//! `<data_dir>/imgapi.lock`, held for the server's life and released by
//! the kernel when the process dies (kill -9 included), with the holder's
//! pid written inside so the refusal can name it.
//!
//! Tools (`imgapi check`, `usage`, `mirror`, `migrate`) do not take it:
//! they have always run beside a server on the same configuration.
//! `imgapi mirror` takes a lock of its own, `<data_dir>/mirror.lock`, so
//! that two mirrors into one registry never run at once (on PostgreSQL,
//! where they may run on different hosts, a database lock instead:
//! `service::import::mirror::lock`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the server's lock file inside `data_dir`.
pub const LOCK_FILE: &str = "imgapi.lock";

/// Who takes a lock of `data_dir`: each has its own lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockHolder {
    /// The `imgapi` server: one per embedded store.
    Server,
    /// `imgapi mirror`: one per registry.
    Mirror,
}

impl LockHolder {
    /// The lock file's name inside `data_dir`.
    pub fn file_name(self) -> &'static str {
        match self {
            LockHolder::Server => LOCK_FILE,
            LockHolder::Mirror => "mirror.lock",
        }
    }

    /// Who holds the lock, as the refusal says it.
    pub(crate) fn other(self) -> &'static str {
        match self {
            LockHolder::Server => "data_dir is in use by another imgapi server",
            LockHolder::Mirror => "another imgapi mirror is running into this registry",
        }
    }

    /// What to do about it.
    pub(crate) fn advice(self) -> &'static str {
        match self {
            LockHolder::Server => {
                "the embedded SQLite store allows one server per data_dir; stop the other server \
                 or give this one its own data_dir"
            }
            LockHolder::Mirror => {
                "run one mirror per registry; wait for the other run to end or stop it"
            }
        }
    }
}

/// The held lock; dropping it releases the data directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{}{} (lock file {}): {}",
        .holder.other(),
        .pid.as_deref().map(|p| format!(" (pid {p})")).unwrap_or_default(),
        .path.display(),
        .holder.advice()
    )]
    Held {
        holder: LockHolder,
        path: PathBuf,
        pid: Option<String>,
    },
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Take the server's lock of `data_dir`, or say who holds it.
pub fn lock(data_dir: &Path) -> Result<DataDirLock, LockError> {
    lock_for(LockHolder::Server, data_dir)
}

/// Take `holder`'s lock of `data_dir`, or say who holds it.
pub fn lock_for(holder: LockHolder, data_dir: &Path) -> Result<DataDirLock, LockError> {
    let path = data_dir.join(holder.file_name());
    let io_err = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut content = String::new();
            let pid = match file.read_to_string(&mut content) {
                Ok(_) => Some(content.trim().to_string()).filter(|p| !p.is_empty()),
                Err(_) => None,
            };
            return Err(LockError::Held { holder, path, pid });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(e)),
    }
    file.set_len(0).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    writeln!(file, "{}", std::process::id()).map_err(io_err)?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let held = lock(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let refused = lock(dir.path()).err().map(|e| e.to_string());
        let message = refused.unwrap_or_default();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("imgapi.lock"), "{message}");
        drop(held);
        assert!(lock(dir.path()).is_ok(), "released on drop");
    }

    #[test]
    fn the_mirror_lock_is_its_own() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let _server = lock(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let mirror = lock_for(LockHolder::Mirror, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let refused = lock_for(LockHolder::Mirror, dir.path()).err();
        let message = refused.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("another imgapi mirror is running into this registry (pid "),
            "{message}"
        );
        assert!(message.contains("mirror.lock"), "{message}");
        drop(mirror);
        assert!(lock_for(LockHolder::Mirror, dir.path()).is_ok());
    }
}
