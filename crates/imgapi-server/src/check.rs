//! `imgapi check`: the registry's integrity, straight from the stores.
//!
//! 1. Every record is read (one `list`, records only, never file bytes in
//!    memory). Each file and icon of an activated image (state `active` or
//!    `disabled`) is streamed from its store and checked against the
//!    manifest: it exists, has `size` bytes and the recorded SHA-1. A
//!    missing blob is a *dangling* manifest, a wrong size or digest a
//!    *corrupt* blob.
//! 2. Every store is listed. An object no record (of any state) points to
//!    is an *orphan*, unless it was written less than `min_orphan_age` ago
//!    (default one hour): then it may be an upload whose record update has
//!    not committed yet, and it is only counted as skipped. Staging areas
//!    (local `.staging/`, S3 multipart uploads) are never listed.
//!    Images in the recycle bin still own their blobs: those are
//!    referenced too, and a binned image whose blob is gone is reported
//!    as dangling (its restore would serve nothing).
//! 3. With `repair`, each orphan is looked up once more (its image's record,
//!    read again, must still not name it) and moved into the store's
//!    `lost+found` ([`BlobStore::move_to_lost_found`]): nothing is ever
//!    deleted. Corrupt blobs and dangling manifests are only reported.
//!
//! Exit status of the command: 0 when nothing is wrong (after repairs),
//! 1 when a problem remains, 2 when the check itself could not run.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use imgapi_blob::{BlobError, BlobStore};
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::redact::redact_url;
use imgapi_domain::{ImageRecord, ImageState};
use imgapi_meta::MetaStore;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::config::Config;

/// Objects younger than this are never called orphans by default.
pub const DEFAULT_MIN_ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// The stores of one registry.
#[derive(Clone)]
pub struct Stores {
    pub meta: Arc<dyn MetaStore>,
    /// The default store first, then any further configured store.
    pub blobs: Vec<Arc<dyn BlobStore>>,
}

impl Stores {
    /// Open the stores `config` names, creating nothing (a SQLite database
    /// that does not exist is an error) and sweeping nothing.
    pub async fn open(config: &Config) -> Result<Stores, String> {
        let url = config.database_url();
        if let Some(path) = sqlite_file(&url) {
            if !std::path::Path::new(&path).exists() {
                return Err(format!("database {path} does not exist"));
            }
        }
        let meta = imgapi_meta::open(&url)
            .await
            .map_err(|e| format!("cannot open metadata database {}: {e}", redact_url(&url)))?;
        let mut blobs = vec![crate::app::open_blobs(config)
            .await
            .map_err(|e| e.to_string())?];
        blobs.extend(crate::app::open_extra_blobs(config).map_err(|e| e.to_string())?);
        Ok(Stores { meta, blobs })
    }

    fn store(&self, stor: &str) -> Option<&Arc<dyn BlobStore>> {
        if stor.is_empty() {
            return self.blobs.first();
        }
        self.blobs.iter().find(|b| b.kind() == stor)
    }
}

/// The file a `sqlite:` URL names (`None` for other engines, in-memory).
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    (!rest.is_empty() && !rest.starts_with(":memory:")).then(|| rest.to_string())
}

#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Move orphans into lost+found.
    pub repair: bool,
    /// Objects written more recently are not orphans (yet).
    pub min_orphan_age: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            repair: false,
            min_orphan_age: DEFAULT_MIN_ORPHAN_AGE,
        }
    }
}

/// What is wrong with one file or icon of an activated image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The blob is missing (a dangling manifest), or the record names no
    /// blob, or a store that is not configured.
    Dangling,
    /// Size or SHA-1 differ from the manifest.
    Corrupt,
    /// The blob could not be read (store error); state unknown.
    Unreadable,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Dangling => "dangling",
            ProblemKind::Corrupt => "corrupt",
            ProblemKind::Unreadable => "unreadable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: ProblemKind,
    pub image: Uuid,
    /// `file 0`, `icon`.
    pub what: String,
    pub stor: String,
    pub key: Option<String>,
    pub detail: String,
}

/// What was done about an orphan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrphanAction {
    /// Reported only (no `--repair`).
    Reported,
    /// Moved; the bytes are now there.
    Moved(String),
    /// The move failed; the object is where it was.
    MoveFailed(String),
}

#[derive(Debug, Clone)]
pub struct Orphan {
    pub stor: &'static str,
    pub key: String,
    pub size: u64,
    /// Age when listed; `None` when the store cannot tell.
    pub age: Option<Duration>,
    pub action: OrphanAction,
}

#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Records read.
    pub records: usize,
    /// Activated images verified.
    pub images_checked: usize,
    pub files_checked: usize,
    pub icons_checked: usize,
    pub bytes_verified: u64,
    pub objects_listed: usize,
    pub problems: Vec<Problem>,
    pub orphans: Vec<Orphan>,
    /// Unreferenced objects younger than the minimum age: `(stor, key)`.
    pub young: Vec<(&'static str, String)>,
    pub elapsed: Duration,
}

impl CheckReport {
    /// Orphans still in the key space (not moved).
    pub fn orphans_left(&self) -> usize {
        self.orphans
            .iter()
            .filter(|o| !matches!(o.action, OrphanAction::Moved(_)))
            .count()
    }

    /// Nothing is wrong (any more).
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.orphans_left() == 0
    }

    pub fn count(&self, kind: ProblemKind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }

    pub fn to_json(&self) -> Value {
        let problems: Vec<Value> = self
            .problems
            .iter()
            .map(|p| {
                json!({
                    "kind": p.kind.as_str(),
                    "image": p.image,
                    "what": p.what,
                    "stor": p.stor,
                    "key": p.key,
                    "detail": p.detail,
                })
            })
            .collect();
        let orphans: Vec<Value> = self
            .orphans
            .iter()
            .map(|o| {
                let (action, detail) = match &o.action {
                    OrphanAction::Reported => ("reported", None),
                    OrphanAction::Moved(to) => ("moved", Some(to.as_str())),
                    OrphanAction::MoveFailed(e) => ("move-failed", Some(e.as_str())),
                };
                json!({
                    "stor": o.stor,
                    "key": o.key,
                    "size": o.size,
                    "ageSeconds": o.age.map(|a| a.as_secs()),
                    "action": action,
                    "detail": detail,
                })
            })
            .collect();
        let young: Vec<Value> = self
            .young
            .iter()
            .map(|(stor, key)| json!({"stor": stor, "key": key}))
            .collect();
        json!({
            "ok": self.ok(),
            "records": self.records,
            "imagesChecked": self.images_checked,
            "filesChecked": self.files_checked,
            "iconsChecked": self.icons_checked,
            "bytesVerified": self.bytes_verified,
            "objectsListed": self.objects_listed,
            "problems": problems,
            "orphans": orphans,
            "skippedYoung": young,
            "elapsedSeconds": self.elapsed.as_secs_f64(),
        })
    }

    /// The human report: one line per finding, then a summary.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for p in &self.problems {
            let label = match p.kind {
                ProblemKind::Dangling => "DANGLING  ",
                ProblemKind::Corrupt => "CORRUPT   ",
                ProblemKind::Unreadable => "UNREADABLE",
            };
            writeln!(
                out,
                "{label} image {} {} ({} {}): {}",
                p.image,
                p.what,
                p.stor,
                p.key.as_deref().unwrap_or("-"),
                p.detail
            )?;
        }
        for o in &self.orphans {
            let age = o.age.map_or_else(
                || "age unknown".to_string(),
                |a| format!("{} old", human_age(a)),
            );
            let what = match &o.action {
                OrphanAction::Reported => "not moved (--repair moves orphans to lost+found)".into(),
                OrphanAction::Moved(to) => format!("moved to {to}"),
                OrphanAction::MoveFailed(e) => format!("NOT moved: {e}"),
            };
            writeln!(
                out,
                "ORPHAN     {} {} ({} bytes, {age}): {what}",
                o.stor, o.key, o.size
            )?;
        }
        if !self.young.is_empty() {
            writeln!(
                out,
                "skipped {} unreferenced object(s) written less than an hour ago (uploads in progress?)",
                self.young.len()
            )?;
        }
        let moved = self
            .orphans
            .iter()
            .filter(|o| matches!(o.action, OrphanAction::Moved(_)))
            .count();
        writeln!(
            out,
            "checked {} of {} records: {} files and {} icons ({} bytes) verified; {} objects listed",
            self.images_checked,
            self.records,
            self.files_checked,
            self.icons_checked,
            self.bytes_verified,
            self.objects_listed
        )?;
        writeln!(
            out,
            "{}: {} dangling, {} corrupt, {} unreadable, {} orphaned ({} moved to lost+found, {} left)",
            if self.ok() { "OK" } else { "PROBLEMS" },
            self.count(ProblemKind::Dangling),
            self.count(ProblemKind::Corrupt),
            self.count(ProblemKind::Unreadable),
            self.orphans.len(),
            moved,
            self.orphans_left()
        )
    }
}

fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// A check could not run (a store could not be read).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot list the image records: {0}")]
    Records(imgapi_meta::MetaError),
    #[error("cannot list the objects of the {stor} store: {source}")]
    List {
        stor: &'static str,
        source: BlobError,
    },
}

/// Run the check; progress lines go to `progress`.
pub async fn check(
    stores: &Stores,
    opts: CheckOptions,
    progress: &mut (dyn Write + Send),
) -> Result<CheckReport, CheckError> {
    let started = Instant::now();
    let records = stores
        .meta
        .list(&ImageQuery::all())
        .await
        .map_err(CheckError::Records)?;
    let mut report = CheckReport {
        records: records.len(),
        ..Default::default()
    };
    let binned = binned_images(stores.meta.as_ref()).await?;
    // Every blob any record names, whatever its state, binned or not.
    let mut referenced: HashSet<(String, String)> = HashSet::new();
    for img in records.iter().chain(&binned) {
        for (stor, key) in blob_refs(img) {
            let kind = stores
                .store(&stor)
                .map_or(stor.clone(), |s| s.kind().to_string());
            referenced.insert((kind, key));
        }
    }
    let activated: Vec<&ImageRecord> = records
        .iter()
        .filter(|img| matches!(img.state, ImageState::Active | ImageState::Disabled))
        .collect();
    let n = activated.len();
    let _ = writeln!(
        progress,
        "checking {n} activated image(s) of {} record(s)",
        records.len()
    );
    for (i, img) in activated.into_iter().enumerate() {
        let before = report.problems.len();
        let bytes_before = report.bytes_verified;
        verify_image(stores, img, &mut report).await;
        report.images_checked += 1;
        let verdict = match report.problems.len() - before {
            0 => "ok".to_string(),
            k => format!("{k} PROBLEM(S)"),
        };
        let _ = writeln!(
            progress,
            "[{}/{n}] {} {}@{}: {verdict} ({} bytes)",
            i + 1,
            img.uuid,
            img.name,
            img.version,
            report.bytes_verified - bytes_before
        );
    }
    if !binned.is_empty() {
        let _ = writeln!(
            progress,
            "checking the blobs of {} image(s) in the recycle bin",
            binned.len()
        );
    }
    for img in &binned {
        check_binned(stores, img, &mut report).await;
    }
    let now = SystemTime::now();
    for store in &stores.blobs {
        let kind = store.kind();
        let _ = writeln!(progress, "listing the {kind} store");
        let objects = store
            .list_objects("")
            .await
            .map_err(|source| CheckError::List { stor: kind, source })?;
        report.objects_listed += objects.len();
        for obj in objects {
            if referenced.contains(&(kind.to_string(), obj.key.clone())) {
                continue;
            }
            let age = obj
                .modified
                .map(|m| now.duration_since(m).unwrap_or_default());
            if age.is_some_and(|a| a < opts.min_orphan_age) {
                report.young.push((kind, obj.key));
                continue;
            }
            let action = if opts.repair {
                match repair_orphan(stores, store, &obj.key).await {
                    Some(action) => action,
                    None => {
                        let _ = writeln!(
                            progress,
                            "left {kind} {} alone: a record names it now (written during the check)",
                            obj.key
                        );
                        continue;
                    }
                }
            } else {
                OrphanAction::Reported
            };
            if let OrphanAction::Moved(to) = &action {
                let _ = writeln!(progress, "moved orphan {kind} {} to {to}", obj.key);
            }
            report.orphans.push(Orphan {
                stor: kind,
                key: obj.key,
                size: obj.size,
                age,
                action,
            });
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Every image in the recycle bin, read page by page.
async fn binned_images(meta: &dyn MetaStore) -> Result<Vec<ImageRecord>, CheckError> {
    const PAGE: u32 = 1000;
    let mut images = Vec::new();
    loop {
        let offset = u64::try_from(images.len()).unwrap_or(u64::MAX);
        let page = meta
            .list_bin(None, offset, PAGE)
            .await
            .map_err(CheckError::Records)?;
        let full = page.len() == PAGE as usize;
        images.extend(page.into_iter().map(|entry| entry.image));
        if !full {
            return Ok(images);
        }
    }
}

/// A binned image's blobs must still exist (a restore serves them);
/// their bytes are verified on restore's next check, not here.
async fn check_binned(stores: &Stores, img: &ImageRecord, report: &mut CheckReport) {
    for (stor, key) in blob_refs(img) {
        let what = "blob of an image in the recycle bin".to_string();
        let found = match stores.store(&stor) {
            None => Err((
                ProblemKind::Dangling,
                format!("storage `{stor}` is not configured"),
            )),
            Some(store) => match store.stat(&key).await {
                Ok(_) => Ok(()),
                Err(BlobError::NotFound(_)) => {
                    Err((ProblemKind::Dangling, "blob missing".to_string()))
                }
                Err(e) => Err((ProblemKind::Unreadable, e.to_string())),
            },
        };
        if let Err((kind, detail)) = found {
            report.problems.push(Problem {
                kind,
                image: img.uuid,
                what,
                stor,
                key: Some(key),
                detail,
            });
        }
    }
}

/// `(stor, key)` of every blob `img` names.
fn blob_refs(img: &ImageRecord) -> Vec<(String, String)> {
    let files = img
        .files
        .iter()
        .filter_map(|f| Some((f.stor.clone(), f.blob_key.clone()?)));
    let icon = img
        .icon
        .iter()
        .filter_map(|i| Some((i.stor.clone(), i.blob_key.clone()?)));
    files.chain(icon).collect()
}

async fn verify_image(stores: &Stores, img: &ImageRecord, report: &mut CheckReport) {
    let mut items: Vec<(String, &str, Option<&str>, u64, &str)> = img
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("file {i}"),
                f.stor.as_str(),
                f.blob_key.as_deref(),
                f.size,
                f.sha1.as_str(),
            )
        })
        .collect();
    if let Some(icon) = &img.icon {
        items.push((
            "icon".into(),
            icon.stor.as_str(),
            icon.blob_key.as_deref(),
            icon.size,
            icon.sha1.as_str(),
        ));
    }
    for (what, stor, key, size, sha1) in items {
        let is_icon = what == "icon";
        let problem = |kind, detail: String| Problem {
            kind,
            image: img.uuid,
            what: what.clone(),
            stor: stor.to_string(),
            key: key.map(str::to_string),
            detail,
        };
        let Some(store) = stores.store(stor) else {
            report.problems.push(problem(
                ProblemKind::Dangling,
                format!("store {stor:?} is not configured"),
            ));
            continue;
        };
        let Some(key) = key else {
            report.problems.push(problem(
                ProblemKind::Dangling,
                "the record names no blob".into(),
            ));
            continue;
        };
        match verify_blob(store.as_ref(), key, size, sha1).await {
            Ok(n) => {
                report.bytes_verified += n;
                if is_icon {
                    report.icons_checked += 1;
                } else {
                    report.files_checked += 1;
                }
            }
            Err((kind, detail)) => report.problems.push(problem(kind, detail)),
        }
    }
}

/// Stream `key` and compare size and SHA-1 with the manifest's.
async fn verify_blob(
    store: &dyn BlobStore,
    key: &str,
    size: u64,
    sha1: &str,
) -> Result<u64, (ProblemKind, String)> {
    let read = match store.get_stream(key, None).await {
        Ok(r) => r,
        Err(BlobError::NotFound(_)) => {
            return Err((ProblemKind::Dangling, "blob missing".into()));
        }
        Err(e) => return Err((ProblemKind::Unreadable, e.to_string())),
    };
    if read.total_size != size {
        return Err((
            ProblemKind::Corrupt,
            format!("{} bytes, the manifest says {size}", read.total_size),
        ));
    }
    let mut hasher = Sha1::new();
    let mut seen: u64 = 0;
    let mut stream = read.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| (ProblemKind::Unreadable, format!("read failed: {e}")))?;
        seen = seen.saturating_add(chunk.len() as u64);
        hasher.update(&chunk);
    }
    if seen != size {
        return Err((
            ProblemKind::Corrupt,
            format!("{seen} bytes read, the manifest says {size}"),
        ));
    }
    let got = hex::encode(hasher.finalize());
    if !got.eq_ignore_ascii_case(sha1) {
        return Err((
            ProblemKind::Corrupt,
            format!("sha1 {got}, the manifest says {sha1}"),
        ));
    }
    Ok(seen)
}

/// Move `key` aside unless a record names it now (read again: the check
/// may have listed records before an upload committed); `None` then.
async fn repair_orphan(
    stores: &Stores,
    store: &Arc<dyn BlobStore>,
    key: &str,
) -> Option<OrphanAction> {
    if let Some(uuid) = image_of_key(key) {
        match stores.meta.get(uuid).await {
            Ok(Some(stored)) => {
                let named = blob_refs(&stored.image).into_iter().any(|(stor, k)| {
                    k == key
                        && stores
                            .store(&stor)
                            .is_some_and(|s| s.kind() == store.kind())
                });
                if named {
                    return None;
                }
            }
            Ok(None) => {}
            Err(e) => {
                return Some(OrphanAction::MoveFailed(format!(
                    "cannot re-read image {uuid}: {e}"
                )))
            }
        }
        // Deleted into the recycle bin during the check: still owned.
        match stores.meta.binned(uuid).await {
            Ok(Some(entry)) if blob_refs(&entry.image).iter().any(|(_, k)| k == key) => {
                return None
            }
            Ok(_) => {}
            Err(e) => {
                return Some(OrphanAction::MoveFailed(format!(
                    "cannot read the recycle bin entry of {uuid}: {e}"
                )))
            }
        }
    }
    Some(match store.move_to_lost_found(key).await {
        Ok(to) => OrphanAction::Moved(to),
        Err(e) => OrphanAction::MoveFailed(e.to_string()),
    })
}

/// The image uuid in a key made by `service::files::new_blob_key`
/// (`images/<x>/<uuid>-<slot>-<random>`).
fn image_of_key(key: &str) -> Option<Uuid> {
    let name = key.rsplit('/').next()?;
    Uuid::parse_str(name.get(..36)?).ok()
}

/// `imgapi check` arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file of the registry (else the top-level --config / IMGAPI_CONFIG).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Move orphaned blobs into lost+found (local: <data_dir>/lost+found/,
    /// S3: <prefix>/lost+found/). Nothing is ever deleted.
    #[arg(long)]
    pub repair: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long, short = 'j')]
    pub json: bool,
}

/// `imgapi check`: the report on stdout, progress on stderr.
pub async fn cli(top_config: Option<PathBuf>, args: CheckArgs) -> ExitCode {
    let path = args.config.clone().or(top_config);
    let config = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapi check: {e}");
            return ExitCode::from(2);
        }
    };
    tool_logging();
    let stores = match Stores::open(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("imgapi check: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = CheckOptions {
        repair: args.repair,
        ..CheckOptions::default()
    };
    let mut err = std::io::stderr();
    let report = match check(&stores, opts, &mut err).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("imgapi check: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        writeln!(out, "{}", report.to_json())
    } else {
        report.write_text(&mut out)
    };
    let _ = written.and_then(|()| out.flush());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Warnings of the stores on stderr (the admin commands' own output is
/// theirs).
pub fn tool_logging() {
    let filter = tracing_subscriber::EnvFilter::try_new("warn")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::telemetry::redacted_log::Redacted(std::io::stderr))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_image() {
        let uuid = Uuid::new_v4();
        let key = crate::service::files::new_blob_key(uuid, "file0");
        assert_eq!(image_of_key(&key), Some(uuid));
        assert_eq!(image_of_key("images/x/short"), None);
        assert_eq!(image_of_key(""), None);
        assert_eq!(human_age(Duration::from_secs(90_000)), "25 h");
    }
}
