//! Conditional requests on GetImage and the POST actions (api.md §1.8).

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn get_image_conditionals() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let resp = s.get(&format!("/images/{uuid}")).send().await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    for form in [etag.clone(), format!("\"{etag}\""), format!("W/\"{etag}\"")] {
        let resp = s
            .get(&format!("/images/{uuid}"))
            .header("if-none-match", form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304);
        assert!(!resp.headers().contains_key("etag"));
    }
    let resp = s
        .get(&format!("/images/{uuid}"))
        .header("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GetImage has no Last-Modified");
    let resp = s
        .post(&format!("/images/{uuid}?action=disable"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    let got = status_json(resp).await;
    assert_error(
        &got,
        412,
        "PreconditionFailed",
        Some(&format!("if-none-match '{etag}' matched etag '{etag}'")),
    );
    // ETag depends on Accept-Version once channels exist; here both agree.
    let resp = s
        .get(&format!("/images/{uuid}"))
        .header("accept-version", "~2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
}
