//! `imgapi mirror`: keep this registry in sync with an upstream IMGAPI (or
//! a legacy DSAPI server), in-process, straight into the configured stores.
//!
//! It may run beside a server on the same configuration: the metadata
//! store serialises writes (SQLite WAL, or PostgreSQL) and every record
//! write is optimistic (revision-checked), blobs are committed atomically,
//! the servers' list caches are keyed by the database generation, and
//! nothing here sweeps the staging area (see `AppState::open_for_tool`).
//!
//! One run:
//!
//! 1. Lists the upstream: every page of ListImages (`state=all`, the
//!    filters as query parameters), or a DSAPI `/datasets` listing (v1
//!    manifests upgraded to v2, filters also applied here).
//! 2. Per upstream image, through the import code of `service::import`
//!    (one verification path: size and sha1 of every file, the announced
//!    sha1 and length of every icon):
//!    - not here: its missing origins first (even outside the filters),
//!      then the image: record (uuid, `published_at` kept), file, icon,
//!      activation; disabled when the upstream's is;
//!    - here, unactivated (an interrupted import): finished;
//!    - here, active, same `files[0].sha1`: the mutable manifest fields,
//!      the disabled flag and the icon brought up to date (UpdateImage
//!      semantics, optimistic revision); the file is never touched;
//!    - here with another sha1 (or a local placeholder): a conflict,
//!      reported, never overwritten;
//!    - unactivated upstream: skipped.
//! 3. With `delete`: local images that this mirror imported from this
//!    upstream and that the listing no longer has are deleted, dependents
//!    first; never an image published or imported otherwise, never the
//!    origin of a remaining image.
//!
//! What a mirror imported is recorded as a finished job row of the
//! metadata store (`name = "mirror-import"`, `params.source` = the
//! upstream URL), so ListImageJobs shows where a mirrored image came from.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use imgapi_domain::build::apply_update;
use imgapi_domain::filter::ImageQuery;
use imgapi_domain::image::now_iso;
use imgapi_domain::{ImageFile, ImageRecord, ImageState, RuleContext};
use imgapi_meta::{JobExecution, JobRecord, MetaError, StoredImage};
use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::app::{App, AppState, StartupError};
use crate::config::Config;
use crate::service::files::delete_icon;
use crate::service::images::{
    activated, build_import_record, delete_image, modify, with_disabled, ImportRecord,
};
use crate::service::import::{
    add_verified_file_counted, announced_sha1, create_from_manifest, dsapi_to_v2, fetch_icon,
    fetch_manifest, manifest_origin, remote_file, store_fetched_icon, RemoteFile,
};
use crate::service::remote::{FetchError, Source, Trust};
use crate::service::ServiceError;

/// The job name of the rows that record what a mirror imported.
pub const MIRROR_IMPORT: &str = "mirror-import";
/// ListImages page size (the documented maximum).
const PAGE: usize = 1000;
const PAGE_STR: &str = "1000";
/// Largest listing answer read (one page, or a whole DSAPI listing).
const MAX_LISTING: usize = 256 * 1024 * 1024;
/// Longest origin chain walked (api.md §7).
const MAX_ORIGIN_CHAIN: usize = 100;
/// How often a file transfer's progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What to mirror, from where.
#[derive(Debug, Clone, Default)]
pub struct MirrorOptions {
    /// The upstream IMGAPI's URL; a path ending in `/datasets` is a DSAPI.
    pub upstream: String,
    /// ListImages filters, sent as query parameters.
    pub name: Option<String>,
    pub os: Option<String>,
    pub image_type: Option<String>,
    pub owner: Option<String>,
    /// The upstream channel (every upstream request carries it).
    pub channel: Option<String>,
    /// Delete what this mirror imported from this upstream and the
    /// upstream listing no longer has.
    pub delete: bool,
    /// Report the plan; write nothing.
    pub dry_run: bool,
}

/// Where progress goes. Library code writes no terminal codes: the
/// binary decides how (and whether) to show [`Reporter::transfer`].
pub trait Reporter: Send {
    /// One line about one image action, or about the run.
    fn line(&mut self, line: &str);
    /// Bytes of a file received so far (about twice a second while one
    /// downloads).
    fn transfer(&mut self, _uuid: Uuid, _done: u64, _total: u64) {}
}

/// A [`Reporter`] writing lines to any writer (and no transfer progress).
pub struct Lines<W>(pub W);

impl<W: std::io::Write + Send> Reporter for Lines<W> {
    fn line(&mut self, line: &str) {
        let _ = writeln!(self.0, "{line}");
    }
}

/// One image that failed, or a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub uuid: Option<Uuid>,
    pub message: String,
}

/// What one run did (or, dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorSummary {
    pub upstream: String,
    pub dry_run: bool,
    /// Images imported (origins included), or interrupted imports finished.
    pub new: usize,
    /// Present images whose manifest fields or icon were brought up to date.
    pub updated: usize,
    /// Present images disabled (as upstream), and enabled.
    pub disabled: usize,
    pub enabled: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub conflicts: usize,
    pub failed: usize,
    /// Unactivated upstream images, left alone.
    pub skipped: usize,
    /// File and icon bytes received (dry run: that would be).
    pub bytes: u64,
    #[serde(rename = "took_secs", serialize_with = "secs")]
    pub took: Duration,
    /// Ended early by a stop request (after the image in progress).
    pub stopped: bool,
    pub conflict_images: Vec<Problem>,
    pub failures: Vec<Problem>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl MirrorSummary {
    /// Nothing failed (conflicts are reported, not failures).
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl fmt::Display for MirrorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}new {}, updated {}, disabled {}, enabled {}, deleted {}, unchanged {}, conflicts {}, failed {}, bytes {}, took {:.1}s",
            if self.dry_run { "dry run: " } else { "" },
            self.new,
            self.updated,
            self.disabled,
            self.enabled,
            self.deleted,
            self.unchanged,
            self.conflicts,
            self.failed,
            self.bytes,
            self.took.as_secs_f64()
        )
    }
}

/// A run that could not start, or could not list the upstream (nothing
/// was changed then).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot open the stores: {0}")]
    Open(#[from] StartupError),
    #[error("invalid upstream URL: {0}")]
    Upstream(String),
    #[error("upstream {url} refused by the [remote] policy: {why}{}", policy_hint(.why))]
    Refused { url: String, why: String },
    #[error("cannot list the upstream images: {0}")]
    List(String),
    #[error("cannot list the local images: {0}")]
    Local(MetaError),
}

/// How to mirror from an internal host, for a policy refusal.
fn policy_hint(why: &str) -> &'static str {
    if why.contains("allow_private_addresses") {
        "; to mirror from an internal host, set allow_private_addresses = true in the [remote] section of the config"
    } else if why.contains("allow_http") {
        "; to mirror over plain http, set allow_http = true in the [remote] section of the config"
    } else if why.contains("allowed_hosts") {
        "; add the upstream's host to allowed_hosts in the [remote] section of the config"
    } else {
        ""
    }
}

/// Open the stores a configuration names, for a mirror beside a server.
pub async fn open(config: Config) -> Result<App, MirrorError> {
    Ok(AppState::open_for_tool(config).await?)
}

/// `10m`, `1h`, `1h30m`, `90s`, `2d`, or bare seconds.
pub fn parse_interval(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    let bad = || format!("invalid interval {raw:?} (examples: 90s, 10m, 1h, 1h30m, 1d)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return (secs > 0)
            .then(|| Duration::from_secs(secs))
            .ok_or_else(bad);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// One mirror run. `stop` is looked at between images: once set, the run
/// ends after the image in progress (no deletions then).
pub async fn mirror(
    app: &AppState,
    opts: &MirrorOptions,
    reporter: &mut dyn Reporter,
    stop: &AtomicBool,
) -> Result<MirrorSummary, MirrorError> {
    let started = Instant::now();
    let src = Source::parse(&opts.upstream, Trust::Checked).map_err(MirrorError::Upstream)?;
    app.remote
        .precheck(&src.base)
        .await
        .map_err(|r| MirrorError::Refused {
            url: masked(src.as_str()),
            why: r.0,
        })?;
    let source_id = src.as_str().to_string();
    // An origin may be outside the mirrored channel: `channel=*` (any
    // channel, api.md §1.7) reaches it.
    let (src, origin_src) = match opts.channel.as_deref().filter(|c| !c.is_empty()) {
        Some(channel) => (
            src.with_query_pair("channel", channel),
            src.with_query_pair("channel", "*"),
        ),
        None => (src.clone(), src),
    };
    let listing = list_upstream(app, &src, opts).await?;
    let local_channel = app
        .channels_enabled()
        .then(|| app.default_channel().map(|c| c.name.clone()))
        .flatten();
    let mut run = Run {
        app,
        opts,
        src,
        origin_src,
        source_id: source_id.clone(),
        upstream: HashMap::new(),
        handled: HashSet::new(),
        local_channel,
        reporter,
        summary: MirrorSummary {
            upstream: masked(&source_id),
            dry_run: opts.dry_run,
            ..MirrorSummary::default()
        },
    };
    let mut order = Vec::new();
    let mut listing_ok = true;
    for entry in listing.entries {
        match entry {
            Ok((uuid, manifest)) => {
                if run.upstream.insert(uuid, manifest).is_none() {
                    order.push(uuid);
                }
            }
            Err(message) => {
                listing_ok = false;
                run.fail(None, "upstream listing", message);
            }
        }
    }
    for uuid in &order {
        if stop.load(Ordering::SeqCst) {
            run.summary.stopped = true;
            break;
        }
        run.process(*uuid).await;
    }
    if opts.delete && !run.summary.stopped {
        if listing_ok {
            let listed: HashSet<Uuid> = order.iter().copied().collect();
            run.delete_gone(&listed, stop).await?;
        } else {
            run.reporter
                .line("nothing deleted: the upstream listing had unreadable entries");
        }
    }
    run.summary.took = started.elapsed();
    let line = run.summary.to_string();
    run.reporter.line(&line);
    Ok(run.summary)
}

/// One listing entry: a v2 manifest with its uuid, or why it is unusable.
type Entry = Result<(Uuid, Map<String, Value>), String>;

/// The upstream images, in the listing's order (oldest first).
struct Listing {
    entries: Vec<Entry>,
}

fn listing_error(e: FetchError) -> MirrorError {
    match e {
        FetchError::Refused(r) => MirrorError::List(format!(
            "refused by the [remote] policy: {}{}",
            r.0,
            policy_hint(&r.0)
        )),
        other => MirrorError::List(other.to_string()),
    }
}

/// One listing entry as a v2 manifest with its uuid.
fn entry(item: Value, dsapi: bool) -> Entry {
    let Value::Object(map) = item else {
        return Err("an entry is not a JSON object".into());
    };
    let map = if dsapi { dsapi_to_v2(map) } else { map };
    let uuid = map
        .get("uuid")
        .and_then(Value::as_str)
        .and_then(|u| Uuid::parse_str(u).ok())
        .ok_or_else(|| "an entry has no valid uuid".to_string())?;
    Ok((uuid, map))
}

async fn list_upstream(
    app: &AppState,
    src: &Source,
    opts: &MirrorOptions,
) -> Result<Listing, MirrorError> {
    let mut filters: Vec<(&str, &str)> = Vec::new();
    for (key, value) in [
        ("name", &opts.name),
        ("os", &opts.os),
        ("type", &opts.image_type),
        ("owner", &opts.owner),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            filters.push((key, v));
        }
    }
    if src.dsapi {
        // One unpaged answer; DSAPI servers may not know every filter.
        let items = app
            .remote
            .get_array(src.list_url(&filters), src.trust, MAX_LISTING)
            .await
            .map_err(listing_error)?;
        let entries = items
            .into_iter()
            .map(|item| entry(item, true))
            .filter(|e| e.as_ref().map_or(true, |(_, m)| matches_filters(m, opts)))
            .collect();
        return Ok(Listing { entries });
    }
    let mut params = vec![
        ("state", "all"),
        ("sort", "published_at.asc"),
        ("limit", PAGE_STR),
    ];
    params.extend(filters);
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut query = params.clone();
        if let Some(m) = marker.as_deref() {
            query.push(("marker", m));
        }
        let page = app
            .remote
            .get_array(src.list_url(&query), src.trust, MAX_LISTING)
            .await
            .map_err(listing_error)?;
        let full = page.len() >= PAGE;
        let mut added = 0;
        let mut next = None;
        for item in page {
            let got = entry(item, false);
            if let Ok((uuid, m)) = &got {
                if m.get("published_at").and_then(Value::as_str).is_some() {
                    next = Some(uuid.to_string());
                }
                if !seen.insert(*uuid) {
                    continue;
                }
            }
            added += 1;
            entries.push(got);
        }
        // The marker image comes again (ListImages' marker is inclusive).
        // A short page may be a server's own page cap: ask again until a
        // page brings nothing new.
        match next {
            Some(n) if added > 0 && marker.as_deref() != Some(n.as_str()) => marker = Some(n),
            _ if !full => break,
            _ => {
                return Err(MirrorError::List(format!(
                    "the listing does not advance after {} images (more than {PAGE} images share one published_at?)",
                    entries.len()
                )))
            }
        }
    }
    Ok(Listing { entries })
}

/// ListImages' filter semantics, for DSAPI listings (which may ignore
/// them): `name` exact or `~substring`, `type` exact or `!type`, `os` and
/// `owner` exact.
fn matches_filters(m: &Map<String, Value>, opts: &MirrorOptions) -> bool {
    let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
    let name_ok = match opts.name.as_deref().filter(|v| !v.is_empty()) {
        None => true,
        Some(v) => match v.strip_prefix('~') {
            Some(sub) => field("name").contains(sub),
            None => field("name") == v,
        },
    };
    let type_ok = match opts.image_type.as_deref().filter(|v| !v.is_empty()) {
        None => true,
        Some(v) => match v.strip_prefix('!') {
            Some(not) => field("type") != not,
            None => field("type") == v,
        },
    };
    let exact = |k: &str, want: &Option<String>| {
        want.as_deref()
            .filter(|v| !v.is_empty())
            .is_none_or(|v| field(k) == v)
    };
    name_ok && type_ok && exact("os", &opts.os) && exact("owner", &opts.owner)
}

/// A URL for display: its password (if any) replaced by `***`.
fn masked(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => match u.set_password(Some("***")) {
            Ok(()) => u.to_string(),
            Err(()) => url.to_string(),
        },
        _ => url.to_string(),
    }
}

fn manifest_str<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

fn label(uuid: Uuid, m: &Map<String, Value>) -> String {
    format!(
        "{uuid} {}@{}",
        manifest_str(m, "name").unwrap_or("?"),
        manifest_str(m, "version").unwrap_or("?")
    )
}

fn upstream_activated(m: &Map<String, Value>) -> bool {
    matches!(manifest_str(m, "state"), Some("active" | "disabled"))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Fields a mirror keeps equal to the upstream's: UpdateImage's mutable
/// fields (but `channels`, which are local) and `error`. `disabled` and
/// the icon are handled on their own; files, origin, uuid and
/// `published_at` never change on an active image.
fn synced_fields() -> impl Iterator<Item = &'static str> {
    imgapi_domain::build::MUTABLE_FIELDS
        .into_iter()
        .filter(|f| *f != "channels")
        .chain(["error"])
}

/// An UpdateImage body turning `local`'s synced fields into `desired`'s
/// (`null` deletes a field).
fn update_body(local: &ImageRecord, desired: &ImageRecord) -> Map<String, Value> {
    let (have, want) = (local.to_raw_map(), desired.to_raw_map());
    let mut body = Map::new();
    for key in synced_fields() {
        let wanted = want.get(key);
        if have.get(key) != wanted {
            body.insert(key.into(), wanted.cloned().unwrap_or(Value::Null));
        }
    }
    body
}

/// `local` brought up to `desired` (fields, then the disabled flag).
fn synced(
    local: &ImageRecord,
    desired: &ImageRecord,
    rules: &RuleContext,
) -> Result<ImageRecord, ServiceError> {
    let body = update_body(local, desired);
    let mut new = if body.is_empty() {
        local.clone()
    } else {
        apply_update(local, Some(&Value::Object(body)), true, rules)?
    };
    if new.disabled != desired.disabled {
        new = with_disabled(&new, desired.disabled);
    }
    Ok(new)
}

/// What to do about an image's icon.
enum IconChange {
    None,
    Add,
    /// The upstream's icon differs: its answer, headers read.
    Replace(reqwest::Response),
    Remove,
}

/// How one upstream image was handled.
enum Outcome {
    New(String),
    Changed {
        disabled: Option<bool>,
        fields: Vec<String>,
    },
    Unchanged,
    Conflict(String),
    Skipped(String),
}

struct Run<'a> {
    app: &'a AppState,
    opts: &'a MirrorOptions,
    /// The upstream, with the channel (if any) on every URL.
    src: Source,
    /// The upstream for origins outside the listing: any channel.
    origin_src: Source,
    /// The upstream as recorded in `mirror-import` rows.
    source_id: String,
    /// The listing, by uuid.
    upstream: HashMap<Uuid, Map<String, Value>>,
    /// Images dealt with in this run (an origin before its turn).
    handled: HashSet<Uuid>,
    local_channel: Option<String>,
    reporter: &'a mut dyn Reporter,
    summary: MirrorSummary,
}

impl Run<'_> {
    /// The upstream as an image is reached: a listed one through the
    /// channel, an origin outside the listing through any channel.
    fn src_of(&self, uuid: Uuid) -> &Source {
        if self.upstream.contains_key(&uuid) {
            &self.src
        } else {
            &self.origin_src
        }
    }

    fn say(&mut self, what: &str, text: &str) {
        let line = format!("{what}: {text}");
        self.reporter.line(&line);
    }

    fn fail(&mut self, uuid: Option<Uuid>, what: &str, message: String) {
        self.say(what, &format!("FAILED: {message}"));
        self.summary.failed += 1;
        self.summary.failures.push(Problem { uuid, message });
    }

    fn import_how(&self) -> ImportRecord<'static> {
        ImportRecord {
            // A mirror copies the upstream's owners as they are.
            skip_owner_check: Some(true),
            user_agent: None,
            placeholder_ok: false,
            check_origin: false,
        }
    }

    async fn load(&self, uuid: Uuid) -> Result<Option<StoredImage>, String> {
        self.app
            .meta
            .get(uuid)
            .await
            .map_err(|e| format!("cannot load the local image: {e}"))
    }

    async fn load_existing(&self, uuid: Uuid) -> Result<StoredImage, String> {
        self.load(uuid)
            .await?
            .ok_or_else(|| format!("image {uuid} vanished meanwhile"))
    }

    /// Handle one listed image and report it.
    async fn process(&mut self, uuid: Uuid) {
        if !self.handled.insert(uuid) {
            return; // imported earlier in this run, as an origin
        }
        let Some(m) = self.upstream.get(&uuid).cloned() else {
            return;
        };
        let what = label(uuid, &m);
        let dry = self.opts.dry_run;
        match self.sync_listed(uuid, &m).await {
            Ok(Outcome::New(detail)) => {
                self.summary.new += 1;
                let verb = if dry { "would import" } else { "new" };
                self.say(&what, &format!("{verb}{detail}"));
            }
            Ok(Outcome::Changed { disabled, fields }) => {
                let also = if fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", fields.join(", "))
                };
                let verb = match disabled {
                    Some(true) => {
                        self.summary.disabled += 1;
                        "disable"
                    }
                    Some(false) => {
                        self.summary.enabled += 1;
                        "enable"
                    }
                    None => {
                        self.summary.updated += 1;
                        "update"
                    }
                };
                let text = if dry {
                    format!("would {verb}{also}")
                } else {
                    format!("{}{also}", past(verb))
                };
                self.say(&what, &text);
            }
            Ok(Outcome::Unchanged) => self.summary.unchanged += 1,
            Ok(Outcome::Conflict(message)) => {
                self.say(&what, &format!("CONFLICT, left alone: {message}"));
                self.summary.conflicts += 1;
                self.summary.conflict_images.push(Problem {
                    uuid: Some(uuid),
                    message,
                });
            }
            Ok(Outcome::Skipped(why)) => {
                self.summary.skipped += 1;
                self.say(&what, &format!("skipped: {why}"));
            }
            Err(message) => self.fail(Some(uuid), &what, message),
        }
    }

    async fn sync_listed(&mut self, uuid: Uuid, m: &Map<String, Value>) -> Result<Outcome, String> {
        if !upstream_activated(m) {
            let state = manifest_str(m, "state").unwrap_or("without a state");
            return Ok(Outcome::Skipped(format!("{state} upstream")));
        }
        let Some(remote) = remote_file(m) else {
            return Err("the upstream manifest has no files[0] with sha1 and size".into());
        };
        let Some(stored) = self.load(uuid).await? else {
            self.ensure_origins(uuid, m).await?;
            return self.import_new(uuid, m, remote).await.map(Outcome::New);
        };
        if let Some(conflict) = conflict(&stored.image, &remote) {
            return Ok(Outcome::Conflict(conflict));
        }
        if !stored.image.activated {
            self.ensure_origins(uuid, m).await?;
            let detail = self.finish(stored, m, remote, false).await?;
            return Ok(Outcome::New(format!(
                " (finished an interrupted import){detail}"
            )));
        }
        self.update(stored, m).await
    }

    /// The missing (or unfinished) origins of `m`, base first, imported.
    async fn ensure_origins(&mut self, child: Uuid, m: &Map<String, Value>) -> Result<(), String> {
        let mut chain: Vec<(Uuid, Map<String, Value>, Option<StoredImage>)> = Vec::new();
        let mut next = manifest_origin(m);
        while let Some(origin) = next {
            if chain.len() >= MAX_ORIGIN_CHAIN
                || origin == child
                || chain.iter().any(|(u, _, _)| *u == origin)
            {
                return Err(format!(
                    "the origin chain is longer than {MAX_ORIGIN_CHAIN} images or loops"
                ));
            }
            let local = self.load(origin).await?;
            if local.as_ref().is_some_and(|s| s.image.activated) {
                break;
            }
            let manifest = match self.upstream.get(&origin) {
                Some(m) => m.clone(),
                None => fetch_manifest(self.app, &self.origin_src, origin, None)
                    .await
                    .map_err(|e| format!("cannot get the manifest of origin {origin}: {e}"))?,
            };
            if !upstream_activated(&manifest) {
                return Err(format!("origin {origin} is not active upstream"));
            }
            next = manifest_origin(&manifest);
            chain.push((origin, manifest, local));
        }
        for (origin, manifest, local) in chain.into_iter().rev() {
            self.handled.insert(origin);
            let what = label(origin, &manifest);
            let done = match remote_file(&manifest) {
                None => Err("the upstream manifest has no files[0] with sha1 and size".to_string()),
                Some(remote) => match local {
                    None => self.import_new(origin, &manifest, remote).await,
                    Some(stored) => match conflict(&stored.image, &remote) {
                        Some(c) => Err(c),
                        None => self.finish(stored, &manifest, remote, false).await,
                    },
                },
            };
            match done {
                Ok(detail) => {
                    self.summary.new += 1;
                    let verb = if self.opts.dry_run {
                        "would import"
                    } else {
                        "new"
                    };
                    self.say(&what, &format!("{verb} (origin of {child}){detail}"));
                }
                Err(message) => {
                    self.fail(Some(origin), &what, message.clone());
                    return Err(format!("origin {origin}: {message}"));
                }
            }
        }
        Ok(())
    }

    /// Create the record, then [`Run::finish`]; on failure the record is
    /// deleted again (nothing partial stays).
    async fn import_new(
        &mut self,
        uuid: Uuid,
        m: &Map<String, Value>,
        remote: RemoteFile,
    ) -> Result<String, String> {
        if self.opts.dry_run {
            self.summary.bytes += remote.size;
            return Ok(format!(", {}", human_bytes(remote.size)));
        }
        create_from_manifest(
            self.app,
            uuid,
            m.clone(),
            Some(true),
            None,
            self.local_channel.as_deref(),
        )
        .await
        .map_err(|e| format!("cannot create the record: {e}"))?;
        let stored = self.load_existing(uuid).await?;
        match self.finish(stored, m, remote, true).await {
            Ok(detail) => Ok(detail),
            Err(message) => Err(match self.discard(uuid).await {
                Ok(()) => message,
                Err(e) => format!("{message}; removing the unfinished record failed too: {e}"),
            }),
        }
    }

    /// Delete an unfinished record this run created.
    async fn discard(&self, uuid: Uuid) -> Result<(), String> {
        match self.load(uuid).await? {
            Some(stored) if !stored.image.activated => delete_image(self.app, stored, None, None)
                .await
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    /// File (unless already complete), icon, activation, the
    /// `mirror-import` row, then the manifest fields as upstream.
    async fn finish(
        &mut self,
        stored: StoredImage,
        m: &Map<String, Value>,
        remote: RemoteFile,
        created_now: bool,
    ) -> Result<String, String> {
        let uuid = stored.image.uuid;
        if !created_now && self.busy(uuid).await? {
            return Err(
                "an import job of this image is in progress on the server; left to it".into(),
            );
        }
        if self.opts.dry_run {
            let complete = match stored.image.files.first() {
                Some(f) => self.file_complete(f, &remote).await,
                None => false,
            };
            let size = if complete { 0 } else { remote.size };
            self.summary.bytes += size;
            return Ok(format!(", {}", human_bytes(size)));
        }
        let mut received = 0;
        let complete = match stored.image.files.first() {
            Some(f) => self.file_complete(f, &remote).await,
            None => false,
        };
        let stored = if complete {
            stored
        } else {
            received += self.transfer(stored, remote).await?;
            self.load_existing(uuid).await?
        };
        let stored = if m.get("icon") == Some(&Value::Bool(true))
            && !self.src.dsapi
            && stored.image.icon.is_none()
        {
            let resp = fetch_icon(self.app, self.src_of(uuid), uuid)
                .await
                .map_err(|e| e.to_string())?;
            let record = store_fetched_icon(self.app, stored, resp)
                .await
                .map_err(|e| format!("icon: {e}"))?;
            let size = record.icon.as_ref().map_or(0, |i| i.size);
            self.summary.bytes += size;
            received += size;
            self.load_existing(uuid).await?
        } else {
            stored
        };
        let stored = if stored.image.activated {
            stored
        } else {
            modify(self.app, stored, true, activated)
                .await
                .map_err(|e| format!("cannot activate: {e}"))?;
            self.load_existing(uuid).await?
        };
        if let Err(e) = self.record_mirrored(uuid).await {
            self.say(
                &uuid.to_string(),
                &format!("warning: imported, but not recorded as mirrored ({e}); --delete will not remove it"),
            );
        }
        if !created_now {
            // The manifest may have changed since the interrupted run.
            let mut manifest = m.clone();
            if manifest.get("icon") == Some(&Value::Bool(true)) {
                manifest.remove("icon");
            }
            let desired = build_import_record(
                self.app,
                uuid,
                manifest,
                self.import_how(),
                self.local_channel.as_deref(),
            )
            .await
            .map_err(|e| format!("the upstream manifest cannot be imported: {e}"))?;
            let rules = self.app.rules();
            modify(self.app, stored, true, |img| synced(img, &desired, &rules))
                .await
                .map_err(|e| format!("cannot update the record: {e}"))?;
        }
        let disabled = if m.get("disabled") == Some(&Value::Bool(true)) {
            " (disabled, as upstream)"
        } else {
            ""
        };
        Ok(format!("{disabled}, {}", human_bytes(received)))
    }

    /// The local file is the upstream's, and its blob is there.
    async fn file_complete(&self, file: &ImageFile, remote: &RemoteFile) -> bool {
        if file.sha1 != remote.sha1 || file.size != remote.size {
            return false;
        }
        let Some(key) = file.blob_key.as_deref() else {
            return false;
        };
        match self.app.blob_store(&file.stor) {
            Some(store) => store.stat(key).await.is_ok_and(|m| m.size == file.size),
            None => false,
        }
    }

    /// Fetch the file (verified), reporting progress; the bytes received.
    async fn transfer(&mut self, stored: StoredImage, remote: RemoteFile) -> Result<u64, String> {
        let uuid = stored.image.uuid;
        let total = remote.size;
        let counter = Arc::new(AtomicU64::new(0));
        let app = self.app;
        let src = self.src_of(uuid).clone();
        let fetch = add_verified_file_counted(
            app,
            stored,
            &src,
            &app.blobs,
            remote,
            Some(Arc::clone(&counter)),
        );
        tokio::pin!(fetch);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            tokio::select! {
                done = &mut fetch => break done,
                _ = tick.tick() => {
                    self.reporter.transfer(uuid, counter.load(Ordering::Relaxed), total);
                }
            }
        };
        let received = counter.load(Ordering::Relaxed);
        self.summary.bytes += received;
        result.map_err(|e| e.to_string())?;
        Ok(received)
    }

    /// An unfinished job (a server's import-remote) works on this image.
    async fn busy(&self, uuid: Uuid) -> Result<bool, String> {
        let jobs = self
            .app
            .meta
            .image_jobs(uuid)
            .await
            .map_err(|e| format!("cannot read the jobs of the image: {e}"))?;
        Ok(jobs.iter().any(|j| !j.execution.is_finished()))
    }

    /// This mirror (this upstream) imported the image.
    async fn mirrored_here(&self, uuid: Uuid) -> Result<bool, MetaError> {
        let jobs = self.app.meta.image_jobs(uuid).await?;
        Ok(jobs.iter().any(|j| {
            j.name == MIRROR_IMPORT
                && j.execution == JobExecution::Succeeded
                && j.params.get("source").and_then(Value::as_str) == Some(self.source_id.as_str())
        }))
    }

    /// Record the import as a finished `mirror-import` job row (once).
    async fn record_mirrored(&self, uuid: Uuid) -> Result<(), MetaError> {
        if self.mirrored_here(uuid).await? {
            return Ok(());
        }
        let now = now_iso();
        let job = JobRecord {
            uuid: Uuid::new_v4(),
            image_uuid: uuid,
            name: MIRROR_IMPORT.into(),
            execution: JobExecution::Succeeded,
            params: json!({"task": MIRROR_IMPORT, "source": self.source_id}),
            chain_results: vec![json!({
                "name": "mirror",
                "image_uuid": uuid,
                "result": format!("imported from {}", masked(&self.source_id)),
                "error": "",
                "started_at": now,
                "finished_at": now,
            })],
            created_at: now.clone(),
            started_at: Some(now.clone()),
            finished_at: Some(now),
            lease: None,
            attempts: 0,
        };
        self.app.meta.insert_job(&job).await
    }

    /// A present, active image brought up to date with the upstream's.
    async fn update(
        &mut self,
        stored: StoredImage,
        m: &Map<String, Value>,
    ) -> Result<Outcome, String> {
        let uuid = stored.image.uuid;
        let mut manifest = m.clone();
        if manifest.get("icon") == Some(&Value::Bool(true)) {
            manifest.remove("icon");
        }
        let desired = build_import_record(
            self.app,
            uuid,
            manifest,
            self.import_how(),
            self.local_channel.as_deref(),
        )
        .await
        .map_err(|e| format!("the upstream manifest cannot be imported: {e}"))?;
        let mut fields: Vec<String> = update_body(&stored.image, &desired)
            .keys()
            .cloned()
            .collect();
        let disabled = (stored.image.disabled != desired.disabled).then_some(desired.disabled);
        let icon = self.icon_change(&stored, m).await?;
        if !matches!(icon, IconChange::None) {
            fields.push("icon".into());
        }
        if fields.is_empty() && disabled.is_none() {
            return Ok(Outcome::Unchanged);
        }
        if self.opts.dry_run {
            return Ok(Outcome::Changed { disabled, fields });
        }
        let rules = self.app.rules();
        let stored = if fields.iter().any(|f| f != "icon") || disabled.is_some() {
            modify(self.app, stored, true, |img| synced(img, &desired, &rules))
                .await
                .map_err(|e| format!("cannot update the record: {e}"))?;
            self.load_existing(uuid).await?
        } else {
            stored
        };
        match icon {
            IconChange::None => {}
            IconChange::Add => {
                let resp = fetch_icon(self.app, &self.src, uuid)
                    .await
                    .map_err(|e| e.to_string())?;
                self.store_icon(stored, resp).await?;
            }
            IconChange::Replace(resp) => self.store_icon(stored, resp).await?,
            IconChange::Remove => {
                delete_icon(self.app, stored)
                    .await
                    .map_err(|e| format!("cannot delete the icon: {e}"))?;
            }
        }
        Ok(Outcome::Changed { disabled, fields })
    }

    async fn store_icon(
        &mut self,
        stored: StoredImage,
        resp: reqwest::Response,
    ) -> Result<(), String> {
        let record = store_fetched_icon(self.app, stored, resp)
            .await
            .map_err(|e| format!("icon: {e}"))?;
        self.summary.bytes += record.icon.as_ref().map_or(0, |i| i.size);
        Ok(())
    }

    /// Compare the icons. A present icon is compared by the sha1 the
    /// upstream announces (`ETag`); without one, presence alone counts.
    async fn icon_change(
        &self,
        stored: &StoredImage,
        m: &Map<String, Value>,
    ) -> Result<IconChange, String> {
        if self.src.dsapi {
            return Ok(IconChange::None); // DSAPI has no icons
        }
        let upstream_has = m.get("icon") == Some(&Value::Bool(true));
        match (upstream_has, &stored.image.icon) {
            (false, None) => Ok(IconChange::None),
            (false, Some(_)) => Ok(IconChange::Remove),
            (true, None) => Ok(IconChange::Add),
            (true, Some(icon)) => {
                let resp = fetch_icon(self.app, &self.src, stored.image.uuid)
                    .await
                    .map_err(|e| e.to_string())?;
                match announced_sha1(&resp) {
                    Some(sha1) if sha1 != icon.sha1 => Ok(IconChange::Replace(resp)),
                    _ => Ok(IconChange::None),
                }
            }
        }
    }

    /// `--delete`: what this mirror imported from this upstream and the
    /// listing no longer has, dependents first; the origin of a remaining
    /// image stays.
    async fn delete_gone(
        &mut self,
        listed: &HashSet<Uuid>,
        stop: &AtomicBool,
    ) -> Result<(), MirrorError> {
        let locals = self
            .app
            .meta
            .list(&ImageQuery::all())
            .await
            .map_err(MirrorError::Local)?;
        let mut candidates = Vec::new();
        for img in locals.into_iter().filter(|i| !listed.contains(&i.uuid)) {
            match self.mirrored_here(img.uuid).await {
                Ok(true) => candidates.push(img),
                Ok(false) => {}
                Err(e) => self.fail(
                    Some(img.uuid),
                    &img.uuid.to_string(),
                    format!("cannot tell whether it was mirrored: {e}"),
                ),
            }
        }
        // Newest first: dependents usually come after their origins.
        candidates.reverse();
        let mut deleted: HashSet<Uuid> = HashSet::new();
        let mut given_up: HashSet<Uuid> = HashSet::new();
        loop {
            let mut progress = false;
            for img in &candidates {
                if deleted.contains(&img.uuid) || given_up.contains(&img.uuid) {
                    continue;
                }
                if stop.load(Ordering::SeqCst) {
                    self.summary.stopped = true;
                    return Ok(());
                }
                let what = format!("{} {}@{}", img.uuid, img.name, img.version);
                let dependents = match self.app.meta.dependents(img.uuid, None).await {
                    Ok(d) => d,
                    Err(e) => {
                        given_up.insert(img.uuid);
                        self.fail(
                            Some(img.uuid),
                            &what,
                            format!("cannot list dependents: {e}"),
                        );
                        continue;
                    }
                };
                if dependents.iter().any(|d| !deleted.contains(d)) {
                    continue;
                }
                if !self.opts.dry_run {
                    let result = match self.load(img.uuid).await {
                        Ok(Some(stored)) => delete_image(self.app, stored, None, None)
                            .await
                            .map_err(|e| e.to_string()),
                        Ok(None) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(message) = result {
                        given_up.insert(img.uuid);
                        self.fail(Some(img.uuid), &what, format!("cannot delete: {message}"));
                        continue;
                    }
                }
                deleted.insert(img.uuid);
                progress = true;
                self.summary.deleted += 1;
                let verb = if self.opts.dry_run {
                    "would delete"
                } else {
                    "deleted"
                };
                self.say(
                    &what,
                    &format!("{verb} (not in the upstream listing: gone, or outside the filters)"),
                );
            }
            if !progress {
                break;
            }
        }
        for img in &candidates {
            if deleted.contains(&img.uuid) || given_up.contains(&img.uuid) {
                continue;
            }
            let what = format!("{} {}@{}", img.uuid, img.name, img.version);
            let dependents = self
                .app
                .meta
                .dependents(img.uuid, None)
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|d| !deleted.contains(d))
                .map(|d| d.to_string())
                .collect::<Vec<_>>();
            self.say(
                &what,
                &format!(
                    "kept although not upstream: origin of {}",
                    dependents.join(", ")
                ),
            );
        }
        Ok(())
    }
}

/// Why a local image is not the upstream's (a different file, or a local
/// placeholder), if it is not.
fn conflict(local: &ImageRecord, remote: &RemoteFile) -> Option<String> {
    if matches!(local.state, ImageState::Creating | ImageState::Failed) {
        return Some(format!(
            "a local {} placeholder has this uuid",
            local.state.as_str()
        ));
    }
    let file = local.files.first()?;
    (file.sha1 != remote.sha1).then(|| {
        format!(
            "the local image has files[0].sha1 {}, the upstream's is {}",
            file.sha1, remote.sha1
        )
    })
}

fn past(verb: &str) -> String {
    format!("{verb}d")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_interval("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_interval(" 2d "), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "0",
            "0m",
            "m",
            "10x",
            "1.5h",
            "10m5",
            "-1m",
            "99999999999999999999h",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn summary_line() {
        let s = MirrorSummary {
            new: 2,
            conflicts: 1,
            bytes: 1234,
            took: Duration::from_millis(1500),
            ..MirrorSummary::default()
        };
        assert_eq!(
            s.to_string(),
            "new 2, updated 0, disabled 0, enabled 0, deleted 0, unchanged 0, conflicts 1, failed 0, bytes 1234, took 1.5s"
        );
        assert!(s.ok());
        assert_eq!(s.to_json()["took_secs"], json!(1.5));
    }

    #[test]
    fn dsapi_filters() {
        let m: Map<String, Value> = serde_json::from_value(
            json!({"name": "base-64", "os": "smartos", "type": "zone-dataset", "owner": "x"}),
        )
        .unwrap();
        let opts = |name: Option<&str>, ty: Option<&str>| MirrorOptions {
            name: name.map(str::to_string),
            image_type: ty.map(str::to_string),
            ..MirrorOptions::default()
        };
        assert!(matches_filters(&m, &opts(None, None)));
        assert!(matches_filters(&m, &opts(Some("base-64"), None)));
        assert!(matches_filters(
            &m,
            &opts(Some("~base"), Some("zone-dataset"))
        ));
        assert!(!matches_filters(&m, &opts(Some("base"), None)));
        assert!(!matches_filters(&m, &opts(None, Some("!zone-dataset"))));
        assert!(matches_filters(&m, &opts(None, Some("!zvol"))));
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(masked("https://u:pw@h/"), "https://u:***@h/");
        assert_eq!(masked("https://h/"), "https://h/");
    }

    #[test]
    fn policy_hints() {
        assert!(policy_hint(
            "127.0.0.1 is a loopback address ([remote] allow_private_addresses = false)"
        )
        .contains("allow_private_addresses = true"));
        assert!(
            policy_hint("http: URLs are not allowed ([remote] allow_http = false)")
                .contains("allow_http = true")
        );
    }
}
