//! `imgapi migrate`: copy a whole registry (manifests, files, icons) from one
//! backend pair to another, straight between the stores (no HTTP).
//!
//! For every image of the source, each blob (`files[].blob_key`,
//! `icon.blob_key`) is streamed to the target under the same key and its
//! SHA-1 (and MD5, when the record has one) checked against the record; only
//! then is the record written to the target (`put`, with every `stor` set to
//! the target backend). So an interrupted run never leaves a target record
//! pointing at a missing blob, and a rerun resumes: images whose target
//! record already equals the re-`stor`ed source record and whose blobs exist
//! with the right size are skipped.
//!
//! The lifecycle data beside the records (docs/lifecycle.md) goes too: each
//! image's flags (deprecation, protection) with its record, then the
//! recycle bin (its records and blobs, verified the same way), the stored
//! quota overrides and the retention rules of the API. Each image's
//! signatures (docs/signing.md) go with its record, verified again against
//! the record as written to the target. Reruns skip what the target already
//! has.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgapi_blob::{BlobError, BlobStore};
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::redact::redact_url;
use imgapi_domain::ImageRecord;
use imgapi_meta::{MetaError, MetaStore};
use uuid::Uuid;

use crate::config::{Config, StorageConfig};
use crate::sizes::human_bytes;

/// One side of a migration: a metadata store and a blob store.
#[derive(Clone)]
pub struct Stores {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct MigrateOptions {
    /// Report what would be copied; write nothing.
    pub dry_run: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct MigrateSummary {
    /// Images in the source.
    pub total: usize,
    /// Images whose blobs and/or record were written (or would be, dry run).
    pub copied: usize,
    /// Images already present and identical in the target.
    pub skipped: usize,
    /// Images that could not be migrated (see `failures`).
    pub failed: usize,
    /// Blob bytes copied (or that would be copied, dry run).
    pub bytes: u64,
    pub elapsed: Duration,
    /// `(uuid, reason)` of every failed image or recycle-bin entry.
    pub failures: Vec<(Uuid, String)>,
    /// Recycle-bin entries copied (or that would be, dry run).
    pub binned: usize,
}

impl MigrateSummary {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{side}: cannot open metadata database {url}: {source}")]
    Meta {
        side: &'static str,
        url: String,
        source: MetaError,
    },
    #[error("{side}: {source}")]
    Storage {
        side: &'static str,
        source: crate::app::StartupError,
    },
    #[error("source and target are the same registry ({0}); nothing to migrate")]
    SameRegistry(String),
    #[error("source database {0} does not exist")]
    NoSource(String),
    #[error("cannot list the source images: {0}")]
    List(MetaError),
    #[error("cannot copy the {what}: {source}")]
    Lifecycle {
        what: &'static str,
        source: MetaError,
    },
}

/// Open the stores a configuration names, without creating anything beyond
/// what the backends create on open and without sweeping staging areas (a
/// server may still be running on the source).
pub async fn open_stores(config: &Config, side: &'static str) -> Result<Stores, MigrateError> {
    let url = config.database_url();
    let meta = imgapi_meta::open(&url)
        .await
        .map_err(|source| MigrateError::Meta {
            side,
            url: redact_url(&url).into_owned(),
            source,
        })?;
    let blobs = crate::app::open_blobs(config)
        .await
        .map_err(|source| MigrateError::Storage { side, source })?;
    Ok(Stores { meta, blobs })
}

/// Migrate between the registries two configurations name; progress lines
/// go to `progress`.
pub async fn migrate_configs(
    from: &Config,
    to: &Config,
    opts: MigrateOptions,
    progress: &mut (dyn Write + Send),
) -> Result<MigrateSummary, MigrateError> {
    if from.database_url() == to.database_url() && same_storage(from, to) {
        return Err(MigrateError::SameRegistry(
            redact_url(&from.database_url()).into_owned(),
        ));
    }
    // Opening a SQLite URL creates the database: a mistyped source path
    // would otherwise "migrate" an empty registry successfully.
    if let Some(path) = sqlite_path(&from.database_url()) {
        if !std::path::Path::new(&path).exists() {
            return Err(MigrateError::NoSource(path));
        }
    }
    let source = open_stores(from, "source").await?;
    let target = open_stores(to, "target").await?;
    migrate(&source, &target, opts, progress).await
}

/// The file a `sqlite:` URL names (`None` for other engines / in-memory).
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.to_string())
}

fn same_storage(a: &Config, b: &Config) -> bool {
    match (&a.storage, &b.storage) {
        (StorageConfig::Local, StorageConfig::Local) => a.files_dir() == b.files_dir(),
        (
            StorageConfig::S3 {
                endpoint: e1,
                bucket: b1,
                prefix: p1,
                ..
            },
            StorageConfig::S3 {
                endpoint: e2,
                bucket: b2,
                prefix: p2,
                ..
            },
        ) => (e1, b1, p1) == (e2, b2, p2),
        _ => false,
    }
}

/// Migrate every image of `source` into `target`.
///
/// Limitation: the source is listed in one query (all records in memory,
/// never any file bytes); fine for registries of ~10^5 images.
pub async fn migrate(
    source: &Stores,
    target: &Stores,
    opts: MigrateOptions,
    progress: &mut (dyn Write + Send),
) -> Result<MigrateSummary, MigrateError> {
    let started = Instant::now();
    if !opts.dry_run {
        continue_change_log(source, target).await?;
    }
    let images = source
        .meta
        .list(&ImageQuery::all())
        .await
        .map_err(MigrateError::List)?;
    let mut summary = MigrateSummary {
        total: images.len(),
        ..Default::default()
    };
    let n = images.len();
    for (i, image) in images.iter().enumerate() {
        let label = format!(
            "[{}/{n}] {} {}@{}",
            i + 1,
            image.uuid,
            image.name,
            image.version
        );
        match migrate_one(source, target, image, opts).await {
            Ok(Outcome::Skipped) => {
                summary.skipped += 1;
                let _ = writeln!(progress, "{label}: skipped");
            }
            Ok(Outcome::Copied { bytes }) => {
                summary.copied += 1;
                summary.bytes += bytes;
                let verb = if opts.dry_run { "would copy" } else { "copied" };
                let _ = writeln!(progress, "{label}: {verb} {}", human_bytes(bytes));
            }
            Err(reason) => {
                summary.failed += 1;
                let _ = writeln!(progress, "{label}: ERROR {reason}");
                summary.failures.push((image.uuid, reason));
            }
        }
    }
    migrate_bin(source, target, opts, progress, &mut summary).await?;
    if !opts.dry_run {
        migrate_settings(source, target).await?;
    }
    summary.elapsed = started.elapsed();
    let _ = writeln!(
        progress,
        "{}{} images: {} copied, {} skipped, {} failed; {} recycle-bin entries; {} copied in {:.1}s",
        if opts.dry_run { "dry run: " } else { "" },
        summary.total,
        summary.copied,
        summary.skipped,
        summary.failed,
        summary.binned,
        human_bytes(summary.bytes),
        summary.elapsed.as_secs_f64()
    );
    Ok(summary)
}

/// Number the target's events after the source's (docs/events.md), before
/// anything is copied: a follower of the source that had read its log to
/// the end goes on reading the target and gets the copies' events; one that
/// had not is told its cursor expired (410) and resynchronizes, instead of
/// reading unrelated events under numbers it thinks it has seen.
async fn continue_change_log(source: &Stores, target: &Stores) -> Result<(), MigrateError> {
    let lifecycle = |source| MigrateError::Lifecycle {
        what: "change log position",
        source,
    };
    let end = source
        .meta
        .change_log_bounds()
        .await
        .map_err(lifecycle)?
        .last_seq;
    target
        .meta
        .continue_change_log_after(end)
        .await
        .map_err(lifecycle)
}

/// The recycle bin: each entry's blobs, then the entry (its record put
/// among the target's images and moved into the target's bin, keeping its
/// deletion and expiry times). Entries the target's bin has are skipped.
async fn migrate_bin(
    source: &Stores,
    target: &Stores,
    opts: MigrateOptions,
    progress: &mut (dyn Write + Send),
    summary: &mut MigrateSummary,
) -> Result<(), MigrateError> {
    const PAGE: u32 = 500;
    let bin_err = |source| MigrateError::Lifecycle {
        what: "recycle bin",
        source,
    };
    let mut offset = 0u64;
    loop {
        let page = source
            .meta
            .list_bin(None, offset, PAGE)
            .await
            .map_err(bin_err)?;
        for entry in &page {
            let uuid = entry.image.uuid;
            let label = format!("[bin] {uuid} {}@{}", entry.image.name, entry.image.version);
            match migrate_bin_entry(source, target, entry, opts).await {
                Ok(None) => {}
                Ok(Some(bytes)) => {
                    summary.binned += 1;
                    summary.bytes += bytes;
                    let verb = if opts.dry_run { "would copy" } else { "copied" };
                    let _ = writeln!(progress, "{label}: {verb} {}", human_bytes(bytes));
                }
                Err(reason) => {
                    summary.failed += 1;
                    let _ = writeln!(progress, "{label}: ERROR {reason}");
                    summary.failures.push((uuid, reason));
                }
            }
        }
        if page.len() < PAGE as usize {
            return Ok(());
        }
        offset += u64::from(PAGE);
    }
}

/// One bin entry; the bytes copied, `None` when the target has it.
async fn migrate_bin_entry(
    source: &Stores,
    target: &Stores,
    entry: &imgapi_meta::BinEntry,
    opts: MigrateOptions,
) -> Result<Option<u64>, String> {
    let uuid = entry.image.uuid;
    let present = target
        .meta
        .binned(uuid)
        .await
        .map_err(|e| format!("reading the target's bin: {e}"))?;
    if present.is_some() {
        return Ok(None);
    }
    let mut image = restor(&entry.image, target.blobs.kind());
    let mut bytes = 0;
    for blob in blob_refs(&entry.image) {
        bytes += blob.size;
        if opts.dry_run {
            continue;
        }
        let sha256 = copy_blob(source, target, &blob).await?;
        if let Some(f) = blob.file_index.and_then(|i| image.files.get_mut(i)) {
            f.sha256.get_or_insert(sha256);
        }
    }
    if opts.dry_run {
        return Ok(Some(bytes));
    }
    let revision = target
        .meta
        .put(&image)
        .await
        .map_err(|e| format!("writing the target record: {e}"))?;
    migrate_signatures(source, target, &image).await?;
    // The move takes the deprecation time from the image's flags.
    if let Some(deprecated_ms) = entry.deprecated_ms {
        let change = imgapi_meta::FlagsChange {
            deprecated_ms: Some(Some(deprecated_ms)),
            protected: Some(false),
            at_ms: entry.deleted_ms,
            by: "imgapi migrate".into(),
        };
        target
            .meta
            .change_image_flags(uuid, &change)
            .await
            .map_err(|e| format!("writing the lifecycle flags: {e}"))?;
    }
    let moved = imgapi_meta::BinEntry {
        image,
        ..entry.clone()
    };
    target
        .meta
        .move_to_bin(&moved, revision)
        .await
        .map_err(|e| format!("moving the record into the target's bin: {e}"))?;
    Ok(Some(bytes))
}

/// The lifecycle flags of `uuid`, when the target's differ from the
/// source's (a deprecation time or protection set on the source).
async fn migrate_flags(source: &Stores, target: &Stores, uuid: Uuid) -> Result<(), String> {
    let wanted = source
        .meta
        .image_flags(uuid)
        .await
        .map_err(|e| format!("reading the lifecycle flags: {e}"))?;
    let Some(wanted) = wanted else {
        return Ok(());
    };
    let present = target
        .meta
        .image_flags(uuid)
        .await
        .map_err(|e| format!("reading the target's lifecycle flags: {e}"))?;
    let same = present.as_ref().is_some_and(|p| {
        p.deprecated_ms == wanted.deprecated_ms && p.protected == wanted.protected
    });
    if same {
        return Ok(());
    }
    let change = imgapi_meta::FlagsChange {
        deprecated_ms: Some(wanted.deprecated_ms),
        protected: Some(wanted.protected),
        at_ms: wanted.updated_ms,
        by: wanted.updated_by,
    };
    target
        .meta
        .change_image_flags(uuid, &change)
        .await
        .map(|_| ())
        .map_err(|e| format!("writing the lifecycle flags: {e}"))
}

/// The signatures of `image` (as written to the target) the target lacks,
/// each verified again against the target's record: one that no longer
/// verifies (a signed field changed after signing) stays behind, logged.
async fn migrate_signatures(
    source: &Stores,
    target: &Stores,
    image: &ImageRecord,
) -> Result<(), String> {
    let uuid = image.uuid;
    let wanted = source
        .meta
        .image_signatures(uuid)
        .await
        .map_err(|e| format!("reading the signatures: {e}"))?;
    if wanted.is_empty() {
        return Ok(());
    }
    let present = target
        .meta
        .image_signatures(uuid)
        .await
        .map_err(|e| format!("reading the target's signatures: {e}"))?;
    for signature in wanted {
        if present
            .iter()
            .any(|p| p.key_id == signature.key_id && p.signature == signature.signature)
        {
            continue;
        }
        let fingerprint = signature.fingerprint.clone();
        match crate::service::signatures::verified_copy(image, &signature.into()) {
            Ok(stored) => target
                .meta
                .put_image_signature(&stored, None)
                .await
                .map_err(|e| format!("writing a signature: {e}"))?,
            Err(e) => tracing::warn!(
                image = %uuid,
                key = %fingerprint,
                "signature not migrated: {e}"
            ),
        }
    }
    Ok(())
}

/// The stored quota overrides and the retention rules of the API (the
/// configured ones live in the configuration file).
async fn migrate_settings(source: &Stores, target: &Stores) -> Result<(), MigrateError> {
    let quota_err = |source| MigrateError::Lifecycle {
        what: "quota overrides",
        source,
    };
    for o in source.meta.quota_overrides().await.map_err(quota_err)? {
        target
            .meta
            .put_quota_override(&o)
            .await
            .map_err(quota_err)?;
    }
    let rule_err = |source| MigrateError::Lifecycle {
        what: "retention rules",
        source,
    };
    let present: Vec<Uuid> = target
        .meta
        .retention_rules()
        .await
        .map_err(rule_err)?
        .iter()
        .map(|r| r.id)
        .collect();
    for rule in source.meta.retention_rules().await.map_err(rule_err)? {
        if !present.contains(&rule.id) {
            target
                .meta
                .insert_retention_rule(&rule)
                .await
                .map_err(rule_err)?;
        }
    }
    Ok(())
}

enum Outcome {
    Skipped,
    Copied { bytes: u64 },
}

/// A blob a record names, with what the record says about it.
struct BlobRef<'a> {
    what: String,
    key: &'a str,
    size: u64,
    sha1: &'a str,
    /// Base64 MD5; empty when the record has none.
    md5: &'a str,
    /// Hex SHA-256, when the record has one.
    sha256: Option<&'a str>,
    /// Index in `files` (`None`: the icon).
    file_index: Option<usize>,
}

fn blob_refs(image: &ImageRecord) -> Vec<BlobRef<'_>> {
    let mut refs = Vec::new();
    for (i, f) in image.files.iter().enumerate() {
        if let Some(key) = f.blob_key.as_deref() {
            refs.push(BlobRef {
                what: format!("file {i}"),
                key,
                size: f.size,
                sha1: &f.sha1,
                md5: &f.content_md5,
                sha256: f.sha256.as_deref(),
                file_index: Some(i),
            });
        }
    }
    if let Some(icon) = &image.icon {
        if let Some(key) = icon.blob_key.as_deref() {
            refs.push(BlobRef {
                what: "icon".into(),
                key,
                size: icon.size,
                sha1: &icon.sha1,
                md5: &icon.content_md5,
                sha256: None,
                file_index: None,
            });
        }
    }
    refs
}

/// The record as the target stores it: every `stor` names the target.
pub fn restor(image: &ImageRecord, kind: &str) -> ImageRecord {
    let mut out = image.clone();
    for f in &mut out.files {
        f.stor = kind.to_string();
    }
    if let Some(icon) = &mut out.icon {
        icon.stor = kind.to_string();
    }
    out
}

async fn migrate_one(
    source: &Stores,
    target: &Stores,
    image: &ImageRecord,
    opts: MigrateOptions,
) -> Result<Outcome, String> {
    let mut wanted = restor(image, target.blobs.kind());
    let mut to_copy = Vec::new();
    for blob in blob_refs(image) {
        match target.blobs.stat(blob.key).await {
            Ok(meta) if meta.size == blob.size => {}
            Ok(_) | Err(BlobError::NotFound(_)) => to_copy.push(blob),
            Err(e) => return Err(format!("{}: target stat {}: {e}", blob.what, blob.key)),
        }
    }
    let existing = target
        .meta
        .get(image.uuid)
        .await
        .map_err(|e| format!("reading the target record: {e}"))?;
    let record_current = existing.as_ref().is_some_and(|s| s.image == wanted);
    if to_copy.is_empty() && record_current {
        if !opts.dry_run {
            migrate_flags(source, target, image.uuid).await?;
            migrate_signatures(source, target, &wanted).await?;
        }
        return Ok(Outcome::Skipped);
    }
    let mut bytes = 0;
    for blob in &to_copy {
        if opts.dry_run {
            bytes += blob.size;
        } else {
            let sha256 = copy_blob(source, target, blob).await?;
            bytes += blob.size;
            // Files stored before SHA-256 was computed get it on the way.
            if let Some(f) = blob.file_index.and_then(|i| wanted.files.get_mut(i)) {
                f.sha256.get_or_insert(sha256);
            }
        }
    }
    let record_current = existing.as_ref().is_some_and(|s| s.image == wanted);
    if !opts.dry_run && !record_current {
        target
            .meta
            .put(&wanted)
            .await
            .map_err(|e| format!("writing the target record: {e}"))?;
    }
    if !opts.dry_run {
        migrate_flags(source, target, image.uuid).await?;
        migrate_signatures(source, target, &wanted).await?;
    }
    Ok(Outcome::Copied { bytes })
}

/// Stream one blob source → target and verify it (size, SHA-1, and MD5 and
/// SHA-256 when the record has them); on a mismatch the target copy is
/// deleted. Returns the SHA-256 of the bytes copied.
async fn copy_blob(source: &Stores, target: &Stores, blob: &BlobRef<'_>) -> Result<String, String> {
    let read = source
        .blobs
        .get_stream(blob.key, None)
        .await
        .map_err(|e| format!("{}: reading source blob {}: {e}", blob.what, blob.key))?;
    if read.total_size != blob.size {
        return Err(format!(
            "{}: source blob {} is {} bytes, the record says {}",
            blob.what, blob.key, read.total_size, blob.size
        ));
    }
    let put = target
        .blobs
        .put_stream(blob.key, read.stream, blob.size)
        .await
        .map_err(|e| format!("{}: writing target blob {}: {e}", blob.what, blob.key))?;
    let mismatch = if put.size != blob.size {
        Some(format!("size {} (expected {})", put.size, blob.size))
    } else if !put.sha1.eq_ignore_ascii_case(blob.sha1) {
        Some(format!("sha1 {} (expected {})", put.sha1, blob.sha1))
    } else if !blob.md5.is_empty() && put.md5_base64 != blob.md5 {
        Some(format!("md5 {} (expected {})", put.md5_base64, blob.md5))
    } else if blob
        .sha256
        .is_some_and(|s| !s.eq_ignore_ascii_case(&put.sha256))
    {
        Some(format!(
            "sha256 {} (expected {})",
            put.sha256,
            blob.sha256.unwrap_or_default()
        ))
    } else {
        None
    };
    if let Some(m) = mismatch {
        let cleanup = match target.blobs.delete(blob.key).await {
            Ok(()) => String::new(),
            Err(e) => format!("; deleting the bad copy failed too: {e}"),
        };
        return Err(format!(
            "{}: blob {} copied with {m}: source is corrupt{cleanup}",
            blob.what, blob.key
        ));
    }
    Ok(put.sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite:///a/b.db").as_deref(), Some("/a/b.db"));
        assert_eq!(sqlite_path("sqlite:x.db?mode=rwc").as_deref(), Some("x.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://h/db"), None);
    }
}
