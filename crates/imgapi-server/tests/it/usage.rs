//! Usage for billing: `GET /usage` (operators only) and `imgapi usage`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

fn owner_entry<'a>(usage: &'a Value, owner: &str) -> &'a Value {
    usage["owners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["owner"] == owner)
        .unwrap_or_else(|| panic!("{owner} not in {usage}"))
}

#[tokio::test]
async fn usage_per_owner_and_billing_tag() {
    let s = TestServer::spawn().await;
    // OWNER: an active image with an 11-byte file and a 5000-byte icon,
    // tagged gold and fast; an unactivated one without file, tagged gold.
    let a = s.publish(json!({"billing_tags": ["gold", "fast"]})).await;
    let resp = s
        .put(&format!("/images/{}/icon", uuid_of(&a)))
        .header("content-type", "image/png")
        .body(vec![0x89u8; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.create(json!({"billing_tags": ["gold"]})).await;
    // BOB: one active image.
    s.publish(json!({"owner": BOB})).await;

    let (status, all) = s.get_json("/usage").await;
    assert_eq!(status, 200, "{all}");
    let o = owner_entry(&all, OWNER);
    assert_eq!(
        *o,
        json!({
            "owner": OWNER, "images": 2, "activeImages": 1, "files": 1, "fileBytes": 11,
            "icons": 1, "iconBytes": 5000, "bytes": 5011,
            "billingTags": {"fast": {"images": 1, "bytes": 5011}, "gold": {"images": 2, "bytes": 5011}},
        })
    );
    assert_eq!(owner_entry(&all, BOB)["bytes"], 11);
    assert_eq!(
        all["totals"],
        json!({"owners": 2, "images": 3, "bytes": 5022})
    );
    assert_eq!(
        all["billingTags"]["gold"],
        json!({"images": 2, "bytes": 5011})
    );

    let (status, bob) = s.get_json(&format!("/usage?owner={BOB}")).await;
    assert_eq!(status, 200);
    assert_eq!(bob["owners"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        bob["totals"],
        json!({"owners": 1, "images": 1, "bytes": 11})
    );
    let (_, nobody) = s.get_json(&format!("/usage?owner={CAROL}")).await;
    assert_eq!(nobody["owners"], json!([]));

    // Operators only; a malformed owner is refused.
    let got = s.get_json(&format!("/usage?account={OWNER}")).await;
    assert_error(
        &got,
        403,
        "OperatorOnly",
        Some("this endpoint may only be called by an operator"),
    );
    let got = s.get_json("/usage?owner=bob").await;
    assert_error(&got, 422, "InvalidParameter", None);
    assert_eq!(got.1["errors"][0]["field"], "owner");
    let resp = s.post("/usage").send().await.unwrap();
    assert_eq!(resp.status(), 405);

    // A delete takes the image's bytes away.
    let resp = s
        .delete(&format!("/images/{}", uuid_of(&a)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, after) = s.get_json(&format!("/usage?owner={OWNER}")).await;
    assert_eq!(
        after["totals"],
        json!({"owners": 1, "images": 1, "bytes": 0})
    );
    assert_eq!(
        after["billingTags"],
        json!({"gold": {"images": 1, "bytes": 0}})
    );
}

/// A file counts once its upload has committed: never while its bytes are
/// still arriving.
#[tokio::test]
async fn an_upload_in_flight_does_not_count_until_committed() {
    let s = TestServer::spawn().await;
    let img = s.create(json!({"owner": CAROL})).await;
    let uuid = uuid_of(&img);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
    let upload = tokio::spawn(
        s.put(&format!("/images/{uuid}/file?compression=none"))
            .body(body)
            .send(),
    );
    tx.send(Ok(vec![1u8; 64 * 1024])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, during) = s.get_json(&format!("/usage?owner={CAROL}")).await;
    assert_eq!(
        owner_entry(&during, CAROL)["files"],
        0,
        "a file in flight counts: {during}"
    );
    assert_eq!(owner_entry(&during, CAROL)["bytes"], 0);
    tx.send(Ok(vec![2u8; 1000])).await.unwrap();
    drop(tx);
    let resp = upload.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let (_, after) = s.get_json(&format!("/usage?owner={CAROL}")).await;
    assert_eq!(owner_entry(&after, CAROL)["bytes"], 64 * 1024 + 1000);
}

fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn usage_command_prints_what_the_endpoint_answers() {
    let s = TestServer::spawn().await;
    s.publish(json!({"billing_tags": ["gold"]})).await;
    s.publish(json!({"owner": BOB})).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imgapi.toml");
    std::fs::write(&config, &s.config_toml).unwrap();
    let bin = env!("CARGO_BIN_EXE_imgapi");
    let out = std::process::Command::new(bin)
        .args(["usage", "-j", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, api) = s.get_json("/usage").await;
    assert_eq!(cli, api);

    let out = std::process::Command::new(bin)
        .args(["usage", "--owner", BOB, "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(BOB) && !text.contains(OWNER), "{text}");
    assert!(
        text.contains("total: 1 owner(s), 1 image(s), 11 bytes"),
        "{text}"
    );

    let out = std::process::Command::new(bin)
        .args(["usage", "--config", "/nonexistent/imgapi.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
