//! ExportImage (api.md §5.23): write an image's manifest and file to the
//! configured export location (`[export]`: a local directory or an S3
//! bucket) instead of the original's Manta.
//!
//! The Manta path of the request names the place under the export root:
//! `<root>/<path>.imgmanifest` and `<root>/<path>.zfs<ext>`, or, when
//! `<path>` is an existing directory (S3: a key prefix holding objects, or
//! a path ending in `/`), `<root>/<path>/<name>-<version>.imgmanifest` and
//! `.zfs<ext>`. An image with signatures (docs/signing.md) also gets
//! `.imgsignatures`: its ListImageSignatures answer, statement included, so
//! the export can be checked with `ssh-keygen -Y verify` alone. Both go through the `BlobStore` trait: the file is streamed
//! from the image's store into the export store (never buffered), written
//! atomically (staging file + rename / multipart commit) and its size and
//! SHA-1 checked against the manifest; the manifest is written after the
//! file, so a manifest is only ever next to a complete file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use imgapi_blob::local::validate_key;
use imgapi_blob::{BlobError, BlobStore, ByteStream, LocalBlobStore, S3BlobStore, S3Config};
use imgapi_domain::dsapi::{base_name, compression_ext};
use imgapi_domain::ImageRecord;
use imgapi_types::FieldError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::ServiceError;
use crate::accounts::AccountInfo;
use crate::app::AppState;
use crate::config::ExportConfig;

/// Characters of a local path kept as they are in the `file://` URL.
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Where exports go, opened once at start-up.
pub struct ExportTarget {
    store: Arc<dyn BlobStore>,
    /// The local root (directory checks), `None` for S3.
    local_root: Option<PathBuf>,
    /// `file:///abs/dir` or `s3://bucket[/prefix]`: the answer's `manta_url`.
    url: String,
}

impl ExportTarget {
    /// Open the store named by `cfg` (creating a local root). An S3 bucket
    /// that cannot be reached only logs a warning: exports then fail with
    /// 503 StorageIsDown until it is back.
    pub async fn open(cfg: &ExportConfig) -> Result<ExportTarget, BlobError> {
        let target = match cfg {
            ExportConfig::Local { dir } => {
                let store = LocalBlobStore::open(dir)?;
                let root = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
                ExportTarget {
                    store: Arc::new(store),
                    url: file_url(&root),
                    local_root: Some(root),
                }
            }
            ExportConfig::S3 {
                endpoint,
                bucket,
                region,
                prefix,
                credentials,
            } => {
                if let Some(why) = credentials.missing_from_env("export") {
                    return Err(BlobError::Unavailable(why));
                }
                let store = S3BlobStore::open(S3Config {
                    endpoint: endpoint.clone(),
                    bucket: bucket.clone(),
                    region: region.clone(),
                    prefix: prefix.clone(),
                    access_key_id: None,
                    secret_access_key: None,
                })?;
                if let Err(e) = store.check().await {
                    tracing::warn!(bucket, error = %e, "export bucket not reachable at start-up");
                }
                let prefix = prefix.trim_matches('/');
                let url = if prefix.is_empty() {
                    format!("s3://{bucket}")
                } else {
                    format!("s3://{bucket}/{prefix}")
                };
                ExportTarget {
                    store: Arc::new(store),
                    local_root: None,
                    url,
                }
            }
        };
        if let Err(e) = target.store.sweep_staging().await {
            tracing::warn!(error = %e, "could not sweep the export staging area");
        }
        Ok(target)
    }

    /// Human-readable location of `cfg`, for start-up errors.
    pub fn describe(cfg: &ExportConfig) -> String {
        match cfg {
            ExportConfig::Local { dir } => format!("export directory {}", dir.display()),
            ExportConfig::S3 {
                bucket, endpoint, ..
            } => format!(
                "export bucket {bucket:?} at {}",
                endpoint.as_deref().unwrap_or("AWS")
            ),
        }
    }

    /// `manta_url` of the answers.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether `key` names an existing directory: a local directory, or an
    /// S3 prefix with at least one object under `<key>/`.
    async fn is_dir(&self, key: &str) -> Result<bool, BlobError> {
        match &self.local_root {
            Some(root) => match tokio::fs::metadata(root.join(key)).await {
                Ok(meta) => Ok(meta.is_dir()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    Ok(false)
                }
                Err(e) => Err(BlobError::Io(e)),
            },
            None => Ok(!self.store.list(&format!("{key}/")).await?.is_empty()),
        }
    }
}

fn file_url(root: &Path) -> String {
    let path = root.to_string_lossy();
    let encoded = utf8_percent_encode(&path, PATH_KEEP).to_string();
    if encoded.starts_with('/') {
        format!("file://{encoded}")
    } else {
        format!("file:///{encoded}")
    }
}

/// The answer of ExportImage.
pub use imgapi_types::Exported;

/// Node's `path.posix.normalize`: `.` and empty segments dropped, `..`
/// resolved (never above the root of an absolute path), trailing `/` kept.
pub fn normalize(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let absolute = p.starts_with('/');
    let trailing = p.ends_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !absolute {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let mut s = out.join("/");
    if s.is_empty() && !absolute {
        s.push('.');
    }
    if trailing && !s.is_empty() {
        s.push('/');
    }
    if absolute {
        format!("/{s}")
    } else {
        s
    }
}

fn invalid_path() -> ServiceError {
    ServiceError::invalid_parameter(
        "invalid manta_path prefix, not a valid manta path",
        vec![FieldError::invalid("manta_path")],
    )
}

/// The manifest as exported: JSON with 4-space indentation.
pub fn manifest_bytes(manifest: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serialising a map of JSON values into a Vec cannot fail.
    if manifest.serialize(&mut ser).is_err() {
        return b"{}".to_vec();
    }
    out
}

/// Steps 1–2 of api.md §5.23: the normalised path and its login (first
/// component).
fn parse_manta_path(raw: Option<&str>) -> Result<(String, String), ServiceError> {
    let Some(raw) = raw else {
        return Err(ServiceError::validation(
            "missing 'manta_path' prefix parameter",
            vec![FieldError::missing("manta_path")],
        ));
    };
    let path = normalize(raw);
    // `mpath.split('/')[1]`, as the original.
    let login = path.split('/').nth(1).unwrap_or_default().to_string();
    if login.is_empty() {
        return Err(invalid_path());
    }
    Ok((path, login))
}

/// Step 5: with `account`, the path's login must be the account's. The
/// account directories `none` and `static` know no logins: there the first
/// component must be the account uuid itself.
async fn check_path_owner(
    app: &AppState,
    account: Uuid,
    login: &str,
    path: &str,
) -> Result<(), ServiceError> {
    let info = app
        .accounts
        .account_info(account)
        .await
        .map_err(|e| ServiceError::AccountDirectoryUnavailable(e.to_string()))?;
    let owner_login = match info {
        AccountInfo::Missing => return Err(ServiceError::AccountDoesNotExist(account)),
        AccountInfo::Exists { login: Some(l) } => l,
        AccountInfo::Exists { login: None } => account.to_string(),
    };
    if owner_login != login {
        return Err(ServiceError::NotMantaPathOwner {
            account,
            path: path.to_string(),
        });
    }
    Ok(())
}

/// ExportImage for an already loaded (and, with `account`, owned) image.
/// `manifest` is the image serialised for the request's Accept-Version.
pub async fn export_image(
    app: &AppState,
    img: &ImageRecord,
    manta_path: Option<&str>,
    account: Option<Uuid>,
    manifest: &Map<String, Value>,
) -> Result<Exported, ServiceError> {
    let (path, login) = parse_manta_path(manta_path)?;
    let target = app
        .export
        .as_ref()
        .ok_or(ServiceError::StorageUnsupported)?;
    let file = super::files::select_file(img, None)?;
    if img.files.len() > 1 {
        return Err(ServiceError::NotImplemented(
            "cannot export images with multiple files".into(),
        ));
    }
    if let Some(account) = account {
        check_path_owner(app, account, &login, &path).await?;
    }
    // Our stores take keys of [A-Za-z0-9._-] segments under the root.
    let key = path
        .strip_prefix('/')
        .ok_or_else(invalid_path)?
        .trim_end_matches('/');
    validate_key(key).map_err(|_| invalid_path())?;
    let ext = compression_ext(&file.compression);
    let is_dir = path.ends_with('/')
        || target
            .is_dir(key)
            .await
            .map_err(ServiceError::blob("error checking the export path"))?;
    let (file_key, manifest_key, signatures_key) = if is_dir {
        let base = base_name(img);
        (
            format!("{key}/{base}.zfs{ext}"),
            format!("{key}/{base}.imgmanifest"),
            format!("{key}/{base}.imgsignatures"),
        )
    } else {
        (
            format!("{key}.zfs{ext}"),
            format!("{key}.imgmanifest"),
            format!("{key}.imgsignatures"),
        )
    };
    for k in [&file_key, &manifest_key, &signatures_key] {
        validate_key(k).map_err(|_| invalid_path())?;
    }

    let source = super::store_for(app, &file.stor)?;
    let blob_key = file.blob_key.as_deref().unwrap_or_default();
    let read = source
        .get_stream(blob_key, None)
        .await
        .map_err(ServiceError::referenced_blob(
            "error reading image file",
            img.uuid,
            "file",
        ))?;
    let outcome = target
        .store
        .put_stream(&file_key, read.stream, file.size)
        .await
        .map_err(ServiceError::blob("error exporting image file"))?;
    if outcome.size != file.size || outcome.sha1 != file.sha1 {
        discard(target, &file_key).await;
        return Err(ServiceError::Internal(format!(
            "exported file of image {} does not match its manifest (size {} sha1 {})",
            img.uuid, outcome.size, outcome.sha1
        )));
    }
    let signatures = super::signatures::of_image(app, img).await?;
    let signatures_path = if signatures.signatures.is_empty() {
        // A sidecar of an earlier export of this path is not this image's.
        match target.store.delete(&signatures_key).await {
            Ok(_) | Err(BlobError::NotFound(_)) => {}
            Err(e) => {
                discard(target, &file_key).await;
                return Err(ServiceError::blob("error removing stale image signatures")(
                    e,
                ));
            }
        }
        None
    } else {
        let mut text = serde_json::to_vec_pretty(&signatures).unwrap_or_default();
        text.push(b'\n');
        if let Err(e) = put_bytes(target, &signatures_key, text).await {
            discard(target, &file_key).await;
            return Err(ServiceError::blob("error exporting image signatures")(e));
        }
        Some(format!("/{signatures_key}"))
    };
    if let Err(e) = put_bytes(target, &manifest_key, manifest_bytes(manifest)).await {
        discard(target, &file_key).await;
        discard(target, &signatures_key).await;
        return Err(ServiceError::blob("error exporting image manifest")(e));
    }
    Ok(Exported {
        manta_url: target.url.clone(),
        image_path: format!("/{file_key}"),
        manifest_path: format!("/{manifest_key}"),
        signatures_path,
    })
}

/// Write a small document to the export target.
async fn put_bytes(target: &ExportTarget, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
    let bytes = Bytes::from(bytes);
    let len = bytes.len() as u64;
    let body: ByteStream = Box::pin(futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(bytes)
    }));
    target.store.put_stream(key, body, len).await.map(|_| ())
}

async fn discard(target: &ExportTarget, key: &str) {
    if let Err(e) = target.store.delete(key).await {
        tracing::warn!(key, error = %e, "could not delete a partial export");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_like_node() {
        for (input, expected) in [
            ("", "."),
            ("/", "/"),
            ("//", "/"),
            ("/a//b/./c", "/a/b/c"),
            ("/a/b/../c", "/a/c"),
            ("/../a", "/a"),
            ("/a/", "/a/"),
            ("a/..", "."),
            ("../a", "../a"),
            ("user/stor", "user/stor"),
        ] {
            assert_eq!(normalize(input), expected, "{input:?}");
        }
    }

    #[test]
    fn manta_path_steps() {
        assert!(parse_manta_path(None).is_err());
        for bad in ["", "/", "//", "/..", "nouser"] {
            let err = parse_manta_path(Some(bad)).err().map(|e| e.to_string());
            assert_eq!(
                err.as_deref(),
                Some("invalid manta_path prefix, not a valid manta path"),
                "{bad:?}"
            );
        }
        let ok = parse_manta_path(Some("/alice/stor/../x")).ok();
        assert_eq!(ok, Some(("/alice/x".to_string(), "alice".to_string())));
    }

    #[test]
    fn manifest_has_four_space_indentation() {
        let mut m = Map::new();
        m.insert("v".into(), Value::from(2));
        m.insert("files".into(), serde_json::json!([{"sha1": "x"}]));
        let text = String::from_utf8(manifest_bytes(&m)).unwrap_or_default();
        assert_eq!(
            text,
            "{\n    \"v\": 2,\n    \"files\": [\n        {\n            \"sha1\": \"x\"\n        }\n    ]\n}"
        );
    }

    #[test]
    fn file_urls() {
        assert_eq!(file_url(Path::new("/srv/ex port")), "file:///srv/ex%20port");
    }
}
