//! Per-owner quotas and write-once versions (docs/lifecycle.md "Quotas",
//! "Write-once versions"): count and byte limits from the configuration
//! and the `/quotas` API, refusals before and while streaming that keep
//! nothing, `/usage` and `/quotas` answers, write-once triples, and
//! concurrent uploads that never overshoot (one instance, and three
//! instances sharing PostgreSQL).

use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::*;

/// A body of `len` bytes sent in chunks, without `Content-Length`.
fn chunked(len: usize) -> reqwest::Body {
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..len)
        .step_by(16)
        .map(|start| Ok(Bytes::from(vec![b'x'; 16.min(len - start)])))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
}

async fn quota(s: &TestServer, owner: &str) -> Value {
    let (status, q) = s.get_json(&format!("/quotas/{owner}")).await;
    assert_eq!(status, 200, "{q}");
    q
}

async fn image(s: &TestServer, uuid: &str) -> Value {
    let (status, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(status, 200, "{img}");
    img
}

#[tokio::test]
async fn image_count_limit_from_the_defaults() {
    let s = TestServer::spawn_with("[quotas]\ndefault_images = 2\n").await;
    s.create(json!({"version": "1"})).await;
    s.create(json!({"version": "2"})).await;
    let mut body = manifest();
    merge(&mut body, json!({"version": "3"}));
    let refused = s.post_json("/images", &body).await;
    assert_error(&refused, 403, "QuotaExceeded", None);
    let message = refused.1["message"].as_str().unwrap();
    assert!(
        message.contains("at most 2 images and has 2"),
        "the message names the limit and the use: {message}"
    );
    let q = quota(&s, OWNER).await;
    assert_eq!(
        q["images"],
        json!({"limit": 2, "used": 2}),
        "nothing was created"
    );
    // Another owner has its own count.
    let other = uuid::Uuid::new_v4().to_string();
    s.create(json!({"owner": other})).await;
}

#[tokio::test]
async fn config_owner_entry_and_api_override() {
    let s = TestServer::spawn_with(&format!(
        "[quotas]\ndefault_images = 5\n[quotas.owners.{OWNER}]\nimages = 1\n"
    ))
    .await;
    s.create(json!({})).await;
    let mut body = manifest();
    merge(&mut body, json!({"version": "2"}));
    assert_error(
        &s.post_json("/images", &body).await,
        403,
        "QuotaExceeded",
        None,
    );
    // A stored override replaces the configured entry...
    let put = status_json(
        s.put(&format!("/quotas/{OWNER}"))
            .json(&json!({"images": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(put.0, 200, "{}", put.1);
    assert_eq!(put.1["images"], json!({"limit": 3, "used": 1}));
    assert_eq!(put.1["override"], json!({"images": 3, "bytes": null}));
    assert_eq!(s.post_json("/images", &body).await.0, 200);
    let (status, list) = s.get_json("/quotas").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["owner"], OWNER);
    // ... until it is deleted: the configured entry applies again.
    let del = s.delete(&format!("/quotas/{OWNER}")).send().await.unwrap();
    assert_eq!(del.status(), 204);
    merge(&mut body, json!({"version": "3"}));
    assert_error(
        &s.post_json("/images", &body).await,
        403,
        "QuotaExceeded",
        None,
    );
    let again = status_json(s.delete(&format!("/quotas/{OWNER}")).send().await.unwrap()).await;
    assert_error(&again, 404, "ResourceNotFound", None);
}

#[tokio::test]
async fn operators_only_except_an_owner_reading_its_own() {
    let s = TestServer::spawn_with("[quotas]\ndefault_bytes = 1000\n").await;
    let other = uuid::Uuid::new_v4();
    let (status, own) = s
        .get_json(&format!("/quotas/{OWNER}?account={OWNER}"))
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(
        own["bytes"],
        json!({"limit": 1000, "used": 0, "reserved": 0})
    );
    let theirs = s
        .get_json(&format!("/quotas/{OWNER}?account={other}"))
        .await;
    assert_error(&theirs, 403, "OperatorOnly", None);
    assert_error(
        &s.get_json(&format!("/quotas?account={OWNER}")).await,
        403,
        "OperatorOnly",
        None,
    );
    let put = status_json(
        s.put(&format!("/quotas/{OWNER}?account={OWNER}"))
            .json(&json!({"bytes": 0}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&put, 403, "OperatorOnly", None);
    let bad = s.get_json("/quotas/not-a-uuid").await;
    assert_error(&bad, 422, "InvalidParameter", None);
    let unknown_key = status_json(
        s.put(&format!("/quotas/{OWNER}"))
            .json(&json!({"files": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&unknown_key, 422, "InvalidParameter", None);
}

#[tokio::test]
async fn byte_limit_refuses_a_known_size_before_streaming() {
    let s = TestServer::spawn_with("[quotas]\ndefault_bytes = 100\n").await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let refused = s.upload(&uuid, vec![b'x'; 101]).await;
    assert_error(&refused, 403, "QuotaExceeded", None);
    let message = refused.1["message"].as_str().unwrap();
    assert!(
        message.contains("at most 100 bytes") && message.contains("would add 101 bytes"),
        "{message}"
    );
    assert_eq!(
        image(&s, &uuid).await["files"],
        json!([]),
        "no file recorded"
    );
    let q = quota(&s, OWNER).await;
    assert_eq!(q["bytes"], json!({"limit": 100, "used": 0, "reserved": 0}));
    // Exactly the limit fits; then nothing more does.
    assert_eq!(s.upload(&uuid, vec![b'x'; 100]).await.0, 200);
    let second = uuid_of(&s.create(json!({"version": "2"})).await);
    assert_error(
        &s.upload(&second, vec![b'x'; 1]).await,
        403,
        "QuotaExceeded",
        None,
    );
    let (_, usage) = s.get_json("/usage").await;
    assert_eq!(
        usage["owners"][0]["quota"],
        json!({"images": {"limit": 0, "used": 2},
               "bytes": {"limit": 100, "used": 100, "reserved": 0}})
    );
    assert_no_staged_files(&s);
}

#[tokio::test]
async fn byte_limit_cuts_off_a_chunked_body_while_streaming() {
    let s = TestServer::spawn_with("[quotas]\ndefault_bytes = 100\n").await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let refused = status_json(
        s.put(&format!("/images/{uuid}/file?compression=gzip"))
            .body(chunked(150))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&refused, 403, "QuotaExceeded", None);
    assert_eq!(image(&s, &uuid).await["files"], json!([]));
    let q = quota(&s, OWNER).await;
    assert_eq!(
        q["bytes"],
        json!({"limit": 100, "used": 0, "reserved": 0}),
        "no reservation is left behind"
    );
    assert_no_staged_files(&s);
    let ok = status_json(
        s.put(&format!("/images/{uuid}/file?compression=gzip"))
            .body(chunked(100))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.0, 200, "a chunked body up to the limit fits: {}", ok.1);
    assert_eq!(ok.1["files"][0]["size"], 100);
    assert_eq!(quota(&s, OWNER).await["bytes"]["used"], 100);
}

/// No file of a refused upload is left on local disk (S3 runs check the
/// record and the use only).
fn assert_no_staged_files(s: &TestServer) {
    if expected_stor() != "local" {
        return;
    }
    let files = s.data_dir.join("files");
    let mut stack = vec![files];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    let sizes: Vec<u64> = found
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert!(
        sizes.iter().all(|n| *n <= 100),
        "only accepted files are stored: {found:?} {sizes:?}"
    );
}

#[tokio::test]
async fn without_quotas_answers_are_unchanged() {
    let s = TestServer::spawn().await;
    s.publish(json!({})).await;
    let (_, usage) = s.get_json("/usage").await;
    assert!(usage["owners"][0].get("quota").is_none(), "{usage}");
    let q = quota(&s, OWNER).await;
    assert_eq!(q["images"]["limit"], 0);
    assert_eq!(q["override"], Value::Null);
    // Same name and version twice: allowed unless write-once is on.
    s.create(json!({})).await;
}

#[tokio::test]
async fn write_once_versions_refuse_a_second_triple() {
    let s = TestServer::spawn_with("[quotas]\nwrite_once_versions = true\n").await;
    let first = uuid_of(&s.create(json!({})).await);
    let refused = s.post_json("/images", &manifest()).await;
    assert_error(&refused, 409, "ImageVersionExists", None);
    assert!(
        refused.1["message"].as_str().unwrap().contains(&first),
        "the message names the existing image: {}",
        refused.1
    );
    s.create(json!({"version": "1.0.1"})).await;
    // Another owner may use the same name and version.
    s.create(json!({"owner": uuid::Uuid::new_v4().to_string()}))
        .await;
    // Two concurrent creates of a new triple: exactly one wins.
    let mut body = manifest();
    merge(&mut body, json!({"version": "2.0.0"}));
    let results = join_all((0..2).map(|_| s.post_json("/images", &body))).await;
    let won = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(won, 1, "{results:?}");
    let lost = results.iter().find(|r| r.0 != 200).unwrap();
    assert_error(lost, 409, "ImageVersionExists", None);
}

/// 20 uploads of 100 bytes at once against 1000 bytes: never more than
/// the limit is stored, every success is whole, refusals keep nothing.
async fn race(servers: &[TestServer]) {
    let first = &servers[0];
    let mut uuids = Vec::new();
    for i in 0..20 {
        uuids.push(uuid_of(
            &first.create(json!({"version": format!("{i}")})).await,
        ));
    }
    let uploads = uuids.iter().enumerate().map(|(i, uuid)| {
        let server = &servers[i % servers.len()];
        async move { server.upload(uuid, vec![b'x'; 100]).await }
    });
    let results = join_all(uploads).await;
    let ok = results.iter().filter(|r| r.0 == 200).count() as u64;
    for r in results.iter().filter(|r| r.0 != 200) {
        assert_error(r, 403, "QuotaExceeded", None);
    }
    let q = quota(first, OWNER).await;
    assert!(
        (1..=10).contains(&ok),
        "{ok} uploads succeeded: quota {q} statuses {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(q["bytes"]["used"], ok * 100, "{q}");
    assert!(q["bytes"]["used"].as_u64().unwrap() <= 1000);
    assert_eq!(q["bytes"]["reserved"], 0);
    // What the refusals left is room: filling it up works.
    let mut filled = ok;
    for uuid in &uuids {
        if filled == 10 {
            break;
        }
        if image(first, uuid).await["files"] == json!([]) {
            assert_eq!(first.upload(uuid, vec![b'x'; 100]).await.0, 200);
            filled += 1;
        }
    }
    assert_eq!(quota(first, OWNER).await["bytes"]["used"], 1000);
}

#[tokio::test]
async fn twenty_concurrent_uploads_never_overshoot() {
    let s = TestServer::spawn_with("[quotas]\ndefault_bytes = 1000\n").await;
    race(std::slice::from_ref(&s)).await;
}

/// Three instances on one PostgreSQL database and bucket, with `quotas`
/// as their `[quotas]` section; `None` (after a SKIP line) without the env.
async fn three_instances(quotas: &str) -> Option<Vec<TestServer>> {
    let Some((admin_url, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: multi-instance quota tests need IMGAPI_TEST_PG_URL and IMGAPI_TEST_S3_* (set by .ci/run)");
        return None;
    };
    let db = create_database(&admin_url);
    let prefix = format!("quotas-{}", uuid::Uuid::new_v4().simple());
    let toml = format!(
        "database_url = {db:?}\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n[quotas]\n{quotas}\n"
    );
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(TestServer::spawn_raw(&toml).await);
    }
    Some(servers)
}

#[tokio::test]
async fn twenty_concurrent_uploads_across_three_instances_never_overshoot() {
    let Some(servers) = three_instances("default_bytes = 1000").await else {
        return;
    };
    race(&servers).await;
}

#[tokio::test]
async fn write_once_holds_across_three_instances() {
    let Some(servers) = three_instances("write_once_versions = true").await else {
        return;
    };
    let body = manifest();
    let creates = (0..9).map(|i| servers[i % 3].post_json("/images", &body));
    let results = join_all(creates).await;
    let won = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(won, 1, "{results:?}");
    for r in results.iter().filter(|r| r.0 != 200) {
        assert_error(r, 409, "ImageVersionExists", None);
    }
}

async fn start_session(s: &TestServer, uuid: &str, query: &str) -> (u16, Value) {
    status_json(
        s.post(&format!(
            "/images/{uuid}/file/uploads?compression=gzip{query}"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await
}

async fn put_session_chunk(
    s: &TestServer,
    uuid: &str,
    id: &str,
    len: usize,
    total: &str,
) -> (u16, Value) {
    status_json(
        s.put(&format!("/images/{uuid}/file/uploads/{id}"))
            .header("content-range", format!("bytes 0-{}/{total}", len - 1))
            .body(vec![b'x'; len])
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn upload_sessions_hold_their_declared_size_and_reserve_chunks() {
    let s = TestServer::spawn_with("[quotas]\ndefault_bytes = 100\n").await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let refused = start_session(&s, &uuid, "&size=101").await;
    assert_error(&refused, 403, "QuotaExceeded", None);
    let (status, session) = start_session(&s, &uuid, "&size=100").await;
    assert_eq!(status, 201, "{session}");
    let id = session["upload_id"].as_str().unwrap().to_string();
    assert_eq!(
        quota(&s, OWNER).await["bytes"]["reserved"],
        100,
        "held for the session"
    );
    // While it is held, another upload of the owner finds no room.
    let other = uuid_of(&s.create(json!({"version": "2"})).await);
    assert_error(
        &s.upload(&other, vec![b'y'; 1]).await,
        403,
        "QuotaExceeded",
        None,
    );
    assert_eq!(put_session_chunk(&s, &uuid, &id, 100, "100").await.0, 200);
    let finished = status_json(
        s.post(&format!("/images/{uuid}/file/uploads/{id}?action=finish"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(finished.0, 200, "{}", finished.1);
    assert_eq!(
        quota(&s, OWNER).await["bytes"],
        json!({"limit": 100, "used": 100, "reserved": 0})
    );
    // A session without a size reserves each chunk before reading it.
    let (status, session) = start_session(&s, &other, "").await;
    assert_eq!(status, 201, "{session}");
    let id = session["upload_id"].as_str().unwrap().to_string();
    let chunk = put_session_chunk(&s, &other, &id, 10, "*").await;
    assert_error(&chunk, 403, "QuotaExceeded", None);
    assert_eq!(quota(&s, OWNER).await["bytes"]["reserved"], 0);
    let aborted = s
        .delete(&format!("/images/{other}/file/uploads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(aborted.status(), 204);
}

#[tokio::test]
async fn icons_count_against_the_byte_limit() {
    let s = TestServer::spawn_with("[quotas]\ndefault_bytes = 100\n").await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let put_icon = |len: usize| {
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/png")
            .body(vec![0x89u8; len])
            .send()
    };
    let refused = status_json(put_icon(150).await.unwrap()).await;
    assert_error(&refused, 403, "QuotaExceeded", None);
    assert!(image(&s, &uuid).await.get("icon").is_none());
    let ok = status_json(put_icon(60).await.unwrap()).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(quota(&s, OWNER).await["bytes"]["used"], 60);
}

#[tokio::test]
async fn write_once_refuses_an_update_onto_an_existing_triple() {
    let s = TestServer::spawn_with("[quotas]\nwrite_once_versions = true\n").await;
    let first = uuid_of(&s.create(json!({"version": "1"})).await);
    let second = uuid_of(&s.create(json!({"version": "2"})).await);
    let moved = s
        .post_json(
            &format!("/images/{second}?action=update"),
            &json!({"version": "1"}),
        )
        .await;
    assert_error(&moved, 409, "ImageVersionExists", None);
    assert!(moved.1["message"].as_str().unwrap().contains(&first));
    assert_eq!(image(&s, &second).await["version"], "2");
    let renamed = s
        .post_json(
            &format!("/images/{second}?action=update"),
            &json!({"version": "3"}),
        )
        .await;
    assert_eq!(renamed.0, 200, "{}", renamed.1);
    // Updating other fields of an image keeps its own triple.
    let described = s
        .post_json(
            &format!("/images/{first}?action=update"),
            &json!({"description": "the first"}),
        )
        .await;
    assert_eq!(described.0, 200, "{}", described.1);
}

/// An image moved to another owner (UpdateImage `owner`) or cloned for an
/// account brings its bytes to that owner's quota.
#[tokio::test]
async fn a_moved_image_counts_its_bytes_for_the_new_owner() {
    let small = uuid::Uuid::new_v4().to_string();
    let s = TestServer::spawn_with(&format!("[quotas.owners.{small:?}]\nbytes = 5\n")).await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    let moved = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"owner": small}),
        )
        .await;
    assert_error(&moved, 403, "QuotaExceeded", None);
    assert_eq!(image(&s, &uuid).await["owner"], OWNER, "not moved");
    assert_eq!(quota(&s, &small).await["bytes"]["used"], 0);
}

#[tokio::test]
async fn usage_command_shows_the_quotas_the_endpoint_shows() {
    let s = TestServer::spawn_with("[quotas]\ndefault_bytes = 1000\n").await;
    s.publish(json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imgapi.toml");
    std::fs::write(&config, &s.config_toml).unwrap();
    let config = config.display().to_string();
    let (code, out, err) = run_imgapi(vec![
        "usage".into(),
        "-j".into(),
        "--config".into(),
        config.clone(),
    ])
    .await;
    assert_eq!(code, Some(0), "{err}");
    let cli: Value = serde_json::from_str(&out).unwrap();
    let (_, api) = s.get_json("/usage").await;
    assert_eq!(cli, api);
    assert_eq!(
        api["owners"][0]["quota"]["bytes"],
        json!({"limit": 1000, "used": 11, "reserved": 0})
    );
    let (code, out, err) = run_imgapi(vec!["usage".into(), "--config".into(), config]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("QUOTA OWNER"), "{out}");
    assert!(out.contains(OWNER), "{out}");
}

#[tokio::test]
async fn lxd_imports_reserve_the_image_and_its_bytes() {
    use crate::lxd::{config, import, local_blobs, squashfs_missing, Tree, COMBINED_ALIAS};
    if let Some(why) = squashfs_missing() {
        eprintln!("SKIP: {why}");
        return;
    }
    let mut tree = Tree::new();
    tree.publish("20240101_13:00");
    let source = tree.serve().await;
    let s = TestServer::spawn_with(&format!(
        "{}[quotas]\ndefault_bytes = 10\n",
        config(&source.url)
    ))
    .await;
    let (status, lines) = import(&s, &format!("t:{COMBINED_ALIAS}")).await;
    assert_eq!(status, 200);
    let text = serde_json::to_string(&lines).unwrap();
    assert!(text.contains("byte quota exceeded"), "{text}");
    assert_eq!(
        quota(&s, "00000000-0000-0000-0000-000000000000").await["images"]["used"],
        0
    );
    assert_eq!(local_blobs(&s), 0, "the downloaded files are deleted");
}
