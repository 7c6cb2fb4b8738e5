//! Ping, routing errors, headers, versions, datasets redirects, state.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn ping_body_and_headers() {
    let s = TestServer::spawn().await;
    let resp = s.get("/ping").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["server"], "imgapi/4.11.0");
    assert!(h.contains_key("x-request-id"));
    assert!(h.contains_key("x-response-time"));
    assert!(h.contains_key("x-server-name"));
    let text = resp.text().await.unwrap();
    assert_eq!(
        text,
        "{\n  \"ping\": \"pong\",\n  \"version\": \"4.11.0\",\n  \"imgapi\": true\n}"
    );
    assert_eq!(text.len(), 61);
}

#[tokio::test]
async fn request_id_is_echoed() {
    let s = TestServer::spawn().await;
    let resp = s
        .get("/ping")
        .header("x-request-id", "abc 123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc 123");
}

#[tokio::test]
async fn ping_error_simulation() {
    let s = TestServer::spawn().await;
    let got = s.get_json("/ping?error=ValidationFailed").await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "ValidationFailed", "message": "boom", "errors": []})
        )
    );
    let got = s.get_json("/ping?error=").await;
    assert_eq!(
        got,
        (500, json!({"code": "InternalError", "message": "boom"}))
    );
    let got = s.get_json("/ping?error=Upload").await;
    assert_error(
        &got,
        500,
        "InternalError",
        Some("do not have a sample \"UploadError\" error"),
    );
    let got = s.get_json("/ping?error=Bogus").await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "InvalidParameter", "message": "unknown error: BogusError", "errors": [{"field": "error", "code": "Missing"}]})
        )
    );
    let got = s.get_json("/ping?error=InvalidParameterError").await;
    assert_error(&got, 422, "InvalidParameter", Some("invalid \"foo\""));
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let s = TestServer::spawn().await;
    let got = s.get_json("/nope/deeper?x=1").await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some("/nope/deeper does not exist"),
    );
    let resp = s
        .req(reqwest::Method::PATCH, "/images")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST");
    let got = status_json(resp).await;
    assert_error(
        &got,
        405,
        "MethodNotAllowedError",
        Some("PATCH is not allowed"),
    );
    // HEAD is answered as GET without a body (RFC 9110); a 405's `Allow`
    // still lists the original's methods.
    let resp = s.req(reqwest::Method::HEAD, "/ping").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .req(reqwest::Method::DELETE, "/ping")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    let resp = s
        .req(reqwest::Method::OPTIONS, "/images/x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, POST, DELETE");
    let got = s.get_json("/images/not-a-uuid?foo=bar").await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some("/images/not-a-uuid?foo=bar does not exist"),
    );
    let got = s.get_json("/images/%2e%2e").await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let got = s
        .get_json("/images/86055C40-2547-11E2-8A6B-4BB37EDC84BA")
        .await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let got = s.get_json("/channels").await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some("/channels does not exist"),
    );
    let got = s
        .get_json("/images/86055c40-2547-11e2-8a6b-4bb37edc84ba/clone")
        .await;
    assert_error(&got, 404, "ResourceNotFound", None);
}

#[tokio::test]
async fn accept_version() {
    let s = TestServer::spawn().await;
    let resp = s
        .get("/ping")
        .header("accept-version", "~99")
        .send()
        .await
        .unwrap();
    let got = status_json(resp).await;
    assert_error(
        &got,
        400,
        "InvalidVersion",
        Some("~99 is not supported by GET /ping"),
    );
    for ok in ["~1", "~2", "*", ">=1", "2.0.0"] {
        let resp = s
            .get("/ping")
            .header("accept-version", ok)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{ok}");
    }
}

#[tokio::test]
async fn invalid_json_body() {
    let s = TestServer::spawn().await;
    let resp = s
        .post("/images")
        .header("content-type", "APPLICATION/JSON; charset=utf-8")
        .body("{bad")
        .send()
        .await
        .unwrap();
    let got = status_json(resp).await;
    assert_eq!(got.0, 400);
    assert_eq!(got.1["code"], "InvalidContent");
    assert!(got.1["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid JSON: "));
}

#[tokio::test]
async fn datasets_redirects() {
    let s = TestServer::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, loc) in [
        ("/datasets?x=1", "/images"),
        (
            "/datasets/01b2c898-945f-11e1-a523-af1afbe22822",
            "/images/01b2c898-945f-11e1-a523-af1afbe22822",
        ),
        ("/datasets/base:1.8.1", "/images/?name=base&version=1.8.1"),
        ("/datasets/sdc:sdc:base", "/images/?name=base"),
        (
            "/datasets/sdc:sdc:base:1.8.1",
            "/images/?name=base&version=1.8.1",
        ),
        ("/datasets/with%20space", "/images/?name=with space"),
    ] {
        let resp = client.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(resp.status(), 301, "{path}");
        assert_eq!(resp.headers()["location"], loc, "{path}");
        assert_eq!(resp.headers()["content-length"], "0");
        assert!(!resp.headers().contains_key("content-type"));
    }
    let got = status_json(s.post("/datasets").send().await.unwrap()).await;
    assert_error(
        &got,
        405,
        "MethodNotAllowedError",
        Some("POST is not allowed"),
    );
}

#[tokio::test]
async fn admin_state_endpoints() {
    let s = TestServer::spawn().await;
    let (status, state) = s.get_json("/state").await;
    assert_eq!(status, 200);
    assert_eq!(state["storageTypes"], json!([expected_stor()]));
    let resp = s.post("/state?action=dropcaches").send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let got = status_json(s.post("/state?action=bogus").send().await.unwrap()).await;
    assert_eq!(
        got,
        (
            409,
            json!({"code": "InvalidArgument", "message": "\"bogus\" is not a valid action"})
        )
    );
    let got = status_json(s.post("/state").send().await.unwrap()).await;
    assert_eq!(
        got,
        (
            409,
            json!({"code": "MissingParameter", "message": "\"action\" is required"})
        )
    );
    let got = status_json(s.post("/authkeys/reload").send().await.unwrap()).await;
    assert_eq!(got, (200, json!({})));
}
