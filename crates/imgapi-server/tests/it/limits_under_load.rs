//! Every limit of docs/security.md tripped while a second, well-behaved
//! client keeps being served: its creates, uploads and reads all succeed
//! before, during and after the trip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::*;

/// A client doing ordinary work in a loop: create an image, upload its
/// file, read it back, ping. Every answer must be a success.
struct Bystander {
    rounds: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<String>>,
}

/// One round of ordinary work; what went wrong, if anything.
async fn ordinary_round(client: &reqwest::Client, base: &str, n: usize) -> Result<(), String> {
    let mut body = manifest();
    merge(&mut body, json!({"name": format!("bystander-{n}")}));
    let resp = client.post(format!("{base}/images")).json(&body).send();
    let (status, image) = status_json(resp.await.map_err(|e| e.to_string())?).await;
    if status != 200 {
        return Err(format!("create: {status} {image}"));
    }
    let uuid = uuid_of(&image);
    let resp = client
        .put(format!("{base}/images/{uuid}/file?compression=none"))
        .body(vec![7u8; 64 << 10])
        .send();
    let (status, image) = status_json(resp.await.map_err(|e| e.to_string())?).await;
    if status != 200 {
        return Err(format!("upload: {status} {image}"));
    }
    let resp = client.get(format!("{base}/images/{uuid}")).send();
    let (status, image) = status_json(resp.await.map_err(|e| e.to_string())?).await;
    if status != 200 || image["files"][0]["size"] != 64 << 10 {
        return Err(format!("get: {status} {image}"));
    }
    let resp = client.get(format!("{base}/ping")).send();
    let status = resp.await.map_err(|e| e.to_string())?.status();
    if status != 200 {
        return Err(format!("ping: {status}"));
    }
    Ok(())
}

impl Bystander {
    /// Start it on `s` and wait for its first round, so that it is being
    /// served (its connection open) when the limit is tripped.
    async fn start(s: &TestServer) -> Bystander {
        let rounds = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = watch::channel(false);
        let (base, counter) = (s.url.clone(), rounds.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut failures = Vec::new();
            for n in 0.. {
                if *stopped.borrow() {
                    break;
                }
                match ordinary_round(&client, &base, n).await {
                    Ok(()) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => failures.push(e),
                }
            }
            failures
        });
        let bystander = Bystander { rounds, stop, task };
        bystander.wait_for_rounds(1).await;
        bystander
    }

    async fn wait_for_rounds(&self, n: usize) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while self.rounds.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the bystander was not served: fewer than {n} rounds"
        );
    }

    /// `during` trips the limit; the bystander is served meanwhile and
    /// for two more rounds after it, and never fails.
    async fn while_tripping<T>(self, during: impl std::future::Future<Output = T>) -> T {
        let before = self.rounds.load(Ordering::SeqCst);
        let tripped = during.await;
        self.wait_for_rounds(before + 2).await;
        let _ = self.stop.send(true);
        let failures = self.task.await.unwrap();
        assert!(failures.is_empty(), "the bystander failed: {failures:?}");
        tripped
    }
}

async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// An upload to `path` of an image of its own whose size is over the
/// limit, refused with 400 Upload and `message` while the bystander works.
async fn upload_over_the_limit(
    path: &str,
    request: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    message: &str,
) {
    let s = TestServer::spawn().await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let bystander = Bystander::start(&s).await;
    let got = bystander
        .while_tripping(async {
            let resp = request(s.put(&format!("/images/{uuid}/{path}"))).send();
            status_json(resp.await.unwrap()).await
        })
        .await;
    assert_error(&got, 400, "Upload", Some(message));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_file_size_limit_under_load() {
    upload_over_the_limit(
        "file?compression=none",
        |put| put.header("content-length", "21474836481").body(""),
        "image file size 21474836481 (from Content-Length) exceeds the maximum allowed size, 20 GiB",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icon_size_limit_under_load() {
    upload_over_the_limit(
        "icon",
        |put| {
            put.header("content-type", "image/png")
                .body(vec![0u8; 131_073])
        },
        "icon size 131073 (from Content-Length) exceeds the maximum allowed size, 128 KiB",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_limit_under_load() {
    let s = TestServer::spawn().await;
    let bystander = Bystander::start(&s).await;
    let big = json!({"name": "x", "description": "d".repeat(5 * 1024 * 1024)});
    let got = bystander.while_tripping(s.post_json("/images", &big)).await;
    assert_error(&got, 413, "RequestEntityTooLarge", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_size_limit_under_load() {
    let s = TestServer::spawn_with("max_header_bytes = 8192").await;
    let bystander = Bystander::start(&s).await;
    let answer = bystander
        .while_tripping(async {
            let mut c = TcpStream::connect(s.addr()).await.unwrap();
            let head = format!(
                "GET /images?name={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(20_000)
            );
            // The server may answer and close before it has read it all.
            let _ = c.write_all(head.as_bytes()).await;
            read_answer(&mut c).await
        })
        .await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_read_timeout_under_load() {
    let s = TestServer::spawn_with("header_read_timeout_secs = 1").await;
    let bystander = Bystander::start(&s).await;
    let closed = bystander
        .while_tripping(async {
            let mut slow = TcpStream::connect(s.addr()).await.unwrap();
            slow.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if slow.write_all(b"X-Drip: 1\r\n").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let mut chunk = [0u8; 512];
                    let read = slow.read(&mut chunk);
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_millis(10), read).await
                    {
                        return;
                    }
                }
            })
            .await
        })
        .await;
    assert!(
        closed.is_ok(),
        "the slow client was still connected after 5 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_stall_limit_under_load() {
    let s = TestServer::spawn_with("body_idle_timeout_secs = 1").await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let bystander = Bystander::start(&s).await;
    let answer = bystander
        .while_tripping(async {
            let mut c = TcpStream::connect(s.addr()).await.unwrap();
            let head = format!(
                "PUT /images/{uuid}/file?compression=none HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
            );
            c.write_all(head.as_bytes()).await.unwrap();
            c.write_all(&[1u8; 100]).await.unwrap();
            read_answer(&mut c).await
        })
        .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\": \"Upload\""), "{answer}");
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["files"], json!([]), "the stalled upload kept something");
}

/// The cap counts connections: the bystander's kept-alive connection is
/// one of them and stays served while a connection over the cap is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_under_load() {
    let s = TestServer::spawn_with("max_connections = 2").await;
    let bystander = Bystander::start(&s).await;
    let answer = bystander
        .while_tripping(async {
            let mut held = TcpStream::connect(s.addr()).await.unwrap();
            held.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = held.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
            let mut extra = TcpStream::connect(s.addr()).await.unwrap();
            extra
                .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let answer = read_answer(&mut extra).await;
            drop(held);
            answer
        })
        .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("\"code\": \"ServiceUnavailableError\""),
        "{answer}"
    );
}
