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

/// What the clients of one image sent, and which answers they got (2xx,
/// body read): an acknowledged write must survive the kill; a write in
/// flight at the kill may or may not have happened, but never half.
#[derive(Debug, Clone, Default)]
struct Written {
    uuid: String,
    /// SHA-1 and size of the file sent, and whether AddImageFile answered.
    file: Option<(String, u64)>,
    file_acked: bool,
    activate_sent: bool,
    activate_acked: bool,
    description: Option<String>,
    description_acked: bool,
}

type Ledger = std::sync::Arc<std::sync::Mutex<Vec<Written>>>;

/// A small deterministic generator (the seed is printed to replay a run).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(bytes))
}

/// The response's JSON if it is a 2xx whose body arrived whole.
async fn acked(sent: Result<reqwest::Response, reqwest::Error>) -> Option<Value> {
    let resp = sent.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

fn update(ledger: &Ledger, index: usize, change: impl FnOnce(&mut Written)) {
    let mut entries = ledger.lock().unwrap();
    change(&mut entries[index]);
}

/// Create, upload, activate, update images one after another until the
/// server stops answering.
async fn writer(base: String, tag: String, seed: u64, ledger: Ledger) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut rng = XorShift(seed | 1);
    for n in 0.. {
        let mut body = manifest();
        merge(&mut body, json!({"name": format!("{tag}-{n}")}));
        let sent = client
            .post(format!("{base}/images"))
            .json(&body)
            .send()
            .await;
        let Some(image) = acked(sent).await else {
            return;
        };
        let uuid = uuid_of(&image);
        let index = {
            let mut entries = ledger.lock().unwrap();
            entries.push(Written {
                uuid: uuid.clone(),
                ..Written::default()
            });
            entries.len() - 1
        };
        let size = 1024 + rng.below(512 << 10) as usize;
        let bytes: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
        let file = (sha1_hex(&bytes), size as u64);
        update(&ledger, index, |w| w.file = Some(file));
        let sent = client
            .put(format!("{base}/images/{uuid}/file?compression=none"))
            .body(bytes)
            .send()
            .await;
        if acked(sent).await.is_none() {
            return;
        }
        update(&ledger, index, |w| w.file_acked = true);
        update(&ledger, index, |w| w.activate_sent = true);
        let sent = client
            .post(format!("{base}/images/{uuid}?action=activate"))
            .json(&json!({}))
            .send()
            .await;
        if acked(sent).await.is_none() {
            return;
        }
        update(&ledger, index, |w| w.activate_acked = true);
        let description = format!("{tag}-{n} updated");
        update(&ledger, index, |w| {
            w.description = Some(description.clone())
        });
        let sent = client
            .post(format!("{base}/images/{uuid}?action=update"))
            .json(&json!({ "description": description }))
            .send()
            .await;
        if acked(sent).await.is_none() {
            return;
        }
        update(&ledger, index, |w| w.description_acked = true);
    }
}

/// What is wrong with `image` (as the restarted server shows it) given
/// what its clients were told; empty when nothing is.
fn lost_or_partial(w: &Written, status: u16, image: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let uuid = &w.uuid;
    if status != 200 {
        return vec![format!(
            "{uuid}: acknowledged create lost ({status} {image})"
        )];
    }
    let files = image["files"].as_array().cloned().unwrap_or_default();
    match (&w.file, files.first()) {
        (Some((sha1, size)), Some(f)) if f["sha1"] != sha1.as_str() || f["size"] != *size => {
            wrong.push(format!(
                "{uuid}: file {f} is not the one sent ({sha1}, {size})"
            ));
        }
        (Some(_), None) if w.file_acked => wrong.push(format!("{uuid}: acknowledged file lost")),
        (None, Some(f)) => wrong.push(format!("{uuid}: a file nobody sent: {f}")),
        _ => {}
    }
    let state = image["state"].as_str().unwrap_or_default();
    let may_be_active = w.activate_sent;
    match state {
        "active" if !may_be_active => wrong.push(format!("{uuid}: active, never activated")),
        "active" if files.is_empty() => wrong.push(format!("{uuid}: active without a file")),
        "unactivated" if w.activate_acked => {
            wrong.push(format!("{uuid}: acknowledged activation lost"))
        }
        "active" | "unactivated" => {}
        other => wrong.push(format!("{uuid}: unexpected state {other}")),
    }
    let description = image.get("description").and_then(Value::as_str);
    match (&w.description, description) {
        (Some(sent), Some(got)) if sent != got => {
            wrong.push(format!("{uuid}: description {got:?} was never sent"))
        }
        (Some(_), None) if w.description_acked => {
            wrong.push(format!("{uuid}: acknowledged update lost"))
        }
        (None, Some(got)) => wrong.push(format!("{uuid}: description {got:?} was never sent")),
        _ => {}
    }
    wrong
}

/// Every written image against the restarted server, then every active
/// image's file against its manifest, then `imgapi check`.
async fn verify(proc: &Proc, config_toml: &str, ledger: &Ledger) -> Vec<String> {
    let base = format!("http://{}", proc.addr);
    let client = reqwest::Client::new();
    let written = ledger.lock().unwrap().clone();
    let mut wrong = Vec::new();
    for w in &written {
        let resp = client
            .get(format!("{base}/images/{}", w.uuid))
            .send()
            .await
            .unwrap();
        let (status, image) = status_json(resp).await;
        wrong.extend(lost_or_partial(w, status, &image));
    }
    let (status, listed) = status_json(
        client
            .get(format!("{base}/images?state=all&limit=1000"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    for image in listed.as_array().unwrap() {
        if image["state"] != "active" {
            continue;
        }
        let uuid = uuid_of(image);
        let resp = client
            .get(format!("{base}/images/{uuid}/file"))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        if status != 200 || image["files"][0]["sha1"] != sha1_hex(&bytes).as_str() {
            wrong.push(format!(
                "{uuid}: active, its file answers {status} or differs"
            ));
        }
    }
    let config = imgapi_server::Config::from_toml(config_toml).unwrap();
    let stores = imgapi_server::check::Stores::open(&config).await.unwrap();
    let report = imgapi_server::check::check(
        &stores,
        imgapi_server::check::CheckOptions::default(),
        &mut std::io::sink(),
    )
    .await
    .unwrap();
    if !report.ok() {
        wrong.push(format!("imgapi check: {:#?}", report.to_json()));
    }
    if !report.young.is_empty() {
        eprintln!(
            "imgapi check: {} unreferenced object(s) younger than an hour (uploads cut by the kill between the blob commit and the record write)",
            report.young.len()
        );
    }
    wrong
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
        let wrong = verify(&proc, &config_toml, &ledger).await;
        let written = ledger.lock().unwrap().len();
        eprintln!("round {round}: killed after {kill_after:?}, {written} images written so far");
        assert!(
            wrong.is_empty(),
            "round {round} (seed {seed}):\n{}",
            wrong.join("\n")
        );
    }
}
