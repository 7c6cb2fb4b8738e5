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
//! 2. Per upstream image, through the import steps of `service::import`
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
//!
//! The run's parts: `list` reads the upstream listing, `copy` imports
//! what is missing or unfinished, `update` brings present images up to
//! date, `delete` removes what the upstream no longer has, and
//! `report` tells what happened.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use imgapi_domain::redact::redact_url;
use imgapi_meta::{MetaError, StoredImage, StoredSignature};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::fetch::{FetchError, Trust};
use super::manifest::manifest_str;
use super::signatures::SourceSignatures;
use super::source::{Source, SourceError};
use crate::app::{App, AppState, StartupError};
use crate::config::Config;
use crate::service::images::ImportRecord;

mod copy;
mod delete;
mod error;
mod follow;
mod list;
mod lock;
mod report;
mod signatures;
mod update;

use error::SyncError;
pub use follow::{follow, FollowOptions};
use list::list_upstream;
pub use lock::lock_registry;
pub use report::{Lines, MirrorSummary, Problem, Reporter};

/// The job name of the rows that record what a mirror imported.
pub const MIRROR_IMPORT: &str = "mirror-import";
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
    /// `upstream` is a simplestreams server (LXD images, docs/lxd.md).
    pub simplestreams: bool,
}

/// A run that could not start, or could not list the upstream (nothing
/// was changed then).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot open the stores: {0}")]
    Open(#[from] StartupError),
    #[error("invalid upstream URL: {0}")]
    Upstream(SourceError),
    #[error("upstream {url} refused by the [remote] policy: {why}{}", policy_hint(.why))]
    Refused { url: String, why: String },
    #[error("cannot list the upstream images: {0}")]
    List(String),
    #[error("cannot list the local images: {0}")]
    Local(MetaError),
    /// Another mirror runs into this registry.
    #[error("{0}")]
    Locked(String),
    #[error("cannot take the mirror lock: {0}")]
    Lock(MetaError),
    /// Options that do not go together.
    #[error("{0}")]
    Options(String),
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
    if opts.simplestreams {
        return crate::service::lxd::mirror::mirror(app, opts, reporter, stop).await;
    }
    let started = Instant::now();
    let upstream = Upstream::open(app, opts).await?;
    // Before the listing: what changes upstream from here on is named by
    // the feed to the next run.
    let signatures_head = signatures::feed_head(app, &upstream).await;
    let listing = list_upstream(app, &upstream.src, opts).await?;
    let mut run = Run::new(app, opts, &upstream, reporter);
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
    run.prefetch_signatures(&order, signatures_head).await;
    for uuid in &order {
        if stop.load(Ordering::SeqCst) {
            run.summary.stopped = true;
            break;
        }
        run.process(*uuid).await;
    }
    if listing_ok {
        run.save_signatures_position(signatures_head).await;
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

/// The upstream of a mirror, as its requests reach it.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    /// With the channel (if any) on every URL.
    src: Source,
    /// For origins outside the listing: any channel.
    origin_src: Source,
    /// The URL as recorded in `mirror-import` rows.
    source_id: String,
}

impl Upstream {
    /// Parse the upstream URL and check it against the `[remote]` policy.
    pub(crate) async fn open(
        app: &AppState,
        opts: &MirrorOptions,
    ) -> Result<Upstream, MirrorError> {
        let src = Source::parse(&opts.upstream, Trust::Checked).map_err(MirrorError::Upstream)?;
        app.remote
            .precheck(&src.base)
            .await
            .map_err(|r| MirrorError::Refused {
                url: redact_url(src.as_str()).into_owned(),
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
        Ok(Upstream {
            src,
            origin_src,
            source_id,
        })
    }
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
    /// No line for an image skipped as unactivated upstream (following a
    /// feed, where every image passes through that state).
    quiet_skips: bool,
    /// The upstream's signatures of the listed images, fetched ahead with
    /// bounded concurrency by a full run (`signatures`); an image not in
    /// it (a followed change, an origin) has its list fetched when synced.
    upstream_signatures: HashMap<Uuid, Result<SourceSignatures, FetchError>>,
    /// Every local signature, read once by a full run: an image whose
    /// signatures already match the upstream's costs no query of its own.
    local_signatures: Option<HashMap<Uuid, Vec<StoredSignature>>>,
    /// Listed images the upstream's feed names no change of since the last
    /// complete run: their signatures are not asked for.
    signatures_unchanged: HashSet<Uuid>,
    summary: MirrorSummary,
}

impl<'a> Run<'a> {
    fn new(
        app: &'a AppState,
        opts: &'a MirrorOptions,
        upstream: &Upstream,
        reporter: &'a mut dyn Reporter,
    ) -> Run<'a> {
        let local_channel = app
            .channels_enabled()
            .then(|| app.default_channel().map(|c| c.name.clone()))
            .flatten();
        Run {
            app,
            opts,
            src: upstream.src.clone(),
            origin_src: upstream.origin_src.clone(),
            source_id: upstream.source_id.clone(),
            upstream: HashMap::new(),
            handled: HashSet::new(),
            local_channel,
            reporter,
            quiet_skips: false,
            upstream_signatures: HashMap::new(),
            local_signatures: None,
            signatures_unchanged: HashSet::new(),
            summary: MirrorSummary {
                upstream: redact_url(&upstream.source_id).into_owned(),
                dry_run: opts.dry_run,
                ..MirrorSummary::default()
            },
        }
    }
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

    fn fail(&mut self, uuid: Option<Uuid>, what: &str, error: impl std::fmt::Display) {
        let message = error.to_string();
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

    async fn load(&self, uuid: Uuid) -> Result<Option<StoredImage>, SyncError> {
        self.app.meta.get(uuid).await.map_err(SyncError::Load)
    }

    async fn load_existing(&self, uuid: Uuid) -> Result<StoredImage, SyncError> {
        self.load(uuid).await?.ok_or(SyncError::Vanished(uuid))
    }
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
