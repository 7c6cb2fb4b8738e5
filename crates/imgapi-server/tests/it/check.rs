//! `imgapi check`: corrupt and missing blobs, orphans, `--repair`, on the
//! suite's backend pair (and explicitly on sqlite + S3 when
//! `IMGAPI_TEST_S3_ENDPOINT` is set).

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use imgapi_server::check::{check, CheckOptions, CheckReport, OrphanAction, ProblemKind, Stores};
use imgapi_server::Config;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::*;

fn body(bytes: Vec<u8>) -> imgapi_blob::ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes))]))
}

pub(crate) async fn stores_of(s: &TestServer) -> Stores {
    Stores::open(&Config::from_toml(&s.config_toml).unwrap())
        .await
        .unwrap()
}

/// `blob_key` of file 0 (or the icon) of `uuid`.
pub(crate) async fn key_of(stores: &Stores, uuid: &str, icon: bool) -> String {
    let stored = stores
        .meta
        .get(uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    if icon {
        stored.image.icon.unwrap().blob_key.unwrap()
    } else {
        stored.image.files[0].blob_key.clone().unwrap()
    }
}

async fn run(stores: &Stores, repair: bool, min_age: Duration) -> CheckReport {
    let opts = CheckOptions {
        repair,
        min_orphan_age: min_age,
    };
    let mut progress = Vec::new();
    let report = check(stores, opts, &mut progress).await.unwrap();
    let progress = String::from_utf8(progress).unwrap();
    assert!(progress.contains("activated image(s)"), "{progress}");
    report
}

/// Three images (one with an icon, one disabled); then one file corrupted
/// (same size, other bytes), one deleted, and an orphan added.
async fn break_registry(s: &TestServer, stores: &Stores) -> (String, String, String) {
    let a = s.publish(json!({"name": "a"})).await;
    let b = s.publish(json!({"name": "b"})).await;
    let c = s.publish(json!({"name": "c"})).await;
    let resp = s
        .put(&format!("/images/{}/icon", uuid_of(&c)))
        .header("content-type", "image/png")
        .body(vec![0x89u8; 300])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = s
        .post_json(
            &format!("/images/{}?action=disable", uuid_of(&c)),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let report = run(stores, false, Duration::ZERO).await;
    assert!(report.ok(), "{:#?}", report);
    assert_eq!(
        (
            report.images_checked,
            report.files_checked,
            report.icons_checked
        ),
        (3, 3, 1)
    );
    assert_eq!(report.bytes_verified, 3 * 11 + 300);

    let store = &stores.blobs[0];
    let corrupt = key_of(stores, &uuid_of(&a), false).await;
    store
        .put_stream(&corrupt, body(b"IMAGE BYTES".to_vec()), 100)
        .await
        .unwrap();
    let missing = key_of(stores, &uuid_of(&b), false).await;
    store.delete(&missing).await.unwrap();
    let orphan = imgapi_server::service::files::new_blob_key(Uuid::new_v4(), "file0");
    store
        .put_stream(&orphan, body(vec![1u8; 42]), 100)
        .await
        .unwrap();
    (corrupt, missing, orphan)
}

async fn corrupt_missing_orphan_and_repair(s: &TestServer) {
    let stores = stores_of(s).await;
    let (corrupt, missing, orphan) = break_registry(s, &stores).await;

    // Young objects are not orphans (yet): an upload may be committing.
    let report = run(&stores, false, Duration::from_secs(3600)).await;
    assert!(report.orphans.is_empty());
    assert!(report.young.iter().any(|(_, k)| *k == orphan));

    let report = run(&stores, false, Duration::ZERO).await;
    assert!(!report.ok());
    assert_eq!(report.count(ProblemKind::Corrupt), 1, "{report:#?}");
    assert_eq!(report.count(ProblemKind::Dangling), 1, "{report:#?}");
    assert_eq!(report.problems.len(), 2);
    let bad = report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::Corrupt)
        .unwrap();
    assert_eq!(bad.key.as_deref(), Some(corrupt.as_str()));
    assert!(bad.detail.contains("sha1"), "{}", bad.detail);
    let gone = report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::Dangling)
        .unwrap();
    assert_eq!(gone.key.as_deref(), Some(missing.as_str()));
    assert_eq!(report.orphans.len(), 1);
    assert_eq!(report.orphans[0].key, orphan);
    assert_eq!(report.orphans[0].size, 42);
    assert_eq!(report.orphans[0].action, OrphanAction::Reported);
    let mut text = Vec::new();
    report.write_text(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    for word in ["CORRUPT", "DANGLING", "ORPHAN", &orphan, "not moved"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
    let json = report.to_json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["orphans"][0]["action"], "reported");

    // --repair moves the orphan (only it), keeping its bytes.
    let report = run(&stores, true, Duration::ZERO).await;
    assert_eq!(report.orphans.len(), 1);
    let OrphanAction::Moved(to) = &report.orphans[0].action else {
        panic!("not moved: {:?}", report.orphans[0]);
    };
    assert!(to.contains("lost+found"), "{to}");
    assert!(matches!(
        stores.blobs[0].stat(&orphan).await,
        Err(imgapi_blob::BlobError::NotFound(_))
    ));
    if stores.blobs[0].kind() == "local" {
        let moved = s.data_dir.join("lost+found").join(&orphan);
        assert_eq!(std::fs::read(&moved).unwrap(), vec![1u8; 42]);
        assert_eq!(to, &moved.display().to_string());
    }
    // The corrupt and the dangling are reported, never "repaired".
    assert!(!report.ok());
    assert_eq!(report.problems.len(), 2);
    assert!(stores.blobs[0].stat(&corrupt).await.is_ok());

    // Afterwards only those two remain.
    let report = run(&stores, false, Duration::ZERO).await;
    assert!(report.orphans.is_empty());
    assert_eq!(report.problems.len(), 2);
}

#[tokio::test]
async fn check_reports_corrupt_missing_and_orphaned_blobs_and_repair_moves_orphans() {
    let s = TestServer::spawn().await;
    corrupt_missing_orphan_and_repair(&s).await;
}

/// The same on sqlite + S3, when the suite has an S3 server.
#[tokio::test]
async fn check_on_sqlite_and_s3() {
    #[allow(clippy::disallowed_methods)] // test harness switch
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("IMGAPI_TEST_S3_ENDPOINT"),
        std::env::var("IMGAPI_TEST_S3_BUCKET"),
    ) else {
        eprintln!(
            "SKIP check_on_sqlite_and_s3: IMGAPI_TEST_S3_ENDPOINT / IMGAPI_TEST_S3_BUCKET not set"
        );
        return;
    };
    let prefix = format!("it-check-{}", Uuid::new_v4().simple());
    let s = TestServer::spawn_raw(&format!(
        "[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n"
    ))
    .await;
    corrupt_missing_orphan_and_repair(&s).await;
}

fn config_file(s: &TestServer) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgapi.toml");
    std::fs::write(&path, &s.config_toml).unwrap();
    (dir, path)
}

fn imgapi_check(config: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("check")
        .args(extra)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

#[tokio::test]
async fn check_command_exit_status_and_output() {
    // A clean registry: exit 0.
    let clean = TestServer::spawn().await;
    clean.publish(json!({})).await;
    clean.publish(json!({})).await;
    let (_d, config) = config_file(&clean);
    let out = imgapi_check(&config, &[]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK: 0 dangling, 0 corrupt"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[2/2]"), "progress on stderr: {stderr}");

    // A broken one: exit 1, every finding named.
    let s = TestServer::spawn().await;
    let stores = stores_of(&s).await;
    let (_, _, orphan) = break_registry(&s, &stores).await;
    let local = stores.blobs[0].kind() == "local";
    if local {
        // Age the orphan past the one-hour guard.
        let path = s.data_dir.join("files").join(&orphan);
        let touched = Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(touched.success());
    }
    let (_d, config) = config_file(&s);
    let out = imgapi_check(&config, &["-j"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let kinds: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"corrupt") && kinds.contains(&"dangling"),
        "{kinds:?}"
    );
    if local {
        assert_eq!(report["orphans"][0]["key"], orphan.as_str());
        let out = imgapi_check(&config, &["--repair"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("moved to"), "{stdout}");
        assert!(s.data_dir.join("lost+found").join(&orphan).is_file());
    } else {
        // S3 objects cannot be aged: the fresh orphan is only skipped.
        assert_eq!(report["skippedYoung"][0]["key"], orphan.as_str());
    }

    let out = imgapi_check(std::path::Path::new("/nonexistent.toml"), &[]);
    assert_eq!(out.status.code(), Some(2));
}
