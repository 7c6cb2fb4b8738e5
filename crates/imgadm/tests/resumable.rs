//! `imgadm add-file` / `create -f` with resumable upload sessions, end to
//! end against an in-process server: through a proxy that cuts the upload
//! mid-chunk (completes in one run), and a run killed half-way then rerun
//! (resumes where the server is, progress starting there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::proxy::Proxy;
use common::{spawn, Server};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
const MIB: u64 = 1 << 20;

fn imgadm(url: &str, s: &Server) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env("IMGAPI_URL", url)
        .env("IMGADM_CONFIG_DIR", s.dir.path().join("config"))
        .env_remove("IMGAPI_CHANNEL")
        // Sessions from 1 MiB, in 1 MiB chunks: small files exercise them.
        .env("IMGADM_RESUME_THRESHOLD", MIB.to_string())
        .env("IMGADM_UPLOAD_CHUNK_SIZE", MIB.to_string());
    cmd
}

fn data_file(s: &Server, name: &str, len: u64) -> (PathBuf, String) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    let path = s.dir.path().join(name);
    std::fs::write(&path, &data).unwrap();
    (path, hex::encode(Sha1::digest(&data)))
}

fn create_bare(s: &Server) -> String {
    let m = json!({"name": "big", "version": "1.0.0", "type": "other", "os": "other",
                   "owner": OWNER, "public": true});
    let path = s.dir.path().join("m.json");
    std::fs::write(&path, m.to_string()).unwrap();
    let out = imgadm(&s.url, s)
        .args(["-j", "create", "-m", p(&path)])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    v["uuid"].as_str().unwrap().to_string()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn image(s: &Server, uuid: &str) -> Value {
    let out = imgadm(&s.url, s)
        .args(["-j", "get", uuid])
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

/// The connection is cut mid-chunk; imgadm asks the server where it is and
/// goes on: one run, the right file, little sent twice.
#[test]
fn add_file_through_a_cutting_proxy_completes_in_one_run() {
    let s = spawn();
    let uuid = create_bare(&s);
    let size = 6 * MIB + 123;
    let (file, sha1) = data_file(&s, "big.bin", size);
    let proxy = Proxy::start(&s.url);
    proxy.cut_up_once_after(2 * MIB + MIB / 2);
    let out = imgadm(&proxy.url, &s)
        .args(["add-file", &uuid, "-f", p(&file), "-c", "none"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(stdout.contains("Added file to image"), "{stdout}");
    assert_eq!(proxy.up_cuts(), 1, "the upload was cut");
    let img = image(&s, &uuid);
    assert_eq!(img["files"][0]["sha1"], sha1.as_str());
    assert_eq!(img["files"][0]["size"], size);
    // The file once, plus at most the cut chunk again, plus headers.
    assert!(
        proxy.up() < size + 2 * MIB,
        "sent {} bytes for a {size}-byte file",
        proxy.up()
    );
    // Nothing is left to resume.
    let state = s.dir.path().join("config/uploads");
    let left = std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "state file removed");
}

/// A run killed half-way leaves the session on the server and its id in
/// the config dir; the rerun resumes there (says so, progress starting
/// there) and sends only the rest.
#[test]
fn a_rerun_after_a_kill_resumes() {
    let s = spawn();
    let uuid = create_bare(&s);
    let size = 8 * MIB + 7;
    let (file, sha1) = data_file(&s, "big.bin", size);
    let proxy = Proxy::start(&s.url);
    proxy.set_up_rate(2_000_000);
    let bin = assert_cmd::cargo::cargo_bin("imgadm");
    let mut child = std::process::Command::new(bin)
        .env("IMGAPI_URL", &proxy.url)
        .env("IMGADM_CONFIG_DIR", s.dir.path().join("config"))
        .env_remove("IMGAPI_CHANNEL")
        .env("IMGADM_RESUME_THRESHOLD", MIB.to_string())
        .env("IMGADM_UPLOAD_CHUNK_SIZE", MIB.to_string())
        .args(["add-file", &uuid, "-f", p(&file), "-c", "none"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the server holds a few chunks, then kill the run.
    let state = s.dir.path().join("config/uploads");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = imgapi_client::Client::new(&s.url).unwrap();
    let image_uuid: uuid::Uuid = uuid.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut held = 0;
    while Instant::now() < deadline {
        let id = std::fs::read_dir(&state)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["upload_id"].as_str().map(str::to_string));
        if let Some(id) = id {
            if let Ok(body) = rt.block_on(client.upload_session_get(&image_uuid, &id)) {
                held = body.offset;
                if held >= 3 * MIB {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(held >= 3 * MIB, "the first run never got far: {held}");
    assert!(held < size, "the first run must not have finished");

    let up_before = proxy.up();
    proxy.set_up_rate(0);
    let out = imgadm(&proxy.url, &s)
        .args(["add-file", &uuid, "-f", p(&file), "-c", "none"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    let at: u64 = stderr
        .split("at byte ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume note: {stderr}"));
    assert!(at >= held, "resumed at {at}, the server had {held}");
    let img = image(&s, &uuid);
    assert_eq!(img["files"][0]["sha1"], sha1.as_str());
    let rerun_sent = proxy.up() - up_before;
    // At most the missing bytes and one chunk sent again (the one refused
    // while the killed run's lease was still held), plus the requests'
    // headers, which the proxy counts too.
    let headers = 64 * 1024;
    assert!(
        rerun_sent < size - at + MIB + headers,
        "the rerun sent {rerun_sent} bytes, the server had {at} of {size}"
    );
}

/// `--no-resume` forces one plain PUT (no session, nothing remembered);
/// `create -f` above the threshold uses a session and activates.
#[test]
fn no_resume_and_create() {
    let s = spawn();
    let uuid = create_bare(&s);
    let (file, sha1) = data_file(&s, "big.bin", 3 * MIB);
    let proxy = Proxy::start(&s.url);
    imgadm(&proxy.url, &s)
        .args([
            "add-file",
            &uuid,
            "-f",
            p(&file),
            "-c",
            "none",
            "--no-resume",
        ])
        .assert()
        .success();
    assert_eq!(image(&s, &uuid)["files"][0]["sha1"], sha1.as_str());
    assert_eq!(proxy.connections(), 1, "a single PUT");

    let m = json!({"name": "c", "version": "1.0.0", "type": "other", "os": "other",
                   "owner": OWNER, "public": true});
    let mpath = s.dir.path().join("c.json");
    std::fs::write(&mpath, m.to_string()).unwrap();
    let out = imgadm(&s.url, &s)
        .args(["-j", "create", "-m", p(&mpath), "-f", p(&file)])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["state"], "active");
    assert_eq!(v["files"][0]["sha1"], sha1.as_str());
}

/// A plain upload cut by the network after `create` made the image: the
/// image is deleted again (nothing half-done), and the error says so.
#[test]
fn create_rolls_back_when_a_plain_upload_fails() {
    let s = spawn();
    let (file, _) = data_file(&s, "cut.bin", 2 * MIB);
    let m = json!({"name": "rolled-back", "version": "1.0.0", "type": "other", "os": "other",
                   "owner": OWNER, "public": true});
    let mpath = s.dir.path().join("rb.json");
    std::fs::write(&mpath, m.to_string()).unwrap();
    let proxy = Proxy::start(&s.url);
    proxy.cut_up_once_after(MIB);
    let out = imgadm(&proxy.url, &s)
        .args(["create", "-m", p(&mpath), "-f", p(&file), "--no-resume"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("adding its file failed"), "{err}");
    assert!(
        err.contains("deleted again: nothing is left half-done"),
        "{err}"
    );
    let left = imgadm(&s.url, &s)
        .args(["-j", "list", "--name", "rolled-back", "state=all"])
        .assert()
        .success();
    let left: Value = serde_json::from_slice(&left.get_output().stdout).unwrap();
    assert_eq!(left, json!([]));
}

/// Ctrl-C (SIGINT) during `create -f`'s resumable upload: the image is left
/// with its session, and the error gives the one line that finishes it;
/// that line works.
#[test]
fn create_interrupted_mid_upload_prints_the_command_that_resumes_it() {
    let s = spawn();
    let size = 8 * MIB + 3;
    let (file, sha1) = data_file(&s, "int.bin", size);
    let m = json!({"name": "interrupted", "version": "1.0.0", "type": "other", "os": "other",
                   "owner": OWNER, "public": true});
    let mpath = s.dir.path().join("int.json");
    std::fs::write(&mpath, m.to_string()).unwrap();
    let proxy = Proxy::start(&s.url);
    proxy.set_up_rate(2_000_000);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("imgadm"))
        .env("IMGAPI_URL", &proxy.url)
        .env("IMGADM_CONFIG_DIR", s.dir.path().join("config"))
        .env_remove("IMGAPI_CHANNEL")
        .env("IMGADM_RESUME_THRESHOLD", MIB.to_string())
        .env("IMGADM_UPLOAD_CHUNK_SIZE", MIB.to_string())
        .args(["create", "-m", p(&mpath), "-f", p(&file)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once a session is remembered and some MiB went up.
    let state = s.dir.path().join("config/uploads");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let remembered = std::fs::read_dir(&state).is_ok_and(|mut d| d.next().is_some());
        if remembered && proxy.up() >= 2 * MIB {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(130), "{err}");
    let line = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("resume it with: "))
        .unwrap_or_else(|| panic!("no resume command: {err}"));
    let (add_file, activate) = line.split_once(" && ").unwrap();
    let uuid = activate.rsplit(' ').next().unwrap();
    assert_eq!(
        add_file,
        format!("imgadm add-file {uuid} -f {} -c none", p(&file))
    );
    assert_eq!(image(&s, uuid)["state"], "unactivated");

    proxy.set_up_rate(0);
    for command in [add_file, activate] {
        let words: Vec<&str> = command.split(' ').skip(1).collect();
        imgadm(&proxy.url, &s).args(&words).assert().success();
    }
    let img = image(&s, uuid);
    assert_eq!(img["state"], "active");
    assert_eq!(img["files"][0]["sha1"], sha1.as_str());
}
