//! Uploads racing on one image leave exactly the survivor's bytes: every
//! upload that lost (was overwritten by a later one, or refused) has its
//! object deleted, on local disk and on S3 (objects and multipart
//! uploads), and `imgapi check` finds no orphan.

use std::time::Duration;

use futures_util::future::join_all;
use imgapi_server::check::{check, CheckOptions, Stores};
use serde_json::json;
use sha1::{Digest, Sha1};

use crate::check::stores_of;
use crate::store_probe::{pending_multipart_uploads, staging_files};
use crate::support::*;

const RACERS: usize = 6;

/// Every committed object of the server's store.
async fn stored_keys(stores: &Stores) -> Vec<String> {
    let mut keys = Vec::new();
    for store in &stores.blobs {
        keys.extend(store.list("").await.unwrap());
    }
    keys
}

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// `RACERS` bodies of different sizes and bytes.
fn bodies(base: usize) -> Vec<Vec<u8>> {
    (0..RACERS)
        .map(|i| vec![u8::try_from(i + 1).unwrap_or(1); base + i * 4099])
        .collect()
}

/// The blob keys the stored record of `uuid` references, sorted.
async fn referenced(stores: &Stores, uuid: &str) -> Vec<String> {
    let image = stores
        .meta
        .get(uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .image;
    let mut keys: Vec<String> = image
        .files
        .iter()
        .filter_map(|f| f.blob_key.clone())
        .chain(image.icon.and_then(|i| i.blob_key))
        .collect();
    keys.sort();
    keys
}

async fn assert_only_referenced_blobs(s: &TestServer, uuid: &str) {
    let stores = stores_of(s).await;
    let want = referenced(&stores, uuid).await;
    // A refused put cleans up before answering, an overwritten one right
    // after the winner's record is saved: both are done when every answer
    // is in, but give a dropped S3 multipart abort a moment.
    let mut keys = stored_keys(&stores).await;
    for _ in 0..50 {
        if keys == want && pending_multipart_uploads(s).await == 0 && staging_files(s) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        keys = stored_keys(&stores).await;
    }
    assert_eq!(keys, want, "objects in the store vs the record");
    assert_eq!(
        pending_multipart_uploads(s).await,
        0,
        "S3 multipart uploads left"
    );
    assert_eq!(staging_files(s), 0, "local staging files left");
}

/// What `imgapi check` says, counting every unreferenced object as an
/// orphan however young.
async fn assert_check_is_clean(s: &TestServer) {
    let stores = stores_of(s).await;
    let opts = CheckOptions {
        repair: false,
        min_orphan_age: Duration::ZERO,
    };
    let mut progress = Vec::new();
    let report = check(&stores, opts, &mut progress).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.orphans.is_empty(), "{:?}", report.orphans);
    assert!(report.young.is_empty(), "{:?}", report.young);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_file_and_icon_uploads_leave_only_the_survivors_bytes() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);

    let files = bodies(70_000);
    let answers = join_all(files.iter().map(|body| {
        s.put(&format!("/images/{uuid}/file?compression=none"))
            .body(body.clone())
            .send()
    }))
    .await;
    let ok = answers
        .into_iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
        .count();
    assert!(ok >= 1, "no upload succeeded");
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    let sha1 = img["files"][0]["sha1"].as_str().unwrap().to_owned();
    assert!(
        files.iter().any(|b| sha1_hex(b) == sha1),
        "the file is none of the uploads"
    );
    assert_only_referenced_blobs(&s, &uuid).await;

    let icons = bodies(1000);
    join_all(icons.iter().map(|body| {
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/png")
            .body(body.clone())
            .send()
    }))
    .await;
    assert_only_referenced_blobs(&s, &uuid).await;

    // The survivor is whole: it downloads with its recorded digest.
    let got = s
        .get(&format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&got), sha1);
    assert_eq!(s.activate(&uuid).await.0, 200);
    assert_check_is_clean(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_upload_session_finishes_leave_only_the_survivors_bytes() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let client = reqwest::Client::new();
    let files = bodies(3000);
    let mut sessions = Vec::new();
    for body in &files {
        let (status, session) = status_json(
            client
                .post(format!(
                    "{}/images/{uuid}/file/uploads?compression=none",
                    s.url
                ))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{session}");
        let id = session["upload_id"].as_str().unwrap().to_owned();
        let url = format!("{}/images/{uuid}/file/uploads/{id}", s.url);
        let resp = client
            .put(&url)
            .header(
                "content-range",
                format!("bytes 0-{}/{}", body.len() - 1, body.len()),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        sessions.push(url);
    }
    let answers = join_all(
        sessions
            .iter()
            .map(|url| client.post(format!("{url}?action=finish")).send()),
    )
    .await;
    let ok = answers
        .into_iter()
        .filter(|r| r.as_ref().is_ok_and(|r| r.status() == 200))
        .count();
    assert!(ok >= 1, "no session finished");
    assert_only_referenced_blobs(&s, &uuid).await;
    assert_eq!(s.activate(&uuid).await.0, 200);
    assert_check_is_clean(&s).await;
}
