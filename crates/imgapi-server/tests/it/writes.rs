//! Concurrent writers with a ledger of what they sent and what was
//! acknowledged, and the check that a server (after a kill, after an
//! outage) shows every acknowledged write and nothing half-written.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// What the clients of one image sent, and which answers they got (2xx,
/// body read): an acknowledged write must survive the kill; a write in
/// flight at the kill may or may not have happened, but never half.
#[derive(Debug, Clone, Default)]
pub(crate) struct Written {
    uuid: String,
    /// SHA-1 and size of the file sent, and whether AddImageFile answered.
    file: Option<(String, u64)>,
    file_acked: bool,
    activate_sent: bool,
    activate_acked: bool,
    description: Option<String>,
    pub(crate) description_acked: bool,
}

pub(crate) type Ledger = std::sync::Arc<std::sync::Mutex<Vec<Written>>>;

/// A small deterministic generator (the seed is printed to replay a run).
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(bytes))
}

fn update(ledger: &Ledger, index: usize, change: impl FnOnce(&mut Written)) {
    let mut entries = ledger.lock().unwrap();
    change(&mut entries[index]);
}

/// Why a write was not acknowledged: no answer (connection cut), or an
/// answer other than 2xx (status, body).
#[derive(Debug)]
pub(crate) enum Unacked {
    Transport,
    Answer(u16, Value),
}

/// The response's JSON if it is a 2xx whose body arrived whole.
async fn acked(sent: Result<reqwest::Response, reqwest::Error>) -> Result<Value, Unacked> {
    let resp = sent.map_err(|_| Unacked::Transport)?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|_| Unacked::Transport)?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(Unacked::Answer(status, body))
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Create, upload, activate and update one image, recording each step
/// before it is sent and once it is acknowledged; stops at the first
/// step that is not.
async fn write_image(
    client: &reqwest::Client,
    base: &str,
    name: String,
    rng: &mut XorShift,
    ledger: &Ledger,
) -> Result<(), Unacked> {
    let mut body = manifest();
    merge(&mut body, json!({ "name": name }));
    let sent = client
        .post(format!("{base}/images"))
        .json(&body)
        .send()
        .await;
    let image = acked(sent).await?;
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
    update(ledger, index, |w| w.file = Some(file));
    let sent = client
        .put(format!("{base}/images/{uuid}/file?compression=none"))
        .body(bytes)
        .send()
        .await;
    acked(sent).await?;
    update(ledger, index, |w| w.file_acked = true);
    update(ledger, index, |w| w.activate_sent = true);
    let sent = client
        .post(format!("{base}/images/{uuid}?action=activate"))
        .json(&json!({}))
        .send()
        .await;
    acked(sent).await?;
    update(ledger, index, |w| w.activate_acked = true);
    let description = format!("{name} updated");
    update(ledger, index, |w| w.description = Some(description.clone()));
    let sent = client
        .post(format!("{base}/images/{uuid}?action=update"))
        .json(&json!({ "description": description }))
        .send()
        .await;
    acked(sent).await?;
    update(ledger, index, |w| w.description_acked = true);
    Ok(())
}

/// Write images one after another until one step is not acknowledged
/// (the server was killed).
pub(crate) async fn writer(base: String, tag: String, seed: u64, ledger: Ledger) {
    let client = client();
    let mut rng = XorShift(seed | 1);
    for n in 0.. {
        let name = format!("{tag}-{n}");
        if write_image(&client, &base, name, &mut rng, &ledger)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Write images one after another until `stop` turns true, whatever the
/// answers; returns every step that was not acknowledged, with the time
/// it was answered.
pub(crate) async fn writer_until(
    base: String,
    tag: String,
    seed: u64,
    ledger: Ledger,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<(std::time::Instant, Unacked)> {
    let client = client();
    let mut rng = XorShift(seed | 1);
    let mut refused = Vec::new();
    for n in 0.. {
        if *stop.borrow() {
            break;
        }
        let name = format!("{tag}-{n}");
        if let Err(e) = write_image(&client, &base, name, &mut rng, &ledger).await {
            refused.push((std::time::Instant::now(), e));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    refused
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
pub(crate) async fn verify(base: &str, config_toml: &str, ledger: &Ledger) -> Vec<String> {
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
