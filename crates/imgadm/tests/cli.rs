//! imgadm end to end against a real in-process imgapi-server.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{spawn, Server};

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
const ACCOUNT: &str = "5f9e3f1c-6d2e-4b0a-9d4e-2f1f3f0c7a11";

impl Server {
    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("imgadm").unwrap();
        cmd.env("IMGAPI_URL", &self.url);
        cmd
    }

    /// Run imgadm with `args`, expect success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    fn ok_json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn manifest(&self, name: &str) -> PathBuf {
        let m = json!({
            "name": name, "version": "1.0.0", "type": "other", "os": "other",
            "owner": OWNER, "public": true
        });
        self.write(&format!("{name}.json"), m.to_string().as_bytes())
    }

    /// Create an unactivated image (no file) and return its uuid.
    fn create_bare(&self, name: &str) -> String {
        let m = self.manifest(name);
        let v = self.ok_json(&["-j", "create", "-m", m.to_str().unwrap()]);
        assert_eq!(v["state"], "unactivated");
        v["uuid"].as_str().unwrap().to_string()
    }

    /// Create, upload and activate an image; return its uuid.
    fn create_active(&self, name: &str, data: &[u8]) -> String {
        let m = self.manifest(name);
        let f = self.write(&format!("{name}.bin"), data);
        let v = self.ok_json(&["-j", "create", "-m", p(&m), "-f", p(&f)]);
        assert_eq!(v["state"], "active");
        v["uuid"].as_str().unwrap().to_string()
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stderr.clone()).unwrap()
}

#[test]
fn ping() {
    let s = spawn();
    assert!(s.ok(&["ping"]).starts_with("ok:"));
    s.ok_json(&["ping", "-j"]);
}

#[test]
fn get() {
    let s = spawn();
    let uuid = s.create_bare("get-me");
    let v = s.ok_json(&["get", &uuid]);
    assert_eq!(v["uuid"], uuid.as_str());
    assert_eq!(v["name"], "get-me");
}

#[test]
fn list_table_json_filters_columns_sort() {
    let s = spawn();
    let a = s.create_active("bbb", b"one");
    let b = s.create_active("aaa", b"two");
    let table = s.ok(&["list"]);
    let header = table.lines().next().unwrap();
    for col in [
        "UUID",
        "NAME",
        "VERSION",
        "OS",
        "TYPE",
        "STATE",
        "PUBLISHED",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains(&a) && table.contains(&b));

    let arr = s.ok_json(&["list", "-j", "--name", "aaa"]);
    assert_eq!(arr.as_array().unwrap().len(), 1);
    assert_eq!(arr[0]["uuid"], b.as_str());
    let arr = s.ok_json(&["list", "-j", "name=bbb"]);
    assert_eq!(arr[0]["uuid"], a.as_str());

    let out = s.ok(&["list", "-H", "-o", "name,state", "-s", "name"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["aaa  active", "bbb  active"]
    );

    s.cmd().args(["list", "novalue"]).assert().code(2);
}

#[test]
fn create_uploads_and_activates() {
    let s = spawn();
    let m = s.manifest("full");
    let f = s.write("full.bin", &vec![7u8; 300_000]);
    let out = s.ok(&["create", "-m", p(&m), "-f", p(&f)]);
    assert!(
        out.contains("Created image") && out.contains("Activated image"),
        "{out}"
    );
    let uuid = s.ok_json(&["list", "-j", "--name", "full"])[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let v = s.ok_json(&["get", &uuid]);
    assert_eq!(v["state"], "active");
    assert_eq!(v["files"][0]["size"], 300_000);
}

#[test]
fn create_reports_failed_step_and_keeps_image() {
    let s = spawn();
    let m = s.manifest("half");
    let missing = s.dir.path().join("no-such-file");
    let a = s
        .cmd()
        .args(["create", "-m", p(&m), "-f", p(&missing)])
        .assert()
        .code(1);
    let err = stderr_of(&a);
    assert!(err.starts_with("imgadm: error"), "{err}");
    assert!(err.contains("adding its file failed"), "{err}");
    // The error names the image, which is left unactivated.
    let at = err.find("image ").unwrap() + "image ".len();
    let uuid = &err[at..at + 36];
    assert_eq!(s.ok_json(&["get", uuid])["state"], "unactivated");
}

#[test]
fn add_file_then_activate() {
    let s = spawn();
    let uuid = s.create_bare("step");
    let f = s.write("step.bin", b"step by step");
    let out = s.ok(&["add-file", &uuid, "-f", p(&f), "-c", "none"]);
    assert!(out.contains("Added file"), "{out}");
    assert_eq!(s.ok_json(&["get", &uuid])["files"][0]["size"], 12);
    let v = s.ok_json(&["-j", "activate", &uuid]);
    assert_eq!(v["state"], "active");
}

#[test]
fn disable_and_enable() {
    let s = spawn();
    let uuid = s.create_active("toggle", b"x");
    assert!(s.ok(&["disable", &uuid]).contains("Disabled image"));
    assert_eq!(s.ok_json(&["get", &uuid])["state"], "disabled");
    assert!(s.ok(&["enable", &uuid]).contains("Enabled image"));
    assert_eq!(s.ok_json(&["get", &uuid])["state"], "active");
}

#[test]
fn update_fields() {
    let s = spawn();
    let uuid = s.create_bare("upd");
    s.ok(&[
        "update",
        &uuid,
        "description=a fine image",
        "tags={\"k\":\"v\"}",
    ]);
    let v = s.ok_json(&["get", &uuid]);
    assert_eq!(v["description"], "a fine image");
    assert_eq!(v["tags"]["k"], "v");
    s.cmd().args(["update", &uuid, "noequals"]).assert().code(2);
}

#[test]
fn delete() {
    let s = spawn();
    let uuid = s.create_active("gone", b"bye");
    assert!(s.ok(&["delete", &uuid]).contains("Deleted image"));
    s.cmd().args(["get", &uuid]).assert().code(3);
}

#[test]
fn add_and_remove_acl() {
    let s = spawn();
    let uuid = s.create_bare("acl");
    let v = s.ok_json(&["-j", "add-acl", &uuid, ACCOUNT]);
    assert_eq!(v["acl"], json!([ACCOUNT]));
    let v = s.ok_json(&["-j", "remove-acl", &uuid, ACCOUNT]);
    let acl = v.get("acl").cloned().unwrap_or(json!([]));
    assert_eq!(acl, json!([]));
}

#[test]
fn get_file_downloads_and_verifies() {
    let s = spawn();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let uuid = s.create_active("dl", &data);
    let dest = s.dir.path().join("out.bin");
    let out = s.ok(&["get-file", &uuid, "-o", p(&dest)]);
    assert!(out.contains("Saved file"), "{out}");
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    // Resume: a partial `.part` is completed, not re-downloaded from scratch.
    let dest2 = s.dir.path().join("out2.bin");
    std::fs::write(imgapi_client_part(&dest2), &data[..50_000]).unwrap();
    s.ok(&["get-file", &uuid, "-o", p(&dest2)]);
    assert_eq!(std::fs::read(&dest2).unwrap(), data);
}

fn imgapi_client_part(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

#[test]
fn missing_image_is_exit_3_with_rest_code() {
    let s = spawn();
    let a = s
        .cmd()
        .args(["get", "00000000-0000-4000-8000-000000000000"])
        .assert()
        .code(3);
    let err = stderr_of(&a);
    assert!(
        err.starts_with("imgadm: error (ResourceNotFound): "),
        "{err}"
    );
}

#[test]
fn refused_connection_is_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = Command::cargo_bin("imgadm")
        .unwrap()
        .env("IMGAPI_URL", format!("http://127.0.0.1:{port}"))
        .arg("ping")
        .assert()
        .code(1);
    assert!(stderr_of(&a).starts_with("imgadm: error: "));
}

#[test]
fn usage_errors_are_exit_2() {
    Command::cargo_bin("imgadm")
        .unwrap()
        .env_remove("IMGAPI_URL")
        .arg("ping")
        .assert()
        .code(2);
    Command::cargo_bin("imgadm")
        .unwrap()
        .args(["-u", "http://127.0.0.1:1", "get", "not-a-uuid"])
        .assert()
        .code(2);
}

#[test]
fn every_verb_has_help() {
    for verb in [
        "ping",
        "get",
        "list",
        "create",
        "add-file",
        "activate",
        "disable",
        "enable",
        "update",
        "delete",
        "add-acl",
        "remove-acl",
        "get-file",
    ] {
        Command::cargo_bin("imgadm")
            .unwrap()
            .args([verb, "--help"])
            .assert()
            .success();
    }
}
