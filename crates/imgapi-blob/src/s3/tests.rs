//! S3 backend tests. The ones that need a server run when `S3_ENDPOINT`
//! (plus `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` and
//! `S3_BUCKET` or `BUCKET`) is set — `.ci/garage-start.sh` and
//! `.ci/moto-start.sh` print that line — and otherwise print SKIP and pass.
//! The server must list multipart uploads (Garage and moto do; s3s-fs does
//! not, so the abort checks fail there rather than pass unchecked).
//! Each test works under its own random key prefix, so runs never collide.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::*;
use crate::digest;
use crate::testsuite::{self, chunked, random_bytes};

const SKIP: &str = "SKIP: S3 conformance suite needs S3_ENDPOINT (started by .ci/garage-start.sh)";

#[allow(clippy::disallowed_methods)] // tests read their target from the environment
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Config for the server named by the environment, under a fresh prefix.
fn env_config() -> Option<S3Config> {
    let endpoint = env("S3_ENDPOINT")?;
    Some(S3Config {
        endpoint: Some(endpoint),
        bucket: env("S3_BUCKET")
            .or_else(|| env("BUCKET"))
            .unwrap_or_else(|| "imgapi-test".into()),
        region: env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        prefix: format!("imgapi-test/{}", uuid::Uuid::new_v4().simple()),
        access_key_id: env("AWS_ACCESS_KEY_ID"),
        secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
    })
}

fn env_store() -> Option<S3BlobStore> {
    match env_config() {
        Some(cfg) => Some(S3BlobStore::open(cfg).expect("open S3 store")),
        None => {
            eprintln!("{SKIP}");
            None
        }
    }
}

async fn read_all(read: BlobRead) -> Vec<u8> {
    let mut stream = read.stream;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("read chunk"));
    }
    out
}

/// Incomplete multipart uploads of `key`. A server that cannot list them
/// fails the test: the abort checks would otherwise prove nothing.
async fn uploads_of(store: &S3BlobStore, key: &str) -> Vec<PendingUpload> {
    match store.pending_uploads().await {
        Ok(all) => all.into_iter().filter(|u| u.key == key).collect(),
        Err(e) => panic!("the S3 server must list multipart uploads: {e}"),
    }
}

/// Wait (up to 10 s, for the abort spawned by a dropped put) until `key`
/// has no incomplete multipart upload.
async fn assert_no_uploads(store: &S3BlobStore, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = uploads_of(store, key).await;
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "multipart uploads left for {key}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_absent(store: &S3BlobStore, key: &str) {
    assert!(matches!(store.stat(key).await, Err(BlobError::NotFound(_))));
    let listed = store.list("").await.expect("list");
    assert!(!listed.iter().any(|k| k == key), "{key} listed: {listed:?}");
}

// ------------------------------------------------------- against a server

/// Every call on a store whose bucket does not exist fails with
/// `Inaccessible` naming the bucket, in one short line (no S3 XML).
#[tokio::test]
async fn a_missing_bucket_is_named_by_every_call() {
    let Some(cfg) = env_config() else {
        eprintln!("{SKIP}");
        return;
    };
    let bucket = format!("imgapi-gone-{}", uuid::Uuid::new_v4().simple());
    let store = S3BlobStore::open(S3Config {
        bucket: bucket.clone(),
        ..cfg
    })
    .expect("open");
    let expected = format!("storage is unavailable: bucket {bucket:?} does not exist");
    let body = || chunked(Bytes::from_static(b"bytes"), &[2]);
    let results = [
        ("check", store.check().await.err()),
        ("stat", store.stat("a/b").await.err()),
        ("get", store.get_stream("a/b", None).await.err()),
        ("put", store.put_stream("a/b", body(), 100).await.err()),
        ("delete", store.delete("a/b").await.err()),
        ("list", store.list("").await.err()),
        (
            "staged_create",
            store.staged_create("a/b-staged").await.err(),
        ),
        ("pending_uploads", store.pending_uploads().await.err()),
    ];
    for (call, err) in results {
        let err = err.unwrap_or_else(|| panic!("{call} succeeded on a missing bucket"));
        assert!(matches!(err, BlobError::Inaccessible(_)), "{call}: {err:?}");
        assert_eq!(err.to_string(), expected, "{call}");
    }
}

/// Credentials the server does not accept: `Inaccessible` with the S3
/// error code, not an I/O error quoting the XML.
#[tokio::test]
async fn refused_credentials_are_named() {
    let Some(cfg) = env_config() else {
        eprintln!("{SKIP}");
        return;
    };
    let bucket = cfg.bucket.clone();
    let store = S3BlobStore::open(S3Config {
        secret_access_key: Some("not-the-secret".into()),
        ..cfg
    })
    .expect("open");
    if testsuite::s3_quirk("any-credentials") {
        let accepted = store.check().await;
        assert!(accepted.is_ok(), "declared any-credentials: {accepted:?}");
        return;
    }
    for err in [
        store.check().await.err(),
        store.stat("a/b").await.err(),
        store
            .put_stream("a/b", chunked(Bytes::from_static(b"x"), &[1]), 10)
            .await
            .err(),
    ] {
        let err = err.expect("refused");
        let text = err.to_string();
        assert!(matches!(err, BlobError::Inaccessible(_)), "{err:?}");
        assert!(
            text.starts_with(&format!(
                "storage is unavailable: access to bucket {bucket:?} denied ("
            )),
            "{text}"
        );
        assert!(!text.contains('<'), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance() {
    let Some(store) = env_store() else { return };
    testsuite::run_all(&store).await;
    // The failed puts of the suite left no incomplete multipart upload.
    let left = store
        .pending_uploads()
        .await
        .expect("list multipart uploads");
    assert!(left.is_empty(), "multipart uploads left: {left:?}");
}

#[tokio::test]
async fn conformance_on_current_thread_runtime() {
    let Some(store) = env_store() else { return };
    testsuite::run_all(&store).await;
}

#[tokio::test]
async fn conformance_with_small_parts_and_no_concurrency() {
    // 5 MiB parts, one at a time: the suite's multi-MiB bodies go multipart.
    let Some(store) = env_store() else { return };
    testsuite::run_all(&store.with_parts(5 << 20, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_20_mib_in_odd_chunks_round_trips() {
    let Some(store) = env_store() else { return };
    let store = store.with_parts(5 << 20, 2);
    let data = random_bytes((20 << 20) + 4321, 77);
    let sizes = [1, 8191, 65_537, (1 << 20) + 3, 3_333_333, 12, 5 << 20];
    let out = store
        .put_stream("big/odd", chunked(data.clone(), &sizes), 64 << 20)
        .await
        .expect("put 20 MiB");
    assert_eq!(out.size, data.len() as u64);
    assert_eq!(out.sha1, digest::sha1_hex(&data));
    assert_eq!(out.md5_base64, digest::md5_base64(&data));
    assert_eq!(store.stat("big/odd").await.expect("stat").size, out.size);
    let got = read_all(store.get_stream("big/odd", None).await.expect("get")).await;
    assert!(got == data, "content differs");
    // A range across the first part boundary.
    let range = (5 << 20) - 10..(5 << 20) + 10;
    let read = store
        .get_stream("big/odd", Some(range.clone()))
        .await
        .expect("ranged get");
    assert_eq!(read.range, range);
    assert_eq!(read.total_size, data.len() as u64);
    assert!(read_all(read).await == data[range.start as usize..range.end as usize]);
    assert_no_uploads(&store, "big/odd").await;
    store.delete("big/odd").await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_dropped_mid_stream_leaves_nothing() {
    let Some(store) = env_store() else { return };
    let store = store.with_parts(5 << 20, 2);
    // 12 MiB (two whole parts uploaded), then the client stalls forever.
    let body: ByteStream = Box::pin(
        chunked(random_bytes(12 << 20, 5), &[65_536]).chain(futures_util::stream::pending()),
    );
    let mut put = Box::pin(store.put_stream("cancel/me", body, u64::MAX));
    // First see the put in progress (its multipart upload exists), so that
    // "nothing left" below is not true of a put that never started.
    let in_progress = async {
        while uploads_of(&store, "cancel/me").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        done = &mut put => panic!("the put should still be waiting for the body: {:?}", done.map(|_| ())),
        seen = tokio::time::timeout(Duration::from_secs(10), in_progress) => {
            seen.expect("no multipart upload of the put in progress was seen");
        }
    }
    assert!(matches!(
        store.stat("cancel/me").await,
        Err(BlobError::NotFound(_))
    ));
    // The server lists the upload before the put has read the answer that
    // created it; a put cut in that instant cannot know the upload id (the
    // start-up sweep takes such leftovers after an hour). Let it settle.
    let settled = tokio::time::timeout(Duration::from_secs(1), &mut put).await;
    assert!(
        settled.is_err(),
        "the put should still be waiting for the body"
    );
    // Dropping the put future cuts it; its guard aborts the upload.
    drop(put);
    assert_absent(&store, "cancel/me").await;
    assert_no_uploads(&store, "cancel/me").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_multipart_puts_abort_their_upload() {
    let Some(store) = env_store() else { return };
    let store = store.with_parts(5 << 20, 2);
    // Source error after two parts.
    let error = futures_util::stream::iter(vec![Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "gone",
    ))]);
    let body: ByteStream = Box::pin(chunked(random_bytes(11 << 20, 6), &[100_000]).chain(error));
    assert!(matches!(
        store.put_stream("fail/source", body, u64::MAX).await,
        Err(BlobError::Source(_))
    ));
    assert_absent(&store, "fail/source").await;
    assert_no_uploads(&store, "fail/source").await;
    // Too large after two parts.
    let body = chunked(random_bytes(16 << 20, 7), &[1 << 20]);
    assert!(matches!(
        store.put_stream("fail/big", body, 12 << 20).await,
        Err(BlobError::TooLarge { limit }) if limit == 12 << 20
    ));
    assert_absent(&store, "fail/big").await;
    assert_no_uploads(&store, "fail/big").await;
}

#[tokio::test]
async fn sweep_aborts_stale_multipart_uploads() {
    let Some(store) = env_store() else { return };
    // A crashed put: an upload with one part, never completed nor aborted.
    let path = store.path_for("crashed/put").expect("path");
    let mut upload = store.s3.put_multipart(&path).await.expect("start upload");
    upload
        .put_part(PutPayload::from(random_bytes(5 << 20, 8)))
        .await
        .expect("part");
    let before = uploads_of(&store, "crashed/put").await;
    drop(upload);
    assert_eq!(before.len(), 1, "{before:?}");
    if testsuite::s3_quirk("fixed-initiated") {
        // Every upload looks old here: even the default sweep takes it.
        assert_eq!(store.sweep_staging().await.expect("sweep"), 1);
    } else {
        // Too young for the default sweep (could be a put in progress elsewhere).
        assert_eq!(store.sweep_staging().await.expect("sweep"), 0);
        assert_eq!(uploads_of(&store, "crashed/put").await.len(), 1);
        let eager = store.clone().with_sweep_min_age(Duration::ZERO);
        assert_eq!(eager.sweep_staging().await.expect("sweep"), 1);
    }
    assert_no_uploads(&store, "crashed/put").await;
    assert_absent(&store, "crashed/put").await;
}

#[tokio::test]
async fn presigned_url_serves_the_object() {
    let Some(store) = env_store() else { return };
    let data = random_bytes(100_000, 9);
    store
        .put_stream("signed/obj", chunked(data.clone(), &[4096]), u64::MAX)
        .await
        .expect("put");
    let url = store
        .presigned_get_url("signed/obj", Duration::from_secs(60))
        .await
        .expect("presign");
    let request: HttpRequest = http::Request::builder()
        .uri(&url)
        .body(Bytes::new().into())
        .expect("request");
    let response = store.http.execute(request).await.expect("GET presigned");
    assert_eq!(response.status(), 200, "{url}");
    let body = response.into_body().bytes().await.expect("body");
    assert!(body == data);
    store.delete("signed/obj").await.expect("delete");
}

#[tokio::test]
async fn other_prefixes_are_invisible() {
    let Some(cfg) = env_config() else {
        eprintln!("{SKIP}");
        return;
    };
    let a = S3BlobStore::open(cfg.clone()).expect("open a");
    let b = S3BlobStore::open(S3Config {
        prefix: format!("{}-b", cfg.prefix),
        ..cfg
    })
    .expect("open b");
    a.put_stream("k", chunked(Bytes::from_static(b"a"), &[1]), 10)
        .await
        .expect("put a");
    assert!(matches!(b.stat("k").await, Err(BlobError::NotFound(_))));
    assert!(b.list("").await.expect("list b").is_empty());
    assert_eq!(a.list("").await.expect("list a"), ["k"]);
    a.delete("k").await.expect("delete");
    assert!(a.check().await.is_ok());
}

/// `cargo test --release -p imgapi-blob s3_throughput -- --ignored --nocapture`
/// with the Garage env line exported: 256 MiB put and get, MB/s (10^6).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run by hand against Garage, in release mode"]
async fn s3_throughput_256mib() {
    let Some(store) = env_store() else { return };
    let size = 256usize << 20;
    let data = random_bytes(size, 42);
    let sha1 = digest::sha1_hex(&data);
    for run in 1..=3 {
        let key = format!("bench/{run}");
        let start = Instant::now();
        let out = store
            .put_stream(&key, chunked(data.clone(), &[64 << 10]), u64::MAX)
            .await
            .expect("put");
        let put_secs = start.elapsed().as_secs_f64();
        assert_eq!(out.sha1, sha1);
        let start = Instant::now();
        let read = store.get_stream(&key, None).await.expect("get");
        let mut stream = read.stream;
        let mut n = 0usize;
        while let Some(chunk) = stream.next().await {
            n += chunk.expect("chunk").len();
        }
        let get_secs = start.elapsed().as_secs_f64();
        assert_eq!(n, size);
        eprintln!(
            "run {run}: put 256 MiB {:.0} MB/s ({put_secs:.2} s), get {:.0} MB/s ({get_secs:.2} s)",
            size as f64 / put_secs / 1e6,
            size as f64 / get_secs / 1e6
        );
        store.delete(&key).await.expect("delete");
    }
}

// ------------------------------------------------------ no server needed

fn offline_store(endpoint: &str) -> S3BlobStore {
    S3BlobStore::open(S3Config {
        endpoint: Some(endpoint.into()),
        bucket: "bkt".into(),
        region: "us-east-1".into(),
        prefix: "imgs/v1".into(),
        access_key_id: Some("AKIDEXAMPLE".into()),
        secret_access_key: Some("secret".into()),
    })
    .expect("open")
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn unreachable_endpoint_fails_fast_with_unavailable() {
    let store = offline_store(&format!("http://127.0.0.1:{}", closed_port()));
    let start = Instant::now();
    let stat = store.stat("a/b").await;
    assert!(matches!(stat, Err(BlobError::Unavailable(_))), "{stat:?}");
    let put = store
        .put_stream("a/b", chunked(Bytes::from_static(b"abc"), &[1]), 10)
        .await;
    assert!(matches!(put, Err(BlobError::Unavailable(_))), "{put:?}");
    let get = store.get_stream("a/b", Some(0..1)).await.map(|_| ());
    assert!(matches!(get, Err(BlobError::Unavailable(_))), "{get:?}");
    assert!(matches!(
        store.list("").await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        store.delete("a/b").await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        store.check().await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        store.sweep_staging().await,
        Err(BlobError::Unavailable(_))
    ));
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    // A server that answers every request with 503.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 65_536];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let store = offline_store(&format!("http://127.0.0.1:{port}"));
    let stat = store.stat("a/b").await;
    assert!(matches!(stat, Err(BlobError::Unavailable(_))), "{stat:?}");
    let sweep = store.sweep_staging().await;
    assert!(matches!(sweep, Err(BlobError::Unavailable(_))), "{sweep:?}");
}

#[tokio::test]
async fn invalid_keys_are_refused_without_io() {
    let store = offline_store("http://127.0.0.1:1");
    for key in ["", "/a", "a//b", "../x", "a b", ".staging/x"] {
        assert!(
            matches!(store.stat(key).await, Err(BlobError::InvalidKey(_))),
            "{key:?}"
        );
    }
}

#[tokio::test]
async fn presigned_url_is_path_style_and_signed() {
    let store = offline_store("http://127.0.0.1:3900");
    let url = store
        .presigned_get_url("f/x.zfs.gz", Duration::from_secs(300))
        .await
        .expect("presign");
    assert!(
        url.starts_with("http://127.0.0.1:3900/bkt/imgs/v1/f/x.zfs.gz?"),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(url.contains("X-Amz-Expires=300"), "{url}");
    assert!(matches!(
        store
            .presigned_get_url("../x", Duration::from_secs(1))
            .await,
        Err(BlobError::InvalidKey(_))
    ));
}

#[test]
fn open_rejects_bad_config() {
    let cfg = S3Config {
        endpoint: Some("http://127.0.0.1:9".into()),
        bucket: "b".into(),
        region: "r".into(),
        ..S3Config::default()
    };
    assert!(S3BlobStore::open(S3Config {
        bucket: String::new(),
        ..cfg.clone()
    })
    .is_err());
    assert!(S3BlobStore::open(S3Config {
        prefix: "a/../b".into(),
        ..cfg.clone()
    })
    .is_err());
    let store = S3BlobStore::open(S3Config {
        prefix: "/a/b/".into(),
        ..cfg.clone()
    })
    .expect("open");
    assert_eq!(store.prefix(), "a/b");
    for endpoint in ["", "127.0.0.1:3900", "ftp://h/"] {
        let refused = S3BlobStore::open(S3Config {
            endpoint: Some(endpoint.into()),
            ..cfg.clone()
        });
        assert!(refused.is_err(), "{endpoint:?}");
    }
    assert!(!format!(
        "{:?}",
        S3Config {
            secret_access_key: Some("hush".into()),
            ..cfg
        }
    )
    .contains("hush"));
}

#[test]
fn part_size_grows_so_10000_parts_hold_huge_objects() {
    let store = offline_store("http://127.0.0.1:1");
    assert_eq!(store.part_size_for(0), 8 << 20);
    assert_eq!(store.part_size_for(999), 8 << 20);
    assert_eq!(store.part_size_for(1000), 16 << 20);
    let total: u64 = (0..10_000).map(|i| store.part_size_for(i) as u64).sum();
    assert!(total > 5 << 40, "10,000 parts hold only {total} bytes");
}

#[test]
fn list_multipart_uploads_document_is_parsed() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/k2</NextKeyMarker><NextUploadIdMarker>id&amp;2</NextUploadIdMarker>
  <MaxUploads>1000</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>p/k1</Key><UploadId>id1</UploadId>
    <Initiator><ID>x</ID></Initiator><Initiated>2024-01-02T03:04:05.000Z</Initiated></Upload>
  <Upload><Key>p/k2</Key><UploadId>id&amp;2</UploadId></Upload>
</ListMultipartUploadsResult>"#;
    let page = parse_list_uploads(xml);
    assert_eq!(page.uploads.len(), 2);
    assert_eq!(page.uploads[0].key, "p/k1");
    assert_eq!(page.uploads[0].upload_id, "id1");
    assert_eq!(
        page.uploads[0].initiated.map(|t| t.to_rfc3339()),
        Some("2024-01-02T03:04:05+00:00".to_owned())
    );
    assert_eq!(page.uploads[1].upload_id, "id&2");
    assert_eq!(page.uploads[1].initiated, None);
    assert!(page.truncated);
    assert_eq!(page.next_key.as_deref(), Some("p/k2"));
    assert_eq!(page.next_upload_id.as_deref(), Some("id&2"));
    let empty = parse_list_uploads(
        "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
    );
    assert!(empty.uploads.is_empty() && !empty.truncated);
}
