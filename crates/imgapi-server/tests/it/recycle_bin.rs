//! The recycle bin and the lifecycle sweeper (docs/lifecycle.md, issue 17
//! items 3 and 7): with `[lifecycle] recycle_days > 0` DeleteImage moves an
//! image to the bin (gone from every read path, uuid kept taken), the owner
//! or an operator restores or purges it, and the sweeper purges expired
//! entries and abandoned uploads, once across several instances.
//!
//! Callers: no `account` = operator (auth `none`), `account=OWNER` = the
//! owner, `account=BOB` = another account.

use std::time::Duration;

use imgapi_server::{AppState, Config};
use serde_json::{json, Value};

use crate::metrics::{scrape, value};
use crate::support::*;

const BIN: &str = "[lifecycle]\nrecycle_days = 7\n";

/// About 1.7 s in the bin, swept every second.
const SHORT_BIN: &str =
    "metrics_on_main = true\n[lifecycle]\nrecycle_days = 0.00002\nsweep_interval_secs = 1\n";

fn import_body(uuid: &str) -> Value {
    json!({"v": 2, "uuid": uuid, "owner": OWNER, "name": "reuse", "version": "1.0.0",
           "type": "zone-dataset", "os": "smartos", "public": true,
           "published_at": "2015-07-27T17:30:39Z"})
}

async fn delete(s: &TestServer, uuid: &str) -> u16 {
    s.delete(&format!("/images/{uuid}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn status(s: &TestServer, path: &str) -> u16 {
    s.get(path).send().await.unwrap().status().as_u16()
}

async fn restore(s: &TestServer, uuid: &str, account: Option<&str>) -> (u16, Value) {
    let query = account.map(|a| format!("&account={a}")).unwrap_or_default();
    s.post_json(
        &format!("/recycle-bin/{uuid}?action=restore{query}"),
        &json!({}),
    )
    .await
}

/// Wait (at most 20 s) until `path` answers `want`.
async fn wait_for_status(s: &TestServer, path: &str, want: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if status(s, path).await == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn counter(s: &TestServer, name: &str) -> f64 {
    let samples = scrape(&s.client, &format!("{}/metrics", s.url)).await;
    value(&samples, name, &[]).unwrap_or_else(|| panic!("{name} is exported"))
}

/// The sum of counter `name` over `servers` once it stops moving: the
/// sweep counts a removal just after its commit, which the test may see
/// first. Waits (at most 20 s) for at least `want`, then a little more so
/// that a second, wrong increment would show.
async fn settled_total(servers: &[&TestServer], name: &str, want: f64) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut total = 0.0;
        for s in servers {
            total += counter(s, name).await;
        }
        if total >= want || tokio::time::Instant::now() >= deadline {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut again = 0.0;
            for s in servers {
                again += counter(s, name).await;
            }
            return again;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The blob keys of an image's files, read from the bin by a second
/// process on the same stores.
async fn binned_keys(app: &AppState, uuid: &str) -> Vec<String> {
    let entry = app
        .meta
        .binned(uuid.parse().unwrap())
        .await
        .unwrap()
        .expect("entry in the bin");
    entry
        .image
        .files
        .iter()
        .filter_map(|f| f.blob_key.clone())
        .collect()
}

#[tokio::test]
async fn without_a_bin_delete_is_immediate_and_the_uuid_free() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    assert_eq!(delete(&s, &uuid).await, 204);
    assert_eq!(s.get_json("/recycle-bin").await, (200, json!([])));
    assert_error(
        &s.get_json(&format!("/recycle-bin/{uuid}")).await,
        404,
        "ResourceNotFound",
        Some(&format!("image {uuid} is not in the recycle bin")),
    );
    let (_, usage) = s.get_json("/usage").await;
    assert!(usage.get("recycleBin").is_none(), "{usage}");
    let (code, _) = s
        .post_json(
            &format!("/images/{uuid}?action=import"),
            &import_body(&uuid),
        )
        .await;
    assert_eq!(code, 200, "the uuid of a deleted image is free again");
}

#[tokio::test]
async fn a_binned_image_leaves_every_read_path_and_keeps_its_uuid() {
    let s = TestServer::spawn_with(BIN).await;
    let img = s.publish(json!({"name": "binned"})).await;
    let uuid = uuid_of(&img);
    let png = vec![0x89u8; 100];
    let resp = s
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(delete(&s, &uuid).await, 204);

    assert_eq!(status(&s, &format!("/images/{uuid}")).await, 404);
    assert_eq!(status(&s, &format!("/images/{uuid}/file")).await, 404);
    assert_eq!(status(&s, &format!("/images/{uuid}/icon")).await, 404);
    assert_eq!(s.get_json("/images?name=binned").await, (200, json!([])));
    assert_eq!(
        s.get_json("/images?name=binned&state=all").await,
        (200, json!([]))
    );

    let (code, list) = s.get_json("/recycle-bin").await;
    assert_eq!(code, 200);
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    let entry = &entries[0];
    assert_eq!(entry["uuid"], uuid.as_str());
    assert_eq!(entry["owner"], OWNER);
    assert_eq!(entry["name"], "binned");
    assert_eq!(entry["version"], "1.0.0");
    assert_eq!(entry["state"], "active");
    assert_eq!(entry["size"], 11);
    assert_eq!(entry["deleted_by"], "operator");
    assert!(entry["deleted_at"].as_str().unwrap() < entry["expires_at"].as_str().unwrap());

    let (_, usage) = s.get_json("/usage").await;
    assert_eq!(
        usage["recycleBin"],
        json!({OWNER: {"images": 1, "bytes": 11}}),
        "{usage}"
    );
    assert_eq!(
        usage["totals"]["images"], 0,
        "binned images are not counted"
    );

    assert_error(
        &s.post_json(
            &format!("/images/{uuid}?action=import"),
            &import_body(&uuid),
        )
        .await,
        409,
        "ImageUuidAlreadyExists",
        Some(&format!("image uuid \"{uuid}\" already exists")),
    );

    let (code, restored) = restore(&s, &uuid, None).await;
    assert_eq!(code, 200, "{restored}");
    assert_eq!(restored, img, "restored as GetImage shows it");
    assert_eq!(s.get_json(&format!("/images/{uuid}")).await, (200, img));
    let body = s
        .get(&format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"image bytes");
    assert_eq!(status(&s, &format!("/images/{uuid}/icon")).await, 200);
    assert_eq!(s.get_json("/recycle-bin").await, (200, json!([])));
    let (_, usage) = s.get_json("/usage").await;
    assert!(usage.get("recycleBin").is_none(), "{usage}");
}

#[tokio::test]
async fn only_the_owner_and_operators_see_an_entry() {
    let s = TestServer::spawn_with(BIN).await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    let r = s
        .delete(&format!("/images/{uuid}?account={OWNER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let (_, own) = s.get_json(&format!("/recycle-bin?account={OWNER}")).await;
    assert_eq!(own.as_array().unwrap().len(), 1);
    assert_eq!(own[0]["deleted_by"], OWNER);
    assert_eq!(
        s.get_json(&format!("/recycle-bin?account={BOB}")).await,
        (200, json!([]))
    );
    assert_eq!(
        s.get_json(&format!("/recycle-bin?account={BOB}&owner={OWNER}"))
            .await,
        (200, json!([]))
    );
    let (_, by_owner) = s.get_json(&format!("/recycle-bin?owner={OWNER}")).await;
    assert_eq!(by_owner, own, "operators filter by owner");
    assert_eq!(
        s.get_json(&format!("/recycle-bin?owner={BOB}")).await,
        (200, json!([]))
    );
    assert_error(
        &s.get_json("/recycle-bin?owner=nope").await,
        422,
        "InvalidParameter",
        None,
    );

    let path = format!("/recycle-bin/{uuid}");
    assert_eq!(status(&s, &format!("{path}?account={OWNER}")).await, 200);
    assert_eq!(status(&s, &path).await, 200);
    let hidden = s.get_json(&format!("{path}?account={BOB}")).await;
    let absent = s
        .get_json(&format!("/recycle-bin/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(hidden.0, 404);
    assert_eq!(absent.0, 404, "another account cannot tell it exists");
    assert_eq!(hidden.1["code"], absent.1["code"]);
    assert_error(
        &restore(&s, &uuid, Some(BOB)).await,
        404,
        "ResourceNotFound",
        None,
    );
    let purge = s
        .delete(&format!("{path}?account={BOB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 404);
    assert_error(
        &s.post_json(&format!("{path}?action=undelete"), &json!({}))
            .await,
        422,
        "InvalidParameter",
        None,
    );
    let (code, _) = restore(&s, &uuid, Some(OWNER)).await;
    assert_eq!(code, 200, "the owner restores");
}

#[tokio::test]
async fn an_origin_is_restored_before_its_dependents() {
    let s = TestServer::spawn_with(BIN).await;
    let origin = uuid_of(&s.publish(json!({"name": "origin"})).await);
    let child = uuid_of(&s.publish(json!({"name": "child", "origin": origin})).await);
    assert_eq!(delete(&s, &child).await, 204);
    assert_eq!(delete(&s, &origin).await, 204);
    assert_error(
        &restore(&s, &child, None).await,
        422,
        "OriginDoesNotExist",
        Some(&format!(
            "cannot restore image \"{child}\": its origin image \"{origin}\" does not exist (restore the origin first)"
        )),
    );
    assert_eq!(restore(&s, &origin, None).await.0, 200);
    assert_eq!(restore(&s, &child, None).await.0, 200);
    assert_eq!(status(&s, &format!("/images/{child}")).await, 200);
}

/// Lifecycle flags go into the bin with the image: a restore brings back
/// its deprecation time; a protected image cannot be binned at all.
#[tokio::test]
async fn a_restore_brings_back_the_deprecation_and_protection_stops_binning() {
    let s = TestServer::spawn_with(BIN).await;
    let uuid = uuid_of(&s.publish(json!({"name": "old"})).await);
    let lifecycle = |body: Value| {
        let s = &s;
        let uuid = uuid.clone();
        async move {
            let resp = s
                .put(&format!("/images/{uuid}/lifecycle"))
                .json(&body)
                .send()
                .await
                .unwrap();
            status_json(resp).await
        }
    };
    let (code, protected) = lifecycle(json!({"protected": true})).await;
    assert_eq!(code, 200, "{protected}");
    assert_eq!(
        delete(&s, &uuid).await,
        409,
        "a protected image is not binned"
    );
    assert_eq!(status(&s, &format!("/recycle-bin/{uuid}")).await, 404);

    let (code, flags) =
        lifecycle(json!({"protected": false, "deprecated_at": "2020-01-02T03:04:05Z"})).await;
    assert_eq!(code, 200, "{flags}");
    assert_eq!(delete(&s, &uuid).await, 204);
    assert_eq!(restore(&s, &uuid, None).await.0, 200);
    let (code, after) = s.get_json(&format!("/images/{uuid}/lifecycle")).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after, flags, "the deprecation comes back with the image");
}

/// A restore brings an image back among its owner's images: within the
/// owner's quota, and with write-once versions only while its name and
/// version are free.
#[tokio::test]
async fn a_restore_keeps_to_quotas_and_write_once_versions() {
    let s = TestServer::spawn_with(&format!(
        "{BIN}[quotas]\nwrite_once_versions = true\ndefault_images = 2\n"
    ))
    .await;
    let first = uuid_of(&s.publish(json!({"name": "base", "version": "1"})).await);
    assert_eq!(delete(&s, &first).await, 204);
    let second = uuid_of(&s.publish(json!({"name": "base", "version": "1"})).await);
    assert_error(
        &restore(&s, &first, None).await,
        409,
        "ImageVersionExists",
        None,
    );
    assert_eq!(
        status(&s, &format!("/recycle-bin/{first}")).await,
        200,
        "still in the bin"
    );

    assert_eq!(delete(&s, &second).await, 204);
    s.publish(json!({"name": "other", "version": "1"})).await;
    s.publish(json!({"name": "other", "version": "2"})).await;
    assert_error(&restore(&s, &first, None).await, 403, "QuotaExceeded", None);
    assert_eq!(
        status(&s, &format!("/recycle-bin/{first}")).await,
        200,
        "still in the bin"
    );
}

#[tokio::test]
async fn an_entry_survives_a_restart() {
    let s = TestServer::spawn_with(BIN).await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    assert_eq!(delete(&s, &uuid).await, 204);
    let data_dir = s.data_dir.clone();
    let dir = s.stop().await;
    let s = TestServer::spawn_in(&data_dir, BIN).await;
    assert_eq!(status(&s, &format!("/images/{uuid}")).await, 404);
    let (code, restored) = restore(&s, &uuid, Some(OWNER)).await;
    assert_eq!(code, 200, "{restored}");
    let body = s
        .get(&format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"image bytes");
    drop(s);
    drop(dir);
}

#[tokio::test]
async fn purge_deletes_the_files_then_frees_the_uuid() {
    let s = TestServer::spawn_with(BIN).await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    assert_eq!(delete(&s, &uuid).await, 204);
    let tool = AppState::open_for_tool(Config::from_toml(&s.config_toml).unwrap())
        .await
        .unwrap();
    let keys = binned_keys(&tool, &uuid).await;
    assert_eq!(keys.len(), 1);
    tool.blobs
        .stat(&keys[0])
        .await
        .expect("a binned image's file stays stored");
    let r = s
        .delete(&format!("/recycle-bin/{uuid}?account={OWNER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        matches!(
            tool.blobs.stat(&keys[0]).await,
            Err(imgapi_blob::BlobError::NotFound(_))
        ),
        "purge deletes the file"
    );
    assert_eq!(status(&s, &format!("/recycle-bin/{uuid}")).await, 404);
    let r = s
        .delete(&format!("/recycle-bin/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "purged once");
    let (code, _) = s
        .post_json(
            &format!("/images/{uuid}?action=import"),
            &import_body(&uuid),
        )
        .await;
    assert_eq!(code, 200, "a purged uuid is free");
}

#[tokio::test]
async fn the_sweeper_purges_expired_entries() {
    let s = TestServer::spawn_with(SHORT_BIN).await;
    assert_eq!(counter(&s, "imgapi_lifecycle_purged_total").await, 0.0);
    let uuid = uuid_of(&s.publish(json!({})).await);
    let kept = uuid_of(&s.publish(json!({"name": "kept"})).await);
    assert_eq!(delete(&s, &uuid).await, 204);
    assert_eq!(status(&s, &format!("/recycle-bin/{uuid}")).await, 200);
    wait_for_status(&s, &format!("/recycle-bin/{uuid}"), 404).await;
    assert_eq!(
        settled_total(&[&s], "imgapi_lifecycle_purged_total", 1.0).await,
        1.0
    );
    assert_eq!(status(&s, &format!("/images/{kept}")).await, 200);
    let (code, _) = s
        .post_json(
            &format!("/images/{uuid}?action=import"),
            &import_body(&uuid),
        )
        .await;
    assert_eq!(code, 200, "an expired uuid is free");
}

#[tokio::test]
async fn the_sweeper_removes_abandoned_uploads() {
    let s = TestServer::spawn_with(
        "metrics_on_main = true\n[lifecycle]\nabandoned_upload_hours = 0.0005\nsweep_interval_secs = 1\n",
    )
    .await;
    assert_eq!(
        counter(&s, "imgapi_lifecycle_abandoned_removed_total").await,
        0.0
    );
    let active = uuid_of(&s.publish(json!({"name": "active"})).await);
    let abandoned = uuid_of(&s.create(json!({"name": "abandoned"})).await);
    let (code, _) = s.upload(&abandoned, b"half done".to_vec()).await;
    assert_eq!(code, 200);
    let resumed = uuid_of(&s.create(json!({"name": "resumed"})).await);
    let (code, session) = s
        .post_json(
            &format!("/images/{resumed}/file/uploads?compression=gzip&size=100"),
            &json!({}),
        )
        .await;
    assert_eq!(code, 201, "{session}");
    let session_id: uuid::Uuid = session["upload_id"].as_str().unwrap().parse().unwrap();
    wait_for_status(&s, &format!("/images/{abandoned}"), 404).await;
    wait_for_status(&s, &format!("/images/{resumed}"), 404).await;
    let tool = AppState::open_for_tool(Config::from_toml(&s.config_toml).unwrap())
        .await
        .unwrap();
    // The sessions go just after the image.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tool.meta.get_upload(session_id).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the upload sessions of an abandoned upload end with it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&s, &format!("/images/{active}")).await, 200);
    assert_eq!(
        settled_total(&[&s], "imgapi_lifecycle_abandoned_removed_total", 2.0).await,
        2.0
    );
    assert_eq!(
        s.get_json("/recycle-bin").await,
        (200, json!([])),
        "abandoned uploads are removed, not binned"
    );
}

/// Three instances on one PostgreSQL database: an expired entry is purged
/// by exactly one of them.
#[tokio::test]
async fn three_instances_purge_an_expired_entry_once() {
    let Some((admin_url, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: recycle-bin multi-instance test needs IMGAPI_TEST_PG_URL and IMGAPI_TEST_S3_* (set by .ci/run)");
        return;
    };
    let db = create_database(&admin_url);
    let prefix = format!("bin-{}", uuid::Uuid::new_v4().simple());
    let toml = format!(
        "database_url = {db:?}\n{SHORT_BIN}[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n"
    );
    let mut s = Vec::new();
    for _ in 0..3 {
        s.push(TestServer::spawn_raw(&toml).await);
    }
    let mut uuids = Vec::new();
    for i in 0..3 {
        let uuid = uuid_of(&s[i].publish(json!({"name": format!("shared-{i}")})).await);
        assert_eq!(delete(&s[(i + 1) % 3], &uuid).await, 204);
        uuids.push(uuid);
    }
    for uuid in &uuids {
        for server in &s {
            wait_for_status(server, &format!("/recycle-bin/{uuid}"), 404).await;
        }
    }
    let all: Vec<&TestServer> = s.iter().collect();
    assert_eq!(
        settled_total(&all, "imgapi_lifecycle_purged_total", 3.0).await,
        3.0,
        "each expired entry is purged by exactly one instance"
    );
}

#[tokio::test]
async fn check_counts_binned_blobs_as_owned_and_reports_lost_ones() {
    use imgapi_server::check::{check, CheckOptions, ProblemKind};

    let s = TestServer::spawn_with(BIN).await;
    let kept = uuid_of(&s.publish(json!({"name": "kept"})).await);
    let lost = uuid_of(&s.publish(json!({"name": "lost"})).await);
    assert_eq!(delete(&s, &kept).await, 204);
    assert_eq!(delete(&s, &lost).await, 204);
    let stores = crate::check::stores_of(&s).await;
    let opts = || CheckOptions {
        repair: false,
        min_orphan_age: Duration::ZERO,
    };
    let report = check(&stores, opts(), &mut Vec::new()).await.unwrap();
    assert!(
        report.ok(),
        "binned blobs are not orphans: {}",
        report.to_json()
    );

    let tool = AppState::open_for_tool(Config::from_toml(&s.config_toml).unwrap())
        .await
        .unwrap();
    let key = binned_keys(&tool, &lost).await.remove(0);
    tool.blobs.delete(&key).await.unwrap();
    let report = check(&stores, opts(), &mut Vec::new()).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{}", report.to_json());
    let problem = &report.problems[0];
    assert_eq!(problem.kind, ProblemKind::Dangling);
    assert_eq!(problem.image.to_string(), lost);
    assert_eq!(problem.key.as_deref(), Some(key.as_str()));
    assert!(report.orphans.is_empty());
}
