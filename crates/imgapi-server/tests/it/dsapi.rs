//! Legacy DSAPI `/datasets` in `dsapi = "serve"` mode: v1 dataset manifests
//! (the inverse of manifest.md §10) and their files. The redirect mode (the
//! default) is covered by `misc::datasets_redirects`.

use crate::support::*;
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

const DS_NODEJS: &str =
    include_str!("../../../imgapi-domain/tests/fixtures/fauxnodejs-1.4.0.dsmanifest");
const NODEJS_UUID: &str = "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc";
const SERVE_DC: &str = "mode = \"dc\"\ndsapi = \"serve\"";

fn fixture() -> Map<String, Value> {
    serde_json::from_str(DS_NODEJS).unwrap()
}

/// AdminImportImage of the DSAPI fixture (dc mode upgrades it), then a
/// bzip2 file and activation.
async fn import_nodejs(s: &TestServer, bytes: &[u8]) {
    let (status, img) = s
        .post_json(
            &format!("/images/{NODEJS_UUID}?action=import"),
            &Value::Object(fixture()),
        )
        .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["owner"], "91ba0e64-2547-11e2-a972-df579e5fddb3");
    let resp = s
        .put(&format!("/images/{NODEJS_UUID}/file?compression=bzip2"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, img) = s.activate(NODEJS_UUID).await;
    assert_eq!(status, 200, "{img}");
}

#[tokio::test]
async fn serve_mode_answers_with_the_fixture_manifest() {
    let s = TestServer::spawn_with(SERVE_DC).await;
    let bytes = b"BZh91AY&SY fake nodejs dataset".to_vec();
    import_nodejs(&s, &bytes).await;

    let (status, ds) = s.get_json(&format!("/datasets/{NODEJS_UUID}")).await;
    assert_eq!(status, 200, "{ds}");
    let want = fixture();
    for key in [
        "uuid",
        "name",
        "version",
        "type",
        "os",
        "description",
        "published_at",
        "created_at",
        "updated_at",
        "creator_uuid",
        "vendor_uuid",
        "creator_name",
        "cloud_name",
        "platform_type",
        "urn",
        "requirements",
        "users",
        "generate_passwords",
        "inherited_directories",
    ] {
        assert_eq!(ds.get(key), want.get(key), "key {key}: {ds}");
    }
    for key in ["v", "owner", "state", "public", "restricted_to_uuid"] {
        assert!(ds.get(key).is_none(), "{key} in {ds}");
    }
    let sha1 = hex::encode(Sha1::digest(&bytes));
    let url = format!("{}/datasets/{NODEJS_UUID}/fauxnodejs-1.4.0.zfs.bz2", s.url);
    assert_eq!(
        ds["files"],
        json!([{"path": "fauxnodejs-1.4.0.zfs.bz2", "sha1": sha1, "size": bytes.len(),
                "compression": "bzip2", "url": url}])
    );
    // The file URL serves the bytes, with GetImageFile's headers.
    let resp = s.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], sha1.as_str());
    assert_eq!(resp.bytes().await.unwrap().to_vec(), bytes);
    let resp = s
        .client
        .get(&url)
        .header("range", "bytes=0-2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"BZh");
    // Another file name, or a name search, is not a file.
    let got = s
        .get_json(&format!("/datasets/{NODEJS_UUID}/nodejs-1.4.0.zfs.bz2"))
        .await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let got = s.get_json("/datasets/fauxnodejs/x.zfs.bz2").await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let got = status_json(s.post(&url.replacen(&s.url, "", 1)).send().await.unwrap()).await;
    assert_error(
        &got,
        405,
        "MethodNotAllowedError",
        Some("POST is not allowed"),
    );

    // The list, and the name/URN forms of the redirect table, give the same.
    let (status, list) = s.get_json("/datasets").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([ds.clone()]));
    for arg in [
        "fauxnodejs:1.4.0",
        "sdc:sdc:fauxnodejs:1.4.0",
        "sdc:sdc:fauxnodejs",
        "fauxnodejs",
    ] {
        let (status, got) = s.get_json(&format!("/datasets/{arg}")).await;
        assert_eq!((status, &got), (200, &ds), "{arg}");
    }
    let got = s.get_json("/datasets/fauxnodejs:9.9.9").await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some("dataset fauxnodejs:9.9.9 not found"),
    );

    // Upgrading the served manifest (AdminImportImage on another dc-mode
    // server) gives the image back.
    let other = TestServer::spawn_with("mode = \"dc\"").await;
    let (status, again) = other
        .post_json(&format!("/images/{NODEJS_UUID}?action=import"), &ds)
        .await;
    assert_eq!(status, 200, "{again}");
    let (_, orig) = s.get_json(&format!("/images/{NODEJS_UUID}")).await;
    for key in [
        "uuid",
        "owner",
        "name",
        "version",
        "type",
        "os",
        "public",
        "published_at",
        "description",
        "requirements",
        "users",
        "generate_passwords",
        "inherited_directories",
        "urn",
    ] {
        assert_eq!(again.get(key), orig.get(key), "key {key}");
    }
}

#[tokio::test]
async fn serve_mode_shows_only_active_public_images() {
    // dc mode: both public and private images, and an anonymous GET
    // /images that lists every state.
    let s = TestServer::spawn_with(SERVE_DC).await;
    let shown = s
        .publish(json!({"name": "shown", "os": "linux", "type": "zvol",
                        "nic_driver": "virtio", "disk_driver": "virtio",
                        "cpu_type": "host", "image_size": 10240}))
        .await;
    let other = s.publish(json!({"name": "other"})).await;
    let private = s.publish(json!({"name": "private", "public": false})).await;
    let unactivated = s.create(json!({"name": "unactivated"})).await;
    let disabled = s.publish(json!({"name": "disabled"})).await;
    let (status, _) = s
        .post_json(
            &format!("/images/{}?action=disable", uuid_of(&disabled)),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);

    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, list) = s.get_json("/datasets").await;
    assert_eq!(status, 200);
    assert_eq!(names(&list), ["shown", "other"]);
    let zvol = &list[0];
    assert_eq!(zvol["uuid"], shown["uuid"]);
    assert_eq!(zvol["creator_uuid"], OWNER);
    assert_eq!(
        zvol["urn"],
        format!("sdc:sdc:shown:{}", shown["version"].as_str().unwrap())
    );
    assert_eq!(zvol["image_size"], "10240");
    assert_eq!(zvol["files"][0]["compression"], "gzip");
    assert!(zvol["files"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with(".zfs.gz"));
    // The DSAPI filters (ListImages semantics).
    for (query, want) in [
        ("name=other", vec!["other"]),
        ("os=linux", vec!["shown"]),
        ("type=zone-dataset", vec!["other"]),
        ("version=1.0.0&name=shown", vec!["shown"]),
        ("name=private", vec![]),
    ] {
        let (status, list) = s.get_json(&format!("/datasets?{query}")).await;
        assert_eq!(status, 200);
        assert_eq!(names(&list), want, "{query}");
    }
    // Hidden images do not exist here, not even for the uuid or file forms.
    for img in [&private, &unactivated, &disabled] {
        let uuid = uuid_of(img);
        let got = s.get_json(&format!("/datasets/{uuid}")).await;
        assert_error(
            &got,
            404,
            "ResourceNotFound",
            Some(&format!("dataset {uuid} not found")),
        );
        let name = img["name"].as_str().unwrap();
        let got = s
            .get_json(&format!("/datasets/{uuid}/{name}-1.0.0.zfs.gz"))
            .await;
        assert_error(&got, 404, "ResourceNotFound", None);
        let got = s.get_json(&format!("/datasets/{name}")).await;
        assert_error(&got, 404, "ResourceNotFound", None);
    }
    // GetImage still shows them to whoever may see them.
    let (status, _) = s.get_json(&format!("/images/{}", uuid_of(&private))).await;
    assert_eq!(status, 200);
    let (status, _) = s.get_json(&format!("/datasets/{}", uuid_of(&other))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn file_urls_follow_forwarded_proto_and_host() {
    let s = TestServer::spawn_with("dsapi = \"serve\"").await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    let resp = s
        .get(&format!("/datasets/{uuid}"))
        .header("host", "images.example:8443")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let (_, ds) = status_json(resp).await;
    assert_eq!(
        ds["files"][0]["url"],
        format!("https://images.example:8443/datasets/{uuid}/base-1.0.0.zfs.gz")
    );
    // A Host that is not a plain host[:port] is not put into URLs.
    let resp = s
        .get(&format!("/datasets/{uuid}"))
        .header("host", "evil.example?x=")
        .send()
        .await
        .unwrap();
    let (status, ds) = status_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(
        ds["files"][0]["url"],
        format!("/datasets/{uuid}/base-1.0.0.zfs.gz")
    );
}

#[tokio::test]
async fn redirect_mode_has_no_dataset_files() {
    let s = TestServer::spawn().await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    let resp = s.get(&format!("/datasets/{uuid}")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "reqwest follows the 301 to /images/<uuid>"
    );
    let got = s
        .get_json(&format!("/datasets/{uuid}/base-1.0.0.zfs.gz"))
        .await;
    assert_error(&got, 404, "ResourceNotFound", None);
}

/// A v1 manifest cannot name an origin: an incremental image is not offered
/// in any form (list, uuid, name, file), and a name lookup falls back to the
/// newest image a v1 client can install.
#[tokio::test]
async fn serve_mode_offers_no_incremental_image() {
    let s = TestServer::spawn_with("dsapi = \"serve\"").await;
    let base = s.publish(json!({"name": "app", "version": "1.0.0"})).await;
    let incremental = s
        .publish(json!({"name": "app", "version": "2.0.0", "origin": uuid_of(&base)}))
        .await;
    let inc_uuid = uuid_of(&incremental);

    let (status, list) = s.get_json("/datasets").await;
    assert_eq!(status, 200);
    let uuids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, [uuid_of(&base)]);
    let (status, list) = s.get_json("/datasets?version=2.0.0").await;
    assert_eq!((status, list), (200, json!([])));

    for path in [
        format!("/datasets/{inc_uuid}"),
        format!("/datasets/{inc_uuid}/app-2.0.0.zfs.gz"),
        "/datasets/app:2.0.0".to_string(),
        "/datasets/sdc:sdc:app:2.0.0".to_string(),
    ] {
        let got = s.get_json(&path).await;
        assert_error(&got, 404, "ResourceNotFound", None);
    }
    for newest in ["/datasets/app", "/datasets/sdc:sdc:app"] {
        let (status, ds) = s.get_json(newest).await;
        assert_eq!(status, 200, "{newest}: {ds}");
        assert_eq!(ds["uuid"], base["uuid"], "{newest}");
    }
    // ListImages still shows it, with its origin, to v2 clients.
    let (status, img) = s.get_json(&format!("/images/{inc_uuid}")).await;
    assert_eq!(status, 200);
    assert_eq!(img["origin"], base["uuid"]);
}

/// The redirect mode keeps the original's wire: `/datasets` → `/images`,
/// whose v2 manifests name the origin (ListImages has no filter to leave
/// incremental images out, and v1 clients cannot read the target anyway).
#[tokio::test]
async fn redirect_mode_target_names_the_origin() {
    let s = TestServer::spawn().await;
    let base = s.publish(json!({"name": "app"})).await;
    let incremental = s
        .publish(json!({"name": "app", "version": "2.0.0", "origin": uuid_of(&base)}))
        .await;
    let (status, list) = s.get_json("/datasets").await;
    assert_eq!(status, 200, "reqwest follows the 301 to /images");
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["uuid"] == incremental["uuid"])
        .cloned();
    assert_eq!(
        listed.map(|i| i["origin"].clone()),
        Some(base["uuid"].clone())
    );
}
