//! One server per `data_dir` when the metadata store is the embedded
//! SQLite database: its writer task and start-up migrations assume they
//! are alone. The `imgapi` server command takes an exclusive lock on
//! `<data_dir>/imgapi.lock`, held for the server's life and released by
//! the kernel when the process dies (kill -9 included), with the holder's
//! pid written inside so the refusal can name it.
//!
//! Tools (`imgapi check`, `usage`, `mirror`, `migrate`) do not take it:
//! they have always run beside a server on the same configuration.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside `data_dir`.
pub const LOCK_FILE: &str = "imgapi.lock";

/// The held lock; dropping it releases the data directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data_dir is in use by another imgapi server{} (lock file {}): the embedded SQLite \
         store allows one server per data_dir; stop the other server or give this one its own \
         data_dir",
        .pid.as_deref().map(|p| format!(" (pid {p})")).unwrap_or_default(),
        .path.display()
    )]
    Held { path: PathBuf, pid: Option<String> },
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Take the lock of `data_dir`, or say who holds it.
pub fn lock(data_dir: &Path) -> Result<DataDirLock, LockError> {
    let path = data_dir.join(LOCK_FILE);
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
            let mut holder = String::new();
            let pid = match file.read_to_string(&mut holder) {
                Ok(_) => Some(holder.trim().to_string()).filter(|p| !p.is_empty()),
                Err(_) => None,
            };
            return Err(LockError::Held { path, pid });
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
}
