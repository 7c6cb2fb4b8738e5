//! Listing with metadata and moving objects into `lost+found` (integrity
//! checks and their repair), for the local backend.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{blocking, validate_key, LocalBlobStore};
use crate::{BlobError, ListedBlob, LOST_FOUND};

impl LocalBlobStore {
    /// Where [`crate::BlobStore::move_to_lost_found`] puts objects: beside
    /// the root (`<data_dir>/lost+found` for the server's `<data_dir>/files`),
    /// so never inside the key space.
    pub fn lost_found_dir(&self) -> PathBuf {
        match self.root.parent() {
            Some(parent) => parent.join(LOST_FOUND),
            None => self.root.join(LOST_FOUND),
        }
    }

    pub(super) async fn list_objects_impl(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<ListedBlob>, BlobError> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                match fs::symlink_metadata(root.join(&key)) {
                    Ok(meta) if meta.is_file() => out.push(ListedBlob {
                        key,
                        size: meta.len(),
                        modified: meta.modified().ok(),
                    }),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {} // deleted meanwhile
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn move_to_lost_found_impl(&self, key: &str) -> Result<String, BlobError> {
        validate_key(key)?;
        let root = self.root.clone();
        let source = root.join(key);
        let target = self.lost_found_dir().join(key);
        let key = key.to_owned();
        blocking(move || {
            let meta = fs::symlink_metadata(&source).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    BlobError::NotFound(key.clone())
                } else {
                    e.into()
                }
            })?;
            if !meta.is_file() {
                return Err(BlobError::NotFound(key));
            }
            let target = free_name(&target)?;
            if let Some(dir) = target.parent() {
                fs::create_dir_all(dir)?;
            }
            match fs::rename(&source, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                    copy_durably(&source, &target)?;
                    fs::remove_file(&source)?;
                }
                Err(e) => return Err(e.into()),
            }
            for dir in [target.parent(), source.parent()].into_iter().flatten() {
                sync_dir(dir);
            }
            // Best effort, as `delete`: drop directories left empty.
            let mut dir = source.parent();
            while let Some(d) = dir {
                if d == root || !d.starts_with(&root) || fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(target.display().to_string())
        })
        .await
    }
}

/// `path`, or `path.1`, `path.2`… whichever does not exist yet.
fn free_name(path: &Path) -> Result<PathBuf, BlobError> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(path.to_path_buf());
    }
    for n in 1..10_000 {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        let candidate = PathBuf::from(name);
        if fs::symlink_metadata(&candidate).is_err() {
            return Ok(candidate);
        }
    }
    Err(BlobError::Io(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} and 9999 numbered variants exist", path.display()),
    )))
}

/// Copy across filesystems: write, fsync, and only then report success.
fn copy_durably(source: &Path, target: &Path) -> io::Result<()> {
    let mut from = fs::File::open(source)?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)?;
    let copied = io::copy(&mut from, &mut to).and_then(|_| to.sync_all());
    if let Err(e) = copied {
        let _ = fs::remove_file(target);
        return Err(e);
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
