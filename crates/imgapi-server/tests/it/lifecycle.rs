//! Publish, activate, disable/enable, update, delete, ACLs (UC1, UC5, UC6).

use crate::support::*;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

#[tokio::test]
async fn publish_flow_uc1() {
    let s = TestServer::spawn().await;
    let img = s
        .create(json!({"description": "Minimal base", "tags": {"role": "base"}}))
        .await;
    assert_eq!(img["state"], "unactivated");
    assert_eq!(img["files"], json!([]));
    assert!(img.get("published_at").is_none());
    assert!(img.get("acl").is_none());
    let keys: Vec<&str> = img
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "v",
            "uuid",
            "owner",
            "name",
            "version",
            "state",
            "disabled",
            "public",
            "type",
            "os",
            "files",
            "description",
            "tags"
        ]
    );
    let uuid = uuid_of(&img);
    let data = vec![7u8; 100_000];
    let sha1 = hex::encode(Sha1::digest(&data));
    let resp = s
        .put(&format!(
            "/images/{uuid}/file?compression=gzip&sha1={sha1}&dataset_guid=42"
        ))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let (status, img) = status_json(resp).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(
        img["files"],
        json!([{"sha1": sha1, "size": 100000, "compression": "gzip", "dataset_guid": "42"}])
    );
    let (status, img) = s.activate(&uuid).await;
    assert_eq!(status, 200);
    assert_eq!(img["state"], "active");
    let published = img["published_at"].as_str().unwrap();
    assert_eq!(published.len(), 24, "ms precision: {published}");
    let got = s.activate(&uuid).await;
    assert_error(
        &got,
        422,
        "ImageAlreadyActivated",
        Some(&format!("image \"{uuid}\" is already activated")),
    );
    let got = s.upload(&uuid, vec![1]).await;
    assert_error(
        &got,
        422,
        "ImageFilesImmutable",
        Some(&format!("cannot modify files on activated image {uuid}")),
    );
    let bytes = s
        .get(&format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.to_vec(), data);
}

#[tokio::test]
async fn etag_is_sha1_of_compact_json() {
    let s = TestServer::spawn().await;
    let img = s.create(json!({})).await;
    let resp = s
        .get(&format!("/images/{}", uuid_of(&img)))
        .send()
        .await
        .unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("{\n  \"v\": 2,\n  \"uuid\""),
        "2-space pretty JSON"
    );
    let value: Value = serde_json::from_str(&text).unwrap();
    let compact = serde_json::to_string(&value).unwrap();
    assert_eq!(etag, hex::encode(Sha1::digest(compact.as_bytes())));
}

#[tokio::test]
async fn create_errors() {
    let s = TestServer::spawn().await;
    let got = s
        .post_json(
            "/images",
            &json!({"name": "x", "version": "1", "type": "other", "os": "other", "owner": OWNER}),
        )
        .await;
    assert_eq!(got.0, 422);
    assert_eq!(got.1["code"], "ValidationFailed");
    assert_eq!(got.1["message"], "invalid image data: public");
    assert_eq!(
        got.1["errors"],
        json!([{"field": "public", "code": "Invalid", "message": "private images are not allowed on a public Images API"}])
    );
    let mut body = manifest();
    merge(&mut body, json!({"state": "active"}));
    let got = s.post_json("/images", &body).await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "ValidationFailed", "message": "invalid image data: \"state\"", "errors": [{"field": "state", "code": "NotAllowed", "message": "Parameter cannot be set"}]})
        )
    );
    let mut body = manifest();
    merge(&mut body, json!({"uuid": OWNER, "bogus": 1}));
    let got = s.post_json("/images", &body).await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "InvalidParameter", "message": "invalid extra parameters: \"uuid\", \"bogus\"", "errors": [{"field": "uuid", "code": "Invalid"}, {"field": "bogus", "code": "Invalid"}]})
        )
    );
    let mut body = manifest();
    body.as_object_mut().unwrap().remove("owner");
    let got = s.post_json("/images", &body).await;
    assert_error(&got, 422, "ValidationFailed", None);
    let mut body = manifest();
    merge(&mut body, json!({"origin": BOB}));
    let got = s.post_json("/images", &body).await;
    assert_error(
        &got,
        422,
        "OriginDoesNotExist",
        Some(&format!("origin image \"{BOB}\" does not exist")),
    );
    let got = s
        .post_json(&format!("/images?account={BOB}"), &manifest())
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some(&format!(
            "invalid owner: given owner, \"{OWNER}\", does not match account, \"{BOB}\""
        )),
    );
    let got = s.post_json("/images?action=bogus", &manifest()).await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("\"bogus\" is not a valid action"),
    );
    let got = s
        .post_json("/images?action=create-from-vm", &manifest())
        .await;
    assert_error(
        &got,
        501,
        "NotAvailable",
        Some("custom image creation is not currently available"),
    );
    // No body at all: never a crash, a validation error.
    let got = status_json(s.post("/images").send().await.unwrap()).await;
    assert_error(&got, 422, "ValidationFailed", None);
}

#[tokio::test]
async fn activate_without_file_and_action_errors() {
    let s = TestServer::spawn().await;
    let img = s.create(json!({})).await;
    let uuid = uuid_of(&img);
    let got = s.activate(&uuid).await;
    assert_error(
        &got,
        422,
        "NoActivationNoFile",
        Some(&format!(
            "image \"{uuid}\" cannot be activated: it has no file"
        )),
    );
    let got = s
        .post_json(&format!("/images/{uuid}?action=bogus"), &json!({}))
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("\"bogus\" is not a valid action"),
    );
    let got = s.post_json(&format!("/images/{uuid}"), &json!({})).await;
    assert_eq!(
        got.1["errors"],
        json!([{"field": "action", "code": "MissingParameter"}])
    );
    let got = s
        .post_json(&format!("/images/{BOB}?action=bogus"), &json!({}))
        .await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image {BOB} not found")),
    );
    let got = s
        .post_json(&format!("/images/{uuid}?action=channel-add"), &json!({}))
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("\"channel-add\" is not a valid action"),
    );
}

#[tokio::test]
async fn disable_enable_uc5() {
    let s = TestServer::spawn().await;
    let img = s.create(json!({})).await;
    let uuid = uuid_of(&img);
    let (_, img) = s
        .post_json(&format!("/images/{uuid}?action=disable"), &json!({}))
        .await;
    assert_eq!(img["state"], "unactivated");
    assert_eq!(img["disabled"], true);
    s.upload(&uuid, vec![1, 2, 3]).await;
    let (_, img) = s.activate(&uuid).await;
    assert_eq!(img["state"], "disabled");
    let (_, list) = s.get_json("/images").await;
    assert_eq!(list, json!([]));
    let (_, img) = s
        .post_json(&format!("/images/{uuid}?action=enable"), &json!({}))
        .await;
    assert_eq!(img["state"], "active");
    let (_, list) = s.get_json("/images").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn update_uc6() {
    let s = TestServer::spawn().await;
    let img = s.publish(json!({"homepage": "https://example.com"})).await;
    let uuid = uuid_of(&img);
    let resp = s.get(&format!("/images/{uuid}")).send().await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let resp = s
        .post(&format!("/images/{uuid}?action=update"))
        .header("if-match", "stale")
        .json(&json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    let got = status_json(resp).await;
    assert_error(
        &got,
        412,
        "PreconditionFailed",
        Some(&format!("if-match 'stale' didn't match etag '{etag}'")),
    );
    let resp = s
        .post(&format!("/images/{uuid}?action=update"))
        .header("if-match", &etag)
        .json(&json!({"description": "Deprecated", "tags": {"deprecated": true}, "homepage": null}))
        .send()
        .await
        .unwrap();
    let (status, img) = status_json(resp).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["description"], "Deprecated");
    assert_eq!(img["tags"], json!({"deprecated": true}));
    assert!(img.get("homepage").is_none());
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"type": "zvol"}),
        )
        .await;
    assert_eq!(
        got.1["errors"],
        json!([{"field": "type", "code": "NotAllowed", "message": "Parameter cannot be updated"}])
    );
    let got = s
        .post_json(&format!("/images/{uuid}?action=update"), &json!({}))
        .await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "ValidationFailed", "message": "invalid image update data: no parameters provided", "errors": []})
        )
    );
    let got = status_json(
        s.post(&format!("/images/{uuid}?action=update"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 422, "ValidationFailed", Some("missing request body"));
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"public": false}),
        )
        .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("invalid image data: public"),
    );
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=update&account={OWNER}"),
            &json!({"billing_tags": ["x"], "state": "failed"}),
        )
        .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("invalid image update data: state, billing_tags"),
    );
}

#[tokio::test]
async fn delete_with_dependents_uc6() {
    let s = TestServer::spawn().await;
    let base = s.publish(json!({})).await;
    let base_uuid = uuid_of(&base);
    let app = s.publish(json!({"origin": base_uuid})).await;
    let app_uuid = uuid_of(&app);
    let got = status_json(
        s.delete(&format!("/images/{base_uuid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        422,
        "ImageHasDependentImages",
        Some(&format!(
            "image \"{base_uuid}\" has 1 dependent incremental image(s): {app_uuid}"
        )),
    );
    let resp = s
        .delete(&format!("/images/{app_uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(!resp.headers().contains_key("content-type"));
    let resp = s
        .delete(&format!("/images/{base_uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let got = s.get_json(&format!("/images/{base_uuid}")).await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image {base_uuid} not found")),
    );
    let got = status_json(
        s.delete(&format!("/images/{base_uuid}?force_all_channels=maybe"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, 404);
}

#[tokio::test]
async fn acl_add_remove() {
    let s = TestServer::spawn().await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    let (status, img) = s
        .post_json(&format!("/images/{uuid}/acl"), &json!([BOB, BOB, CAROL]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(img["acl"], json!([BOB, CAROL]));
    let (_, img) = s
        .post_json(
            &format!("/images/{uuid}/acl?action=remove"),
            &json!([BOB, CAROL]),
        )
        .await;
    assert!(img.get("acl").is_none());
    let got = s
        .post_json(&format!("/images/{uuid}/acl"), &json!({"a": 1}))
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid image \"acl\" (not an array)"),
    );
    let got = s
        .post_json(&format!("/images/{uuid}/acl"), &json!([BOB, "nope"]))
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid image \"acl\" (item 1 is not a UUID): nope"),
    );
    let got = s
        .post_json(&format!("/images/{uuid}/acl?action=bogus"), &json!([]))
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("\"bogus\" is not a valid action"),
    );
}

#[tokio::test]
async fn import_keeps_uuid_and_published_at() {
    let s = TestServer::spawn().await;
    let uuid = "0764d78e-3472-11e5-8949-4f31abea4e05";
    let body = json!({"v": 2, "uuid": uuid, "owner": "00000000-0000-0000-0000-000000000000",
        "name": "base-64-lts", "version": "15.2.0", "state": "active", "disabled": false, "public": true,
        "published_at": "2015-07-27T17:30:39Z", "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": "a3a0", "size": 143001234, "compression": "gzip"}],
        "description": "A 64-bit SmartOS image", "urn": "sdc:sdc:base-64-lts:15.2.0"});
    let (status, img) = s
        .post_json(&format!("/images/{uuid}?action=import"), &body)
        .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["state"], "unactivated");
    assert_eq!(img["published_at"], "2015-07-27T17:30:39Z");
    assert_eq!(img["urn"], "sdc:sdc:base-64-lts:15.2.0");
    assert_eq!(img["files"], json!([]));
    let got = s
        .post_json(&format!("/images/{uuid}?action=import"), &body)
        .await;
    assert_error(
        &got,
        409,
        "ImageUuidAlreadyExists",
        Some(&format!("image uuid \"{uuid}\" already exists")),
    );
    let got = s
        .post_json(&format!("/images/{OWNER}?action=import"), &body)
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some(&format!(
            "URL UUID, \"{OWNER}\" and body UUID, \"{uuid}\" do not match"
        )),
    );
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=import&account={BOB}"),
            &body,
        )
        .await;
    assert_error(
        &got,
        403,
        "OperatorOnly",
        Some("this endpoint may only be called by an operator"),
    );
    s.upload(uuid, vec![1; 10]).await;
    let (_, img) = s.activate(uuid).await;
    assert_eq!(img["published_at"], "2015-07-27T17:30:39Z");
    // A legacy DSAPI manifest cannot be imported in public mode (original behaviour).
    let legacy = json!({"uuid": BOB, "name": "fauxnodejs", "version": "1.4.0", "type": "zone-dataset",
        "os": "smartos", "creator_uuid": CAROL, "vendor_uuid": CAROL});
    let got = s
        .post_json(&format!("/images/{BOB}?action=import"), &legacy)
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid extra parameters: \"creator_uuid\", \"vendor_uuid\""),
    );
}
