//! dc mode: `account` visibility and ownership (api.md §1.6, UC3), clone,
//! admin fields, Ping pid.

use crate::support::*;
use serde_json::{json, Value};

const DC: &str = "mode = \"dc\"\nadmin_uuid = \"930896af-bf8c-48d4-885c-6573a94b1853\"";

async fn alice_image(s: &TestServer) -> String {
    let body =
        json!({"name": "alice-app", "version": "1.0.0", "type": "zone-dataset", "os": "smartos"});
    let (status, img) = s
        .post_json(&format!("/images?account={OWNER}"), &body)
        .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["owner"], OWNER);
    assert_eq!(img["public"], false);
    let uuid = uuid_of(&img);
    let resp = s
        .put(&format!(
            "/images/{uuid}/file?account={OWNER}&compression=gzip"
        ))
        .body(vec![5u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = s
        .post_json(
            &format!("/images/{uuid}?action=activate&account={OWNER}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    uuid
}

fn uuids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(uuid_of).collect()
}

#[tokio::test]
async fn visibility_uc3() {
    let s = TestServer::spawn_with(DC).await;
    let uuid = alice_image(&s).await;
    let got = s.get_json(&format!("/images/{uuid}?account={BOB}")).await;
    assert_error(&got, 404, "ResourceNotFound", Some("image not found"));
    assert!(uuids(&s.get_json(&format!("/images?account={BOB}")).await.1).is_empty());
    let got = s
        .get_json(&format!("/images/{uuid}?account=NOT-A-UUID"))
        .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid \"account\": not a UUID: \"NOT-A-UUID\""),
    );
    let (status, img) = s
        .post_json(
            &format!("/images/{uuid}/acl?account={OWNER}"),
            &json!([BOB]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(img["acl"], json!([BOB]));
    assert_eq!(
        uuids(&s.get_json(&format!("/images?account={BOB}")).await.1),
        [uuid.clone()]
    );
    assert_eq!(
        s.get_json(&format!("/images/{uuid}?account={BOB}")).await.0,
        200
    );
    let resp = s
        .get(&format!("/images/{uuid}/file?account={BOB}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=update&account={BOB}"),
            &json!({"description": "mine now"}),
        )
        .await;
    assert_error(
        &got,
        422,
        "NotImageOwner",
        Some(&format!("account {BOB} is not the owner of image {uuid}")),
    );
    assert_eq!(
        s.get_json(&format!("/images/{uuid}?account={CAROL}"))
            .await
            .0,
        404
    );
    assert_eq!(
        s.get(&format!("/images/{uuid}/file?account={CAROL}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Listing rules for Bob.
    assert!(uuids(
        &s.get_json(&format!("/images?account={BOB}&state=disabled"))
            .await
            .1
    )
    .is_empty());
    assert_eq!(
        uuids(
            &s.get_json(&format!("/images?account={BOB}&owner={OWNER}"))
                .await
                .1
        ),
        [uuid.clone()]
    );
    assert_eq!(
        uuids(
            &s.get_json(&format!("/images?account={BOB}&public=false"))
                .await
                .1
        ),
        [uuid.clone()]
    );
    assert!(uuids(
        &s.get_json(&format!("/images?account={BOB}&public=true"))
            .await
            .1
    )
    .is_empty());
    // Clone by Bob.
    let (status, clone) = s
        .post_json(&format!("/images/{uuid}/clone?account={BOB}"), &json!({}))
        .await;
    assert_eq!(status, 200, "{clone}");
    assert_eq!(clone["owner"], BOB);
    assert_eq!(clone["state"], "active");
    assert!(clone.get("acl").is_none());
    assert_ne!(clone["uuid"], uuid.as_str());
    let clone_uuid = uuid_of(&clone);
    let bytes = s
        .get(&format!("/images/{clone_uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len(), 1000);
    let got = s
        .post_json(&format!("/images/{uuid}/clone?account={OWNER}"), &json!({}))
        .await;
    assert_error(
        &got,
        422,
        "ImageNotShared",
        Some(&format!("Image {OWNER} is not shared with account {uuid}")),
    );
    // Unshare.
    let (_, img) = s
        .post_json(
            &format!("/images/{uuid}/acl?action=remove&account={OWNER}"),
            &json!([BOB]),
        )
        .await;
    assert!(img.get("acl").is_none());
    assert_eq!(
        s.get_json(&format!("/images/{uuid}?account={BOB}")).await.0,
        404
    );
    // Deleting needs ownership.
    let got = status_json(
        s.delete(&format!("/images/{clone_uuid}?account={OWNER}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, 404, "not visible to Alice");
}

#[tokio::test]
async fn dc_specifics() {
    let s = TestServer::spawn_with(DC).await;
    let (_, ping) = s.get_json("/ping").await;
    assert!(ping["pid"].is_number());
    let uuid = alice_image(&s).await;
    let (status, img) = s
        .get_json(&format!("/images/{uuid}?inclAdminFields=true"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(img["files"][0]["stor"], expected_stor());
    let (_, list) = s.get_json("/images?state=all").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
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
    let (status, img) = s
        .post_json(
            &format!("/images/{uuid}?action=change-stor&stor={}", expected_stor()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(img["files"][0]["stor"], expected_stor());
    // Import with the zero owner maps to the admin uuid in dc mode.
    let new = "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc";
    let body = json!({"v": 2, "uuid": new, "owner": "00000000-0000-0000-0000-000000000000", "name": "n",
        "version": "1", "type": "other", "os": "other", "public": true});
    let (status, img) = s
        .post_json(&format!("/images/{new}?action=import"), &body)
        .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["owner"], "930896af-bf8c-48d4-885c-6573a94b1853");
}

#[tokio::test]
async fn legacy_dsapi_import_in_dc_mode() {
    let s = TestServer::spawn_with(DC).await;
    let uuid = "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc";
    let body = json!({"uuid": uuid, "name": "fauxnodejs", "version": "1.4.0",
        "type": "zone-dataset", "os": "smartos", "creator_uuid": BOB,
        "vendor_uuid": BOB, "creator_name": "sdc", "cloud_name": "sdc",
        "platform_type": "smartos", "urn": "sdc:sdc:nodejs:1.4.0",
        "created_at": "2012-10-11T14:40:57.936Z", "updated_at": "2012-10-11T14:40:57.936Z",
        "published_at": "2012-10-11T14:40:57.936Z",
        "files": [{"path": "nodejs-1.4.0.zfs.bz2", "sha1": "d2c4", "size": 269634973}]});
    let (status, img) = s
        .post_json(
            &format!("/images/{uuid}?action=import&skip_owner_check=true"),
            &body,
        )
        .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(
        img,
        json!({"v": 2, "uuid": uuid, "owner": BOB, "name": "fauxnodejs", "version": "1.4.0",
            "state": "unactivated", "disabled": false, "public": true,
            "published_at": "2012-10-11T14:40:57.936Z", "type": "zone-dataset", "os": "smartos",
            "files": [], "urn": "sdc:sdc:nodejs:1.4.0"})
    );
}

#[tokio::test]
async fn owner_must_exist_in_the_account_directory() {
    let toml = format!(
        "mode = \"dc\"\n[account_directory]\nkind = \"static\"\naccounts = [\"{OWNER}\", \"{BOB}\"]\n"
    );
    let s = TestServer::spawn_with(&toml).await;
    let body = json!({"name": "n", "version": "1", "type": "other", "os": "other", "owner": CAROL});
    let got = s.post_json("/images", &body).await;
    assert_error(
        &got,
        422,
        "OwnerDoesNotExist",
        Some(&format!("owner \"{CAROL}\" does not exist")),
    );
    let uuid = "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc";
    let import = json!({"v": 2, "uuid": uuid, "owner": CAROL, "name": "n", "version": "1",
        "type": "other", "os": "other", "public": true});
    let got = s
        .post_json(&format!("/images/{uuid}?action=import"), &import)
        .await;
    assert_error(&got, 422, "OwnerDoesNotExist", None);
    let (status, _) = s
        .post_json(
            &format!("/images/{uuid}?action=import&skip_owner_check=true"),
            &import,
        )
        .await;
    assert_eq!(status, 200);
    let mut ok_body = body.clone();
    ok_body["owner"] = json!(OWNER);
    let (status, img) = s.post_json("/images", &ok_body).await;
    assert_eq!(status, 200, "{img}");
    let got = s
        .post_json(
            &format!("/images/{}?action=update", uuid_of(&img)),
            &json!({"owner": CAROL}),
        )
        .await;
    assert_error(&got, 422, "OwnerDoesNotExist", None);
    let (status, img) = s
        .post_json(
            &format!("/images/{}?action=update", uuid_of(&img)),
            &json!({"owner": BOB}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(img["owner"], BOB);
}
