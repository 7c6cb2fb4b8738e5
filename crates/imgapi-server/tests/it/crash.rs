//! SIGKILL of the real `imgapi` binary: no acknowledged write is lost and
//! nothing half-written appears (the promise of docs/operating.md), and an
//! upload session whose writer was killed mid-chunk takes the next chunk at
//! once after the restart.
//! Runs on the suite's backends (SQLite + local disk, or PostgreSQL + S3).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::binary::{free_port, start, Proc};
use crate::support::*;
use crate::writes::{verify, writer, Ledger, XorShift};

/// A config file for the binary with the suite's backends, listening on a
/// fixed port (a restart must come back as the same instance), plus an
/// image created there. Returns (config path, image uuid, the dirs).
pub(crate) async fn binary_config(extra: &str) -> (PathBuf, String, TempDir, Option<TempDir>) {
    let seed = TestServer::spawn_with(&format!("metrics_listen = \"127.0.0.1:0\"\n{extra}")).await;
    let uuid = uuid_of(&seed.create(json!({"name": "crash"})).await);
    let toml = seed.config_toml.replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{}\"", free_port()),
        1,
    );
    let data = seed.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imgapi.toml");
    std::fs::write(&config, toml).unwrap();
    (config, uuid, dir, data)
}

fn session_url(proc: &Proc, uuid: &str, id: &str) -> String {
    format!("http://{}/images/{uuid}/file/uploads/{id}", proc.addr)
}

/// PUT the whole file (`len` bytes of `fill`) as one chunk.
async fn put_whole(proc: &Proc, uuid: &str, id: &str, len: u64, fill: u8) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(session_url(proc, uuid, id))
        .header("content-range", format!("bytes 0-{}/{len}", len - 1))
        .body(vec![fill; len as usize])
        .send()
        .await
        .unwrap();
    status_json(resp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_frees_its_upload_leases_when_it_restarts() {
    let (config, uuid, _dir, _data) = binary_config("").await;
    let mut proc = start(&config);
    let (status, session) = status_json(
        reqwest::Client::new()
            .post(format!(
                "http://{}/images/{uuid}/file/uploads?compression=none",
                proc.addr
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{session}");
    let id = session["upload_id"].as_str().unwrap().to_string();
    let len = session["chunk_size_min"].as_u64().unwrap().max(4096);

    // The holder: a chunk whose body stops half-way.
    let mut holder = TcpStream::connect(&proc.addr).await.unwrap();
    let head = format!(
        "PUT /images/{uuid}/file/uploads/{id} HTTP/1.1\r\nHost: {}\r\nContent-Range: bytes 0-{}/{len}\r\nContent-Length: {len}\r\n\r\n",
        proc.addr,
        len - 1
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    holder
        .write_all(&vec![1u8; (len / 2) as usize])
        .await
        .unwrap();
    let mut busy = false;
    for _ in 0..100 {
        if put_whole(&proc, &uuid, &id, len, 2).await.0 == 409 {
            busy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(busy, "the half-sent chunk never held the session's lease");

    // Killed while holding it: nothing releases the lease.
    proc.kill9();
    drop(holder);
    let proc = start(&config);
    let (status, body) = put_whole(&proc, &uuid, &id, len, 3).await;
    assert_eq!(
        status, 200,
        "the restarted instance kept its dead run's lease: {body}"
    );
    assert_eq!(body["offset"], len);
}

/// Rounds of: start the binary, write concurrently, SIGKILL at a random
/// moment, restart; then no acknowledged write is lost, no image is
/// half-written, `imgapi check` finds nothing wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_rounds_lose_no_acknowledged_write_and_leave_nothing_partial() {
    const ROUNDS: usize = 5;
    const WRITERS: usize = 4;
    let (config, _uuid, _dir, _data) = binary_config("").await;
    let config_toml = std::fs::read_to_string(&config).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = XorShift(seed | 1);
    let ledger = Ledger::default();
    for round in 0..ROUNDS {
        let mut proc = start(&config);
        let base = format!("http://{}", proc.addr);
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| {
                let tag = format!("r{round}w{i}");
                tokio::spawn(writer(base.clone(), tag, rng.next(), ledger.clone()))
            })
            .collect();
        let kill_after = Duration::from_millis(300 + rng.below(2000));
        tokio::time::sleep(kill_after).await;
        proc.kill9();
        for w in writers {
            tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a writer hung after the kill")
                .unwrap();
        }
        let proc = start(&config);
        let wrong = verify(&format!("http://{}", proc.addr), &config_toml, &ledger).await;
        let written = ledger.lock().unwrap().len();
        eprintln!("round {round}: killed after {kill_after:?}, {written} images written so far");
        assert!(
            wrong.is_empty(),
            "round {round} (seed {seed}):\n{}",
            wrong.join("\n")
        );
    }
}
