//! imgadm lifecycle verbs (deprecate, protect, unprotect, lifecycle) and
//! the deprecation warning of `import`, against in-process imgapi-servers;
//! and no warning (nor failure) from a server without lifecycle flags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{spawn, Server};

use std::path::Path;

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
fn publish(s: &Server, name: &str, data: &[u8], origin: Option<&str>) -> String {
    let mut m = json!({
        "name": name, "version": "1.0.0", "type": "other", "os": "other",
        "owner": OWNER, "public": true
    });
    if let Some(o) = origin {
        m["origin"] = json!(o);
    }
    let mp = s.dir.path().join(format!("{name}.json"));
    std::fs::write(&mp, m.to_string()).unwrap();
    let fp = s.dir.path().join(format!("{name}.bin"));
    std::fs::write(&fp, data).unwrap();
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

#[test]
fn verbs_set_show_and_clear_the_flags() {
    let s = spawn();
    let uuid = publish(&s, "flagged", b"flagged bytes", None);
    assert_eq!(
        stdout(&s.url, &["lifecycle", &uuid]),
        "deprecated: no\nprotected:  no\n"
    );
    let out = stdout(&s.url, &["deprecate", &uuid]);
    assert!(
        out.starts_with(&format!("Deprecated image {uuid}\ndeprecated: yes, since ")),
        "{out}"
    );
    let v: Value = serde_json::from_str(&stdout(&s.url, &["-j", "lifecycle", &uuid])).unwrap();
    assert_eq!(
        (v["uuid"].as_str(), v["deprecated"].as_bool()),
        (Some(uuid.as_str()), Some(true))
    );

    let out = stdout(
        &s.url,
        &["deprecate", &uuid, "--at", "2999-01-01T00:00:00Z"],
    );
    assert!(
        out.contains("deprecated: from 2999-01-01T00:00:00.000Z\n"),
        "{out}"
    );
    let out = stdout(&s.url, &["deprecate", &uuid, "--clear"]);
    assert_eq!(
        out,
        format!("Cleared the deprecation of image {uuid}\ndeprecated: no\nprotected:  no\n")
    );
    imgadm(&s.url)
        .args(["deprecate", &uuid, "--clear", "--at", "2999-01-01"])
        .assert()
        .code(2);
    let out = imgadm(&s.url)
        .args(["deprecate", &uuid, "--at", "someday"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("InvalidParameter") && err.contains("deprecated_at"),
        "{err}"
    );

    let out = stdout(&s.url, &["protect", &uuid]);
    assert_eq!(
        out,
        format!("Protected image {uuid}\ndeprecated: no\nprotected:  yes\n")
    );
    let out = imgadm(&s.url).args(["delete", &uuid]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("(ImageProtected)") && err.contains("is protected"),
        "{err}"
    );
    let out = stdout(&s.url, &["unprotect", &uuid]);
    assert!(out.ends_with("protected:  no\n"), "{out}");
    imgadm(&s.url).args(["delete", &uuid]).assert().success();
    imgadm(&s.url).args(["lifecycle", &uuid]).assert().code(3);
}

/// A consumer with its own config dir (and store), one source.
fn consumer(source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    consumer_cmd(dir.path())
        .args(["sources", "add", source])
        .assert()
        .success();
    dir
}

fn consumer_cmd(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env_remove("IMGAPI_URL")
        .env_remove("IMGADM_STORE")
        .env("IMGADM_CONFIG_DIR", dir);
    cmd
}

#[test]
fn import_warns_about_deprecated_images_in_the_chain() {
    let s = spawn();
    let base = publish(&s, "base", b"base bytes", None);
    let child = publish(&s, "child", b"child bytes", Some(&base));
    stdout(&s.url, &["deprecate", &base]);

    let c = consumer(&s.url);
    let out = consumer_cmd(c.path())
        .args(["import", &child])
        .assert()
        .success();
    let (out, err) = (
        String::from_utf8_lossy(&out.get_output().stdout).to_string(),
        String::from_utf8_lossy(&out.get_output().stderr).to_string(),
    );
    assert!(
        err.contains(&format!(
            "imgadm: warning: image {base} (base@1.0.0) is deprecated (since "
        )),
        "{err}"
    );
    assert!(!err.contains(&child), "the child is not deprecated: {err}");
    assert!(!out.contains("warning"), "warnings stay off stdout: {out}");
    assert!(out.contains(&format!("Installed image {child}")), "{out}");

    // Not deprecated: no warning.
    let other = publish(&s, "other", b"other bytes", None);
    let out = consumer_cmd(c.path())
        .args(["import", &other])
        .assert()
        .success();
    assert!(!String::from_utf8_lossy(&out.get_output().stderr).contains("warning"));
}

#[test]
fn import_from_a_server_without_lifecycle_flags_does_not_warn() {
    // An original IMGAPI: the lifecycle path is a 404 ResourceNotFound.
    let s = spawn();
    let uuid = publish(&s, "plain", b"plain bytes", None);
    // Deprecated where it was published: an original cannot say so.
    stdout(&s.url, &["deprecate", &uuid]);
    let manifest: Value = serde_json::from_str(&stdout(&s.url, &["-j", "get", &uuid])).unwrap();
    let original = common::original::serving(manifest, b"plain bytes".to_vec());
    let c = consumer(&original.url);
    let out = consumer_cmd(c.path())
        .args(["import", &uuid])
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(!err.contains("warning"), "{err}");
    assert!(
        original.lifecycle_asked(),
        "the warning check asked the server"
    );
}
