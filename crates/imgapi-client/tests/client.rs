//! imgapi-client against a real in-process imgapi-server.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use imgapi_client::{part_path, Client, ClientError, Image, Reporter};
use imgapi_server::{AppState, Config};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tempfile::TempDir;
use tokio::sync::oneshot;
use uuid::Uuid;

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

struct Server {
    url: String,
    _dir: TempDir,
    _shutdown: oneshot::Sender<()>,
}

async fn spawn() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\n",
        dir.path().display().to_string()
    );
    let config = Config::from_toml(&toml).unwrap();
    let app = AppState::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        imgapi_server::serve(app, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        url: format!("http://{addr}"),
        _dir: dir,
        _shutdown: tx,
    }
}

fn manifest(name: &str) -> Value {
    json!({
        "name": name,
        "version": "1.0.0",
        "type": "other",
        "os": "other",
        "owner": OWNER,
        "public": true
    })
}

/// A file of `len` pseudo-random bytes in `dir`.
fn write_file(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let mut x: u32 = 0x1234_5678;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let path = dir.join("image.bin");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

#[derive(Default)]
struct Counting {
    started: AtomicU64,
    already: AtomicU64,
    bytes: AtomicU64,
    completed: AtomicU64,
}

impl Reporter for Counting {
    fn on_start(&self, _total: Option<u64>, already: u64) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.already.store(already, Ordering::SeqCst);
    }
    fn on_progress(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }
    fn on_complete(&self) {
        self.completed.fetch_add(1, Ordering::SeqCst);
    }
}

fn uuid_of(image: &Image) -> Uuid {
    image.uuid
}

/// Create, upload `data`, activate; returns the image uuid.
async fn publish(client: &Client, tmp: &Path, len: usize) -> (Uuid, Vec<u8>) {
    let (path, data) = write_file(tmp, len);
    let img = client.create_image(&manifest("base")).await.unwrap();
    let uuid = uuid_of(&img);
    client
        .add_image_file(&uuid, &path, "none", None)
        .await
        .unwrap();
    client.activate_image(&uuid).await.unwrap();
    (uuid, data)
}

#[tokio::test]
async fn publish_flow() {
    let server = spawn().await;
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::new(&server.url)
        .unwrap()
        .with_user_agent("imgapi-client-tests");

    let ping = client.ping().await.unwrap();
    assert_eq!(ping.ping, "pong", "{ping:?}");

    let img = client.create_image(&manifest("base")).await.unwrap();
    assert_eq!(img.state, "unactivated");
    let uuid = uuid_of(&img);

    let len = 3 * 1024 * 1024 + 17;
    let (path, data) = write_file(tmp.path(), len);
    let rep = Counting::default();
    let img = client
        .add_image_file(&uuid, &path, "none", Some(&rep))
        .await
        .unwrap();
    assert_eq!(img.files[0].size, len as u64);
    assert_eq!(img.files[0].sha1, sha1_hex(&data));
    assert_eq!(rep.bytes.load(Ordering::SeqCst), len as u64);
    assert_eq!(rep.started.load(Ordering::SeqCst), 1);
    assert_eq!(rep.completed.load(Ordering::SeqCst), 1);

    let img = client.activate_image(&uuid).await.unwrap();
    assert_eq!(img.state, "active");

    let got = client.get_image(&uuid).await.unwrap();
    assert_eq!(got.uuid.to_string(), uuid.to_string());
    assert_eq!(got.name, "base");

    let list = client.list_images(&[("name", "base")]).await.unwrap();
    assert!(list.iter().any(|i| i.uuid == uuid));
    let none = client.list_images(&[("name", "nothere")]).await.unwrap();
    assert!(none.is_empty());

    let img = client.disable_image(&uuid).await.unwrap();
    assert_eq!(img.state, "disabled");
    let img = client.enable_image(&uuid).await.unwrap();
    assert_eq!(img.state, "active");

    let img = client
        .update_image(&uuid, &json!({"description": "a test image"}))
        .await
        .unwrap();
    assert_eq!(img.description.as_deref(), Some("a test image"));

    let bob = Uuid::parse_str("91ba0e64-2547-11e2-a972-df579e5fddb3").unwrap();
    let img = client.add_acl(&uuid, &[bob]).await.unwrap();
    assert_eq!(img.acl, Some(vec![bob]));
    let img = client.remove_acl(&uuid, &[bob]).await.unwrap();
    assert!(img.acl.is_none(), "{img:?}");

    client.delete_image(&uuid).await.unwrap();
    let err = client.get_image(&uuid).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn error_decoding() {
    let server = spawn().await;
    let client = Client::new(&server.url).unwrap();

    let err = client.get_image(&Uuid::new_v4()).await.unwrap_err();
    match &err {
        ClientError::Api {
            status, rest_code, ..
        } => {
            assert_eq!(*status, 404);
            assert_eq!(rest_code, "ResourceNotFound");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.rest_code(), Some("ResourceNotFound"));

    let mut bad = manifest("base");
    bad.as_object_mut().unwrap().remove("name");
    let err = client.create_image(&bad).await.unwrap_err();
    match err {
        ClientError::Api {
            status,
            rest_code,
            message,
            errors,
        } => {
            assert_eq!(status, 422);
            assert_eq!(rest_code, "ValidationFailed");
            assert!(message.contains("name"), "{message}");
            assert!(errors.iter().any(|e| e.field == "name"), "{errors:?}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // Channels are not configured: a 404 with a restCode too.
    let err = client.list_channels().await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn download_verifies_sha1() {
    let server = spawn().await;
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::new(&server.url).unwrap();
    let (uuid, data) = publish(&client, tmp.path(), 2 * 1024 * 1024 + 3).await;

    let dest = tmp.path().join("out.bin");
    let rep = Counting::default();
    let info = client
        .get_image_file(&uuid, &dest, Some(&rep))
        .await
        .unwrap();
    assert_eq!(info.sha1, sha1_hex(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!part_path(&dest).exists());
    assert_eq!(rep.bytes.load(Ordering::SeqCst), data.len() as u64);
    assert_eq!(rep.completed.load(Ordering::SeqCst), 1);

    // A corrupt .part of full length fails verification and is removed.
    let dest2 = tmp.path().join("bad.bin");
    let mut corrupt = data.clone();
    corrupt[10] ^= 0xff;
    std::fs::write(part_path(&dest2), &corrupt).unwrap();
    let err = client
        .get_image_file(&uuid, &dest2, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Integrity { .. }), "{err:?}");
    assert!(!part_path(&dest2).exists());
    assert!(!dest2.exists());
    // A rerun then downloads cleanly.
    client.get_image_file(&uuid, &dest2, None).await.unwrap();
    assert_eq!(std::fs::read(&dest2).unwrap(), data);
}

#[tokio::test]
async fn download_resumes_from_part() {
    let server = spawn().await;
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::new(&server.url).unwrap();
    let len = 4 * 1024 * 1024 + 1;
    let (uuid, data) = publish(&client, tmp.path(), len).await;

    let dest = tmp.path().join("resumed.bin");
    let half = len / 2;
    std::fs::write(part_path(&dest), &data[..half]).unwrap();

    let rep = Counting::default();
    client
        .get_image_file(&uuid, &dest, Some(&rep))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!part_path(&dest).exists());
    assert_eq!(rep.already.load(Ordering::SeqCst), half as u64);
    assert_eq!(rep.bytes.load(Ordering::SeqCst), (len - half) as u64);
}

#[tokio::test]
async fn connection_refused_is_http_error() {
    // Bind then drop to get a port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let client = Client::new(&format!("http://{addr}")).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Http(_)), "{err:?}");
}
