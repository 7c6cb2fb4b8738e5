//! File and icon uploads/downloads: digests, limits, ranges, interrupted
//! uploads (api.md §5.4–§5.10, UC10).

use crate::store_probe::{puts_in_progress, s3_store};
use crate::support::*;
use imgapi_blob::BlobStore;
use md5::Md5;
use serde_json::json;
use sha1::{Digest, Sha1};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn upload_errors() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let got = status_json(
        s.put(&format!("/images/{uuid}/file"))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        got,
        (
            422,
            json!({"code": "InvalidParameter", "message": "missing \"compression\"", "errors": [{"field": "compression", "code": "Missing"}]})
        )
    );
    let got = status_json(
        s.put(&format!("/images/{uuid}/file?compression=zip"))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid compression \"zip\" (must be one of gzip, bzip2, xz, none)"),
    );
    let got = status_json(
        s.put(&format!("/images/{uuid}/file?compression=none&storage=foo"))
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("invalid storage \"foo\" (must be one of local, manta)"),
    );
    let got = status_json(
        s.put(&format!(
            "/images/{uuid}/file?compression=none&storage=local&account={OWNER}"
        ))
        .body("x")
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        got.1["errors"],
        json!([{"field": "storage", "code": "NotAllowed", "message": "Parameter cannot be specified by non-operators"}])
    );
    let got = status_json(
        s.put(&format!("/images/{uuid}/file?compression=none"))
            .body("")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        400,
        "Download",
        Some("image file size is 0 bytes, empty files are not allowed"),
    );
    let wrong = "0000000000000000000000000000000000000000";
    let got = status_json(
        s.put(&format!(
            "/images/{uuid}/file?compression=none&sha1={wrong}"
        ))
        .body("abc")
        .send()
        .await
        .unwrap(),
    )
    .await;
    let actual = hex::encode(Sha1::digest(b"abc"));
    assert_error(
        &got,
        400,
        "Download",
        Some(&format!(
            "\"sha1\" hash, {wrong}, does not match the uploaded file sha1 hash, {actual}"
        )),
    );
    let got = status_json(
        s.put(&format!("/images/{uuid}/file?compression=none"))
            .header("content-length", "21474836481")
            .body("")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        400,
        "Upload",
        Some("image file size 21474836481 (from Content-Length) exceeds the maximum allowed size, 20 GiB"),
    );
    // Nothing was kept by any failed upload.
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["files"], json!([]));
    assert_no_blobs(&s).await;
}

/// Every blob under the data dir belongs to some image; no staging leftovers.
async fn assert_no_blobs(s: &TestServer) {
    let files = s.data_dir.join("files");
    let mut stack = vec![files];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                found.push(e.path());
            }
        }
    }
    assert!(found.is_empty(), "leftover blobs: {found:?}");
}

/// The upload is first seen in progress (a local staging file, an S3
/// multipart upload: 20 MB is past the first 8 MiB part), then its client
/// is cut, then nothing of it remains: no object, no staging file, no
/// multipart upload.
#[tokio::test]
async fn interrupted_upload_leaves_no_trace() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let mut stream = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "PUT /images/{uuid}/file?compression=none HTTP/1.1\r\nHost: x\r\nContent-Length: 40000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![1u8; 20_000_000]).await.unwrap();
    stream.flush().await.unwrap();
    let mut seen = 0;
    for _ in 0..100 {
        seen = puts_in_progress(&s).await;
        if seen > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen > 0, "the upload was never seen in progress");
    // S3 lists a multipart upload before the put has read the answer that
    // created it: let the put hold its upload id before the cut.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(stream);
    // Give the server a moment to notice the disconnect and clean up.
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if puts_in_progress(&s).await == 0 {
            break;
        }
    }
    assert_eq!(
        puts_in_progress(&s).await,
        0,
        "staging data of the cut upload"
    );
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["files"], json!([]));
    assert_eq!(img["state"], "unactivated");
    assert_no_blobs(&s).await;
    if let Some(store) = s3_store(&s) {
        let left = store.list("").await.unwrap();
        assert!(left.is_empty(), "objects left: {left:?}");
    }
}

#[tokio::test]
async fn download_headers_ranges_and_reupload() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    s.upload(&uuid, vec![9; 10]).await; // replaced by the next upload
    let (status, _) = s.upload(&uuid, data.clone()).await;
    assert_eq!(status, 200);
    let resp = s.get(&format!("/images/{uuid}/file")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    let sha1 = hex::encode(Sha1::digest(&data));
    let md5 = base64_std(&Md5::digest(&data));
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["content-length"], "300000");
    assert_eq!(h["etag"], sha1.as_str());
    assert_eq!(h["content-md5"], md5.as_str());
    assert!(h.contains_key("last-modified"));
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data);

    let resp = s
        .get(&format!("/images/{uuid}/file"))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 100-199/300000");
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        data[100..200].to_vec()
    );
    let resp = s
        .get(&format!("/images/{uuid}/file"))
        .header("range", "bytes=299990-")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        data[299_990..].to_vec()
    );
    let resp = s
        .get(&format!("/images/{uuid}/file"))
        .header("range", "bytes=400000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */300000");
    let resp = s
        .get(&format!("/images/{uuid}/file"))
        .header("range", "bytes=0-9")
        .header("if-range", "not-the-sha1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a stale If-Range gets the whole file");

    // Conditional: the image ETag, not the file sha1 (original quirk, §1.8).
    let image_etag = s
        .get(&format!("/images/{uuid}"))
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let resp = s
        .get(&format!("/images/{uuid}/file"))
        .header("if-none-match", &sha1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .get(&format!("/images/{uuid}/file"))
        .header("if-none-match", &image_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"], sha1.as_str());
    let lm = h["last-modified"].to_str().unwrap().to_string();
    let resp = s
        .get(&format!("/images/{uuid}/file"))
        .header("if-modified-since", &lm)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    let got = s.get_json(&format!("/images/{uuid}/file?index=3")).await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image \"{uuid}\" has no file at index 3")),
    );
    let other = uuid_of(&s.create(json!({})).await);
    let got = s.get_json(&format!("/images/{other}/file")).await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image \"{other}\" has no file")),
    );
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn icons_uc10() {
    let s = TestServer::spawn().await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    let png = vec![0x89u8; 5123];
    let resp = s
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    let (status, img) = status_json(resp).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["icon"], true);
    let resp = s.get(&format!("/images/{uuid}/icon")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(
        resp.headers()["etag"],
        hex::encode(Sha1::digest(&png)).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), png);
    let got = status_json(
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/svg+xml")
            .body("x")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        400,
        "Upload",
        Some(
            "invalid content-type, image/svg+xml, must be one of image/jpeg, image/gif, image/png",
        ),
    );
    let got = status_json(
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/png")
            .body(vec![0u8; 131_073])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        400,
        "Upload",
        Some("icon size 131073 (from Content-Length) exceeds the maximum allowed size, 128 KiB"),
    );
    let got = status_json(
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/png")
            .body("")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 400, "Upload", None);
    let (status, img) = status_json(
        s.delete(&format!("/images/{uuid}/icon"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(img.get("icon").is_none());
    let got = status_json(
        s.delete(&format!("/images/{uuid}/icon"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image \"{uuid}\" has no icon")),
    );
    let got = s.get_json(&format!("/images/{uuid}/icon")).await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image \"{uuid}\" has no icon")),
    );
}

#[tokio::test]
async fn refused_uploads_still_get_their_answer() {
    // A client that sends the whole body before reading gets the 422, not a
    // broken pipe: the server drains what it refused.
    let s = TestServer::spawn().await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    for _ in 0..3 {
        let got = status_json(
            s.put(&format!("/images/{uuid}/file?compression=none"))
                .body(vec![7u8; 8 * 1024 * 1024])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&got, 422, "ImageFilesImmutable", None);
    }
    let got = status_json(
        s.put(&format!("/images/{uuid}/icon"))
            .header("content-type", "image/svg+xml")
            .body(vec![7u8; 100_000])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 400, "Upload", None);
}
