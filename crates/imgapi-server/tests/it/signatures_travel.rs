//! Signatures travel with import-remote and `imgapi mirror` (and
//! `--follow`), and are verified again on arrival (docs/mirroring.md,
//! "Signatures"): each member of an origin chain brings its own; a
//! signature that does not verify against the copy is not carried; later
//! signatures arrive with later runs (or within seconds with `--follow`);
//! removals upstream are followed, the mirror's own countersignatures
//! stay; an upstream without the endpoint (an original IMGAPI) still
//! imports and mirrors, and one whose endpoint fails does not lose them
//! silently.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgapi_server::service::import::mirror::{self, MirrorOptions, MirrorSummary, Reporter};
use imgapi_server::Config;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::metrics::{scrape, value};
use crate::remote_import::{
    fake_manifest, new_uuid, not_found, publish_bytes, started, wait_job, FakeSource, Handler,
    Reply, OPEN,
};
use crate::signatures::{add_signature, signatures, sshsig, statement, OpenSsh};
use crate::support::*;

const DC: &str = "mode = \"dc\"";

/// Signing keys by name: real OpenSSH (`ssh-keygen -Y sign -n imgapi`)
/// when installed, else ed25519 keys made with ssh-key (`seed`).
struct Keys {
    ssh: Option<OpenSsh>,
    seeds: Mutex<HashMap<String, u8>>,
}

impl Keys {
    fn new() -> Keys {
        let ssh = OpenSsh::new();
        if ssh.is_none() {
            eprintln!("(signing with ssh-key instead of ssh-keygen)");
        }
        Keys {
            ssh,
            seeds: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, name: &str) -> PathBuf {
        let ssh = self.ssh.as_ref().unwrap();
        let path = ssh.path(name);
        if !path.exists() {
            ssh.keygen(name, "ed25519", None);
        }
        path
    }

    fn seed(&self, name: &str) -> u8 {
        let mut seeds = self.seeds.lock().unwrap();
        let next = 100 + u8::try_from(seeds.len()).unwrap();
        *seeds.entry(name.to_string()).or_insert(next)
    }

    fn sign(&self, name: &str, text: &str) -> String {
        match &self.ssh {
            Some(ssh) => ssh.sign(&self.key(name), text),
            None => sshsig(self.seed(name), text),
        }
    }

    /// The key's OpenSSH public key line (for an allowed_signers file).
    fn public_line(&self, name: &str) -> String {
        match &self.ssh {
            Some(ssh) => ssh.public_line(&self.key(name)),
            None => {
                let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(
                    &[self.seed(name); 32],
                ));
                key.public_key().to_openssh().unwrap()
            }
        }
    }
}

/// Sign `uuid` on `s` with key `name`; the signature's id.
async fn sign_image(s: &TestServer, keys: &Keys, uuid: &str, name: &str) -> String {
    let text = statement(s, uuid).await;
    let (status, sig) = add_signature(s, uuid, &keys.sign(name, &text)).await;
    assert_eq!(status, 200, "{sig}");
    assert_eq!(sig["valid"], true);
    sig["id"].as_str().unwrap().to_string()
}

/// A signature by `name` that no longer verifies upstream: made, then a
/// signed field changed (`valid: false` there from then on).
async fn stale_signature(s: &TestServer, keys: &Keys, uuid: &str, name: &str) {
    sign_image(s, keys, uuid, name).await;
    let (status, img) = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"version": "2.0.0"}),
        )
        .await;
    assert_eq!(status, 200, "{img}");
    let listed = signatures(s, uuid, "").await;
    assert!(
        listed["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["valid"] == false),
        "{listed}"
    );
}

/// `(id, valid)` of each signature of `uuid` on `s`, sorted.
async fn held(s: &TestServer, uuid: &str) -> Vec<(String, bool)> {
    let listed = signatures(s, uuid, "").await;
    let mut out: Vec<(String, bool)> = listed["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["valid"].as_bool().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn valid(ids: &[&String]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = ids.iter().map(|i| ((*i).clone(), true)).collect();
    out.sort();
    out
}

/// The upstream's signature objects of `uuid`, as the copy must show them
/// (the same armored text, key and first `added_at`/`added_by`).
async fn same_signatures(up: &TestServer, down: &TestServer, uuid: &str) {
    let a = signatures(up, uuid, "").await;
    let b = signatures(down, uuid, "").await;
    assert_eq!(a["statement"], b["statement"], "the copy signs the same");
    let valid_up: Vec<&Value> = a["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["valid"] == true)
        .collect();
    let down_list = b["signatures"].as_array().unwrap();
    assert_eq!(valid_up.len(), down_list.len(), "{a} vs {b}");
    for s in valid_up {
        let here = down_list.iter().find(|d| d["id"] == s["id"]).unwrap();
        for key in [
            "signature",
            "public_key",
            "fingerprint",
            "algorithm",
            "added_at",
            "added_by",
            "valid",
        ] {
            assert_eq!(here[key], s[key], "{key}");
        }
    }
}

fn steps(job: &Value) -> Vec<(String, String, String, String)> {
    job["chain_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["image_uuid"].as_str().unwrap_or_default().to_string(),
                s["result"].as_str().unwrap_or_default().to_string(),
                s["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// import-remote

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_remote_carries_each_chain_members_own_signatures() {
    let keys = Keys::new();
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let base = uuid_of(&publish_bytes(&upstream, json!({"name": "base"}), b"base bytes").await);
    let top = uuid_of(
        &publish_bytes(
            &upstream,
            json!({"name": "top", "origin": base}),
            b"top bytes",
        )
        .await,
    );
    let base_sig = sign_image(&upstream, &keys, &base, "publisher").await;
    // On top: one that no longer verifies upstream, then two that do.
    stale_signature(&upstream, &keys, &top, "stale").await;
    let top_pub = sign_image(&upstream, &keys, &top, "publisher").await;
    let top_ops = sign_image(&upstream, &keys, &top, "operator").await;
    assert_eq!(base_sig, top_pub, "one key, one id");

    let job = started(&target, &top, &upstream.url).await;
    let job = wait_job(&target, &top, &job).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    let names: Vec<(String, String)> = steps(&job).into_iter().map(|(n, i, _, _)| (n, i)).collect();
    let expected: Vec<(String, String)> = [
        ("import_image", &base),
        ("add_file", &base),
        ("add_signatures", &base),
        ("activate_image", &base),
        ("import_image", &top),
        ("add_file", &top),
        ("add_signatures", &top),
        ("activate_image", &top),
    ]
    .iter()
    .map(|(n, i)| (n.to_string(), i.to_string()))
    .collect();
    assert_eq!(names, expected, "signatures before activation");
    let results = steps(&job);
    assert_eq!(results[2].2, "added 1 signature");
    let top_result = &results[6].2;
    assert!(
        top_result.starts_with("added 2 signatures; refused 1 that do not verify against this copy: invalid signature for image"),
        "{top_result}"
    );
    assert!(top_result.contains("does not match"), "{top_result}");

    assert_eq!(held(&target, &base).await, valid(&[&base_sig]));
    assert_eq!(held(&target, &top).await, valid(&[&top_pub, &top_ops]));
    same_signatures(&upstream, &target, &base).await;
    same_signatures(&upstream, &target, &top).await;
}

/// A stand-in for an original IMGAPI: images, files, and 404 for anything
/// else (no `/signatures`, no `/changes`); or, with `failing`, a server
/// whose signatures endpoint answers 500.
async fn original(images: Vec<(Value, Vec<u8>)>, failing: bool) -> FakeSource {
    let handler: Handler = Arc::new(move |target: &str| {
        let path = target.split('?').next().unwrap_or_default().to_string();
        if path == "/images" {
            return Reply::Json(
                200,
                Value::Array(images.iter().map(|(m, _)| m.clone()).collect()),
            );
        }
        for (m, bytes) in &images {
            let u = m["uuid"].as_str().unwrap_or_default();
            if path == format!("/images/{u}") {
                return Reply::Json(200, m.clone());
            }
            if path == format!("/images/{u}/file") {
                return Reply::File {
                    bytes: bytes.clone(),
                    cut_at: None,
                    delay: Duration::ZERO,
                };
            }
            if failing && path == format!("/images/{u}/signatures") {
                return Reply::Json(
                    500,
                    json!({"code": "InternalError", "message": "signatures are down"}),
                );
            }
        }
        not_found(&path)
    });
    FakeSource::start(handler).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_without_signatures_imports_and_a_failing_endpoint_fails_the_import() {
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let uuid = new_uuid();
    let bytes = b"an original's image".to_vec();
    let images = vec![(fake_manifest(&uuid, None, &bytes, "active"), bytes)];

    // 404 on /signatures: nothing to carry, no step, no error.
    let old = original(images.clone(), false).await;
    let job = started(&target, &uuid, &old.url).await;
    let job = wait_job(&target, &uuid, &job).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    let names: Vec<String> = steps(&job).into_iter().map(|s| s.0).collect();
    assert_eq!(names, ["import_image", "add_file", "activate_image"]);
    assert_eq!(held(&target, &uuid).await, vec![]);

    // A source whose signatures cannot be had: the step is retried, then
    // the job fails and removes what it imported (no unsigned copy of a
    // maybe-signed image is left behind).
    let other = new_uuid();
    let bytes = b"another image".to_vec();
    let broken = original(
        vec![(fake_manifest(&other, None, &bytes, "active"), bytes)],
        true,
    )
    .await;
    let job = started(&target, &other, &broken.url).await;
    let job = wait_job(&target, &other, &job).await;
    assert_eq!(job["execution"], "failed", "{job:#}");
    let failed = steps(&job)
        .into_iter()
        .find(|s| s.0 == "add_signatures")
        .unwrap();
    assert!(
        failed.3.contains(&format!(
            "Unable to get the signatures of image {other}. Error from remote: signatures are down"
        )),
        "{failed:?}"
    );
    let (status, _) = target.get_json(&format!("/images/{other}")).await;
    assert_eq!(status, 404, "cleaned up");
}

// ---------------------------------------------------------------------------
// imgapi mirror

#[derive(Default)]
struct Log(Vec<String>);

impl Reporter for Log {
    fn line(&mut self, line: &str) {
        self.0.push(line.to_string());
    }
}

async fn run_mirror(target: &TestServer, opts: MirrorOptions) -> (MirrorSummary, Vec<String>) {
    let app = mirror::open(Config::from_toml(&target.config_toml).unwrap())
        .await
        .unwrap();
    let mut log = Log::default();
    let stop = AtomicBool::new(false);
    let summary = mirror::mirror(&app, &opts, &mut log, &stop).await.unwrap();
    (summary, log.0)
}

fn opts(upstream: &str) -> MirrorOptions {
    MirrorOptions {
        upstream: upstream.to_string(),
        ..MirrorOptions::default()
    }
}

/// `(carried, refused, removed)`.
fn signed(s: &MirrorSummary) -> (usize, usize, usize) {
    (
        s.signatures_carried,
        s.signatures_refused,
        s.signatures_removed,
    )
}

/// ListImageSignatures answered by `s` so far (its metrics).
async fn list_signature_requests(s: &TestServer) -> f64 {
    let m = scrape(&s.client, &format!("{}/metrics", s.url)).await;
    value(
        &m,
        "imgapi_http_requests_total",
        &[
            ("route", "ListImageSignatures"),
            ("method", "GET"),
            ("status", "200"),
        ],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_carries_signatures_then_follows_additions_and_removals() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("ops@mirror {}\n", keys.public_line("mirror-ops")),
    )
    .unwrap();
    let upstream = TestServer::spawn_with(&format!("{DC}\nmetrics_on_main = true")).await;
    let target = TestServer::spawn_with(&format!(
        "{DC}\n{OPEN}\n[signing]\nallowed_signers = {:?}\n",
        allowed.display().to_string()
    ))
    .await;
    let base = uuid_of(&publish_bytes(&upstream, json!({"name": "base"}), b"base bytes").await);
    let top = uuid_of(
        &publish_bytes(
            &upstream,
            json!({"name": "top", "origin": base}),
            b"top bytes",
        )
        .await,
    );
    let plain = uuid_of(&publish_bytes(&upstream, json!({"name": "plain"}), b"plain").await);
    let base_sig = sign_image(&upstream, &keys, &base, "publisher").await;
    stale_signature(&upstream, &keys, &top, "stale").await;
    let top_pub = sign_image(&upstream, &keys, &top, "publisher").await;
    let top_ops = sign_image(&upstream, &keys, &top, "operator").await;

    // 1. The first copy: each image with its own valid signatures.
    let (s, log) = run_mirror(&target, opts(&upstream.url)).await;
    assert_eq!((s.new, s.failed), (3, 0), "{log:?}");
    assert_eq!(signed(&s), (3, 1, 0), "{log:?}");
    assert!(
        s.to_string()
            .contains("signatures carried 3, signatures refused 1, signatures removed 0, bytes "),
        "{s}"
    );
    assert_eq!(s.to_json()["signatures_carried"], 3);
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("{top} top@2.0.0: new"))
                && l.contains("signatures: 2 carried, 1 refused (invalid signature for image")),
        "{log:?}"
    );
    assert_eq!(held(&target, &base).await, valid(&[&base_sig]));
    assert_eq!(held(&target, &top).await, valid(&[&top_pub, &top_ops]));
    assert_eq!(held(&target, &plain).await, vec![]);
    same_signatures(&upstream, &target, &top).await;

    // 2. Nothing new upstream since the last complete run: its feed says
    // so, no signature list is asked for, nothing is written.
    let start = target.get_json("/changes?limit=0").await.1["next"]
        .as_i64()
        .unwrap();
    let asked = list_signature_requests(&upstream).await;
    let (s, _) = run_mirror(&target, opts(&upstream.url)).await;
    assert_eq!((s.new, s.unchanged, s.failed), (0, 3, 0));
    assert_eq!(signed(&s), (0, 0, 0));
    assert_eq!(list_signature_requests(&upstream).await, asked);
    let next = target.get_json("/changes?limit=0").await.1["next"]
        .as_i64()
        .unwrap();
    assert_eq!(next, start, "a no-op run writes no event");

    // 3. Added upstream later, and a removal upstream; the mirror's own
    // countersignature (a key of its allowed_signers) and a signature by a
    // key it does not know are added here.
    let plain_sig = sign_image(&upstream, &keys, &plain, "publisher").await;
    let resp = upstream
        .delete(&format!("/images/{top}/signatures/{top_ops}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let counter = sign_image(&target, &keys, &top, "mirror-ops").await;
    let stranger = sign_image(&target, &keys, &top, "stranger").await;
    let listed = signatures(&target, &top, "").await;
    let roles: Vec<&Value> = listed["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["role"])
        .collect();
    assert!(roles.contains(&&json!("operator")), "{listed}");

    // A dry run tells, and writes nothing.
    let asked = list_signature_requests(&upstream).await;
    let (s, log) = run_mirror(
        &target,
        MirrorOptions {
            dry_run: true,
            ..opts(&upstream.url)
        },
    )
    .await;
    assert_eq!(signed(&s), (1, 1, 2), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l == &format!("{plain} plain@1.0.0: would sync signatures: 1 carried")),
        "{log:?}"
    );
    assert_eq!(held(&target, &plain).await, vec![]);
    assert_eq!(
        held(&target, &top).await,
        valid(&[&top_pub, &top_ops, &counter, &stranger])
    );

    let (s, log) = run_mirror(&target, opts(&upstream.url)).await;
    assert_eq!(signed(&s), (1, 1, 2), "{log:?}");
    assert_eq!((s.unchanged, s.failed), (3, 0), "{log:?}");
    assert_eq!(
        list_signature_requests(&upstream).await,
        asked + 4.0,
        "only the two images the feed named, in the dry run and in this one"
    );
    assert!(
        log.iter()
            .any(|l| l == &format!("{plain} plain@1.0.0: signatures: 1 carried")),
        "{log:?}"
    );
    assert_eq!(held(&target, &plain).await, valid(&[&plain_sig]));
    assert_eq!(
        held(&target, &top).await,
        valid(&[&top_pub, &counter]),
        "removed as upstream; the mirror's own countersignature stays"
    );
    let _ = stranger;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_from_an_original_and_from_a_failing_signatures_endpoint() {
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let uuid = new_uuid();
    let bytes = b"an original's image".to_vec();
    let old = original(
        vec![(fake_manifest(&uuid, None, &bytes, "active"), bytes)],
        false,
    )
    .await;
    let (s, log) = run_mirror(&target, opts(&old.url)).await;
    assert_eq!((s.new, s.failed), (1, 0), "{log:?}");
    assert_eq!(signed(&s), (0, 0, 0));
    assert!(
        !s.to_string().contains("signatures"),
        "the summary line as before: {s}"
    );
    let (s, _) = run_mirror(&target, opts(&old.url)).await;
    assert_eq!((s.unchanged, s.failed), (1, 0));

    // The endpoint exists but fails: the image is not imported without
    // its signatures; the run fails it and the next run tries again.
    let other = new_uuid();
    let bytes = b"another image".to_vec();
    let broken = original(
        vec![(fake_manifest(&other, None, &bytes, "active"), bytes)],
        true,
    )
    .await;
    let (s, log) = run_mirror(&target, opts(&broken.url)).await;
    assert_eq!((s.new, s.failed), (0, 1), "{log:?}");
    assert!(
        s.failures[0]
            .message
            .contains("cannot get the upstream's signatures: signatures are down"),
        "{:?}",
        s.failures
    );
    let (status, _) = target.get_json(&format!("/images/{other}")).await;
    assert_eq!(status, 404, "nothing left behind");
    assert_eq!(
        broken
            .file_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "asked before the file"
    );
}

// ---------------------------------------------------------------------------
// --follow

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_brings_a_signature_added_upstream_within_seconds() {
    let keys = Keys::new();
    let upstream = TestServer::spawn_with(DC).await;
    let target = TestServer::spawn_with(&format!("{DC}\n{OPEN}")).await;
    let cfg = target.data_dir.join("mirror.toml");
    std::fs::write(&cfg, &target.config_toml).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(mirror_args(
            &cfg,
            &["--upstream", &upstream.url, "--follow"],
        ))
        .env_remove("IMGAPI_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let patience = Duration::from_secs(30);
    let started_at = Instant::now();
    while !log
        .lock()
        .unwrap()
        .contains("following the upstream's change feed from")
    {
        assert!(started_at.elapsed() < patience, "{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let uuid = uuid_of(&publish_bytes(&upstream, json!({"name": "followed"}), b"followed").await);
    let started_at = Instant::now();
    loop {
        let (status, img) = target.get_json(&format!("/images/{uuid}")).await;
        if status == 200 && img["state"] == "active" {
            break;
        }
        assert!(started_at.elapsed() < patience, "{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(held(&target, &uuid).await, vec![]);

    // Signed upstream after the copy: here within seconds, valid.
    let id = sign_image(&upstream, &keys, &uuid, "publisher").await;
    let started_at = Instant::now();
    loop {
        if held(&target, &uuid).await == valid(&[&id]) {
            break;
        }
        assert!(started_at.elapsed() < patience, "{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started_at.elapsed();
    eprintln!("mirror --follow: the signature was here {took:?} after it was added upstream");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    same_signatures(&upstream, &target, &uuid).await;

    // And its removal upstream follows too.
    let resp = upstream
        .delete(&format!("/images/{uuid}/signatures/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let started_at = Instant::now();
    while !held(&target, &uuid).await.is_empty() {
        assert!(started_at.elapsed() < patience, "{}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().unwrap().to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(patience, child.wait())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let log = log.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("{uuid} followed@1.0.0: signatures: 1 carried")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{uuid} followed@1.0.0: signatures: 1 removed as upstream"
        )),
        "{log}"
    );
}
