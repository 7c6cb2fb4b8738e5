//! Image lifecycle flags (docs/lifecycle.md): deprecation and protection.
//! `GET|PUT /images/:uuid/lifecycle`, deprecated images left out of
//! ListImages, the catalog and the simplestreams index for everyone but
//! their owner and operators (unless `include_deprecated=true`), still
//! served by uuid; protected images refused by DeleteImage and kept by
//! `imgapi mirror --delete`; flags across restarts; answers unchanged when
//! the flags are not used.

use std::time::Duration;

use imgapi_server::service::import::mirror::{self, MirrorOptions, MirrorSummary, Reporter};
use imgapi_server::Config;
use serde_json::{json, Value};

use crate::remote_import::{enc, publish_bytes, OPEN};
use crate::support::*;

const DC: &str = "mode = \"dc\"";

async fn lifecycle(s: &TestServer, uuid: &str, query: &str) -> (u16, Value) {
    s.get_json(&format!("/images/{uuid}/lifecycle{query}"))
        .await
}

async fn set_lifecycle(s: &TestServer, uuid: &str, query: &str, body: Value) -> (u16, Value) {
    let resp = s
        .put(&format!("/images/{uuid}/lifecycle{query}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    status_json(resp).await
}

/// The uuids a ListImages answer names.
async fn listed(s: &TestServer, query: &str) -> Vec<String> {
    let (status, list) = s.get_json(&format!("/images{query}")).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().iter().map(uuid_of).collect()
}

async fn page(s: &TestServer, path: &str) -> String {
    let resp = s.get(path).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn flags_set_merge_clear_and_validation() {
    // dc mode: private images exist; `account` is the caller.
    let s = TestServer::spawn_with(DC).await;
    let img = s.publish(json!({"name": "flagged"})).await;
    let uuid = uuid_of(&img);
    let (_, before) = s.get_json(&format!("/images/{uuid}")).await;

    let got = lifecycle(&s, &uuid, "").await;
    assert_eq!(
        got,
        (
            200,
            json!({"uuid": uuid, "deprecated_at": null, "deprecated": false, "protected": false})
        )
    );
    let got = set_lifecycle(
        &s,
        &uuid,
        "",
        json!({"deprecated_at": "2020-01-02T03:04:05Z"}),
    )
    .await;
    assert_eq!(
        got,
        (
            200,
            json!({"uuid": uuid, "deprecated_at": "2020-01-02T03:04:05.000Z", "deprecated": true, "protected": false})
        )
    );
    // Merge: setting one field keeps the other.
    let got = set_lifecycle(&s, &uuid, "", json!({"protected": true})).await;
    assert_eq!(got.1["deprecated_at"], "2020-01-02T03:04:05.000Z");
    assert_eq!(got.1["protected"], true);
    assert_eq!(lifecycle(&s, &uuid, "").await, got);
    // A time to come: set, not yet deprecated.
    let got = set_lifecycle(
        &s,
        &uuid,
        "",
        json!({"deprecated_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (got.1["deprecated"].clone(), got.1["protected"].clone()),
        (json!(false), json!(true))
    );
    let got = set_lifecycle(&s, &uuid, "", json!({"deprecated_at": "now"})).await;
    assert_eq!(got.1["deprecated"], true);
    let got = set_lifecycle(
        &s,
        &uuid,
        "",
        json!({"deprecated_at": null, "protected": false}),
    )
    .await;
    assert_eq!(
        got,
        (
            200,
            json!({"uuid": uuid, "deprecated_at": null, "deprecated": false, "protected": false})
        )
    );

    // The manifest never carries the flags.
    let (_, after) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(before, after);

    // Validation: the original's InvalidParameter shape.
    let got = set_lifecycle(&s, &uuid, "", json!({"protected": true, "colour": "red"})).await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid extra parameters: \"colour\""),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "colour", "code": "Invalid"}])
    );
    let got = set_lifecycle(&s, &uuid, "", json!({"protected": "yes"})).await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid \"protected\": \"yes\" is not a boolean"),
    );
    let got = set_lifecycle(&s, &uuid, "", json!({"deprecated_at": "tomorrow"})).await;
    assert_error(&got, 422, "InvalidParameter", None);
    assert_eq!(got.1["errors"][0]["field"], "deprecated_at");
    let got = set_lifecycle(&s, &uuid, "", json!({"deprecated_at": 12})).await;
    assert_error(&got, 422, "InvalidParameter", None);
    let resp = s
        .put(&format!("/images/{uuid}/lifecycle"))
        .send()
        .await
        .unwrap();
    assert_error(&status_json(resp).await, 422, "ValidationFailed", None);
    assert_eq!(
        lifecycle(&s, &uuid, "").await.1["protected"],
        false,
        "nothing changed"
    );

    // Access: a non-owner that can see the image reads but may not change.
    let other = format!("?account={BOB}");
    assert_eq!(lifecycle(&s, &uuid, &other).await.0, 200);
    let got = set_lifecycle(&s, &uuid, &other, json!({"protected": true})).await;
    assert_error(&got, 422, "NotImageOwner", None);
    let got = set_lifecycle(
        &s,
        &uuid,
        &format!("?account={OWNER}"),
        json!({"protected": true}),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    // An image the caller may not see does not exist for it.
    let private = s.publish(json!({"name": "private", "public": false})).await;
    let p = uuid_of(&private);
    assert_error(
        &lifecycle(&s, &p, &other).await,
        404,
        "ResourceNotFound",
        None,
    );
    let got = set_lifecycle(&s, &p, &other, json!({"protected": true})).await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let ghost = "0badc0de-0000-4000-8000-00000000beef";
    assert_error(
        &lifecycle(&s, ghost, "").await,
        404,
        "ResourceNotFound",
        None,
    );
    assert_error(
        &lifecycle(&s, "not-a-uuid", "").await,
        404,
        "ResourceNotFound",
        None,
    );
}

#[tokio::test]
async fn deprecated_images_leave_listings_but_stay_usable() {
    // dc mode: `account` is the caller; no account = an operator.
    let s = TestServer::spawn_with(DC).await;
    let old = publish_bytes(&s, json!({"name": "oldimg", "version": "1"}), b"old bytes").await;
    let new = s.publish(json!({"name": "newimg", "version": "2"})).await;
    let (old, new) = (uuid_of(&old), uuid_of(&new));
    let both = {
        let mut v = vec![old.clone(), new.clone()];
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // Cached answers of every caller before the change.
    for q in [String::new(), format!("?account={BOB}")] {
        assert_eq!(sorted(listed(&s, &q).await), both);
    }
    let got = set_lifecycle(
        &s,
        &old,
        &format!("?account={OWNER}"),
        json!({"deprecated_at": "now"}),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);

    assert_eq!(
        sorted(listed(&s, "").await),
        both,
        "operators see everything"
    );
    assert_eq!(
        sorted(listed(&s, &format!("?account={OWNER}")).await),
        both,
        "the owner too"
    );
    assert_eq!(
        listed(&s, &format!("?account={BOB}")).await,
        vec![new.clone()],
        "others do not"
    );
    assert_eq!(
        sorted(listed(&s, &format!("?account={BOB}&include_deprecated=true")).await),
        both,
        "unless they ask"
    );
    assert_eq!(
        listed(&s, &format!("?account={BOB}&include_deprecated=false")).await,
        vec![new.clone()]
    );
    let got = s
        .get_json(&format!("/images?account={BOB}&include_deprecated=maybe"))
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid value for \"include_deprecated\" param: \"maybe\" is not a boolean"),
    );
    // By uuid it is still there, file included.
    let (status, img) = s.get_json(&format!("/images/{old}?account={BOB}")).await;
    assert_eq!((status, uuid_of(&img)), (200, old.clone()));
    let resp = s
        .get(&format!("/images/{old}/file?account={BOB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"old bytes");
    // The catalog lists what ListImages lists.
    let other = page(&s, &format!("/catalog?account={BOB}")).await;
    assert!(!other.contains("oldimg") && other.contains("newimg"));
    let own = page(&s, &format!("/catalog?account={OWNER}")).await;
    assert!(own.contains("oldimg") && own.contains("newimg"));
    assert_eq!(
        s.get(&format!("/catalog/{old}?account={BOB}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Cleared: back for everyone.
    set_lifecycle(&s, &old, "", json!({"deprecated_at": null})).await;
    assert_eq!(sorted(listed(&s, &format!("?account={BOB}")).await), both);
}

#[tokio::test]
async fn anonymous_callers_never_see_deprecated_images() {
    let s = TestServer::spawn().await;
    let old = uuid_of(&s.publish(json!({"name": "oldimg"})).await);
    let new = uuid_of(&s.publish(json!({"name": "newimg"})).await);
    set_lifecycle(
        &s,
        &old,
        "",
        json!({"deprecated_at": "2001-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(listed(&s, "").await, vec![new.clone()]);
    assert_eq!(listed(&s, "?include_deprecated=true").await.len(), 2);
    assert_eq!(listed(&s, &format!("?account={OWNER}")).await.len(), 2);
    let catalog = page(&s, "/catalog").await;
    assert!(!catalog.contains("oldimg") && catalog.contains("newimg"));
    assert_eq!(s.get_json(&format!("/images/{old}")).await.0, 200);
}

#[tokio::test]
async fn a_deprecation_time_passing_takes_effect_without_a_write() {
    let s = TestServer::spawn().await;
    let soon = uuid_of(&s.publish(json!({"name": "soon"})).await);
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let at = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let got = set_lifecycle(&s, &soon, "", json!({"deprecated_at": at})).await;
    assert_eq!(got.1["deprecated"], false, "{}", got.1);
    // Listed (and cached) before the time.
    assert_eq!(listed(&s, "").await, vec![soon.clone()]);
    assert_eq!(listed(&s, "").await, vec![soon.clone()]);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        listed(&s, "").await,
        Vec::<String>::new(),
        "the cached answer expired"
    );
    assert_eq!(lifecycle(&s, &soon, "").await.1["deprecated"], true);
}

#[tokio::test]
async fn deprecated_images_leave_the_simplestreams_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with("[simplestreams]\nenabled = true\n").await;
    let (bytes, _) = crate::lxd_serve::combined_tarball(dir.path(), "alpine", "3.20");
    let uuid = crate::lxd_serve::publish_lxd(
        &s,
        json!({"name": "alpine", "tags": crate::lxd_serve::lxd_tags("alpine", "3.20", "alpine/3.20")}),
        bytes,
    )
    .await;
    let products = page(&s, "/streams/v1/images.json").await;
    assert!(products.contains(&uuid), "{products}");
    set_lifecycle(&s, &uuid, "", json!({"deprecated_at": "now"})).await;
    let products = page(&s, "/streams/v1/images.json").await;
    assert!(!products.contains(&uuid), "{products}");
    let index = page(&s, "/streams/v1/index.json").await;
    assert!(!index.contains("alpine"), "{index}");
}

#[tokio::test]
async fn protected_images_cannot_be_deleted() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.publish(json!({"name": "keepme"})).await);
    set_lifecycle(&s, &uuid, "", json!({"protected": true})).await;
    let resp = s.delete(&format!("/images/{uuid}")).send().await.unwrap();
    let message = format!(
        "image \"{uuid}\" is protected: clear the flag first (PUT /images/{uuid}/lifecycle with {{\"protected\": false}})"
    );
    assert_error(
        &status_json(resp).await,
        409,
        "ImageProtected",
        Some(&message),
    );
    assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 200);
    assert_eq!(
        s.get(&format!("/images/{uuid}/file"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A non-owner still gets the ownership answer first.
    let resp = s
        .delete(&format!("/images/{uuid}?account={BOB}"))
        .send()
        .await
        .unwrap();
    assert_error(&status_json(resp).await, 422, "NotImageOwner", None);

    set_lifecycle(&s, &uuid, "", json!({"protected": false})).await;
    let resp = s.delete(&format!("/images/{uuid}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_error(
        &lifecycle(&s, &uuid, "").await,
        404,
        "ResourceNotFound",
        None,
    );
}

#[derive(Default)]
struct Log(Vec<String>);

impl Reporter for Log {
    fn line(&mut self, line: &str) {
        self.0.push(line.to_string());
    }
}

/// One `imgapi mirror` run into `target`'s registry: its summary and lines.
async fn mirror_into(target: &TestServer, opts: MirrorOptions) -> (MirrorSummary, Vec<String>) {
    let app = mirror::open(Config::from_toml(&target.config_toml).unwrap())
        .await
        .unwrap();
    let mut log = Log::default();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let summary = mirror::mirror(&app, &opts, &mut log, &stop).await.unwrap();
    (summary, log.0)
}

#[tokio::test]
async fn mirror_delete_keeps_protected_images() {
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let gone = publish_bytes(&upstream, json!({"name": "gone"}), b"gone bytes").await;
    let uuid = uuid_of(&gone);
    let opts = MirrorOptions {
        upstream: upstream.url.clone(),
        name: Some("gone".into()),
        delete: true,
        ..MirrorOptions::default()
    };
    let run = |opts: MirrorOptions| mirror_into(&target, opts);
    let (summary, log) = run(opts.clone()).await;
    assert_eq!(summary.new, 1, "{log:#?}");
    set_lifecycle(&target, &uuid, "", json!({"protected": true})).await;
    let resp = upstream
        .delete(&format!("/images/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    let (summary, log) = run(opts.clone()).await;
    assert_eq!((summary.deleted, summary.failed), (0, 0), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with(&uuid) && l.contains("kept although not upstream: protected")),
        "{log:#?}"
    );
    assert_eq!(target.get_json(&format!("/images/{uuid}")).await.0, 200);

    set_lifecycle(&target, &uuid, "", json!({"protected": false})).await;
    let (summary, log) = run(opts).await;
    assert_eq!(summary.deleted, 1, "{log:#?}");
    assert_eq!(target.get_json(&format!("/images/{uuid}")).await.0, 404);
}

/// A deprecated upstream image is still installable by uuid (an origin
/// may be one): a mirror copies it and `--delete` keeps it.
#[tokio::test]
async fn mirror_keeps_deprecated_upstream_images() {
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let kept = uuid_of(&publish_bytes(&upstream, json!({"name": "old"}), b"kept").await);
    let opts = MirrorOptions {
        upstream: upstream.url.clone(),
        delete: true,
        ..MirrorOptions::default()
    };
    let run = |opts: MirrorOptions| mirror_into(&target, opts);
    let (summary, log) = run(opts.clone()).await;
    assert_eq!(summary.new, 1, "{log:#?}");
    set_lifecycle(
        &upstream,
        &kept,
        "",
        json!({"deprecated_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let fresh = uuid_of(&publish_bytes(&upstream, json!({"name": "fresh"}), b"new").await);
    set_lifecycle(
        &upstream,
        &fresh,
        "",
        json!({"deprecated_at": "2020-01-01T00:00:00Z"}),
    )
    .await;

    let (summary, log) = run(opts).await;
    assert_eq!(
        (summary.new, summary.deleted, summary.failed),
        (1, 0, 0),
        "{log:#?}"
    );
    for uuid in [&kept, &fresh] {
        assert_eq!(target.get_json(&format!("/images/{uuid}")).await.0, 200);
    }
}

#[tokio::test]
async fn flags_survive_a_restart() {
    let s = TestServer::spawn().await;
    let old = uuid_of(&s.publish(json!({"name": "oldimg"})).await);
    let got = set_lifecycle(
        &s,
        &old,
        "",
        json!({"deprecated_at": "2020-01-01T00:00:00Z", "protected": true}),
    )
    .await;
    let data_dir = s.data_dir.clone();
    let dir = s.stop().await;
    let s = TestServer::spawn_in(&data_dir, "").await;
    assert_eq!(lifecycle(&s, &old, "").await, got);
    assert_eq!(listed(&s, "").await, Vec::<String>::new());
    let resp = s.delete(&format!("/images/{old}")).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    drop(s);
    drop(dir);
}

/// The headers a client could tell two answers apart by.
fn compared(resp: &reqwest::Response) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "date"
                    | "x-request-id"
                    | "request-id"
                    | "x-response-time"
                    | "response-time"
                    | "server"
            )
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    out.sort();
    out
}

async fn answer(s: &TestServer, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let resp = s.get(path).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = compared(&resp);
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn unused_flags_change_no_answer() {
    // Two registries holding the same image (imported from a third); one
    // has had its flags set and cleared, the other never used them.
    let source = TestServer::spawn_with(DC).await;
    let img = publish_bytes(
        &source,
        json!({"name": "same", "tags": {"k": "v"}}),
        b"same bytes",
    )
    .await;
    let uuid = uuid_of(&img);
    let fresh = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let used = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    for s in [&fresh, &used] {
        let (status, body) = s
            .post_json(
                &format!("/images/{uuid}?action=import&source={}", enc(&source.url)),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    set_lifecycle(
        &used,
        &uuid,
        "",
        json!({"deprecated_at": "now", "protected": true}),
    )
    .await;
    let got = set_lifecycle(
        &used,
        &uuid,
        "",
        json!({"deprecated_at": null, "protected": false}),
    )
    .await;
    assert_eq!(got.0, 200);
    for path in [
        "/images".to_string(),
        format!("/images?account={BOB}"),
        format!("/images?account={OWNER}&state=all"),
        format!("/images/{uuid}"),
        format!("/images/{uuid}?account={OWNER}"),
        format!("/images/{uuid}?inclAdminFields=true"),
    ] {
        let (a, b) = (answer(&fresh, &path).await, answer(&used, &path).await);
        assert_eq!(a.0, 200, "{path}");
        assert_eq!(a, b, "{path}: answers differ");
        let text = String::from_utf8_lossy(&a.2);
        assert!(
            !text.contains("deprecat") && !text.contains("protected"),
            "{path}: {text}"
        );
    }
}
