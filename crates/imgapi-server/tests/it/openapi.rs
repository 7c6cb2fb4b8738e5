//! `GET /openapi.json`: the served document, the committed
//! docs/openapi.json and the router agree.

use crate::support::*;
use http::Method;
use serde_json::Value;

/// Every optional route switched on.
const EVERYTHING: &str = r#"
mode = "dc"
metrics_on_main = true
dsapi = "serve"
catalog = true
[[channels]]
name = "dev"
default = true
[simplestreams]
enabled = true
"#;

#[tokio::test]
async fn served_document_matches_the_file_and_the_code() {
    // With every optional route on, the served document is the whole file.
    let s = TestServer::spawn_with(EVERYTHING).await;
    let resp = s.get("/openapi.json").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = resp.json().await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        served, file,
        "docs/openapi.json is stale: run `cargo run -p xtask -- gen-docs`"
    );
    assert_eq!(served, imgapi_server::http::openapi::document());
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(
        served["paths"]["/images"]["get"]["operationId"],
        "ListImages"
    );
    // Error responses name their restCodes and use the shared schema.
    let get_image = &served["paths"]["/images/{uuid}"]["get"]["responses"];
    assert!(get_image["404"]["description"]
        .as_str()
        .unwrap()
        .contains("ResourceNotFound"));
    assert_eq!(
        get_image["404"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let error = &served["components"]["schemas"]["ErrorBody"]["properties"];
    assert!(
        error["code"].is_object() && error["message"].is_object() && error["errors"].is_object()
    );
}

/// A default (public mode) server documents only what it serves.
#[tokio::test]
async fn served_document_follows_the_configuration() {
    let s = TestServer::spawn().await;
    let (status, served) = s.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let paths = served["paths"].as_object().unwrap();
    for absent in [
        "/channels",
        "/images/{uuid}/clone",
        "/metrics",
        "/datasets/{arg}/{file}",
    ] {
        assert!(
            !paths.contains_key(absent),
            "{absent} is documented but not served"
        );
    }
    for present in [
        "/ping",
        "/images",
        "/images/{uuid}",
        "/images/{uuid}/file",
        "/datasets/{arg}",
    ] {
        assert!(
            paths.contains_key(present),
            "{present} is served but not documented"
        );
    }
    // What is documented is routed, what is not is the router's 404.
    let resp = s.get("/channels").send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// Every documented (path, method) reaches a handler: not 405, and not the
/// router's own 404 (`<path> does not exist`).
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let s = TestServer::spawn_with(EVERYTHING).await;
    let doc = imgapi_server::http::openapi::document();
    let sample = "00000000-0000-4000-8000-0000000000aa";
    let mut n = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template
            .replace("{uuid}", sample)
            .replace("{upload}", "u1")
            .replace("{arg}", sample)
            .replace("{file}", "file0")
            .replace("{item}", "lxd_combined.tar.gz");
        for (method, _) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let resp = s.req(method.clone(), &path).send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{method} {path}: {body}");
            assert!(
                !(status == 404 && body.contains(&format!("{path} does not exist"))),
                "{method} {path} is not routed: {body}"
            );
            n += 1;
        }
    }
    assert!(n >= 30, "{n} operations");
}
