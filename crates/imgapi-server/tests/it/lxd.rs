//! AdminImportLxdImage against a simplestreams tree this test writes (one
//! combined image, one split image whose rootfs `mksquashfs` makes),
//! served by a small http server of the test's own ([remote] allow_http).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::remote_import::{FakeSource, Reply, OPEN};
use crate::support::*;

pub(crate) const COMBINED_ALIAS: &str = "alpine/3.19";
pub(crate) const SPLIT_ALIAS: &str = "debian/12";

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `mksquashfs` can run; else the reason to skip.
pub(crate) fn squashfs_missing() -> Option<&'static str> {
    let ok = Command::new("mksquashfs")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then_some("mksquashfs not found (Debian package squashfs-tools)")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory with LXD's `metadata.yaml` and a `rootfs/` with one file.
fn image_dir(root: &Path, name: &str, marker: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        format!("architecture: x86_64\ncreation_date: 1704067200\nproperties:\n  os: {name}\n  description: {marker}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("rootfs/etc/hostname"), format!("{marker}\n")).unwrap();
    dir
}

/// The files of one published version.
#[derive(Clone)]
pub(crate) struct Built {
    pub(crate) combined: Vec<u8>,
    pub(crate) meta: Vec<u8>,
    pub(crate) squashfs: Vec<u8>,
}

impl Built {
    pub(crate) fn combined_fingerprint(&self) -> String {
        sha256_hex(&self.combined)
    }
    pub(crate) fn split_fingerprint(&self) -> String {
        let mut both = self.meta.clone();
        both.extend_from_slice(&self.squashfs);
        sha256_hex(&both)
    }
}

/// A simplestreams tree on disk.
pub(crate) struct Tree {
    pub(crate) dir: tempfile::TempDir,
    /// version → files, for the products document.
    versions: Vec<(String, Built)>,
}

impl Tree {
    pub(crate) fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
            versions: Vec::new(),
        }
    }

    /// Build both images as of `version` (`YYYYMMDD_HH:MM`) and rewrite the
    /// products file.
    pub(crate) fn publish(&mut self, version: &str) -> Built {
        let work = self.dir.path().join("work").join(version.replace(':', "_"));
        let combined_dir = image_dir(&work, "alpine", version);
        let split_dir = image_dir(&work, "debian", version);
        let images = self
            .dir
            .path()
            .join("images")
            .join(version.replace(':', "_"));
        std::fs::create_dir_all(&images).unwrap();
        let combined = images.join("lxd_combined.tar.gz");
        run(Command::new("tar")
            .arg("-czf")
            .arg(&combined)
            .arg("-C")
            .arg(&combined_dir)
            .args(["metadata.yaml", "rootfs"]));
        let meta = images.join("lxd.tar.xz");
        run(Command::new("tar")
            .arg("-cJf")
            .arg(&meta)
            .arg("-C")
            .arg(&split_dir)
            .arg("metadata.yaml"));
        let squashfs = images.join("root.squashfs");
        run(Command::new("mksquashfs")
            .arg(split_dir.join("rootfs"))
            .arg(&squashfs)
            .args(["-noappend", "-quiet", "-all-root", "-no-progress"]));
        let built = Built {
            combined: std::fs::read(&combined).unwrap(),
            meta: std::fs::read(&meta).unwrap(),
            squashfs: std::fs::read(&squashfs).unwrap(),
        };
        self.versions.push((version.to_string(), built.clone()));
        self.write_products(|_| {});
        built
    }

    /// Rewrite the products document; `edit` may spoil it.
    pub(crate) fn write_products(&self, edit: impl FnOnce(&mut Value)) {
        let mut combined_versions = serde_json::Map::new();
        let mut split_versions = serde_json::Map::new();
        for (version, b) in &self.versions {
            let dir = format!("images/{}", version.replace(':', "_"));
            combined_versions.insert(version.clone(), json!({"items": {
                "lxd_combined.tar.gz": {"ftype": "lxd_combined.tar.gz", "path": format!("{dir}/lxd_combined.tar.gz"),
                    "sha256": sha256_hex(&b.combined), "size": b.combined.len()}}}));
            split_versions.insert(
                version.clone(),
                json!({"items": {
                "lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": format!("{dir}/lxd.tar.xz"),
                    "sha256": sha256_hex(&b.meta), "size": b.meta.len(),
                    "combined_squashfs_sha256": b.split_fingerprint()},
                "root.squashfs": {"ftype": "squashfs", "path": format!("{dir}/root.squashfs"),
                    "sha256": sha256_hex(&b.squashfs), "size": b.squashfs.len()}}}),
            );
        }
        let mut products = json!({"format": "products:1.0", "datatype": "image-downloads", "content_id": "images",
        "products": {
            "alpine:3.19:amd64:default": {"aliases": "alpine/3.19,alpine/3.19/default", "arch": "amd64",
                "os": "Alpine", "release": "3.19", "release_title": "3.19", "variant": "default",
                "versions": combined_versions},
            "debian:bookworm:amd64:default": {"aliases": "debian/12,debian/bookworm", "arch": "amd64",
                "os": "Debian", "release": "bookworm", "release_title": "12", "variant": "default",
                "versions": split_versions}
        }});
        edit(&mut products);
        let streams = self.dir.path().join("streams/v1");
        std::fs::create_dir_all(&streams).unwrap();
        std::fs::write(
            streams.join("images.json"),
            serde_json::to_vec_pretty(&products).unwrap(),
        )
        .unwrap();
        let index = json!({"format": "index:1.0", "index": {"images": {
            "datatype": "image-downloads", "path": "streams/v1/images.json", "format": "products:1.0",
            "products": ["alpine:3.19:amd64:default", "debian:bookworm:amd64:default"]}}});
        std::fs::write(
            streams.join("index.json"),
            serde_json::to_vec_pretty(&index).unwrap(),
        )
        .unwrap();
    }

    /// Serve the tree over http (files read at each request).
    pub(crate) async fn serve(&self) -> FakeSource {
        let root = self.dir.path().to_path_buf();
        FakeSource::start(Arc::new(move |target: &str| {
            let path = target
                .split('?')
                .next()
                .unwrap_or("")
                .trim_start_matches('/');
            match std::fs::read(root.join(path)) {
                Ok(bytes) if !path.contains("..") => Reply::File {
                    bytes,
                    cut_at: None,
                    delay: Duration::ZERO,
                },
                _ => Reply::Json(404, json!({"code": "NotFound", "message": "no such file"})),
            }
        }))
        .await
    }
}

pub(crate) fn config(url: &str) -> String {
    format!("{OPEN}[lxd.remotes]\nt = \"{url}\"\n")
}

/// POST the import; the status and the stream's messages.
pub(crate) async fn import(s: &TestServer, alias: &str) -> (u16, Vec<Value>) {
    let resp = s
        .post(&format!(
            "/images?action=import-lxd-image&alias={}",
            crate::remote_import::enc(alias)
        ))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    if status != 200 {
        return (status, vec![serde_json::from_str(&text).unwrap()]);
    }
    assert!(text.ends_with("\r\n"), "{text:?}");
    let lines = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (status, lines)
}

fn statuses(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["type"] == "progress" && l["payload"]["status"] != "Downloading")
        .map(|l| l["payload"]["status"].as_str().unwrap().to_string())
        .collect()
}

/// Regular files under the local blob store (none to check on S3).
pub(crate) fn local_blobs(s: &TestServer) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        count(&p)
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&s.data_dir.join("files").join("images"))
}

async fn file_bytes(s: &TestServer, uuid: &str, index: usize) -> Vec<u8> {
    let resp = s
        .get(&format!("/images/{uuid}/file?index={index}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

pub(crate) fn uuid_of_fingerprint(fp: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &fp[..8],
        &fp[8..12],
        &fp[12..16],
        &fp[16..20],
        &fp[20..32]
    )
}

async fn image_count(s: &TestServer) -> usize {
    let (status, list) = s.get_json("/images?state=all").await;
    assert_eq!(status, 200);
    list.as_array().unwrap().len()
}

#[tokio::test]
async fn import_combined_and_split_then_reimport_creates_nothing() {
    if let Some(why) = squashfs_missing() {
        eprintln!("SKIP: {why}");
        return;
    }
    let mut tree = Tree::new();
    let built = tree.publish("20240101_13:00");
    let source = tree.serve().await;
    let s = TestServer::spawn_with(&config(&source.url)).await;

    // Combined: one file, the tarball; its sha256 is the fingerprint.
    let (status, lines) = import(&s, &format!("t:{COMBINED_ALIAS}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&lines),
        [
            "Downloading image",
            "Download complete",
            "Activating image",
            "Pull complete"
        ]
    );
    assert_eq!(
        lines[0],
        json!({"type": "progress", "payload": {"id": "t:alpine/3.19", "status": "Downloading image"}, "alias": "t:alpine/3.19"})
    );
    let fp = built.combined_fingerprint();
    let uuid = uuid_of_fingerprint(&fp);
    let (status, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["type"], "lxd");
    assert_eq!(img["state"], "active");
    assert_eq!(img["os"], "linux");
    assert_eq!(img["public"], true, "public mode refuses private images");
    assert_eq!(img["owner"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(img["name"], "alpine_3.19_amd64_default");
    assert_eq!(img["version"], "20240101_13_00");
    assert_eq!(img["description"], "alpine:3.19:amd64:default");
    assert_eq!(
        img["published_at"],
        "2024-01-01T00:00:00Z".replace("Z", ".000Z")
    );
    assert_eq!(img["requirements"], json!({"brand": "lx"}));
    let tags = &img["tags"];
    assert_eq!(tags["lxd:fingerprint"], fp);
    assert_eq!(tags["lxd:sha256"], fp);
    assert_eq!(tags["lxd:ftype"], "lxd_combined.tar.gz");
    assert_eq!(tags["lxd:aliases"], "alpine/3.19,alpine/3.19/default");
    assert_eq!(tags["lxd:repo"], "t");
    assert_eq!(tags["lxd:os"], "Alpine");
    assert_eq!(tags["lxd:release_title"], "3.19");
    assert_eq!(
        tags["lxd:path"],
        "images/20240101_13_00/lxd_combined.tar.gz"
    );
    let files = img["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["compression"], "gzip");
    assert_eq!(files[0]["size"], built.combined.len());
    assert_eq!(file_bytes(&s, &uuid, 0).await, built.combined);

    // Split: metadata then rootfs, fingerprint over both.
    let (status, lines) = import(&s, &format!("t:{SPLIT_ALIAS}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&lines),
        [
            "Downloading image",
            "Downloading image",
            "Download complete",
            "Activating image",
            "Pull complete"
        ],
        "{lines:?}"
    );
    let fp = built.split_fingerprint();
    let split_uuid = uuid_of_fingerprint(&fp);
    let (status, img) = s.get_json(&format!("/images/{split_uuid}")).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["tags"]["lxd:fingerprint"], fp);
    assert_eq!(img["tags"]["lxd:sha256"], sha256_hex(&built.meta));
    assert_eq!(img["tags"]["lxd:ftype"], "squashfs");
    assert_eq!(img["name"], "debian_bookworm_amd64_default");
    let files = img["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["compression"], "xz");
    assert_eq!(files[1]["compression"], "none");
    let meta = file_bytes(&s, &split_uuid, 0).await;
    let rootfs = file_bytes(&s, &split_uuid, 1).await;
    assert_eq!(meta, built.meta);
    assert_eq!(rootfs, built.squashfs);
    let mut both = meta;
    both.extend_from_slice(&rootfs);
    assert_eq!(sha256_hex(&both), fp);

    // Re-import: nothing new, nothing fetched.
    let blobs = local_blobs(&s);
    let requests = source
        .file_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    for alias in [COMBINED_ALIAS, "alpine/3.19/default", SPLIT_ALIAS] {
        let (status, lines) = import(&s, &format!("t:{alias}")).await;
        assert_eq!(status, 200);
        assert_eq!(statuses(&lines), ["Already exists"]);
    }
    assert_eq!(image_count(&s).await, 2);
    assert_eq!(local_blobs(&s), blobs);
    // Index and products only (two documents per import), no items.
    let after = source
        .file_requests
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after - requests, 6);
}

#[tokio::test]
async fn alias_errors_as_the_original() {
    let tree = Tree::new();
    tree.write_products(|_| {});
    let source = tree.serve().await;
    let s = TestServer::spawn_with(&config(&source.url)).await;

    let (status, body) = import(&s, "").await;
    assert_eq!(status, 422);
    assert_eq!(body[0]["code"], "ValidationFailed");
    assert_eq!(
        body[0]["errors"],
        json!([{"field": "alias", "code": "MissingParameter"}])
    );
    let (status, body) = import(&s, "alpine").await;
    assert_eq!(status, 422);
    assert_eq!(body[0]["code"], "InvalidParameter");
    assert_eq!(body[0]["message"], "alias must include a semicolon");
    let resp = s
        .post(&format!(
            "/images?action=import-lxd-image&alias=t:x&account={OWNER}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // An unknown remote or alias: the stream's one message.
    let (status, lines) = import(&s, "nope:alpine/3.19").await;
    assert_eq!(status, 200);
    assert_eq!(
        lines,
        [
            json!({"type": "error", "id": "nope:alpine/3.19", "error": {"code": "InvalidParameter",
            "message": "No registry found for \"nope\" - valid registries are \"t\""}, "alias": "nope:alpine/3.19"})
        ]
    );
    let (status, lines) = import(&s, "t:alpine/9").await;
    assert_eq!(status, 200);
    assert_eq!(
        lines,
        [
            json!({"type": "error", "id": "t:alpine/9", "error": {"code": "ResourceNotFound",
            "message": "Image alpine/9 was not found"}, "alias": "t:alpine/9"})
        ]
    );
    assert_eq!(image_count(&s).await, 0);
}

#[tokio::test]
async fn corrupted_items_are_refused_and_leave_nothing() {
    if let Some(why) = squashfs_missing() {
        eprintln!("SKIP: {why}");
        return;
    }
    let mut tree = Tree::new();
    let built = tree.publish("20240101_13:00");
    let source = tree.serve().await;
    let s = TestServer::spawn_with(&config(&source.url)).await;
    let dir = tree.dir.path().join("images/20240101_13_00");

    // A rootfs whose bytes are not the ones indexed: after the metadata
    // was stored, so that one must go again.
    let mut bad = built.squashfs.clone();
    bad[100] ^= 0xff;
    std::fs::write(dir.join("root.squashfs"), &bad).unwrap();
    let (status, lines) = import(&s, &format!("t:{SPLIT_ALIAS}")).await;
    assert_eq!(status, 200);
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "error", "{lines:?}");
    assert_eq!(last["error"]["code"], "Download");
    assert_eq!(
        last["error"]["message"],
        format!(
            "sha256 digest does not match, received {}, expected {}",
            sha256_hex(&bad),
            sha256_hex(&built.squashfs)
        )
    );
    std::fs::write(dir.join("root.squashfs"), &built.squashfs).unwrap();

    // Items intact, but the fingerprint indexed is not theirs.
    let wrong = "ab".repeat(32);
    tree.write_products(|p| {
        p["products"]["debian:bookworm:amd64:default"]["versions"]["20240101_13:00"]["items"]
            ["lxd.tar.xz"]["combined_squashfs_sha256"] = json!(wrong);
    });
    let (_, lines) = import(&s, &format!("t:{SPLIT_ALIAS}")).await;
    let last = lines.last().unwrap();
    assert_eq!(last["error"]["code"], "Download", "{lines:?}");
    assert_eq!(
        last["error"]["message"],
        format!(
            "LXD fingerprint does not match, received {}, expected {wrong}",
            built.split_fingerprint()
        )
    );

    // A combined tarball cut short of its indexed size.
    std::fs::write(
        dir.join("lxd_combined.tar.gz"),
        &built.combined[..built.combined.len() / 2],
    )
    .unwrap();
    let (_, lines) = import(&s, &format!("t:{COMBINED_ALIAS}")).await;
    assert_eq!(
        lines.last().unwrap()["error"]["code"],
        "Download",
        "{lines:?}"
    );

    assert_eq!(image_count(&s).await, 0);
    assert_eq!(local_blobs(&s), 0);

    // Repaired, the same import succeeds.
    tree.write_products(|_| {});
    let (_, lines) = import(&s, &format!("t:{SPLIT_ALIAS}")).await;
    assert_eq!(
        statuses(&lines).last().map(String::as_str),
        Some("Pull complete"),
        "{lines:?}"
    );
    assert_eq!(image_count(&s).await, 1);
}

/// Collects the mirror's lines.
#[derive(Default)]
struct Log(Vec<String>);

impl imgapi_server::service::import::mirror::Reporter for Log {
    fn line(&mut self, line: &str) {
        self.0.push(line.to_string());
    }
}

async fn mirror_run(
    target: &TestServer,
    opts: &imgapi_server::service::import::mirror::MirrorOptions,
) -> (
    imgapi_server::service::import::mirror::MirrorSummary,
    Vec<String>,
) {
    use imgapi_server::service::import::mirror;
    let app = mirror::open(imgapi_server::Config::from_toml(&target.config_toml).unwrap())
        .await
        .unwrap();
    let mut log = Log::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let summary = mirror::mirror(&app, opts, &mut log, &stop).await.unwrap();
    (summary, log.0)
}

#[tokio::test]
async fn mirror_keeps_the_newest_versions_and_picks_up_a_new_one() {
    if let Some(why) = squashfs_missing() {
        eprintln!("SKIP: {why}");
        return;
    }
    let mut tree = Tree::new();
    let first = tree.publish("20240101_13:00");
    let source = tree.serve().await;
    let s = TestServer::spawn_with(OPEN).await;
    let opts = imgapi_server::service::import::mirror::MirrorOptions {
        upstream: source.url.clone(),
        simplestreams: true,
        ..Default::default()
    };

    // A filtered dry run plans the alpine image only.
    let dry = imgapi_server::service::import::mirror::MirrorOptions {
        name: Some("~alpine".into()),
        dry_run: true,
        ..opts.clone()
    };
    let (summary, log) = mirror_run(&s, &dry).await;
    assert_eq!((summary.new, summary.failed), (1, 0), "{log:?}");
    assert_eq!(summary.bytes, first.combined.len() as u64);
    assert_eq!(image_count(&s).await, 0);

    let (summary, log) = mirror_run(&s, &opts).await;
    assert_eq!(
        (summary.new, summary.unchanged, summary.failed),
        (2, 0, 0),
        "{log:?}"
    );
    for fp in [first.combined_fingerprint(), first.split_fingerprint()] {
        let (status, img) = s
            .get_json(&format!("/images/{}", uuid_of_fingerprint(&fp)))
            .await;
        assert_eq!(status, 200, "{img}");
        assert_eq!(img["state"], "active");
        assert_eq!(img["tags"]["lxd:fingerprint"], fp);
    }
    let (summary, log) = mirror_run(&s, &opts).await;
    assert_eq!(
        (summary.new, summary.unchanged, summary.failed),
        (0, 2, 0),
        "{log:?}"
    );

    // A new version upstream: the next run brings it in, the old stays.
    let second = tree.publish("20240202_13:00");
    let (summary, log) = mirror_run(&s, &opts).await;
    assert_eq!(
        (summary.new, summary.unchanged, summary.failed),
        (2, 0, 0),
        "{log:?}"
    );
    assert_eq!(image_count(&s).await, 4);
    let uuid = uuid_of_fingerprint(&second.split_fingerprint());
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["version"], "20240202_13_00");
    assert_eq!(file_bytes(&s, &uuid, 1).await, second.squashfs);

    // Options of an IMGAPI upstream are refused, before anything runs.
    let app = imgapi_server::service::import::mirror::open(
        imgapi_server::Config::from_toml(&s.config_toml).unwrap(),
    )
    .await
    .unwrap();
    let bad = imgapi_server::service::import::mirror::MirrorOptions {
        delete: true,
        ..opts.clone()
    };
    let err = imgapi_server::service::import::mirror::mirror(
        &app,
        &bad,
        &mut Log::default(),
        &std::sync::atomic::AtomicBool::new(false),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--delete does not apply to a simplestreams upstream"
    );
}

/// `imgapi mirror --upstream-simplestreams`: the flag, its summary, and
/// the IMGAPI-only options refused as usage errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_binary_with_a_simplestreams_upstream() {
    if let Some(why) = squashfs_missing() {
        eprintln!("SKIP: {why}");
        return;
    }
    let mut tree = Tree::new();
    tree.publish("20240101_13:00");
    let source = tree.serve().await;
    let s = TestServer::spawn_with(OPEN).await;
    let cfg = s.data_dir.join("mirror.toml");
    std::fs::write(&cfg, &s.config_toml).unwrap();
    let run = |extra: &[&str]| run_imgapi(mirror_args(&cfg, extra));
    let (code, stdout, stderr) = run(&["--upstream-simplestreams", &source.url, "-j"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (summary["new"].as_u64(), summary["failed"].as_u64()),
        (Some(2), Some(0)),
        "{stderr}"
    );
    assert_eq!(image_count(&s).await, 2);

    for extra in [
        vec!["--upstream-simplestreams", &source.url, "--delete"],
        vec![
            "--upstream-simplestreams",
            &source.url,
            "--upstream",
            &source.url,
        ],
        vec![],
    ] {
        let (code, _, stderr) = run(&extra).await;
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
    }
}
