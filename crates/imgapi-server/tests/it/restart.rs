//! Graceful restarts of the real `imgapi` binary: SIGTERM during a slow
//! download and a slow upload. The download finishes within the grace
//! period, the upload (slower than the grace period) is cut (asserted) and leaves
//! nothing behind, new connections are refused at once, the process exits
//! 0, and a restart on the same data finds a consistent registry.

use std::time::{Duration, Instant};

use serde_json::json;
use sha1::{Digest, Sha1};

use crate::binary::{sigterm, wait_exit};
pub(crate) use crate::binary::{start, Proc};
use crate::support::*;

const GRACE_SECS: u64 = 8;
const FILE_SIZE: usize = 24 << 20;

fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_downloads_cuts_slow_uploads_and_restarts_clean() {
    // Seed with the in-process server (same config, same backends), then
    // hand the data over to the binary.
    let seed = TestServer::spawn_with(&format!(
        "shutdown_grace_secs = {GRACE_SECS}\nmetrics_listen = \"127.0.0.1:0\"\n"
    ))
    .await;
    let content: Vec<u8> = (0..FILE_SIZE).map(|i| (i * 7 % 251) as u8).collect();
    let big = seed.create(json!({"name": "big"})).await;
    let big_uuid = uuid_of(&big);
    let (status, _) = seed.upload(&big_uuid, content.clone()).await;
    assert_eq!(status, 200);
    let (status, _) = seed.activate(&big_uuid).await;
    assert_eq!(status, 200);
    let target = seed.create(json!({"name": "target"})).await;
    let target_uuid = uuid_of(&target);
    let config_toml = seed.config_toml.clone();
    let data_dir = seed.data_dir.clone();
    let _keep = seed.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imgapi.toml");
    std::fs::write(&config, &config_toml).unwrap();

    let mut proc = start(&config);
    let base = format!("http://{}", proc.addr);
    let client = reqwest::Client::new();

    // A slow upload: 64 KiB every 100 ms (≈15 s for 10 MiB, longer than
    // the grace period).
    let upload_size: usize = 10 << 20;
    let chunks = futures_util::stream::unfold(0usize, move |sent| async move {
        if sent >= upload_size {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = (64 << 10).min(upload_size - sent);
        Some((Ok::<_, std::io::Error>(vec![3u8; n]), sent + n))
    });
    let upload = tokio::spawn(
        client
            .put(format!("{base}/images/{target_uuid}/file?compression=none"))
            .header("content-length", upload_size.to_string())
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A slow download: ~12 MiB/s, so ≈2 s for 24 MiB.
    let mut resp = client
        .get(format!("{base}/images/{big_uuid}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    let download = tokio::spawn(async move {
        let mut got = first.to_vec();
        while let Some(chunk) = resp.chunk().await.unwrap() {
            got.extend_from_slice(&chunk);
            let pause = chunk.len() as f64 / (12.0 * 1024.0 * 1024.0);
            tokio::time::sleep(Duration::from_secs_f64(pause)).await;
        }
        got
    });

    let signalled = Instant::now();
    sigterm(&proc.child);

    // New connections are refused at once, while the download goes on.
    let mut refused = false;
    for _ in 0..100 {
        match tokio::net::TcpStream::connect(&proc.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(refused, "new connections still accepted after SIGTERM");
    assert!(
        !download.is_finished(),
        "the download should still be in flight when connections are refused"
    );

    // The download completes with the right bytes.
    let got = download.await.unwrap();
    assert_eq!(got.len(), FILE_SIZE);
    assert_eq!(sha1_hex(&got), sha1_hex(&content));

    // The process exits 0 within the grace period (plus clean-up).
    let code = tokio::task::spawn_blocking(move || {
        let code = wait_exit(&mut proc.child, Duration::from_secs(GRACE_SECS + 10));
        (code, proc)
    })
    .await
    .unwrap();
    let (code, _proc) = code;
    assert_eq!(code, Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(GRACE_SECS + 8),
        "exit took {:?}",
        signalled.elapsed()
    );

    // The upload needs ~16 s, twice the grace period: it was cut.
    let upload_ok = match upload.await.unwrap() {
        Ok(resp) => resp.status() == 200,
        Err(_) => false,
    };
    assert!(
        !upload_ok,
        "an upload slower than the grace period completed: was it cut at all?"
    );
    eprintln!("exit {:?} after SIGTERM", signalled.elapsed());

    // Restart on the same data.
    let mut proc = start(&config);
    let base = format!("http://{}", proc.addr);
    let (status, img) = status_json(
        client
            .get(format!("{base}/images/{target_uuid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(img["files"], json!([]), "a cut upload left a file: {img}");
    let again = client
        .get(format!("{base}/images/{big_uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(sha1_hex(&again), sha1_hex(&content));

    // The metrics listener of the restarted binary answers.
    let metrics = client
        .get(format!("http://{}/metrics", proc.metrics_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "imgapi_images{state=\"active\"} 1",
        "imgapi_http_requests_total{route=\"GetImageFile\",method=\"GET\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(want), "{want} not in:\n{metrics}");
    }

    // No staging leftovers, no orphan, no problem.
    let staging = data_dir.join("files").join(".staging");
    if staging.is_dir() {
        let left: Vec<_> = std::fs::read_dir(&staging)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name() != "sessions")
            .collect();
        assert!(left.is_empty(), "staging leftovers: {left:?}");
    }
    let stores = imgapi_server::check::Stores::open(
        &imgapi_server::Config::from_toml(&config_toml).unwrap(),
    )
    .await
    .unwrap();
    let opts = imgapi_server::check::CheckOptions {
        repair: false,
        min_orphan_age: Duration::ZERO,
    };
    let report = imgapi_server::check::check(&stores, opts, &mut std::io::sink())
        .await
        .unwrap();
    assert!(report.ok() && report.young.is_empty(), "{:#?}", report);

    // An idle server stops at once.
    sigterm(&proc.child);
    let code =
        tokio::task::spawn_blocking(move || wait_exit(&mut proc.child, Duration::from_secs(10)))
            .await
            .unwrap();
    assert_eq!(code, Some(0));
}
