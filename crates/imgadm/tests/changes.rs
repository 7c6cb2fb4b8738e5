//! `imgadm changes`: the change feed of an in-process imgapi-server as a
//! table, as JSON lines, followed; and the answers of a server whose
//! events are gone (410) or that has no feed (an original IMGAPI, 404),
//! from a fake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{spawn, Server};

#[path = "common/fake_imgapi.rs"]
mod fake_imgapi;
use fake_imgapi::{FakeImgapi, Reply};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn imgadm(url: &str) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env("IMGAPI_URL", url)
        .env_remove("IMGADM_STORE")
        .env_remove("IMGAPI_CHANNEL");
    cmd
}

/// Create, upload and activate an image; its uuid.
fn publish(s: &Server, name: &str) -> String {
    let m = json!({
        "name": name, "version": "1.0.0", "type": "other", "os": "other",
        "owner": OWNER, "public": true
    });
    let mp = s.dir.path().join(format!("{name}.json"));
    std::fs::write(&mp, m.to_string()).unwrap();
    let fp = s.dir.path().join(format!("{name}.bin"));
    std::fs::write(&fp, format!("{name} bytes")).unwrap();
    let out = imgadm(&s.url)
        .args(["-j", "create", "-m", p(&mp), "-f", p(&fp)])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    v["uuid"].as_str().unwrap().to_string()
}

fn stdout(url: &str, args: &[&str]) -> String {
    let out = imgadm(url).args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn stderr_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).to_string()
}

#[test]
fn table_and_json_lines() {
    let s = spawn();
    let uuid = publish(&s, "watched");
    imgadm(&s.url)
        .args(["update", &uuid, "description=now described"])
        .assert()
        .success();

    let table = stdout(&s.url, &["changes"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("SEQ ") && lines[0].contains("  TYPE  "),
        "{table}"
    );
    for col in ["TIME", "UUID", "NAME@VERSION", "FIELDS"] {
        assert!(lines[0].contains(col), "{table}");
    }
    let kinds: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "image.created",
            "image.file_added",
            "image.activated",
            "image.updated"
        ],
        "{table}"
    );
    assert!(lines[4].contains(&uuid) && lines[4].contains("watched@1.0.0"));
    assert!(lines[4].ends_with("description"), "{table}");

    // -j: one event per line, the server's JSON.
    let json = stdout(&s.url, &["-j", "changes"]);
    let events: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{json}");
    assert_eq!(events[3]["type"], "image.updated");
    assert_eq!(events[3]["fields"], json!(["description"]));
    assert_eq!(events[0]["uuid"], uuid.as_str());

    // --since and --type narrow it; -H drops the header.
    let seq = events[1]["seq"].as_i64().unwrap().to_string();
    let after = stdout(&s.url, &["-j", "changes", "--since", &seq]);
    assert_eq!(after.lines().count(), 2, "{after}");
    let only = stdout(&s.url, &["changes", "-H", "--type", "activated,updated"]);
    assert_eq!(only.lines().count(), 2, "{only}");
    assert!(only.lines().all(|l| !l.starts_with("SEQ")), "{only}");
    let out = imgadm(&s.url)
        .args(["changes", "--type", "exploded"])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("unknown event type"));
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_line(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("a line within 20 s")
}

#[test]
fn follow_prints_events_as_they_come_until_ctrl_c() {
    let s = spawn();
    let old = publish(&s, "old");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imgadm"))
        .args([
            "-u",
            &s.url,
            "-j",
            "changes",
            "--follow",
            "--type",
            "activated",
        ])
        .env_remove("IMGAPI_CHANNEL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    let first: Value = serde_json::from_str(&next_line(&rx)).unwrap();
    assert_eq!(first["uuid"], old.as_str(), "the backlog first");

    let new = publish(&s, "new");
    let published = Instant::now();
    let line: Value = serde_json::from_str(&next_line(&rx)).unwrap();
    assert!(published.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (line["uuid"].as_str(), line["type"].as_str()),
        (Some(new.as_str()), Some("image.activated"))
    );

    // Ctrl-C ends it, exit 0.
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn gone_events_exit_4_and_say_resync() {
    let fake = FakeImgapi::start(Reply::Error(
        410,
        json!({"code": "ChangesExpired", "message": "since 7 is older than the change log"})
            .to_string(),
    ));
    for follow in [false, true] {
        let mut args = vec!["changes", "--since", "7"];
        if follow {
            args.push("--follow");
        }
        let out = imgadm(&fake.url).args(&args).assert().code(4);
        let err = stderr_of(&out);
        assert!(
            err.contains("(ChangesExpired)")
                && err.contains("the registry no longer has events after 7; resync"),
            "{err}"
        );
    }
}

#[test]
fn an_original_imgapi_has_no_feed() {
    let fake = FakeImgapi::start(Reply::Error(
        404,
        json!({"code": "ResourceNotFound", "message": "/changes does not exist"}).to_string(),
    ));
    let out = imgadm(&fake.url)
        .args(["changes", "--follow"])
        .assert()
        .code(3);
    let err = stderr_of(&out);
    assert!(
        err.contains("this IMGAPI has no change feed (an original IMGAPI?)"),
        "{err}"
    );
    assert_eq!(fake.request_count(), 1, "no retry of a 404");
}

#[test]
fn follow_retries_a_server_that_is_down() {
    // Nothing listens there: each attempt says so on stderr, and it goes on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imgadm"))
        .args([
            "-u",
            &format!("http://127.0.0.1:{port}"),
            "changes",
            "--follow",
        ])
        .env_remove("IMGAPI_CHANNEL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = next_line(&rx);
    assert!(
        first.contains("retrying in 1s (following after 0)"),
        "{first}"
    );
    let second = next_line(&rx);
    assert!(second.contains("retrying in 2s"), "{second}");
    assert!(child.try_wait().unwrap().is_none(), "still following");
    child.kill().unwrap();
    let _ = child.wait();
}
