//! Resumable upload sessions and SHA-256 (docs/uploads.md): the
//! session endpoints, their errors, expiry, and a 1 GiB upload interrupted
//! by cut connections, a server restart and a change of instance. Runs on
//! whatever backend pair the suite runs on (sqlite+local, postgres+s3).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use imgapi_blob::BlobStore as _;
use md5::Md5;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// dc mode without auth: callers are operators (inclAdminFields allowed).
const DC: &str = "mode = \"dc\"\n";

// ------------------------------------------------------------- the data

/// Byte `i` of the pseudo-random test file `seed` is byte `i % 8` of
/// splitmix64(seed + i / 8): any range can be generated on its own.
fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    let mut word = offset / 8;
    let mut skip = (offset % 8) as usize;
    let mut at = 0;
    while at < out.len() {
        let mut z = seed.wrapping_add(word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let bytes = z.to_le_bytes();
        let n = (8 - skip).min(out.len() - at);
        out[at..at + n].copy_from_slice(&bytes[skip..skip + n]);
        at += n;
        skip = 0;
        word += 1;
    }
}

fn bytes_of(seed: u64, start: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    fill(seed, start, &mut v);
    v
}

/// `start..start+len` of file `seed` as a streamed body (1 MiB pieces,
/// generated on the fly: nothing is held in memory).
fn body_of(seed: u64, start: u64, len: u64) -> reqwest::Body {
    const PIECE: u64 = 1 << 20;
    let stream = futures_util::stream::unfold(0u64, move |done| async move {
        if done >= len {
            return None;
        }
        let n = PIECE.min(len - done);
        let piece = Bytes::from(bytes_of(seed, start + done, n));
        Some((Ok::<_, std::io::Error>(piece), done + n))
    });
    reqwest::Body::wrap_stream(stream)
}

struct Expected {
    sha1: String,
    md5: String,
    sha256: String,
}

fn digests_of(seed: u64, size: u64) -> Expected {
    let (mut s1, mut m5, mut s256) = (Sha1::new(), Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0;
    while at < size {
        let n = (buf.len() as u64).min(size - at) as usize;
        fill(seed, at, &mut buf[..n]);
        s1.update(&buf[..n]);
        m5.update(&buf[..n]);
        s256.update(&buf[..n]);
        at += n as u64;
    }
    Expected {
        sha1: hex::encode(s1.finalize()),
        md5: base64::engine::general_purpose::STANDARD.encode(m5.finalize()),
        sha256: hex::encode(s256.finalize()),
    }
}

// ------------------------------------------------------- the requests

/// `POST /images/:uuid/file/uploads` → (status, body, headers).
async fn start(base: &str, uuid: &str, query: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/images/{uuid}/file/uploads?{query}"))
        .send()
        .await
        .unwrap();
    let headers = resp.headers().clone();
    let (status, body) = status_json(resp).await;
    (status, body, headers)
}

/// Start a session on `s` for image `uuid`; returns (upload id, chunk_size_min).
async fn start_ok(s: &TestServer, uuid: &str, query: &str) -> (String, u64) {
    let (status, body, _) = start(&s.url, uuid, query).await;
    assert_eq!(status, 201, "{body}");
    (
        body["upload_id"].as_str().unwrap().to_string(),
        body["chunk_size_min"].as_u64().unwrap(),
    )
}

fn session_url(base: &str, uuid: &str, id: &str) -> String {
    format!("{base}/images/{uuid}/file/uploads/{id}")
}

/// PUT one chunk `start..start+len` (of `total`, or `*`) of file `seed`.
async fn put_chunk(
    base: &str,
    uuid: &str,
    id: &str,
    seed: u64,
    start: u64,
    len: u64,
    total: Option<u64>,
) -> Result<(u16, Value, Option<u64>), reqwest::Error> {
    let total = total.map_or("*".to_string(), |t| t.to_string());
    let resp = reqwest::Client::new()
        .put(session_url(base, uuid, id))
        .header(
            "content-range",
            format!("bytes {start}-{}/{total}", start + len - 1),
        )
        .header("content-length", len)
        .body(body_of(seed, start, len))
        .send()
        .await?;
    let offset = resp
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, body, offset))
}

async fn session_state(base: &str, uuid: &str, id: &str) -> (u16, Value) {
    status_json(
        reqwest::Client::new()
            .get(session_url(base, uuid, id))
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn finish(base: &str, uuid: &str, id: &str, query: &str) -> (u16, Value) {
    status_json(
        reqwest::Client::new()
            .post(format!(
                "{}?action=finish{query}",
                session_url(base, uuid, id)
            ))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Staged part files of the local store (0 on S3, where they are not files).
fn staged_files(s: &TestServer) -> usize {
    std::fs::read_dir(s.data_dir.join("files/.staging/sessions"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ------------------------------------------------------------ the tests

/// The whole life of a session: start (201, Location, Upload-Offset),
/// chunks (an out-of-order one is 416 with the offset, a received one is a
/// 200 no-op), GET/HEAD, finish → the image with the file; then sha256 is
/// shown only with inclAdminFields and sent as Repr-Digest.
#[tokio::test]
async fn session_life_and_sha256_exposure() {
    // dc mode without auth: every caller is an operator, inclAdminFields is allowed.
    let s = TestServer::spawn_with(DC).await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let (status, body, headers) = start(&s.url, &uuid, "compression=gzip").await;
    assert_eq!(status, 201, "{body}");
    let id = body["upload_id"].as_str().unwrap().to_string();
    assert_eq!(body["offset"], 0);
    assert_eq!(body["size"], Value::Null);
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        headers["location"],
        format!("/images/{uuid}/file/uploads/{id}").as_str()
    );
    assert_eq!(headers["upload-offset"], "0");
    let min = body["chunk_size_min"].as_u64().unwrap();
    assert_eq!(min, if expected_stor() == "s3" { 5 << 20 } else { 1 });

    let chunk = min.max(1 << 20);
    let size = 2 * chunk + 4321;
    let seed = 7;
    // Out of order: 416, the offset in the body and in Upload-Offset.
    let (status, body, offset) = put_chunk(&s.url, &uuid, &id, seed, chunk, chunk, None)
        .await
        .unwrap();
    assert_eq!(status, 416, "{body}");
    assert_eq!(body["code"], "RequestedRangeNotSatisfiable");
    assert_eq!(body["offset"], 0);
    assert_eq!(offset, Some(0));
    // In order.
    let (status, body, offset) = put_chunk(&s.url, &uuid, &id, seed, 0, chunk, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["offset"].as_u64(), offset),
        (Some(chunk), Some(chunk))
    );
    // The same chunk again: 200, nothing changes.
    let (status, body, _) = put_chunk(&s.url, &uuid, &id, seed, 0, chunk, None)
        .await
        .unwrap();
    assert_eq!(
        (status, body["offset"].as_u64()),
        (200, Some(chunk)),
        "{body}"
    );
    // A chunk overlapping what the server has: only the new bytes are kept.
    let (status, body, _) = put_chunk(&s.url, &uuid, &id, seed, chunk - 10, chunk + 10, Some(size))
        .await
        .unwrap();
    assert_eq!(
        (status, body["offset"].as_u64()),
        (200, Some(2 * chunk)),
        "{body}"
    );
    assert_eq!(body["size"], size);
    // GET and HEAD.
    let (status, state) = session_state(&s.url, &uuid, &id).await;
    assert_eq!(status, 200);
    assert_eq!(state["offset"], 2 * chunk);
    assert_eq!(state["upload_id"], id.as_str());
    let head = reqwest::Client::new()
        .head(session_url(&s.url, &uuid, &id))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["upload-offset"],
        (2 * chunk).to_string().as_str()
    );
    // Finishing early is refused and keeps the session.
    let got = finish(&s.url, &uuid, &id, "").await;
    assert_error(&got, 400, "Upload", None);
    assert!(got.1["message"].as_str().unwrap().contains("incomplete"));
    // The last chunk, then finish with every expected digest.
    let (status, body, _) = put_chunk(&s.url, &uuid, &id, seed, 2 * chunk, 4321, Some(size))
        .await
        .unwrap();
    assert_eq!(
        (status, body["offset"].as_u64()),
        (200, Some(size)),
        "{body}"
    );
    let want = digests_of(seed, size);
    let (status, img) = finish(
        &s.url,
        &uuid,
        &id,
        &format!("&sha1={}&sha256={}&size={size}", want.sha1, want.sha256),
    )
    .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["files"][0]["sha1"], want.sha1.as_str());
    assert_eq!(img["files"][0]["size"], size);
    assert_eq!(img["files"][0]["compression"], "gzip");
    assert!(img["files"][0].get("sha256").is_none(), "{img}");
    // The session is over.
    assert_eq!(session_state(&s.url, &uuid, &id).await.0, 404);
    assert_eq!(staged_files(&s), 0);

    // sha256: only with inclAdminFields, never in the plain object.
    let (_, plain) = s.get_json(&format!("/images/{uuid}")).await;
    assert!(plain["files"][0].get("sha256").is_none(), "{plain}");
    let (_, admin) = s
        .get_json(&format!("/images/{uuid}?inclAdminFields=true"))
        .await;
    assert_eq!(admin["files"][0]["sha256"], want.sha256.as_str(), "{admin}");
    let (_, list) = s.get_json("/images?state=all").await;
    assert!(list[0]["files"][0].get("sha256").is_none());

    // GetImageFile: Repr-Digest (and Digest), also on a 206.
    let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&want.sha256).unwrap());
    for range in [None, Some("bytes=5-99")] {
        let mut req = s.get(&format!("/images/{uuid}/file"));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), if range.is_some() { 206 } else { 200 });
        assert_eq!(
            resp.headers()["repr-digest"],
            format!("sha-256=:{b64}:").as_str()
        );
        assert_eq!(resp.headers()["digest"], format!("SHA-256={b64}").as_str());
        assert_eq!(resp.headers()["content-md5"], want.md5.as_str());
        let bytes = resp.bytes().await.unwrap();
        if range.is_none() {
            assert_eq!(hex::encode(Sha256::digest(&bytes)), want.sha256);
        }
    }
    // A plain PUT stores sha256 too; the answer's files do not show it.
    let uuid2 = uuid_of(&s.create(json!({})).await);
    let (status, img) = s.upload(&uuid2, b"abc".to_vec()).await;
    assert_eq!(status, 200);
    assert!(img["files"][0].get("sha256").is_none());
    let (_, admin) = s
        .get_json(&format!("/images/{uuid2}?inclAdminFields=true"))
        .await;
    assert_eq!(
        admin["files"][0]["sha256"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// A finish whose digest does not match is refused (400 Download, the
/// AddImageFile message), the session ends and nothing is kept: the
/// image still has no file, and no staged or committed bytes remain.
#[tokio::test]
async fn wrong_digest_is_refused_and_leaves_nothing() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    for (query, what) in [
        ("&sha256=0000", "sha256"),
        ("&sha1=da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1"),
        ("&size=999", "size"),
    ] {
        let (id, min) = start_ok(&s, &uuid, "compression=none").await;
        let len = min.max(1000);
        let (status, _, _) = put_chunk(&s.url, &uuid, &id, 3, 0, len, Some(len))
            .await
            .unwrap();
        assert_eq!(status, 200);
        let got = finish(&s.url, &uuid, &id, query).await;
        assert_error(&got, 400, "Download", None);
        let message = got.1["message"].as_str().unwrap().to_string();
        assert!(message.contains(&format!("\"{what}\"")), "{message}");
        assert_eq!(
            session_state(&s.url, &uuid, &id).await.0,
            404,
            "session ended"
        );
        let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
        assert_eq!(img["files"], json!([]), "image still without file");
    }
    // An expected sha1 given at the start is checked at the end too.
    let (id, min) = start_ok(&s, &uuid, "compression=none&sha1=0000").await;
    let len = min.max(10);
    put_chunk(&s.url, &uuid, &id, 3, 0, len, Some(len))
        .await
        .unwrap();
    let got = finish(&s.url, &uuid, &id, "").await;
    assert_error(&got, 400, "Download", None);
    assert_eq!(staged_files(&s), 0, "no staged bytes");
    let leftovers: Vec<_> = walk(&s.data_dir.join("files"));
    assert!(leftovers.is_empty(), "no bytes kept: {leftovers:?}");
    if expected_stor() == "s3" {
        let prefix = std::fs::read_to_string(s.data_dir.join("s3-prefix")).unwrap();
        let store = s3_store(&prefix);
        assert_eq!(
            store.list("").await.unwrap(),
            Vec::<String>::new(),
            "no object kept"
        );
        assert_eq!(
            pending_s3_uploads(&prefix).await,
            0,
            "no multipart upload left"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// The checks of AddImageFile and the session endpoints' own errors.
#[tokio::test]
async fn session_errors() {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    // Creating: compression and storage as AddImageFile; size.
    let (status, body, _) = start(&s.url, &uuid, "").await;
    assert_error(
        &(status, body),
        422,
        "InvalidParameter",
        Some("missing \"compression\""),
    );
    let (status, body, _) = start(&s.url, &uuid, "compression=zip").await;
    assert_error(&(status, body), 422, "InvalidParameter", None);
    let (status, body, _) = start(&s.url, &uuid, "compression=none&size=abc").await;
    assert_error(&(status, body), 422, "InvalidParameter", None);
    let (status, body, _) = start(&s.url, &uuid, "compression=none&size=21474836481").await;
    assert_error(&(status, body), 400, "Upload", None);
    let (status, body, _) = start(&s.url, "not-a-uuid", "compression=none").await;
    assert_eq!(status, 404, "{body}");
    let missing = uuid::Uuid::new_v4();
    let (status, _, _) = start(&s.url, &missing.to_string(), "compression=none").await;
    assert_eq!(status, 404);
    // Activated images: ImageFilesImmutable.
    let active = uuid_of(&s.publish(json!({})).await);
    let (status, body, _) = start(&s.url, &active, "compression=none").await;
    assert_error(&(status, body), 422, "ImageFilesImmutable", None);

    let (id, min) = start_ok(&s, &uuid, "compression=none&size=100000000").await;
    let url = session_url(&s.url, &uuid, &id);
    let put = |range: Option<&str>| {
        let mut req = reqwest::Client::new().put(&url).body(vec![0u8; 10]);
        if let Some(r) = range {
            req = req.header("content-range", r);
        }
        async move { status_json(req.send().await.unwrap()).await }
    };
    assert_error(&put(None).await, 422, "InvalidParameter", None);
    assert_error(&put(Some("bytes=0-9")).await, 422, "InvalidParameter", None);
    assert_error(
        &put(Some("bytes 9-0/10")).await,
        422,
        "InvalidParameter",
        None,
    );
    // Total contradicting the size given at the start; Content-Length
    // contradicting the range; a body shorter than its range.
    assert_error(
        &put(Some("bytes 0-9/20")).await,
        422,
        "InvalidParameter",
        None,
    );
    assert_error(
        &put(Some("bytes 0-19/*")).await,
        422,
        "InvalidParameter",
        None,
    );
    if min > 1 {
        // S3: a small chunk that is not the last.
        assert_error(
            &put(Some("bytes 0-9/*")).await,
            422,
            "InvalidParameter",
            None,
        );
    } else {
        let short = reqwest::Client::new()
            .put(&url)
            .header("content-range", "bytes 0-9/*")
            .body(body_of(1, 0, 5))
            .send()
            .await;
        if let Ok(resp) = short {
            // The server sees the body end early (or the framing breaks).
            assert_ne!(resp.status(), 200);
        }
    }
    assert_eq!(session_state(&s.url, &uuid, &id).await.1["offset"], 0);
    // Unknown, malformed, or other image's sessions: 404.
    let other = uuid_of(&s.create(json!({})).await);
    for (img, sid) in [
        (uuid.as_str(), uuid::Uuid::new_v4().to_string()),
        (uuid.as_str(), "nope".to_string()),
        (other.as_str(), id.clone()),
    ] {
        assert_eq!(session_state(&s.url, img, &sid).await.0, 404, "{img} {sid}");
    }
    // Actions.
    let got = status_json(
        reqwest::Client::new()
            .post(format!("{url}?action=frobnicate"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 422, "InvalidParameter", None);
    // 405 with Allow.
    let resp = reqwest::Client::new().patch(&url).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD, PUT, POST, DELETE");
    let resp = reqwest::Client::new()
        .get(format!("{}/images/{uuid}/file/uploads", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    // DELETE aborts: 204, then 404.
    let resp = reqwest::Client::new().delete(&url).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(session_state(&s.url, &uuid, &id).await.0, 404);
    let resp = reqwest::Client::new().delete(&url).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(staged_files(&s), 0);
    // The plain PUT is unchanged.
    let (status, img) = s.upload(&uuid, b"plain".to_vec()).await;
    assert_eq!(status, 200, "{img}");
}

/// Sessions that receive nothing for the TTL disappear, with their staged
/// bytes (swept at start-up and periodically).
#[tokio::test]
async fn expired_sessions_are_swept() {
    let s = TestServer::spawn_with("upload_session_ttl_secs = 1\n").await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let (id, min) = start_ok(&s, &uuid, "compression=none").await;
    let len = min.max(4096);
    let (status, _, _) = put_chunk(&s.url, &uuid, &id, 5, 0, len, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    if expected_stor() == "local" {
        assert_eq!(staged_files(&s), 1);
    }
    // Expired: not usable any more, at once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(session_state(&s.url, &uuid, &id).await.0, 404);
    let (status, _, _) = put_chunk(&s.url, &uuid, &id, 5, len, len, None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    // And swept: the staged part is removed within a few sweep periods.
    let mut swept = false;
    for _ in 0..100 {
        if staged_files(&s) == 0 {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        swept,
        "the staged part of the expired session is still there"
    );
    if expected_stor() == "s3" {
        // On S3 the multipart upload is aborted: no pending upload remains
        // under the server's prefix.
        let prefix = std::fs::read_to_string(s.data_dir.join("s3-prefix")).unwrap();
        let mut gone = false;
        for _ in 0..100 {
            if pending_s3_uploads(&prefix).await == 0 {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            gone,
            "the S3 multipart upload of the expired session remains"
        );
    }
}

/// The test bucket under a server's prefix (S3 runs only).
fn s3_store(prefix: &str) -> imgapi_blob::S3BlobStore {
    crate::store_probe::s3_store_at(prefix)
}

/// Incomplete multipart uploads under `prefix` in the test bucket.
async fn pending_s3_uploads(prefix: &str) -> usize {
    s3_store(prefix)
        .pending_uploads()
        .await
        .expect("the S3 server must list multipart uploads")
        .len()
}

// ------------------------------------------------- the 1 GiB upload

/// A TCP proxy that cuts the connection carrying the client→server byte
/// number `cut_at` (counted over all connections; once, then disarmed),
/// and counts those bytes.
struct CutProxy {
    url: String,
    up: Arc<AtomicU64>,
    cut_at: Arc<AtomicU64>,
}

impl CutProxy {
    async fn start(target: String) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicU64::new(0));
        let cut_at = Arc::new(AtomicU64::new(u64::MAX));
        let (up2, cut2) = (Arc::clone(&up), Arc::clone(&cut_at));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (up, cut_at) = (Arc::clone(&up2), Arc::clone(&cut2));
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let upward = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match cr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            let before = up.fetch_add(n as u64, Ordering::SeqCst);
                            let cut = cut_at.load(Ordering::SeqCst);
                            if before + n as u64 >= cut {
                                cut_at.store(u64::MAX, Ordering::SeqCst);
                                let keep = cut.saturating_sub(before) as usize;
                                let _ = sw.write_all(&buf[..keep.min(n)]).await;
                                return; // dropping both halves resets the connection
                            }
                            if sw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let downward = async {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    };
                    tokio::select! {
                        () = upward => {}
                        () = downward => {}
                    }
                });
            }
        });
        CutProxy {
            url: format!("http://{addr}"),
            up,
            cut_at,
        }
    }

    /// Cut once `bytes` more have gone up.
    fn cut_after(&self, bytes: u64) {
        self.cut_at
            .store(self.up.load(Ordering::SeqCst) + bytes, Ordering::SeqCst);
    }
}

/// 1 GiB in 64 MiB chunks, interrupted several times: two connections cut
/// mid-chunk (through a cutting proxy), a server restart, and a second
/// instance on the same stores that receives the second half and finishes.
/// The file's digests are right, and what was sent in all is less than the
/// file plus two chunks (nothing the server had was sent again).
///
/// Takes ~15-40 s here (debug build, 2 cores); set `IMGAPI_TEST_UPLOAD_MIB`
/// to run it with another size (e.g. 256 for a quick run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_upload_survives_cuts_restarts_and_instances() {
    #[allow(clippy::disallowed_methods)] // test size switch
    let mib: u64 = std::env::var("IMGAPI_TEST_UPLOAD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let seed = 0x1234_5678;
    let a = TestServer::spawn_with(DC).await;
    let uuid = uuid_of(&a.create(json!({})).await);
    let (id, min) = start_ok(&a, &uuid, &format!("compression=none&size={size}")).await;
    let chunk = (64u64 << 20).max(min).min(size);
    let chunks = size.div_ceil(chunk);
    let proxy = CutProxy::start(a.addr()).await;
    let mut sent = 0u64;
    let mut cuts = 0;

    // Send chunk `k` to `base`; on a failure ask `ask` for the offset and
    // send again from there (as a client would).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        base: &str,
        ask: &str,
        uuid: &str,
        id: &str,
        seed: u64,
        size: u64,
        chunk: u64,
        k: u64,
        sent: &mut u64,
    ) -> bool {
        let start = k * chunk;
        let len = chunk.min(size - start);
        let mut attempt = 0;
        let result = loop {
            let result = put_chunk(base, uuid, id, seed, start, len, Some(size)).await;
            // The server may not have noticed a cut connection yet: its
            // lease is then still held (409); a client waits and retries.
            if matches!(result, Ok((409, _, _))) && attempt < 50 {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            break result;
        };
        match result {
            Ok((200, body, _)) => {
                assert_eq!(body["offset"], start + len);
                *sent += len;
                true
            }
            other => {
                let (status, state) = session_state(ask, uuid, id).await;
                assert_eq!(status, 200, "{state}");
                assert_eq!(
                    state["offset"], start,
                    "a cut chunk is not recorded ({other:?})"
                );
                false
            }
        }
    }

    let mut k = 0;
    // Instance A, through the proxy, cut twice mid-chunk.
    while k < (chunks / 4).max(3) {
        if k == 1 || k == 2 && cuts < 2 {
            proxy.cut_after(chunk / 3 + k * 1000);
            let before = proxy.up.load(Ordering::SeqCst);
            let ok = send(
                &proxy.url, &a.url, &uuid, &id, seed, size, chunk, k, &mut sent,
            )
            .await;
            assert!(!ok, "chunk {k} should have been cut");
            sent += proxy.up.load(Ordering::SeqCst) - before;
            cuts += 1;
        }
        assert!(send(&proxy.url, &a.url, &uuid, &id, seed, size, chunk, k, &mut sent).await);
        k += 1;
    }
    assert_eq!(cuts, 2);
    // A restart of A (same data dir, same stores).
    let dir = a.stop().await;
    let data_dir = dir.as_ref().unwrap().path().to_path_buf();
    let a2 = TestServer::spawn_in(&data_dir, DC).await;
    while k < chunks / 2 {
        assert!(send(&a2.url, &a2.url, &uuid, &id, seed, size, chunk, k, &mut sent).await);
        k += 1;
    }
    // A second instance on the same stores takes the rest and finishes.
    let b = TestServer::spawn_in(&data_dir, DC).await;
    let (status, state) = session_state(&b.url, &uuid, &id).await;
    assert_eq!((status, state["offset"].as_u64()), (200, Some(k * chunk)));
    while k < chunks {
        assert!(send(&b.url, &b.url, &uuid, &id, seed, size, chunk, k, &mut sent).await);
        k += 1;
    }
    let want = digests_of(seed, size);
    let (status, img) = finish(
        &b.url,
        &uuid,
        &id,
        &format!("&sha1={}&sha256={}&size={size}", want.sha1, want.sha256),
    )
    .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["files"][0]["sha1"], want.sha1.as_str());
    assert_eq!(img["files"][0]["size"], size);
    assert!(
        sent < size + 2 * chunk,
        "sent {sent} bytes for a {size}-byte file in {chunk}-byte chunks"
    );
    // Every instance serves it with the right digests (first bytes only).
    for server in [&a2, &b] {
        let (_, admin) = server
            .get_json(&format!("/images/{uuid}?inclAdminFields=true"))
            .await;
        assert_eq!(admin["files"][0]["sha256"], want.sha256.as_str());
        let resp = server
            .get(&format!("/images/{uuid}/file"))
            .header("range", "bytes=0-1048575")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.headers()["content-md5"], want.md5.as_str());
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(hex::decode(&want.sha256).unwrap());
        assert_eq!(
            resp.headers()["repr-digest"],
            format!("sha-256=:{b64}:").as_str()
        );
        let head = resp.bytes().await.unwrap();
        assert_eq!(&head[..], &bytes_of(seed, 0, 1 << 20)[..]);
    }
    assert_eq!(staged_files(&b), 0);
    // Free the GiB (the S3 bucket outlives the test).
    let deleted = b.delete(&format!("/images/{uuid}")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    drop(dir);
}

/// A session whose lease another request holds answers 409 with
/// `Retry-After` (the seconds left on that lease) and says so in its
/// message; once the holder's client hangs up, the session is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_session_says_when_it_frees() {
    // Lease = body idle timeout + 30 s.
    let s = TestServer::spawn_with(&format!("{DC}body_idle_timeout_secs = 10\n")).await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let (id, min) = start_ok(&s, &uuid, "compression=none").await;
    let len = min.max(4096);

    // The holder: a chunk whose body stops half-way, its connection open.
    let mut holder = TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "PUT /images/{uuid}/file/uploads/{id} HTTP/1.1\r\nHost: {}\r\nContent-Range: bytes 0-{}/*\r\nContent-Length: {len}\r\n\r\n",
        s.addr(),
        len - 1
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    holder.write_all(&bytes_of(1, 0, len / 2)).await.unwrap();

    let client = reqwest::Client::new();
    let mut busy = None;
    for _ in 0..100 {
        let resp = client
            .put(session_url(&s.url, &uuid, &id))
            .header("content-range", format!("bytes 0-{}/*", len - 1))
            .body(bytes_of(1, 0, len))
            .send()
            .await
            .unwrap();
        if resp.status() == 409 {
            busy = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = busy.expect("the second writer never saw the session busy");
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=40).contains(&retry_after), "Retry-After {retry_after}");
    assert!(retry_after >= 35, "the lease was just taken: {retry_after}");
    let (_, body) = status_json(resp).await;
    assert_eq!(
        body,
        json!({"code": "UploadSessionBusy", "message": format!(
            "upload session {id} is busy: another request is writing to or finishing it; retry in {retry_after} s"
        )})
    );

    // The holder's client hangs up: its lease is released at once.
    drop(holder);
    let mut stored = None;
    for _ in 0..100 {
        let got = put_chunk(&s.url, &uuid, &id, 1, 0, len, None)
            .await
            .unwrap();
        if got.0 != 409 {
            stored = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body, _) = stored.expect("the session stayed busy after the holder left");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["offset"], len);
}
