//! `imgapi mirror`: a registry kept in sync with an upstream
//! IMGAPI or DSAPI server. The library function runs against the stores of
//! a running test server (the same config); one test runs the binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use imgapi_server::service::import::mirror::{self, MirrorOptions, MirrorSummary, Reporter};
use imgapi_server::Config;
use serde_json::{json, Value};

use crate::remote_import::{
    blob_files, enc, fake_manifest, get_bytes, new_uuid, not_found, publish_bytes, sha1_hex,
    started, wait_job, FakeSource, Handler, Reply, OPEN,
};
use crate::support::*;

const DC: &str = "mode = \"dc\"";

/// Collects the progress lines.
#[derive(Default)]
struct Log(Vec<String>);

impl Reporter for Log {
    fn line(&mut self, line: &str) {
        self.0.push(line.to_string());
    }
}

fn opts(upstream: &str) -> MirrorOptions {
    MirrorOptions {
        upstream: upstream.to_string(),
        ..MirrorOptions::default()
    }
}

/// One mirror run into the stores of `target` (opened as `imgapi mirror`
/// opens them, beside the running server).
async fn run_mirror(target: &TestServer, opts: MirrorOptions) -> (MirrorSummary, Vec<String>) {
    let app = mirror::open(Config::from_toml(&target.config_toml).unwrap())
        .await
        .unwrap();
    let mut log = Log::default();
    let stop = AtomicBool::new(false);
    let summary = mirror::mirror(&app, &opts, &mut log, &stop).await.unwrap();
    (summary, log.0)
}

/// `(new, updated, disabled, enabled, deleted, unchanged, conflicts, failed)`.
fn counts(s: &MirrorSummary) -> [usize; 8] {
    [
        s.new,
        s.updated,
        s.disabled,
        s.enabled,
        s.deleted,
        s.unchanged,
        s.conflicts,
        s.failed,
    ]
}

/// Every image of a dc-mode server (operator view, every state), by uuid.
async fn catalogue(s: &TestServer) -> HashMap<String, Value> {
    let (status, list) = s.get_json("/images?state=all").await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|img| (uuid_of(img), img.clone()))
        .collect()
}

async fn action(s: &TestServer, uuid: &str, action: &str, body: Value) {
    let (status, img) = s
        .post_json(&format!("/images/{uuid}?action={action}"), &body)
        .await;
    assert_eq!(status, 200, "{action}: {img}");
}

async fn put_icon(s: &TestServer, uuid: &str, icon: &[u8]) {
    let resp = s
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/png")
        .body(icon.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Blob files and their modification times (local storage only).
fn blob_mtimes(data_dir: &Path) -> HashMap<PathBuf, SystemTime> {
    blob_files(data_dir)
        .into_iter()
        .map(|p| {
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect()
}

const COMPARED: [&str; 12] = [
    "uuid",
    "owner",
    "name",
    "version",
    "state",
    "disabled",
    "published_at",
    "origin",
    "description",
    "tags",
    "icon",
    "public",
];

fn assert_same_image(up: &Value, local: &Value) {
    for key in COMPARED {
        assert_eq!(up.get(key), local.get(key), "{key}: {up} vs {local}");
    }
    assert_eq!(up["files"][0]["sha1"], local["files"][0]["sha1"]);
    assert_eq!(up["files"][0]["size"], local["files"][0]["size"]);
    assert_eq!(
        up["files"][0]["compression"],
        local["files"][0]["compression"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_copy_then_incremental_runs() {
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let base = publish_bytes(&upstream, json!({"name": "base"}), b"base bytes").await;
    let mid = publish_bytes(
        &upstream,
        json!({"name": "mid", "origin": uuid_of(&base)}),
        b"mid bytes!",
    )
    .await;
    let top_bytes = vec![7u8; 300_000];
    let top = publish_bytes(
        &upstream,
        json!({"name": "top", "origin": uuid_of(&mid)}),
        &top_bytes,
    )
    .await;
    let icon = b"\x89PNG\r\n\x1a\n an icon".to_vec();
    put_icon(&upstream, &uuid_of(&top), &icon).await;
    let off = publish_bytes(&upstream, json!({"name": "off"}), b"off bytes").await;
    action(&upstream, &uuid_of(&off), "disable", json!({})).await;
    let plain = publish_bytes(
        &upstream,
        json!({"name": "plain", "description": "first"}),
        b"plain bytes",
    )
    .await;
    let other = publish_bytes(
        &upstream,
        json!({"name": "other", "tags": {"role": "db"}}),
        b"other bytes",
    )
    .await;
    let wip = upstream.create(json!({"name": "wip"})).await; // unactivated

    // First run: a fresh copy.
    let (s, log) = run_mirror(&target, opts(&upstream.url)).await;
    assert_eq!(counts(&s), [6, 0, 0, 0, 0, 0, 0, 0], "{log:#?}");
    assert_eq!(s.skipped, 1, "the unactivated image");
    let file_bytes: u64 = [&base, &mid, &top, &off, &plain, &other]
        .iter()
        .map(|i| i["files"][0]["size"].as_u64().unwrap())
        .sum();
    assert_eq!(
        s.bytes,
        file_bytes + icon.len() as u64,
        "files and the icon"
    );
    assert!(
        log.last().unwrap().starts_with("new 6, updated 0,"),
        "{log:#?}"
    );

    let up = catalogue(&upstream).await;
    let local = catalogue(&target).await;
    assert_eq!(local.len(), 6);
    assert!(!local.contains_key(&uuid_of(&wip)));
    for (uuid, img) in up.iter().filter(|(u, _)| **u != uuid_of(&wip)) {
        assert_same_image(img, &local[uuid]);
    }
    assert_eq!(local[&uuid_of(&off)]["state"], "disabled");
    for img in [&base, &mid, &off, &plain, &other] {
        let path = format!("/images/{}/file", uuid_of(img));
        assert_eq!(
            get_bytes(&target, &path).await,
            get_bytes(&upstream, &path).await
        );
    }
    let t = uuid_of(&top);
    assert_eq!(
        get_bytes(&target, &format!("/images/{t}/file")).await,
        top_bytes
    );
    assert_eq!(get_bytes(&target, &format!("/images/{t}/icon")).await, icon);
    // Where a mirrored image came from: a finished mirror-import job.
    let (status, jobs) = target
        .get_json(&format!("/images/{t}/jobs?task=mirror-import"))
        .await;
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs[0]["execution"], "succeeded");
    assert_eq!(jobs[0]["params"]["source"], format!("{}/", upstream.url));

    // Upstream changes: a new image, a changed description and tags, one
    // image disabled, one enabled.
    let before = blob_mtimes(&target.data_dir);
    let fresh = publish_bytes(&upstream, json!({"name": "fresh"}), &vec![9u8; 50_000]).await;
    action(
        &upstream,
        &uuid_of(&other),
        "update",
        json!({"description": "now described", "tags": {"role": "web", "tier": 2}}),
    )
    .await;
    action(&upstream, &uuid_of(&plain), "disable", json!({})).await;
    action(&upstream, &uuid_of(&off), "enable", json!({})).await;

    let (s, log) = run_mirror(&target, opts(&upstream.url)).await;
    assert_eq!(counts(&s), [1, 1, 1, 1, 0, 3, 0, 0], "{log:#?}");
    assert_eq!(s.bytes, 50_000, "only the new file was downloaded");
    if expected_stor() == "local" {
        let after = blob_mtimes(&target.data_dir);
        for (path, mtime) in &before {
            assert_eq!(after.get(path), Some(mtime), "{} rewritten", path.display());
        }
        assert_eq!(after.len(), before.len() + 1);
    }
    let up = catalogue(&upstream).await;
    let local = catalogue(&target).await;
    assert_eq!(local.len(), 7);
    for (uuid, img) in up.iter().filter(|(u, _)| **u != uuid_of(&wip)) {
        assert_same_image(img, &local[uuid]);
    }
    let o = &local[&uuid_of(&other)];
    assert_eq!(o["description"], "now described");
    assert_eq!(o["tags"], json!({"role": "web", "tier": 2}));
    assert_eq!(local[&uuid_of(&plain)]["state"], "disabled");
    assert_eq!(local[&uuid_of(&off)]["state"], "active");
    assert_eq!(local[&uuid_of(&fresh)]["state"], "active");
    let line = |verb: &str, img: &Value| {
        let u = uuid_of(img);
        log.iter().any(|l| l.starts_with(&u) && l.contains(verb))
    };
    assert!(line(": updated (description, tags)", &other), "{log:#?}");
    assert!(line(": disabled", &plain), "{log:#?}");
    assert!(line(": enabled", &off), "{log:#?}");

    // Nothing changed since: nothing to do.
    let (s, log) = run_mirror(&target, opts(&upstream.url)).await;
    assert_eq!(counts(&s), [0, 0, 0, 0, 0, 7, 0, 0], "{log:#?}");
    assert_eq!(s.bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_delete_and_conflicts() {
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let outside = publish_bytes(&upstream, json!({"name": "outside"}), b"outside").await;
    let keep1 = publish_bytes(
        &upstream,
        json!({"name": "keep", "version": "1", "origin": uuid_of(&outside)}),
        b"keep one",
    )
    .await;
    let keep2 = publish_bytes(
        &upstream,
        json!({"name": "keep", "version": "2"}),
        b"keep two",
    )
    .await;
    let clash = publish_bytes(
        &upstream,
        json!({"name": "keep", "version": "3"}),
        b"upstream clash bytes",
    )
    .await;
    let other = publish_bytes(&upstream, json!({"name": "other"}), b"other").await;
    // Published here: never the mirror's to touch.
    let mine = publish_bytes(
        &target,
        json!({"name": "keep", "version": "local"}),
        b"mine",
    )
    .await;
    // The clash's uuid, imported here with other bytes.
    let c = uuid_of(&clash);
    let (status, body) = target
        .post_json(&format!("/images/{c}?action=import"), &clash)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = target.upload(&c, b"local clash bytes".to_vec()).await;
    assert_eq!(status, 200);
    let (status, _) = target.activate(&c).await;
    assert_eq!(status, 200);

    let keep = |delete: bool| MirrorOptions {
        name: Some("keep".into()),
        delete,
        ..opts(&upstream.url)
    };
    let (s, log) = run_mirror(&target, keep(false)).await;
    // outside (as the origin of keep1), keep1, keep2; the clash reported.
    assert_eq!(counts(&s), [3, 0, 0, 0, 0, 0, 1, 0], "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with(&c) && l.contains("CONFLICT")),
        "{log:#?}"
    );
    assert_eq!(s.conflict_images[0].uuid.unwrap().to_string(), c);
    let local = catalogue(&target).await;
    assert!(!local.contains_key(&uuid_of(&other)), "outside the filter");
    assert_eq!(
        local[&c]["files"][0]["sha1"],
        sha1_hex(b"local clash bytes"),
        "a conflict is never overwritten"
    );
    for img in [&outside, &keep1, &keep2] {
        assert_same_image(img, &local[&uuid_of(img)]);
    }

    // keep2 goes upstream: deleted here only with --delete.
    let resp = upstream
        .delete(&format!("/images/{}", uuid_of(&keep2)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (s, log) = run_mirror(&target, keep(false)).await;
    assert_eq!(counts(&s), [0, 0, 0, 0, 0, 1, 1, 0], "{log:#?}");
    assert!(catalogue(&target).await.contains_key(&uuid_of(&keep2)));
    let (s, log) = run_mirror(&target, keep(true)).await;
    assert_eq!(counts(&s), [0, 0, 0, 0, 1, 1, 1, 0], "{log:#?}");
    let local = catalogue(&target).await;
    assert!(!local.contains_key(&uuid_of(&keep2)));
    // outside is not listed (the filter) but is keep1's origin.
    assert!(local.contains_key(&uuid_of(&outside)));
    assert!(
        log.iter().any(|l| l.starts_with(&uuid_of(&outside))
            && l.contains(&format!("origin of {}", uuid_of(&keep1)))),
        "{log:#?}"
    );

    // Another filter: keep1 no longer matches, then its origin is free.
    let (s, log) = run_mirror(
        &target,
        MirrorOptions {
            name: Some("other".into()),
            delete: true,
            ..opts(&upstream.url)
        },
    )
    .await;
    assert_eq!(counts(&s), [1, 0, 0, 0, 2, 0, 0, 0], "{log:#?}");
    let local = catalogue(&target).await;
    let mut left: Vec<&String> = local.keys().collect();
    left.sort();
    let mut want = [uuid_of(&mine), c.clone(), uuid_of(&other)];
    want.sort();
    assert_eq!(
        left,
        want.iter().collect::<Vec<_>>(),
        "local and clash kept"
    );
}

/// A fake upstream with one image whose file is cut, slow, or whole.
async fn fake_upstream(bytes: Vec<u8>, mode: Arc<AtomicUsize>) -> (FakeSource, String) {
    let uuid = new_uuid();
    let manifest = fake_manifest(&uuid, None, &bytes, "active");
    let u = uuid.clone();
    let handler: Handler = Arc::new(move |target: &str| {
        let path = target.split('?').next().unwrap_or_default();
        if path == "/images" {
            Reply::Json(200, json!([manifest.clone()]))
        } else if path == format!("/images/{u}") {
            Reply::Json(200, manifest.clone())
        } else if path == format!("/images/{u}/file") {
            let m = mode.load(Ordering::SeqCst);
            Reply::File {
                bytes: bytes.clone(),
                cut_at: (m == 0).then_some(bytes.len() / 3),
                delay: if m == 1 {
                    Duration::from_millis(200)
                } else {
                    Duration::ZERO
                },
            }
        } else {
            not_found(path)
        }
    });
    (FakeSource::start(handler).await, uuid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_runs_leave_no_partial_image() {
    let target = TestServer::spawn_with(OPEN).await;
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mode = Arc::new(AtomicUsize::new(0));
    let (fake, uuid) = fake_upstream(bytes.clone(), mode.clone()).await;
    let local = |s: &TestServer| blob_files(&s.data_dir);

    // The upstream cuts the file: the run fails, and nothing is left.
    let (s, log) = run_mirror(&target, opts(&fake.url)).await;
    assert_eq!(counts(&s), [0, 0, 0, 0, 0, 0, 0, 1], "{log:#?}");
    assert!(!s.ok());
    assert!(
        s.failures[0]
            .message
            .contains("Unable to get stream for image file"),
        "{:?}",
        s.failures
    );
    let app = mirror::open(Config::from_toml(&target.config_toml).unwrap())
        .await
        .unwrap();
    let id = uuid::Uuid::parse_str(&uuid).unwrap();
    assert!(app.meta.get(id).await.unwrap().is_none(), "no record left");
    if expected_stor() == "local" {
        assert_eq!(local(&target), Vec::<PathBuf>::new(), "no blob left");
    }

    // The run is killed mid-file (its future dropped).
    mode.store(1, Ordering::SeqCst);
    let mut log = Log::default();
    let stop = AtomicBool::new(false);
    let o = opts(&fake.url);
    let killed = tokio::time::timeout(
        Duration::from_millis(1500),
        mirror::mirror(&app, &o, &mut log, &stop),
    )
    .await;
    assert!(killed.is_err(), "the slow transfer outlasts the timeout");
    assert!(fake.sent.load(Ordering::SeqCst) > 0, "it was mid-file");
    let stored = app.meta.get(id).await.unwrap().expect("the record stays");
    assert!(!stored.image.activated);
    assert!(stored.image.files.is_empty(), "no file recorded");
    if expected_stor() == "local" {
        assert_eq!(local(&target), Vec::<PathBuf>::new(), "no partial blob");
    }
    let (_, img) = target.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["state"], "unactivated", "never listed as available");
    let (_, list) = target.get_json("/images").await;
    assert_eq!(list, json!([]));

    // The rerun finishes the image, fetching the file from its start.
    mode.store(2, Ordering::SeqCst);
    let (s, log) = run_mirror(&target, opts(&fake.url)).await;
    assert_eq!(counts(&s), [1, 0, 0, 0, 0, 0, 0, 0], "{log:#?}");
    assert_eq!(s.bytes, bytes.len() as u64);
    assert!(
        log.iter()
            .any(|l| l.contains("finished an interrupted import")),
        "{log:#?}"
    );
    let (status, img) = target.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["state"], "active");
    assert_eq!(img["published_at"], "2024-05-06T07:08:09.123Z");
    assert_eq!(
        get_bytes(&target, &format!("/images/{uuid}/file")).await,
        bytes
    );
    if expected_stor() == "local" {
        assert_eq!(local(&target).len(), 1, "exactly the one blob");
    }
    let (s, _) = run_mirror(&target, opts(&fake.url)).await;
    assert_eq!(counts(&s), [0, 0, 0, 0, 0, 1, 0, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsapi_upstream_mirror_and_import_remote() {
    let upstream = TestServer::spawn_with("mode = \"dc\"\ndsapi = \"serve\"").await;
    let target = TestServer::spawn_with(OPEN).await;
    let alpha = publish_bytes(&upstream, json!({"name": "alpha"}), b"alpha bytes").await;
    let beta = publish_bytes(
        &upstream,
        json!({"name": "beta", "version": "2.0.0", "description": "the second"}),
        &vec![1u8; 100_000],
    )
    .await;
    // Disabled images are not in a DSAPI listing.
    let hidden = publish_bytes(&upstream, json!({"name": "hidden"}), b"hidden").await;
    action(&upstream, &uuid_of(&hidden), "disable", json!({})).await;
    let source = format!("{}/datasets", upstream.url);

    let (s, log) = run_mirror(&target, opts(&source)).await;
    assert_eq!(counts(&s), [2, 0, 0, 0, 0, 0, 0, 0], "{log:#?}");
    assert_eq!(s.bytes, 100_000 + b"alpha bytes".len() as u64);
    for img in [&alpha, &beta] {
        let u = uuid_of(img);
        let (status, local) = target.get_json(&format!("/images/{u}")).await;
        assert_eq!(status, 200, "{local}");
        for key in [
            "uuid",
            "name",
            "version",
            "published_at",
            "type",
            "os",
            "description",
        ] {
            assert_eq!(local.get(key), img.get(key), "{key}");
        }
        assert_eq!(local["state"], "active");
        assert_eq!(local["files"][0]["sha1"], img["files"][0]["sha1"]);
        assert_eq!(local["files"][0]["size"], img["files"][0]["size"]);
        assert_eq!(local["files"][0]["compression"], "gzip");
        let path = format!("/images/{u}/file");
        assert_eq!(
            get_bytes(&target, &path).await,
            get_bytes(&upstream, &path).await
        );
    }
    let got = target
        .get_json(&format!("/images/{}", uuid_of(&hidden)))
        .await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let (s, _) = run_mirror(&target, opts(&source)).await;
    assert_eq!(counts(&s), [0, 0, 0, 0, 0, 2, 0, 0]);
    assert_eq!(s.bytes, 0);

    // import-remote from the same DSAPI source.
    let gamma = publish_bytes(&upstream, json!({"name": "gamma"}), b"gamma bytes").await;
    let g = uuid_of(&gamma);
    let job = started(&target, &g, &source).await;
    let job = wait_job(&target, &g, &job).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    let (status, local) = target.get_json(&format!("/images/{g}")).await;
    assert_eq!(status, 200);
    assert_eq!(local["state"], "active");
    assert_eq!(local["published_at"], gamma["published_at"]);
    assert_eq!(local["files"][0]["sha1"], gamma["files"][0]["sha1"]);
    assert_eq!(
        get_bytes(&target, &format!("/images/{g}/file")).await,
        b"gamma bytes"
    );
    // AdminImportImageFromSource from it too (record only).
    let delta = publish_bytes(&upstream, json!({"name": "delta"}), b"delta").await;
    let d = uuid_of(&delta);
    let (status, local) = target
        .post_json(
            &format!("/images/{d}?action=import&source={}", enc(&source)),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{local}");
    assert_eq!(local["state"], "unactivated");
    assert_eq!(local["name"], "delta");
}

/// What an `imgapi mirror --interval 1h` wrote on stderr up to the end of
/// its first run (it waits for the next one then).
async fn first_run_done(child: &mut tokio::process::Child) -> String {
    use tokio::io::AsyncReadExt;
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let waited = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        while !seen.contains("next run in 3600s") {
            let n = stderr.read(&mut buf).await.unwrap();
            assert!(n > 0, "{seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    assert!(waited.is_ok(), "the first run did not end: {seen}");
    seen
}

/// The real `imgapi mirror`: flags, summary, JSON, exit codes, the policy
/// error, and `--interval` ended by SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_binary() {
    use tokio::process::Command;
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let img = publish_bytes(&upstream, json!({"name": "bin"}), b"bin bytes").await;
    let cfg = target.data_dir.join("mirror.toml");
    std::fs::write(&cfg, &target.config_toml).unwrap();
    let args = |extra: &[&str]| mirror_args(&cfg, extra);

    let (code, stdout, stderr) = run_imgapi(args(&["--upstream", &upstream.url, "-j"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{} bin@1.0.0: new", uuid_of(&img))),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "new 1, updated 0, disabled 0, enabled 0, deleted 0, unchanged 0, conflicts 0, failed 0, bytes 9, took "
        ),
        "{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["new"], 1);
    assert_eq!(summary["bytes"], 9);
    assert_eq!(summary["upstream"], format!("{}/", upstream.url));

    // --dry-run: the plan only.
    action(
        &upstream,
        &uuid_of(&img),
        "update",
        json!({"description": "changed"}),
    )
    .await;
    let (code, _, stderr) = run_imgapi(args(&["--upstream", &upstream.url, "--dry-run"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("would update (description)"), "{stderr}");
    assert!(stderr.contains("dry run: new 0, updated 1,"), "{stderr}");
    let (_, local) = target.get_json(&format!("/images/{}", uuid_of(&img))).await;
    assert!(
        local.get("description").is_none(),
        "dry run changed nothing"
    );

    // Refused by the [remote] policy: the error says what to set.
    let strict = cfg.with_file_name("strict.toml");
    std::fs::write(
        &strict,
        target.config_toml.replace(
            "allow_private_addresses = true",
            "allow_private_addresses = false",
        ),
    )
    .unwrap();
    let (code, _, stderr) = run_imgapi(vec![
        "mirror".into(),
        "-c".into(),
        strict.display().to_string(),
        "--upstream".into(),
        upstream.url.clone(),
    ])
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("refused by the [remote] policy"),
        "{stderr}"
    );
    assert!(
        stderr.contains("set allow_private_addresses = true in the [remote] section"),
        "{stderr}"
    );
    // An upstream that does not answer: exit 1.
    let (code, _, stderr) = run_imgapi(args(&["--upstream", "http://127.0.0.1:9"])).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot list the upstream images"),
        "{stderr}"
    );
    // Bad flags: exit 2.
    let (code, _, stderr) =
        run_imgapi(args(&["--upstream", &upstream.url, "--interval", "5x"])).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid interval"), "{stderr}");

    // --interval: runs, waits; SIGTERM ends it (exit 0).
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(args(&["--upstream", &upstream.url, "--interval", "1h"]))
        .env_remove("IMGAPI_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let seen = first_run_done(&mut child).await;
    assert!(seen.contains("updated (description)"), "{seen}");
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let (_, local) = target.get_json(&format!("/images/{}", uuid_of(&img))).await;
    assert_eq!(local["description"], "changed");
}

/// A second `imgapi mirror` into a registry whose mirror is running stops
/// at once, with exit status 2 and a message saying so.
#[tokio::test]
async fn a_second_mirror_into_one_registry_stops_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mirror.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nlog_level = \"warn\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let running = imgapi_server::data_dir_lock::lock_for(
        imgapi_server::data_dir_lock::LockHolder::Mirror,
        dir.path(),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(["mirror", "--config"])
        .arg(&cfg)
        .args(["--upstream", "https://images.example.invalid/"])
        .env_remove("IMGAPI_CONFIG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "imgapi mirror: another imgapi mirror is running into this registry (pid {})",
            std::process::id()
        )),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        !dir.path().join("imgapi.sqlite").exists(),
        "the refused mirror opened no store"
    );
    drop(running);
}

/// Two `imgapi mirror` processes into one registry: the second stops at
/// once naming the first, and runs once the first is gone (kill -9: the
/// lock dies with its process). On PostgreSQL the second uses a data
/// directory of its own, as a mirror on another host would: the database
/// lock, not a file, keeps them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_mirror_into_one_registry_is_refused() {
    use tokio::process::Command;
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let first_cfg = target.data_dir.join("mirror.toml");
    std::fs::write(&first_cfg, &target.config_toml).unwrap();
    let other_host = tempfile::tempdir().unwrap();
    let shared_db = scale_out_env().is_some();
    let second_cfg = if shared_db {
        let cfg = other_host.path().join("mirror.toml");
        let toml = target.config_toml.replace(
            &format!("data_dir = {:?}", target.data_dir.display().to_string()),
            &format!("data_dir = {:?}", other_host.path().display().to_string()),
        );
        assert_ne!(toml, target.config_toml, "data_dir not replaced");
        std::fs::write(&cfg, toml).unwrap();
        cfg
    } else {
        first_cfg.clone()
    };
    let bin = env!("CARGO_BIN_EXE_imgapi");
    let mirror = |cfg: &Path, extra: &[&str]| {
        let mut command = Command::new(bin);
        command
            .args(["mirror", "--config"])
            .arg(cfg)
            .args(["--upstream", &upstream.url])
            .args(extra)
            .env_remove("IMGAPI_CONFIG")
            .kill_on_drop(true);
        command
    };

    let mut first = mirror(&first_cfg, &["--interval", "1h"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    first_run_done(&mut first).await;

    let refused = mirror(&second_cfg, &[]).output().await.unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{message}");
    assert!(
        message.starts_with("imgapi mirror: another imgapi mirror is running into this registry ("),
        "{message}"
    );
    let holder = if shared_db {
        "PostgreSQL session"
    } else {
        "mirror.lock"
    };
    assert!(message.contains(holder), "{message}");
    assert!(message.contains("run one mirror per registry"), "{message}");

    first.kill().await.unwrap();
    let ran = mirror(&second_cfg, &[]).output().await.unwrap();
    let message = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(0), "{message}");
}
