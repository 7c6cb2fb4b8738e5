//! Listing with metadata and moving objects into `lost+found` (integrity
//! checks and their repair), for the S3 backend.

use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::task::JoinSet;

use super::{S3BlobStore, UploadGuard};
use crate::local::{is_key_byte, validate_key};
use crate::{BlobError, BlobStore, ListedBlob, LOST_FOUND};

impl S3BlobStore {
    /// Every object under `prefix` whose key is a valid key (objects
    /// outside the key space, such as `lost+found/…`, are not listed).
    pub(super) async fn list_objects_impl(
        &self,
        prefix: &str,
    ) -> Result<Vec<ListedBlob>, BlobError> {
        let invalid = || BlobError::InvalidKey(prefix.to_owned());
        if !prefix.bytes().all(|b| b == b'/' || is_key_byte(b)) {
            return Err(invalid());
        }
        let dir_key = match prefix.rfind('/') {
            Some(i) => {
                let dir_key = &prefix[..i];
                validate_key(dir_key).map_err(|_| invalid())?;
                dir_key
            }
            None => "",
        };
        let dir = self.dir_path(dir_key)?;
        let strip = self.object_key("");
        let mut out = Vec::new();
        let mut listing = self.s3.list(dir.as_ref());
        while let Some(item) = listing.next().await {
            let meta = item.map_err(|e| self.fail(e, prefix))?;
            let Some(key) = meta.location.as_ref().strip_prefix(&strip) else {
                continue;
            };
            if key.starts_with(prefix) && validate_key(key).is_ok() {
                out.push(ListedBlob {
                    key: key.to_owned(),
                    size: meta.size,
                    modified: Some(std::time::SystemTime::from(meta.last_modified)),
                });
            }
        }
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Copy `key` to `<prefix>/lost+found/<key>` (streamed through this
    /// process, so objects of any size work on any S3 implementation),
    /// check the copy's size, then delete the original.
    pub(super) async fn move_to_lost_found_impl(&self, key: &str) -> Result<String, BlobError> {
        let source = self.path_for(key)?;
        let original = self.s3.head(&source).await.map_err(|e| self.fail(e, key))?;
        let base = self.object_key(&format!("{LOST_FOUND}/{key}"));
        let mut name = base.clone();
        let mut n = 0u32;
        let target = loop {
            let path = Path::parse(&name).map_err(|_| BlobError::InvalidKey(name.clone()))?;
            match self.s3.head(&path).await {
                Err(object_store::Error::NotFound { .. }) => break path,
                Ok(_) if n < 10_000 => {
                    n += 1;
                    name = format!("{base}.{n}");
                }
                Ok(_) => {
                    return Err(BlobError::Io(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{base} and 9999 numbered variants exist"),
                    )))
                }
                Err(e) => return Err(self.fail(e, key)),
            }
        };
        let read = self.get_stream(key, None).await?;
        let mut guard = UploadGuard {
            upload: None,
            parts: JoinSet::new(),
        };
        let outcome = match self
            .put_inner(key, &target, read.stream, u64::MAX, &mut guard)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                guard.abort(key).await;
                return Err(e);
            }
        };
        let copied = self.s3.head(&target).await.map_err(|e| self.fail(e, key))?;
        if outcome.size != original.size || copied.size != original.size {
            let _ = self.s3.delete(&target).await;
            return Err(BlobError::Io(std::io::Error::other(format!(
                "copy of {key} to {name} has {} bytes, the original {}; original kept",
                copied.size, original.size
            ))));
        }
        match self.s3.delete(&source).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.fail(e, key)),
        }
        Ok(format!("{}/{name}", self.bucket_url))
    }
}
