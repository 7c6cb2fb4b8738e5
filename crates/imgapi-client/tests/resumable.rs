//! Resumable uploads (upload sessions) and SHA-256 download verification,
//! against a real in-process imgapi-server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use imgapi_client::{part_path, Client, ClientError, Reporter, ResumableOptions};
use imgapi_server::{App, AppState, Config};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use uuid::Uuid;

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

struct Server {
    url: String,
    app: App,
    _dir: TempDir,
    _shutdown: oneshot::Sender<()>,
}

async fn spawn() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\n",
        dir.path().display().to_string()
    );
    let app = AppState::open(Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let served = app.clone();
    tokio::spawn(async move {
        imgapi_server::serve(served, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        url: format!("http://{addr}"),
        app,
        _dir: dir,
        _shutdown: tx,
    }
}

fn manifest() -> Value {
    json!({"name": "big", "version": "1.0.0", "type": "other", "os": "other",
           "owner": OWNER, "public": true})
}

fn write_file(dir: &Path, len: usize, seed: u32) -> (PathBuf, Vec<u8>) {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let path = dir.join(format!("image-{seed}.bin"));
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

async fn new_image(client: &Client) -> Uuid {
    let img = client.create_image(&manifest()).await.unwrap();
    img.uuid
}

/// Records where a transfer started and how much it reported.
#[derive(Default)]
struct Recorder {
    started_at: Mutex<Option<(Option<u64>, u64)>>,
    bytes: AtomicU64,
    complete: AtomicU64,
}

impl Reporter for Recorder {
    fn on_start(&self, total: Option<u64>, already: u64) {
        *self.started_at.lock().unwrap() = Some((total, already));
    }
    fn on_progress(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }
    fn on_complete(&self) {
        self.complete.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumable_upload_round_trip() {
    let s = spawn().await;
    let client = Client::new(&s.url).unwrap();
    let uuid = new_image(&client).await;
    let tmp = tempfile::tempdir().unwrap();
    let (path, data) = write_file(tmp.path(), (3 << 20) + 17, 1);
    let state = tmp.path().join("state");
    let options = ResumableOptions {
        chunk_size: 1 << 20,
        state_dir: Some(state.clone()),
        expected_sha1: None,
    };
    let rec = Recorder::default();
    let image = client
        .add_image_file_resumable_with(&uuid, &path, "none", &options, Some(&rec))
        .await
        .unwrap();
    assert_eq!(image.files[0].sha1, hex::encode(Sha1::digest(&data)));
    assert_eq!(image.files[0].size, data.len() as u64);
    assert_eq!(
        *rec.started_at.lock().unwrap(),
        Some((Some(data.len() as u64), 0))
    );
    assert_eq!(rec.bytes.load(Ordering::SeqCst), data.len() as u64);
    assert_eq!(rec.complete.load(Ordering::SeqCst), 1);
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state file removed after success");
    // The expected sha1 (a manifest's files[0].sha1) is enforced.
    let uuid2 = new_image(&client).await;
    let wrong = ResumableOptions {
        chunk_size: 1 << 20,
        state_dir: None,
        expected_sha1: Some("da39a3ee5e6b4b0d3255bfef95601890afd80709".into()),
    };
    let err = client
        .add_image_file_resumable_with(&uuid2, &path, "none", &wrong, None)
        .await
        .unwrap_err();
    assert_eq!(err.rest_code(), Some("Download"), "{err}");
    let img = client.get_image(&uuid2).await.unwrap();
    assert!(img.files.is_empty());
}

/// A run stopped half-way (the future dropped, as by a kill) is continued
/// by the next run from the server's offset, with the reporter starting
/// there; only the rest is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_resumes_from_the_server_offset() {
    let s = spawn().await;
    let client = Client::new(&s.url).unwrap();
    let uuid = new_image(&client).await;
    let tmp = tempfile::tempdir().unwrap();
    let (path, data) = write_file(tmp.path(), (6 << 20) + 5, 2);
    let options = ResumableOptions {
        chunk_size: 1 << 20,
        state_dir: Some(tmp.path().join("state")),
        expected_sha1: None,
    };

    /// Reports bytes and signals once `limit` were read.
    struct Stopper {
        seen: AtomicU64,
        limit: u64,
        tx: Mutex<Option<oneshot::Sender<()>>>,
    }
    impl Reporter for Stopper {
        fn on_start(&self, _: Option<u64>, _: u64) {}
        fn on_progress(&self, bytes: u64) {
            if self.seen.fetch_add(bytes, Ordering::SeqCst) + bytes >= self.limit {
                if let Some(tx) = self.tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
        }
        fn on_complete(&self) {}
    }
    let (tx, rx) = oneshot::channel();
    let stopper = Stopper {
        seen: AtomicU64::new(0),
        limit: (3 << 20) + 1000,
        tx: Mutex::new(Some(tx)),
    };
    tokio::select! {
        r = client.add_image_file_resumable_with(&uuid, &path, "none", &options, Some(&stopper)) => {
            panic!("the upload should have been stopped: {r:?}")
        }
        _ = rx => {}
    }
    // Give the server a moment to see the cut chunk and release it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rec = Recorder::default();
    let image = client
        .add_image_file_resumable_with(&uuid, &path, "none", &options, Some(&rec))
        .await
        .unwrap();
    assert_eq!(image.files[0].sha1, hex::encode(Sha1::digest(&data)));
    let (total, already) = rec.started_at.lock().unwrap().unwrap();
    assert_eq!(total, Some(data.len() as u64));
    assert!(
        already >= 3 << 20,
        "the rerun starts at what the server has: {already}"
    );
    assert_eq!(
        already + rec.bytes.load(Ordering::SeqCst),
        data.len() as u64,
        "only the rest is reported (and sent)"
    );
}

/// A server without the session endpoint (an original IMGAPI answers 404
/// naming the path) gets a plain PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_a_plain_put_without_sessions() {
    let s = spawn().await;
    let shim = NoSessions::start(s.url.trim_start_matches("http://").to_string()).await;
    let setup = Client::new(&s.url).unwrap();
    let uuid = new_image(&setup).await;
    let tmp = tempfile::tempdir().unwrap();
    let (path, data) = write_file(tmp.path(), 100_000, 3);
    let client = Client::new(&shim.url).unwrap();
    let image = client
        .add_image_file_resumable(&uuid, &path, "none", None)
        .await
        .unwrap();
    assert_eq!(image.files[0].sha1, hex::encode(Sha1::digest(&data)));
    assert!(shim.refused.load(Ordering::SeqCst) >= 1);
}

/// A loopback shim in front of a server: a connection whose first request
/// is for `/file/uploads` gets the original's 404 and is closed; others are
/// piped to the server.
struct NoSessions {
    url: String,
    refused: Arc<AtomicU64>,
}

impl NoSessions {
    async fn start(target: String) -> NoSessions {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refused = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&refused);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let mut head = vec![0u8; 4096];
                    let Ok(n) = client.read(&mut head).await else {
                        return;
                    };
                    let line = String::from_utf8_lossy(&head[..n]);
                    if line.lines().next().unwrap_or("").contains("/file/uploads") {
                        count.fetch_add(1, Ordering::SeqCst);
                        let body = r#"{"code":"ResourceNotFound","message":"/images/x/file/uploads does not exist"}"#;
                        let resp = format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = client.write_all(resp.as_bytes()).await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    if server.write_all(&head[..n]).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        NoSessions { url, refused }
    }
}

/// GetImageFile's `Repr-Digest` is checked: a download whose SHA-256
/// differs from it (here: the record's sha256 altered on the server) is
/// refused, and nothing is left at the destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_is_verified_against_repr_digest() {
    let s = spawn().await;
    let client = Client::new(&s.url).unwrap();
    let uuid = new_image(&client).await;
    let tmp = tempfile::tempdir().unwrap();
    let (path, data) = write_file(tmp.path(), 200_000, 4);
    client
        .add_image_file(&uuid, &path, "none", None)
        .await
        .unwrap();
    // Intact: fine.
    let dest = tmp.path().join("out.bin");
    client.get_image_file(&uuid, &dest, None).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    std::fs::remove_file(&dest).unwrap();
    // The server now announces another SHA-256 for the same bytes.
    let mut stored = s.app.meta.get(uuid).await.unwrap().unwrap();
    stored.image.files[0].sha256 =
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into());
    s.app
        .meta
        .update(&stored.image, stored.revision)
        .await
        .unwrap();
    let err = client.get_image_file(&uuid, &dest, None).await.unwrap_err();
    match &err {
        ClientError::Integrity { expected, .. } => {
            assert!(expected.contains("sha256"), "{err}")
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists(), "the .part is removed");
}
