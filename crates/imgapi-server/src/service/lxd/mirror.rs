//! `imgapi mirror --upstream-simplestreams URL`: keep the newest version
//! of every product of a simplestreams server (those the `--name`, `--os`
//! and `--type` filters pass) imported here, each as AdminImportLxdImage
//! would import it. A new version upstream is a new fingerprint, hence a
//! new image, on the next run; versions already here are left alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use imgapi_domain::redact::redact_url;
use serde_json::{Map, Value};

use super::import::{bring, Imported, LxdAlias};
use super::manifest::{manifest, uuid_from_fingerprint};
use super::remote::Server;
use super::streams;
use crate::app::AppState;
use crate::service::docker::events::Events;
use crate::service::import::mirror::{
    MirrorError, MirrorOptions, MirrorSummary, Problem, Reporter,
};

/// Whether a filter value (`~text`: containing it; `!value`: anything
/// else, for `type`) passes `actual`.
fn passes(filter: Option<&str>, actual: Option<&str>) -> bool {
    let Some(filter) = filter.filter(|f| !f.is_empty()) else {
        return true;
    };
    let actual = actual.unwrap_or("");
    if let Some(part) = filter.strip_prefix('~') {
        actual.contains(part)
    } else if let Some(other) = filter.strip_prefix('!') {
        actual != other
    } else {
        actual == filter
    }
}

fn selected(opts: &MirrorOptions, m: &Map<String, Value>) -> bool {
    let text = |k: &str| m.get(k).and_then(Value::as_str);
    passes(opts.name.as_deref(), text("name"))
        && passes(opts.os.as_deref(), text("os"))
        && passes(opts.image_type.as_deref(), text("type"))
}

/// One run against the simplestreams server `opts.upstream`.
pub async fn mirror(
    app: &AppState,
    opts: &MirrorOptions,
    reporter: &mut dyn Reporter,
    stop: &AtomicBool,
) -> Result<MirrorSummary, MirrorError> {
    let started = Instant::now();
    for (given, flag) in [
        (opts.owner.is_some(), "--owner"),
        (opts.channel.is_some(), "--channel"),
        (opts.delete, "--delete"),
    ] {
        if given {
            return Err(MirrorError::Options(format!(
                "{flag} does not apply to a simplestreams upstream"
            )));
        }
    }
    let shown = redact_url(&opts.upstream).into_owned();
    let server = Server::new(&app.remote, &opts.upstream)
        .await
        .map_err(|e| MirrorError::List(e.to_string()))?;
    let products = server
        .products()
        .await
        .map_err(|e| MirrorError::List(e.to_string()))?;
    let products = streams::products(&products)
        .map_err(|e| MirrorError::List(e.to_string()))?
        .clone();
    let mut summary = MirrorSummary {
        upstream: shown.clone(),
        dry_run: opts.dry_run,
        ..MirrorSummary::default()
    };
    let local_channel = app
        .channels_enabled()
        .then(|| app.default_channel().map(|c| c.name.clone()))
        .flatten();
    // Progress of the import steps is not wanted here: its receiver is
    // dropped, so messages go nowhere.
    let (events, _) = Events::ending_with("alias", shown.clone());
    let public = app.config.mode == imgapi_domain::Mode::Public;
    for (fullname, product) in &products {
        if stop.load(Ordering::SeqCst) {
            summary.stopped = true;
            break;
        }
        let mut fail = |summary: &mut MirrorSummary, uuid, message: String| {
            reporter.line(&format!("{fullname}: FAILED: {message}"));
            summary.failed += 1;
            summary.failures.push(Problem { uuid, message });
        };
        let img = match streams::choose_version(fullname, product) {
            Ok(img) => img,
            Err(e) => {
                fail(&mut summary, None, e.to_string());
                continue;
            }
        };
        let chosen = manifest(&img, &shown, public)
            .and_then(|m| Ok((uuid_from_fingerprint(&img.manifest_file.fingerprint)?, m)));
        let (uuid, m) = match chosen {
            Ok(x) => x,
            Err(e) => {
                fail(&mut summary, None, e.to_string());
                continue;
            }
        };
        if !selected(opts, &m) {
            continue;
        }
        let what = format!(
            "{uuid} {}@{}",
            m.get("name").and_then(Value::as_str).unwrap_or("?"),
            m.get("version").and_then(Value::as_str).unwrap_or("?")
        );
        let here = match app.meta.get(uuid).await {
            Ok(s) => s.is_some_and(|s| s.image.activated),
            Err(e) => {
                fail(
                    &mut summary,
                    Some(uuid),
                    format!("cannot read image {uuid}: {e}"),
                );
                continue;
            }
        };
        if here {
            summary.unchanged += 1;
            continue;
        }
        let size: u64 = std::iter::once(&img.manifest_file.item)
            .chain(img.rootfs.as_ref())
            .filter_map(|i| i.size)
            .sum();
        if opts.dry_run {
            summary.new += 1;
            summary.bytes += size;
            reporter.line(&format!("{what}: would import"));
            continue;
        }
        let alias = LxdAlias {
            full: fullname.clone(),
            remote: shown.clone(),
            image: fullname.clone(),
        };
        let channel = local_channel.as_deref();
        match bring(app, &server, &img, &shown, channel, &events, &alias).await {
            Ok(Imported::New(_)) => {
                summary.new += 1;
                summary.bytes += size;
                reporter.line(&format!("{what}: new"));
            }
            Ok(Imported::AlreadyThere(_)) => summary.unchanged += 1,
            Err(e) => fail(&mut summary, Some(uuid), format!("{what}: {e}")),
        }
    }
    summary.took = started.elapsed();
    reporter.line(&summary.to_string());
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(passes(None, Some("x")));
        assert!(passes(Some("~pine"), Some("alpine_3.19")));
        assert!(!passes(Some("alpine"), Some("alpine_3.19")));
        assert!(passes(Some("!docker"), Some("lxd")));
        assert!(!passes(Some("lxd"), None));
    }
}
