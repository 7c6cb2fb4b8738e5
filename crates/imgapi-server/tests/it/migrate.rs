//! `imgapi migrate`: sqlite+local → sqlite+local (and, with the scale-out
//! backends, → postgres+s3 → back) keeps every manifest and every byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use imgapi_server::migrate::{migrate_configs, MigrateOptions, MigrateSummary};
use imgapi_server::{AppState, Config};
use reqwest::Client;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::*;

/// dc mode (auth none): inclAdminFields is allowed, so `stor` is visible.
const DC: &str = "mode = \"dc\"\n";

/// A server started from a full config (no test-harness backend overrides).
struct Srv {
    url: String,
    client: Client,
    tx: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Srv {
    async fn start(backend_toml: &str) -> Srv {
        let toml = format!("listen = \"127.0.0.1:0\"\nlog_level = \"warn\"\n{DC}{backend_toml}");
        let app = AppState::open(Config::from_toml(&toml).unwrap())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            imgapi_server::serve(app, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Srv {
            url: format!("http://{addr}"),
            client: Client::new(),
            tx: Some(tx),
            handle: Some(handle),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

/// One image as a client sees it: manifest (admin fields), file, icon bytes.
type Seen = (Value, Option<Vec<u8>>, Option<Vec<u8>>);

/// Everything a client can see of a registry.
#[derive(Debug, PartialEq)]
struct Snapshot {
    list: Value,
    list_admin: Value,
    /// uuid → (manifest with admin fields, file bytes, icon bytes)
    images: BTreeMap<String, Seen>,
    /// uuid → its signatures (docs/signing.md), when it has any.
    signatures: BTreeMap<String, Value>,
}

async fn get_bytes(client: &Client, url: String) -> Option<Vec<u8>> {
    let resp = client.get(url).send().await.unwrap();
    if resp.status() == 404 {
        return None;
    }
    assert_eq!(resp.status(), 200);
    Some(resp.bytes().await.unwrap().to_vec())
}

async fn snapshot(url: &str) -> Snapshot {
    let client = Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let (s, v) =
                status_json(client.get(format!("{url}{path}")).send().await.unwrap()).await;
            assert_eq!(s, 200, "{path}: {v}");
            v
        }
    };
    let list = get("/images?state=all".into()).await;
    let list_admin = get("/images?state=all&inclAdminFields=true".into()).await;
    let mut images = BTreeMap::new();
    let mut signatures = BTreeMap::new();
    for img in list_admin.as_array().unwrap() {
        let uuid = uuid_of(img);
        let signed = get(format!("/images/{uuid}/signatures")).await;
        if signed["signatures"] != json!([]) {
            signatures.insert(uuid.clone(), signed);
        }
        let manifest = get(format!("/images/{uuid}?inclAdminFields=true")).await;
        let plain = get(format!("/images/{uuid}")).await;
        assert_eq!(plain["uuid"], manifest["uuid"]);
        let file = get_bytes(&client, format!("{url}/images/{uuid}/file")).await;
        let icon = get_bytes(&client, format!("{url}/images/{uuid}/icon")).await;
        images.insert(uuid, (manifest, file, icon));
    }
    Snapshot {
        list,
        list_admin,
        images,
        signatures,
    }
}

/// The snapshot with every `stor` replaced (to compare across backends).
fn without_stor(mut snap: Snapshot, stor: &str) -> Snapshot {
    fn fix(img: &mut Value, stor: &str) {
        if let Some(files) = img["files"].as_array_mut() {
            for f in files {
                if f.get("stor").is_some() {
                    f["stor"] = json!(stor);
                }
            }
        }
    }
    for img in snap.list_admin.as_array_mut().unwrap() {
        fix(img, stor);
    }
    for (m, _, _) in snap.images.values_mut() {
        fix(m, stor);
    }
    snap
}

fn local_toml(dir: &Path) -> String {
    format!("data_dir = {:?}\n", dir.display().to_string())
}

async fn run(from: &str, to: &str) -> (MigrateSummary, String) {
    run_opts(from, to, MigrateOptions::default()).await
}

async fn run_opts(from: &str, to: &str, opts: MigrateOptions) -> (MigrateSummary, String) {
    let from = Config::from_toml(from).unwrap();
    let to = Config::from_toml(to).unwrap();
    let mut out = Vec::new();
    let summary = migrate_configs(&from, &to, opts, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    eprint!("{text}");
    (summary, text)
}

/// Add a valid signature by the ed25519 key of `seed` to `uuid`.
async fn sign(s: &TestServer, uuid: &str, seed: u8) {
    let text = crate::signatures::statement(s, uuid).await;
    let armored = crate::signatures::sshsig(seed, &text);
    let (status, body) = crate::signatures::add_signature(s, uuid, &armored).await;
    assert_eq!(status, 200, "{body}");
}

/// Publish the fixture images (5, three signatures on two); returns their
/// uuids.
async fn populate(s: &TestServer) -> Vec<String> {
    let mut uuids = Vec::new();
    // 1. active, with a file and an icon
    let a = s.publish(json!({"name": "with-icon"})).await;
    let a = uuid_of(&a);
    let resp = s
        .put(&format!("/images/{a}/icon"))
        .header("content-type", "image/png")
        .body(vec![0x89u8; 5123])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sign(s, &a, 41).await;
    uuids.push(a);
    // 2. unactivated, with a file
    let b = uuid_of(&s.create(json!({"name": "unactivated"})).await);
    let (st, _) = s.upload(&b, b"half-way".to_vec()).await;
    assert_eq!(st, 200);
    uuids.push(b);
    // 3. tags, acl, a 3 MiB file
    let c = uuid_of(
        &s.create(json!({
            "name": "tagged",
            "version": "2.0.0",
            "public": false,
            "acl": [BOB, CAROL],
            "tags": {"role": "db", "n": 1, "nested": {"x": [1, 2]}},
            "description": "tags and acl",
        }))
        .await,
    );
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (st, _) = s.upload(&c, big).await;
    assert_eq!(st, 200);
    sign(s, &c, 41).await;
    sign(s, &c, 42).await;
    let (st, _) = s.activate(&c).await;
    assert_eq!(st, 200);
    uuids.push(c);
    // 4. no file at all
    uuids.push(uuid_of(&s.create(json!({"name": "empty"})).await));
    // 5. disabled
    let e = uuid_of(&s.publish(json!({"name": "disabled"})).await);
    let (st, _) = s
        .post_json(&format!("/images/{e}?action=disable"), &json!({}))
        .await;
    assert_eq!(st, 200);
    uuids.push(e);
    uuids
}

/// The lifecycle data beside the records (docs/lifecycle.md) goes too:
/// flags, recycle-bin entries with their files, quota overrides and API
/// retention rules; a rerun copies nothing again.
#[tokio::test]
async fn migrate_carries_lifecycle_data() {
    const BIN: &str = "[lifecycle]\nrecycle_days = 7\n";
    let src = TestServer::spawn_raw(&format!("{DC}{BIN}")).await;
    let kept = uuid_of(&src.publish(json!({"name": "kept"})).await);
    let flags = json!({"protected": true, "deprecated_at": "2020-01-02T03:04:05Z"});
    let resp = src
        .put(&format!("/images/{kept}/lifecycle"))
        .json(&flags)
        .send()
        .await
        .unwrap();
    let (status, flags) = status_json(resp).await;
    assert_eq!(status, 200, "{flags}");
    let binned = uuid_of(&src.publish(json!({"name": "binned"})).await);
    let resp = src
        .put(&format!("/images/{binned}/lifecycle"))
        .json(&json!({"deprecated_at": "2021-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = src
        .delete(&format!("/images/{binned}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = src
        .put(&format!("/quotas/{OWNER}"))
        .json(&json!({"images": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, rule) = src
        .post_json(
            "/retention/rules",
            &json!({"name": "base-*", "keep_versions": 3}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let src_dir = src.stop().await.unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let from = local_toml(src_dir.path());
    let to = local_toml(dst_dir.path());

    let (first, text) = run(&from, &to).await;
    assert_eq!(
        (first.copied, first.binned, first.failed),
        (1, 1, 0),
        "{text}"
    );
    let (second, text) = run(&from, &to).await;
    assert_eq!(
        (second.copied, second.binned, second.failed),
        (0, 0, 0),
        "{text}"
    );

    let dst = Srv::start(&format!("{to}{BIN}")).await;
    let get = |path: String| {
        let (client, url) = (dst.client.clone(), dst.url.clone());
        async move { status_json(client.get(format!("{url}{path}")).send().await.unwrap()).await }
    };
    assert_eq!(get(format!("/images/{kept}/lifecycle")).await, (200, flags));
    let (status, entry) = get(format!("/recycle-bin/{binned}")).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(get(format!("/images/{binned}")).await.0, 404);
    let (status, quota) = get(format!("/quotas/{OWNER}")).await;
    assert_eq!(status, 200, "{quota}");
    assert_eq!(quota["images"]["limit"], 50, "{quota}");
    let (_, rules) = get("/retention/rules".into()).await;
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == rule["id"]),
        "{rules}"
    );
    let (status, restored) = status_json(
        dst.client
            .post(format!("{}/recycle-bin/{binned}?action=restore", dst.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{restored}");
    let file = get_bytes(&dst.client, format!("{}/images/{binned}/file", dst.url)).await;
    assert_eq!(file.as_deref(), Some(&b"image bytes"[..]));
    let (_, lifecycle) = get(format!("/images/{binned}/lifecycle")).await;
    assert_eq!(
        lifecycle["deprecated_at"], "2021-01-01T00:00:00.000Z",
        "the bin entry's deprecation came along: {lifecycle}"
    );
    dst.stop().await;
}

#[tokio::test]
async fn migrate_sqlite_local_roundtrip() {
    let src = TestServer::spawn_raw(DC).await;
    let uuids = populate(&src).await;
    let before = snapshot(&src.url).await;
    assert_eq!(before.images.len(), uuids.len());
    assert!(before.images.values().any(|(_, _, icon)| icon.is_some()));
    let (_, head) = src.get_json("/changes?limit=0").await;
    let source_end = head["next"].as_i64().unwrap();
    assert!(source_end > 5, "{head}");
    let src_dir = src.stop().await.unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let from = local_toml(src_dir.path());
    let to = local_toml(dst_dir.path());

    // Dry run: reports, writes nothing.
    let (dry, _) = run_opts(&from, &to, MigrateOptions { dry_run: true }).await;
    assert_eq!((dry.copied, dry.skipped, dry.failed), (5, 0, 0));
    let empty = Srv::start(&to).await;
    let (_, list) = status_json(
        empty
            .client
            .get(format!("{}/images?state=all", empty.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list, json!([]));
    empty.stop().await;

    let (first, text) = run(&from, &to).await;
    assert_eq!((first.copied, first.skipped, first.failed), (5, 0, 0));
    assert!(first.bytes > 3 * 1024 * 1024, "{first:?}");
    assert!(text.contains("[1/5] "), "{text}");
    assert!(text.contains("copied 3.0 MiB"), "{text}");
    assert!(
        text.contains("5 images: 5 copied, 0 skipped, 0 failed"),
        "{text}"
    );

    let (second, _) = run(&from, &to).await;
    assert_eq!((second.copied, second.skipped, second.failed), (0, 5, 0));
    assert_eq!(second.bytes, 0);

    let dst = Srv::start(&to).await;
    let after = snapshot(&dst.url).await;
    // The target's change log goes on after the source's: a follower that
    // had read the source to its end reads the copies' events; one behind
    // it must resynchronize (docs/events.md).
    let changes = |since: i64| {
        let url = format!("{}/changes?since={since}&limit=1000", dst.url);
        let client = dst.client.clone();
        async move { status_json(client.get(url).send().await.unwrap()).await }
    };
    let (status, page) = changes(source_end).await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events[0]["seq"], source_end + 1);
    let created: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["type"] == "image.created")
        .map(|e| e["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(created, uuids.iter().map(String::as_str).collect());
    let (status, page) = changes(source_end - 1).await;
    assert_eq!(
        (status, page["code"].as_str()),
        (410, Some("ChangesExpired"))
    );
    dst.stop().await;
    assert_eq!(after.signatures.len(), 2, "{:?}", after.signatures);
    assert_eq!(after, before);
}

#[tokio::test]
async fn migrate_via_postgres_s3_and_back() {
    let Some((pg_admin, endpoint, bucket)) = scale_out_env() else {
        eprintln!(
            "SKIP migrate_via_postgres_s3_and_back: IMGAPI_TEST_PG_URL / IMGAPI_TEST_S3_* not set"
        );
        return;
    };
    let src = TestServer::spawn_raw(DC).await;
    populate(&src).await;
    let before = snapshot(&src.url).await;
    let src_dir = src.stop().await.unwrap();

    let mid_dir = tempfile::tempdir().unwrap();
    let prefix = format!("it-migrate-{}", uuid::Uuid::new_v4().simple());
    let mid = format!(
        "data_dir = {:?}\ndatabase_url = {:?}\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n",
        mid_dir.path().display().to_string(),
        create_database(&pg_admin),
    );
    let back_dir = tempfile::tempdir().unwrap();
    let from = local_toml(src_dir.path());
    let back = local_toml(back_dir.path());

    let (s, _) = run(&from, &mid).await;
    assert_eq!((s.copied, s.skipped, s.failed), (5, 0, 0));
    let (s, _) = run(&from, &mid).await;
    assert_eq!((s.copied, s.skipped, s.failed), (0, 5, 0));
    let srv = Srv::start(&mid).await;
    let on_s3 = snapshot(&srv.url).await;
    srv.stop().await;
    for (m, _, _) in on_s3.images.values() {
        for f in m["files"].as_array().unwrap() {
            assert_eq!(f["stor"], "s3", "{m}");
        }
    }
    assert_eq!(without_stor(on_s3, "local"), before);

    let (s, _) = run(&mid, &back).await;
    assert_eq!((s.copied, s.skipped, s.failed), (5, 0, 0));
    let srv = Srv::start(&back).await;
    let after = snapshot(&srv.url).await;
    srv.stop().await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn migrate_reports_corrupt_source_blob() {
    let src = TestServer::spawn_raw(DC).await;
    let good = uuid_of(&src.publish(json!({"name": "good"})).await);
    let bad = uuid_of(&src.publish(json!({"name": "bad"})).await);
    let src_dir = src.stop().await.unwrap();
    let from = local_toml(src_dir.path());
    let from_cfg = Config::from_toml(&from).unwrap();

    // Overwrite the bad image's file with other bytes of the same size.
    let key = {
        let meta = imgapi_meta::open(&from_cfg.database_url()).await.unwrap();
        let rec = meta.get(bad.parse().unwrap()).await.unwrap().unwrap();
        rec.image.files[0].blob_key.clone().unwrap()
    };
    let path = from_cfg.files_dir().join(&key);
    let original = std::fs::read(&path).unwrap();
    let corrupt: Vec<u8> = original.iter().map(|b| b ^ 0xff).collect();
    std::fs::write(&path, &corrupt).unwrap();

    let dst_dir = tempfile::tempdir().unwrap();
    let to = local_toml(dst_dir.path());
    let (s, text) = run(&from, &to).await;
    assert_eq!((s.copied, s.skipped, s.failed), (1, 0, 1));
    assert!(!s.ok());
    assert_eq!(s.failures.len(), 1);
    assert_eq!(s.failures[0].0.to_string(), bad);
    assert!(s.failures[0].1.contains("sha1"), "{:?}", s.failures);
    assert!(text.contains(&format!("{bad} bad@1.0.0: ERROR ")), "{text}");

    let to_cfg = Config::from_toml(&to).unwrap();
    let meta = imgapi_meta::open(&to_cfg.database_url()).await.unwrap();
    assert!(meta.get(bad.parse().unwrap()).await.unwrap().is_none());
    assert!(meta.get(good.parse().unwrap()).await.unwrap().is_some());
    assert!(!to_cfg.files_dir().join(&key).exists());

    // A rerun fails again (and still writes nothing for it).
    let (s, _) = run(&from, &to).await;
    assert_eq!((s.copied, s.skipped, s.failed), (0, 1, 1));
    assert!(meta.get(bad.parse().unwrap()).await.unwrap().is_none());
}
