//! HEAD on every GET route: the GET answer's status and headers, no body.

use crate::support::*;
use http::Method;
use imgapi_server::http::operations::Operation;
use serde_json::json;

/// The optional GET routes switched on (`/channels` has its own server).
const OPTIONAL_ROUTES: &str = r#"
metrics_on_main = true
dsapi = "serve"
catalog = true
"#;

/// Headers whose values differ between two requests by design.
const VOLATILE: &[&str] = &["date", "x-request-id", "x-response-time"];

/// Routes whose body changes from one request to the next (uptime,
/// counters), so its length may too.
fn length_varies(path: &str) -> bool {
    path == "/metrics" || path == "/state"
}

#[tokio::test]
async fn every_get_route_answers_head_like_get_without_a_body() {
    let s = TestServer::spawn_with(OPTIONAL_ROUTES).await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    let resp = s
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/png")
        .body(b"\x89PNG fake icon".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, session) = status_json(
        s.post(&format!("/images/{uuid}/file/uploads?compression=none"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // An activated image takes no new file: the session route then answers
    // an error, which HEAD must mirror as well.
    let upload = session["upload_id"]
        .as_str()
        .unwrap_or("00000000-0000-4000-8000-000000000001")
        .to_string();
    let _ = status;

    let mut checked = 0;
    for op in Operation::ALL {
        let def = op.def();
        if def.method != Method::GET {
            continue;
        }
        if def.path == "/channels" {
            continue;
        }
        let path = def
            .path
            .replace("{uuid}", &uuid)
            .replace("{upload}", &upload)
            .replace("{arg}", &uuid)
            .replace("{file}", "file0");
        let get = s.get(&path).send().await.unwrap();
        let get_status = get.status();
        let get_headers = get.headers().clone();
        let get_len = get.bytes().await.unwrap().len();
        let head = s.req(Method::HEAD, &path).send().await.unwrap();
        assert_eq!(head.status(), get_status, "HEAD {path}");
        let head_headers = head.headers().clone();
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
        for (name, value) in &get_headers {
            if VOLATILE.contains(&name.as_str())
                || (name == "content-length" && length_varies(&path))
            {
                assert!(head_headers.contains_key(name), "HEAD {path}: no {name}");
                continue;
            }
            assert_eq!(head_headers.get(name), Some(value), "HEAD {path}: {name}");
        }
        for name in head_headers.keys() {
            assert!(get_headers.contains_key(name), "HEAD {path}: extra {name}");
        }
        // The length a GET body has is announced (RFC 9110 §9.3.2).
        if get_len > 0 && !length_varies(&path) && get_headers.contains_key("content-length") {
            assert_eq!(
                head_headers["content-length"],
                get_len.to_string(),
                "{path}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 15, "{checked} GET routes");

    // GetImageFile: the file's headers without its bytes.
    let head = s
        .req(Method::HEAD, &format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    for name in [
        "content-length",
        "etag",
        "content-md5",
        "repr-digest",
        "accept-ranges",
    ] {
        assert!(
            head.headers().contains_key(name),
            "GetImageFile HEAD: no {name}"
        );
    }
    assert_eq!(head.headers()["content-length"], "11");
}

#[tokio::test]
async fn list_channels_answers_head() {
    let s = TestServer::spawn_with("[[channels]]\nname = \"dev\"\ndefault = true\n").await;
    let get = s.get("/channels").send().await.unwrap();
    assert_eq!(get.status(), 200);
    let len = get.bytes().await.unwrap().len();
    let head = s.req(Method::HEAD, "/channels").send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], len.to_string());
    assert!(head.bytes().await.unwrap().is_empty());
}
