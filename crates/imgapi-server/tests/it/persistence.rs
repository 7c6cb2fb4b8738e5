//! A restart keeps every image, file and icon.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn restart_keeps_all_data() {
    let s = TestServer::spawn().await;
    let img = s.publish(json!({"tags": {"k": "v"}})).await;
    let uuid = uuid_of(&img);
    let resp = s
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/gif")
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, before) = s.get_json(&format!("/images/{uuid}")).await;
    let data_dir = s.data_dir.clone();
    let dir = s.stop().await;
    let s2 = TestServer::spawn_in(&data_dir, "").await;
    let (status, after) = s2.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(status, 200);
    assert_eq!(before, after);
    let bytes = s2
        .get(&format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"image bytes");
    let icon = s2
        .get(&format!("/images/{uuid}/icon"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(icon.len(), 10);
    let (_, list) = s2.get_json("/images?tag.k=v").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    drop(s2);
    drop(dir);
}
