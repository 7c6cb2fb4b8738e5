//! Several stateless instances on one PostgreSQL + one S3 bucket:
//! publish through one, download through another, delete through a third;
//! concurrent updates from two instances lose nothing; parallel uploads
//! spread over the instances all stay intact.

use futures_util::future::join_all;
use serde_json::json;
use sha1::{Digest, Sha1};

use crate::support::*;

async fn three_instances() -> Option<Vec<TestServer>> {
    let Some((admin_url, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: multi-instance test needs IMGAPI_TEST_PG_URL and IMGAPI_TEST_S3_* (set by .ci/run)");
        return None;
    };
    let db = create_database(&admin_url);
    let prefix = format!("multi-{}", uuid::Uuid::new_v4().simple());
    let toml = format!(
        "mode = \"dc\"\ndatabase_url = {db:?}\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n"
    );
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(TestServer::spawn_raw(&toml).await);
    }
    Some(servers)
}

#[tokio::test]
async fn publish_download_delete_across_instances() {
    let Some(s) = three_instances().await else {
        return;
    };
    let img = s[0].publish(json!({"name": "shared"})).await;
    let uuid = uuid_of(&img);
    let (status, got) = s[1].get_json(&format!("/images/{uuid}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, img);
    let bytes = s[1]
        .get(&format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"image bytes");
    let (_, list) = s[2].get_json("/images?name=shared").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "a list cached before is refreshed"
    );
    assert_eq!(
        s[2].delete(&format!("/images/{uuid}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    for server in &s {
        assert_eq!(server.get_json(&format!("/images/{uuid}")).await.0, 404);
        let (_, list) = server.get_json("/images?name=shared").await;
        assert_eq!(list, json!([]), "no instance serves a stale list");
    }
}

#[tokio::test]
async fn concurrent_updates_from_two_instances_lose_nothing() {
    let Some(s) = three_instances().await else {
        return;
    };
    let uuid = uuid_of(&s[0].publish(json!({})).await);
    // 20 different ACL additions, alternating between two instances, all at once.
    let accounts: Vec<String> = (0..20).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let calls = accounts.iter().enumerate().map(|(i, acc)| {
        let server = &s[i % 2];
        let uuid = uuid.clone();
        async move {
            server
                .post_json(&format!("/images/{uuid}/acl"), &json!([acc]))
                .await
                .0
        }
    });
    let statuses = join_all(calls).await;
    assert!(statuses.iter().all(|st| *st == 200), "{statuses:?}");
    let (_, img) = s[2].get_json(&format!("/images/{uuid}")).await;
    let acl = img["acl"].as_array().unwrap();
    assert_eq!(acl.len(), 20, "every concurrent update kept: {img}");
}

#[tokio::test]
async fn fifty_parallel_uploads_over_three_instances() {
    let Some(s) = three_instances().await else {
        return;
    };
    let mut uuids = Vec::new();
    for _ in 0..50 {
        uuids.push(uuid_of(&s[0].create(json!({})).await));
    }
    let uploads = uuids.iter().enumerate().map(|(i, uuid)| {
        let server = &s[i % 3];
        let data: Vec<u8> = (0..(100_000 + i * 1000))
            .map(|b| (b * (i + 1) % 251) as u8)
            .collect();
        async move {
            let sha = hex::encode(Sha1::digest(&data));
            let resp = server
                .put(&format!("/images/{uuid}/file?compression=none&sha1={sha}"))
                .body(data)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), sha)
        }
    });
    let results = join_all(uploads).await;
    for (i, (status, sha)) in results.iter().enumerate() {
        assert_eq!(*status, 200, "upload {i}");
        let server = &s[(i + 1) % 3];
        let bytes = server
            .get(&format!("/images/{}/file", uuids[i]))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&hex::encode(Sha1::digest(&bytes)), sha, "file {i} intact");
    }
}

#[tokio::test]
async fn downloads_can_redirect_to_the_object_store() {
    let Some((admin_url, endpoint, bucket)) = scale_out_env() else {
        eprintln!(
            "SKIP: redirect test needs IMGAPI_TEST_PG_URL and IMGAPI_TEST_S3_* (set by .ci/run)"
        );
        return;
    };
    let db = create_database(&admin_url);
    let prefix = format!("redirect-{}", uuid::Uuid::new_v4().simple());
    let s = TestServer::spawn_raw(&format!(
        "database_url = {db:?}\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\nredirect_downloads = true\n"
    ))
    .await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_follow
        .get(format!("{}/images/{uuid}/file", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Signature"), "{location}");
    let bytes = reqwest::get(&location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"image bytes");
    // Authorisation still applies before any redirect.
    let got = s
        .get_json(&format!("/images/{uuid}/file?account=not-a-uuid"))
        .await;
    assert_eq!(got.0, 422);
}

#[tokio::test]
async fn change_stor_moves_files_between_s3_and_local() {
    let Some((_, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: change-stor test needs IMGAPI_TEST_S3_* (set by .ci/run)");
        return;
    };
    let prefix = format!("stor-{}", uuid::Uuid::new_v4().simple());
    let s = TestServer::spawn_raw(&format!(
        "mode = \"dc\"\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\nlocal_secondary = true\n"
    ))
    .await;
    let (_, state) = s.get_json("/state").await;
    assert_eq!(state["storageTypes"], json!(["s3", "local"]));
    let uuid = uuid_of(&s.publish(json!({})).await);
    let (_, img) = s
        .get_json(&format!("/images/{uuid}?inclAdminFields=true"))
        .await;
    assert_eq!(img["files"][0]["stor"], "s3");
    for (to, other) in [("local", "s3"), ("s3", "local")] {
        let (status, img) = s
            .post_json(
                &format!("/images/{uuid}?action=change-stor&stor={to}"),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{img}");
        assert_eq!(img["files"][0]["stor"], to);
        let bytes = s
            .get(&format!("/images/{uuid}/file"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            &bytes[..],
            b"image bytes",
            "intact after moving to {to} from {other}"
        );
    }
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=change-stor&stor=manta"),
            &json!({}),
        )
        .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("unknown storage type \"manta\""),
    );
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=change-stor&stor=local&account={OWNER}"),
            &json!({}),
        )
        .await;
    assert_error(&got, 403, "OperatorOnly", None);
}

/// The change feed across instances (docs/events.md): 50 concurrent
/// writers spread over three instances, each publishing one image (three
/// writes); every instance's feed then holds one event per write, numbered
/// without a gap or a duplicate, and a long poll on one instance wakes for
/// a write through another.
#[tokio::test]
async fn the_change_feed_is_gapless_across_instances() {
    let Some(s) = three_instances().await else {
        return;
    };
    let (_, head) = s[0].get_json("/changes?limit=0").await;
    let start = head["next"].as_i64().unwrap();
    let writers = (0..50).map(|i| {
        let server = &s[i % 3];
        async move { uuid_of(&server.publish(json!({"name": format!("feed-{i}")})).await) }
    });
    let published: std::collections::BTreeSet<String> =
        join_all(writers).await.into_iter().collect();
    assert_eq!(published.len(), 50);
    for server in &s {
        let mut events = Vec::new();
        let mut since = start;
        loop {
            let (status, page) = server
                .get_json(&format!("/changes?since={since}&limit=1000"))
                .await;
            assert_eq!(status, 200, "{page}");
            let got = page["events"].as_array().unwrap().clone();
            if got.is_empty() {
                break;
            }
            since = page["next"].as_i64().unwrap();
            events.extend(got);
        }
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        let want: Vec<i64> = (start + 1..=start + 150).collect();
        assert_eq!(seqs, want, "150 writes, 150 consecutive numbers");
        for uuid in &published {
            let kinds: Vec<&str> = events
                .iter()
                .filter(|e| e["uuid"] == uuid.as_str())
                .map(|e| e["type"].as_str().unwrap())
                .collect();
            assert_eq!(
                kinds,
                ["image.created", "image.file_added", "image.activated"],
                "{uuid}"
            );
        }
    }

    let (_, head) = s[1].get_json("/changes?limit=0").await;
    let since = head["next"].as_i64().unwrap();
    let url = format!("{}/changes?since={since}&wait=20", s[1].url);
    let client = s[1].client.clone();
    let started = std::time::Instant::now();
    let poll = tokio::spawn(async move {
        client
            .get(url)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let img = s[2].create(json!({})).await;
    let page = poll.await.unwrap();
    assert_eq!(page["events"][0]["uuid"], img["uuid"], "{page}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
