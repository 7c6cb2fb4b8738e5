//! Errors answered before any stream starts (no registry is reached).

use base64::Engine;
use serde_json::{json, Value};

use crate::support::*;

use super::setup::*;
use super::stream::*;

#[tokio::test]
async fn import_validation_errors() {
    let server = server_for(&["127.0.0.1:5000".to_string()]).await;
    let post = |query: &str| server.post(&format!("/images?action=import-docker-image{query}"));
    let answer =
        |req: reqwest::RequestBuilder| async move { status_json(req.send().await.unwrap()).await };

    let got = answer(post(&format!("&repo=fix/a&tag=latest&account={OWNER}"))).await;
    assert_error(&got, 403, "OperatorOnly", None);

    let got = answer(post("&tag=latest")).await;
    assert_error(&got, 422, "ValidationFailed", Some("missing parameters"));
    assert_eq!(
        got.1["errors"],
        json!([{"field": "repo", "code": "MissingParameter"}])
    );

    let got = answer(post("&repo=fix/a")).await;
    assert_error(&got, 422, "ValidationFailed", Some("missing parameters"));
    assert_eq!(
        got.1["errors"],
        json!([{"field": "tag", "code": "MissingParameter", "message": "one of \"tag\" or \"digest\" is required"}])
    );

    let digest = format!("sha256:{}", "a".repeat(64));
    let got = answer(post(&format!("&repo=fix/a&tag=latest&digest={digest}"))).await;
    assert_error(&got, 422, "ValidationFailed", Some("missing parameters"));
    assert_eq!(
        got.1["errors"],
        json!([{"field": "digest", "code": "Invalid", "message": "cannot specify both \"tag\" and \"digest\""}])
    );

    let got = answer(post("&repo=Foo&tag=latest")).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("invalid repository name, may only contain [a-z0-9_/.-] characters: Foo"),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "repo", "code": "Invalid"}])
    );

    let token = base64::engine::general_purpose::STANDARD.encode(r#"{"identitytoken":"abc"}"#);
    let got = answer(post("&repo=fix/a&tag=latest").header("x-registry-auth", token)).await;
    assert_error(
        &got,
        400,
        "NotImplemented",
        Some("OAuth to Docker registry is not yet supported, please \"docker logout\" and \"docker login\" and try again"),
    );

    let got = answer(post("&repo=fix/a&tag=latest&public=maybe")).await;
    assert_error(&got, 422, "InvalidParameter", None);
}

#[tokio::test]
async fn push_validation_errors() {
    let server = server_for(&["127.0.0.1:5000".to_string()]).await;
    let zone = server.publish(json!({})).await;
    let push = |uuid: String, repo_and_tag: &'static str, body: Value| {
        let req = server.post(&push_path(&uuid, repo_and_tag)).json(&body);
        async move { status_json(req.send().await.unwrap()).await }
    };

    let got = push(uuid_of(&zone), "127.0.0.1:5000/fix/a:tag", json!({})).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("image is not a docker image"),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "type", "code": "Invalid"}])
    );

    let docker = server
        .publish(json!({"type": "docker", "os": "linux", "name": "docker-layer", "version": "0123456789ab"}))
        .await;
    let got = push(uuid_of(&docker), "Not A Repo:tag", json!({})).await;
    assert_error(&got, 422, "ValidationFailed", None);
    assert_eq!(got.1["errors"][0]["field"], "repoAndTag", "{}", got.1);
    assert_eq!(got.1["errors"][0]["code"], "Invalid", "{}", got.1);

    let got = push(
        uuid_of(&docker),
        "127.0.0.1:5000/fix/a:tag",
        json!({"manifest_str": "not json"}),
    )
    .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("JSON parse of manifest_str failed"),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "manifest_str", "code": "Invalid"}])
    );

    let unknown = "0ab9a8ee-5b7f-11e6-a1aa-9b1a2a1a9e25".to_string();
    assert_eq!(
        push(unknown, "127.0.0.1:5000/fix/a:tag", json!({})).await.0,
        404
    );
}
