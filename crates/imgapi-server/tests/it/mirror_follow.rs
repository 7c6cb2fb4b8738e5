//! `imgapi mirror --follow`: a downstream registry following an upstream's
//! change feed (docs/mirroring.md "Following an upstream"). Each test runs
//! the real binary as a child process between two servers on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgapi_meta::{MirrorCursor, MirrorCursorKey};
use imgapi_server::service::import::mirror;
use imgapi_server::Config;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::metrics::{scrape, value};
use crate::remote_import::{
    fake_manifest, new_uuid, not_found, publish_bytes, FakeSource, Handler, Reply, OPEN,
};
use crate::support::*;

const DC: &str = "mode = \"dc\"";
/// How long a propagation may take before a test gives up (the < 2 s
/// promise is asserted on its own).
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `imgapi mirror --follow` and what it wrote on stderr.
struct Follower {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Follower {
    fn start(cfg: &Path, upstream: &str, extra: &[&str]) -> Follower {
        let mut args = vec!["--upstream", upstream, "--follow"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_imgapi"))
            .args(mirror_args(cfg, &args))
            .env_remove("IMGAPI_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Follower { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until stderr contains `what`.
    async fn wait_for(&self, what: &str) {
        let started = Instant::now();
        while !self.log().contains(what) {
            assert!(
                started.elapsed() < PATIENCE,
                "no {what:?} on stderr: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send `signal` and wait for the exit status.
    async fn signal(mut self, signal: &str) -> (Option<i32>, String) {
        let pid = self.child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        // Let the reader drain what was written before the exit.
        tokio::time::sleep(Duration::from_millis(50)).await;
        (status.code(), self.log())
    }
}

/// The downstream's answer for `uuid` once `done` holds (within
/// [`PATIENCE`]), and how long it took.
async fn wait_image(
    target: &TestServer,
    uuid: &str,
    done: impl Fn(u16, &Value) -> bool,
    follower: &Follower,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (status, body) = target.get_json(&format!("/images/{uuid}")).await;
        if done(status, &body) {
            return (body, started.elapsed());
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{uuid} never got there (last: {status} {body}); mirror: {}",
            follower.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn active(status: u16, img: &Value) -> bool {
    status == 200 && img["state"] == "active"
}

/// The mirror's config file, beside the downstream's data.
fn mirror_config(target: &TestServer) -> PathBuf {
    let cfg = target.data_dir.join("mirror.toml");
    std::fs::write(&cfg, &target.config_toml).unwrap();
    cfg
}

async fn update(s: &TestServer, uuid: &str, body: Value) {
    let (status, img) = s
        .post_json(&format!("/images/{uuid}?action=update"), &body)
        .await;
    assert_eq!(status, 200, "{img}");
}

/// `GET /images` answered by `s` so far (its metrics).
async fn list_requests(s: &TestServer) -> f64 {
    let m = scrape(&s.client, &format!("{}/metrics", s.url)).await;
    value(
        &m,
        "imgapi_http_requests_total",
        &[
            ("route", "ListImages"),
            ("method", "GET"),
            ("status", "200"),
        ],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creations_updates_and_deletions_arrive_within_seconds() {
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let before = publish_bytes(&upstream, json!({"name": "before"}), b"before bytes").await;
    let cfg = mirror_config(&target);
    let follower = Follower::start(&cfg, &upstream.url, &["--delete"]);
    follower
        .wait_for("following the upstream's change feed from")
        .await;
    // The first full run copied what was there.
    let (status, img) = target
        .get_json(&format!("/images/{}", uuid_of(&before)))
        .await;
    assert!(active(status, &img), "{img}");

    // (a) A new image, activated upstream, is here within 2 s.
    let new = publish_bytes(&upstream, json!({"name": "new"}), b"brand new bytes").await;
    let uuid = uuid_of(&new);
    let (img, took) = wait_image(&target, &uuid, active, &follower).await;
    eprintln!("mirror --follow: the new image was here {took:?} after its activation upstream");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(img["files"][0]["sha1"], new["files"][0]["sha1"]);
    assert_eq!(img["published_at"], new["published_at"]);

    // (b) An update and a disable propagate…
    update(&upstream, &uuid, json!({"description": "now described"})).await;
    let (_, took) = wait_image(
        &target,
        &uuid,
        |s, img| s == 200 && img["description"] == "now described",
        &follower,
    )
    .await;
    assert!(took < Duration::from_secs(2), "update took {took:?}");
    let (status, img) = upstream
        .post_json(&format!("/images/{uuid}?action=disable"), &json!({}))
        .await;
    assert_eq!(status, 200, "{img}");
    wait_image(
        &target,
        &uuid,
        |s, img| s == 200 && img["disabled"] == true,
        &follower,
    )
    .await;
    // … and so does a deletion (with --delete).
    let resp = upstream
        .delete(&format!("/images/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, took) = wait_image(&target, &uuid, |s, _| s == 404, &follower).await;
    assert!(took < Duration::from_secs(2), "deletion took {took:?}");
    let (status, _) = target
        .get_json(&format!("/images/{}", uuid_of(&before)))
        .await;
    assert_eq!(status, 200, "the other image stays");

    // A signal ends it cleanly.
    let (code, log) = follower.signal("-TERM").await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains(&format!("{uuid} new@1.0.0: new")), "{log}");
    assert!(log.contains(&format!("{uuid} new@1.0.0: deleted")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_saved_cursor_and_410_resyncs() {
    let upstream = TestServer::spawn_with(&format!("{DC}\nmetrics_on_main = true")).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let cfg = mirror_config(&target);

    let follower = Follower::start(&cfg, &upstream.url, &[]);
    follower
        .wait_for("following the upstream's change feed from")
        .await;
    let first = publish_bytes(&upstream, json!({"name": "first"}), b"first bytes").await;
    wait_image(&target, &uuid_of(&first), active, &follower).await;
    // Killed outright: only the saved cursor tells where it was.
    let (code, _) = follower.signal("-KILL").await;
    assert_eq!(code, None);

    // (c) Changes while it is down arrive after the restart, without a
    // full listing of the upstream.
    let second = publish_bytes(&upstream, json!({"name": "second"}), b"second bytes").await;
    update(
        &upstream,
        &uuid_of(&first),
        json!({"description": "changed while down"}),
    )
    .await;
    let listed = list_requests(&upstream).await;
    assert!(listed >= 1.0, "the first full run listed the upstream");
    let follower = Follower::start(&cfg, &upstream.url, &[]);
    wait_image(&target, &uuid_of(&second), active, &follower).await;
    wait_image(
        &target,
        &uuid_of(&first),
        |s, img| s == 200 && img["description"] == "changed while down",
        &follower,
    )
    .await;
    let (code, log) = follower.signal("-TERM").await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("from the saved cursor"), "{log}");
    assert!(!log.contains("a full run"), "{log}");
    assert_eq!(
        list_requests(&upstream).await,
        listed,
        "a resumed follow lists nothing"
    );

    // (e) A cursor the upstream does not have (ahead of its feed, as after
    // a database swap; the same 410 as an expired one): a full run, then
    // following again.
    let app = mirror::open(Config::from_toml(&target.config_toml).unwrap())
        .await
        .unwrap();
    let key = MirrorCursorKey {
        upstream: format!("{}/", upstream.url),
        filters: String::new(),
    };
    let saved = app.meta.mirror_cursor(&key).await.unwrap();
    assert!(saved.is_some_and(|c| c.cursor > 0), "{saved:?}");
    app.meta
        .put_mirror_cursor(
            &key,
            MirrorCursor {
                cursor: 1_000_000_000,
                updated_ms: 0,
            },
        )
        .await
        .unwrap();
    let third = publish_bytes(&upstream, json!({"name": "third"}), b"third bytes").await;
    let follower = Follower::start(&cfg, &upstream.url, &[]);
    wait_image(&target, &uuid_of(&third), active, &follower).await;
    follower
        .wait_for("following the upstream's change feed from")
        .await;
    let fourth = publish_bytes(&upstream, json!({"name": "fourth"}), b"fourth bytes").await;
    wait_image(&target, &uuid_of(&fourth), active, &follower).await;
    let (code, log) = follower.signal("-TERM").await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("no longer has the events after 1000000000"),
        "{log}"
    );
    assert!(list_requests(&upstream).await > listed, "a full run listed");
    let resaved = app.meta.mirror_cursor(&key).await.unwrap().unwrap();
    assert!(resaved.cursor < 1_000_000_000, "{resaved:?}");
}

/// A manifest the fake original serves, and its file.
type Served = (Value, Vec<u8>);

/// (d) An original IMGAPI (404 for `/changes`): polled every `--interval`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_without_a_feed_is_polled() {
    let images: Arc<Mutex<Vec<Served>>> = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&images);
    let handler: Handler = Arc::new(move |target: &str| {
        let path = target.split('?').next().unwrap_or_default().to_string();
        let all = shared.lock().unwrap().clone();
        if path == "/images" {
            return Reply::Json(200, Value::Array(all.into_iter().map(|(m, _)| m).collect()));
        }
        for (m, bytes) in all {
            let u = m["uuid"].as_str().unwrap_or_default().to_string();
            if path == format!("/images/{u}") {
                return Reply::Json(200, m);
            }
            if path == format!("/images/{u}/file") {
                return Reply::File {
                    bytes,
                    cut_at: None,
                    delay: Duration::ZERO,
                };
            }
        }
        not_found(&path)
    });
    let original = FakeSource::start(handler).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let cfg = mirror_config(&target);
    let follower = Follower::start(&cfg, &original.url, &["--interval", "1s"]);
    follower.wait_for("the upstream has no change feed").await;

    let uuid = new_uuid();
    let bytes = b"an original's image".to_vec();
    images
        .lock()
        .unwrap()
        .push((fake_manifest(&uuid, None, &bytes, "active"), bytes));
    wait_image(&target, &uuid, active, &follower).await;
    let (code, log) = follower.signal("-TERM").await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("HTTP 404") && log.contains("an original IMGAPI?"),
        "{log}"
    );
    assert!(log.contains("a full run every 1s"), "{log}");
}

/// `--follow` goes with neither `--dry-run` nor a simplestreams upstream.
#[tokio::test]
async fn follow_refuses_what_it_cannot_do() {
    let target = TestServer::spawn_with(OPEN).await;
    let cfg = mirror_config(&target);
    let (code, _, stderr) = run_imgapi(mirror_args(
        &cfg,
        &["--upstream", "http://127.0.0.1:9", "--follow", "--dry-run"],
    ))
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--dry-run"), "{stderr}");
}
