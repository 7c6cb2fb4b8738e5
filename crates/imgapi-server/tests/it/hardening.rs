//! Connection-level protections: TLS, slowloris, connection cap, header
//! size, stalled uploads; well-behaved clients keep working meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn read_all(mut s: impl tokio::io::AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn https_with_a_real_tls_client() {
    let dir = tempfile::tempdir().unwrap();
    let tls = SelfSigned::write(dir.path(), &["localhost"]);
    let s = TestServer::spawn_with(&tls.config).await;

    let config = tls.client_config();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(s.addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_all(tls).await;
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\"ping\": \"pong\""));
    // Plain HTTP to the TLS port does not get an answer as if it were HTTPS.
    let plain = s.get("/ping").send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn bad_tls_files_fail_at_start_up_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("missing.pem");
    let toml = format!(
        "data_dir = {:?}\ntls_cert = {:?}\ntls_key = {:?}",
        dir.path().display().to_string(),
        cert.display().to_string(),
        cert.display().to_string()
    );
    let config = imgapi_server::Config::from_toml(&toml).unwrap();
    let err = imgapi_server::AppState::open(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.pem"), "{err}");
}

#[tokio::test]
async fn slowloris_is_cut_off_while_others_are_served() {
    let s = TestServer::spawn_with("header_read_timeout_secs = 1").await;
    let mut slow = TcpStream::connect(s.addr()).await.unwrap();
    slow.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // A well-behaved client is served meanwhile.
    let (status, _) = s.get_json("/ping").await;
    assert_eq!(status, 200);
    // The slow client never finishes its headers: the server closes on it.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if slow.write_all(b"X-Drip: 1\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut chunk = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(10), slow.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow client still connected after 5 s");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connection_cap_answers_503_and_recovers() {
    let s = TestServer::spawn_with("max_connections = 2").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(s.addr()).await.unwrap();
        // Complete a request so the connection is surely accepted and kept alive.
        c.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    let mut extra = TcpStream::connect(s.addr()).await.unwrap();
    extra
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_all(&mut extra).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("\"code\": \"ServiceUnavailableError\""),
        "{text}"
    );
    drop(held);
    // Once the held connections close, new clients are served again.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(r) = s.client.get(format!("{}/ping", s.url)).send().await {
            if r.status() == 200 {
                ok = true;
                break;
            }
        }
    }
    assert!(ok, "server did not recover after connections closed");
}

/// What `nc -N` and some HTTP/1.0 clients do: send the whole request, then
/// shut down their writing side. The request is still answered (and a
/// create still creates), instead of being cancelled with the half-close.
#[tokio::test]
async fn a_request_then_a_half_close_is_answered() {
    let s = TestServer::spawn().await;
    let mut get = TcpStream::connect(s.addr()).await.unwrap();
    get.write_all(b"GET /images HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    get.shutdown().await.unwrap();
    let answer = read_all(get).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("[]"), "{answer}");

    let owner = uuid::Uuid::new_v4();
    let body = json!({"name": "half-closed", "version": "1", "os": "other", "type": "other",
                      "owner": owner, "public": true})
    .to_string();
    let mut post = TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    post.write_all(head.as_bytes()).await.unwrap();
    post.write_all(body.as_bytes()).await.unwrap();
    post.shutdown().await.unwrap();
    let answer = read_all(post).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, listed) = s
        .get_json(&format!("/images?owner={owner}&state=all"))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer.contains("\"half-closed\""),
        "the answer is the created image: {answer} / {listed}"
    );
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let s = TestServer::spawn_with("max_header_bytes = 8192").await;
    let long = "a".repeat(20_000);
    let resp = s.get(&format!("/images?name={long}")).send().await;
    match resp {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => assert!(
            e.is_request() || e.is_connect() || e.to_string().contains("closed"),
            "{e}"
        ),
    }
    let (status, _) = s.get_json("/ping").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn stalled_upload_is_aborted_and_leaves_nothing() {
    let s = TestServer::spawn_with("body_idle_timeout_secs = 1").await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "PUT /images/{uuid}/file?compression=none HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&[1u8; 100]).await.unwrap();
    // Then nothing: the server gives up on its own.
    let text = read_all(&mut c).await;
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"code\": \"Upload\""), "{text}");
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["files"], json!([]));
}

#[tokio::test]
async fn json_bodies_have_a_size_limit() {
    let s = TestServer::spawn().await;
    let big = json!({"name": "x", "description": "d".repeat(5 * 1024 * 1024)});
    let got = s.post_json("/images", &big).await;
    assert_error(&got, 413, "RequestEntityTooLarge", None);
}
