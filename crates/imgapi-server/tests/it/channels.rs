//! Channels (api.md §1.7, §4, UC8) on a private server.

use crate::support::*;
use serde_json::json;

const CHANNELS: &str = r#"
mode = "private"
[[channels]]
name = "dev"
description = "all development builds"
default = true
[[channels]]
name = "staging"
description = "builds for testing in staging"
[[channels]]
name = "release"
description = "release gold bits"
"#;

#[tokio::test]
async fn channel_promotion_uc8() {
    let s = TestServer::spawn_with(CHANNELS).await;
    let (status, list) = s.get_json("/channels").await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        json!([
            {"name": "dev", "description": "all development builds", "default": true},
            {"name": "staging", "description": "builds for testing in staging"},
            {"name": "release", "description": "release gold bits"}
        ])
    );
    let body = json!({"name": "vmapi", "version": "master-20200701T000000Z-g1234567", "type": "zone-dataset",
        "os": "smartos", "owner": OWNER, "public": false, "channels": ["release"]});
    let resp = s
        .post("/images")
        .header("accept-version", "~2")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, img) = status_json(resp).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(
        img["channels"],
        json!(["dev"]),
        "body channels are replaced"
    );
    let (_, v1) = s.post_json("/images", &body).await;
    assert!(
        v1.get("channels").is_none(),
        "no channels without Accept-Version ~2"
    );
    let uuid = uuid_of(&img);
    s.upload(&uuid, vec![1, 2]).await;
    s.activate(&uuid).await;
    let resp = s
        .post(&format!("/images/{uuid}?action=channel-add&channel=dev"))
        .header("accept-version", "~2")
        .json(&json!({"channel": "staging"}))
        .send()
        .await
        .unwrap();
    let (status, img) = status_json(resp).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["channels"], json!(["dev", "staging"]));
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=channel-add"),
            &json!({"channel": "bogus"}),
        )
        .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("unknown channel: bogus"),
    );
    let got = s
        .post_json(&format!("/images/{uuid}?action=channel-add"), &json!({}))
        .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("unknown channel: undefined"),
    );
    let got = status_json(
        s.post(&format!("/images/{uuid}?action=channel-add"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 422, "ValidationFailed", None);
    let got = s.get_json(&format!("/images/{uuid}?channel=release")).await;
    assert_error(&got, 404, "ResourceNotFound", Some("image not found"));
    let (_, list) = s.get_json("/images?channel=staging").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, list) = s.get_json("/images?channel=release").await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    let (_, list) = s.get_json("/images?channel=*").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the activated image"
    );
    let got = s.get_json("/images?channel=bogus").await;
    assert_eq!(
        got.1["errors"],
        json!([{"field": "channel", "code": "Invalid"}])
    );
    // Retire from dev only, then delete entirely.
    let resp = s
        .delete(&format!("/images/{uuid}?channel=dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s
        .get(&format!("/images/{uuid}?channel=staging"))
        .header("accept-version", "~2")
        .send()
        .await
        .unwrap();
    let (_, img) = status_json(resp).await;
    assert_eq!(img["channels"], json!(["staging"]));
    let got = status_json(
        s.delete(&format!("/images/{uuid}?channel=*"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 422, "ValidationFailed", Some("unknown channel: *"));
    let resp = s
        .delete(&format!("/images/{uuid}?channel=staging"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let got = s.get_json(&format!("/images/{uuid}?channel=*")).await;
    assert_eq!(got.0, 404);
}

#[tokio::test]
async fn private_mode_rules() {
    let s = TestServer::spawn_with(CHANNELS).await;
    let body = json!({"name": "x", "version": "1", "type": "other", "os": "other", "owner": OWNER, "public": true});
    let got = s.post_json("/images", &body).await;
    assert_eq!(
        got.1["errors"],
        json!([{"field": "public", "code": "Invalid", "message": "public images are not allowed on a private Images API"}])
    );
}

#[tokio::test]
async fn force_all_channels_deletes_everywhere() {
    let s = TestServer::spawn_with(CHANNELS).await;
    let body = json!({"name": "x", "version": "1", "type": "other", "os": "other", "owner": OWNER, "public": false});
    let (_, img) = s.post_json("/images", &body).await;
    let uuid = uuid_of(&img);
    for ch in ["staging", "release"] {
        let (status, _) = s
            .post_json(
                &format!("/images/{uuid}?action=channel-add"),
                &json!({"channel": ch}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let got = status_json(
        s.delete(&format!(
            "/images/{uuid}?channel=staging&force_all_channels=maybe"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid value for \"force_all_channels\" param: \"maybe\" is not a boolean"),
    );
    let resp = s
        .delete(&format!(
            "/images/{uuid}?channel=staging&force_all_channels=true"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    for ch in ["dev", "staging", "release", "*"] {
        assert_eq!(
            s.get_json(&format!("/images/{uuid}?channel={ch}")).await.0,
            404,
            "{ch}"
        );
    }
}
