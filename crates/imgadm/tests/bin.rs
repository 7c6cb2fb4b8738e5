//! `imgadm bin`: the recycle bin of a server with `[lifecycle] recycle_days`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assert_cmd::Command;
use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

fn imgadm(s: &common::Server) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env("IMGAPI_URL", &s.url)
        .env("IMGADM_CONFIG_DIR", s.dir.path().join("config"))
        .env_remove("IMGAPI_CHANNEL");
    cmd
}

fn ok(s: &common::Server, args: &[&str]) -> String {
    let out = imgadm(s).args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn publish(s: &common::Server, name: &str) -> String {
    let dir = s.dir.path();
    let manifest = dir.join(format!("{name}.json"));
    let m = json!({"name": name, "version": "1.0.0", "type": "other", "os": "other",
                   "owner": OWNER, "public": true});
    std::fs::write(&manifest, m.to_string()).unwrap();
    let file = dir.join(format!("{name}.bin"));
    std::fs::write(&file, b"bin bytes").unwrap();
    let out = ok(
        s,
        &[
            "-j",
            "create",
            "-m",
            manifest.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    v["uuid"].as_str().unwrap().to_string()
}

#[test]
fn bin_list_restore_purge() {
    let s = common::spawn_with("[lifecycle]\nrecycle_days = 3\n");
    let kept = publish(&s, "kept");
    let gone = publish(&s, "gone");
    ok(&s, &["delete", &kept]);
    ok(&s, &["delete", &gone]);

    let table = ok(&s, &["bin", "list"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("UUID"), "{table}");
    assert!(header.contains("EXPIRES_AT"), "{table}");
    assert_eq!(lines.count(), 2, "{table}");
    let listed: Value = serde_json::from_str(&ok(&s, &["-j", "bin", "list"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let one: Value = serde_json::from_str(&ok(&s, &["bin", "get", &gone])).unwrap();
    assert_eq!(one["name"], "gone");
    assert_eq!(one["size"], 9);

    let restored = ok(&s, &["bin", "restore", &kept]);
    assert_eq!(
        restored.trim(),
        format!("Restored image {kept} (kept@1.0.0)")
    );
    let got: Value = serde_json::from_str(&ok(&s, &["get", &kept])).unwrap();
    assert_eq!(got["state"], "active");

    let purged = ok(&s, &["bin", "purge", &gone]);
    assert_eq!(
        purged.trim(),
        format!("Purged image {gone} from the recycle bin")
    );
    assert_eq!(ok(&s, &["-j", "bin", "list"]).trim(), "[]");
    let missing = imgadm(&s).args(["bin", "get", &gone]).assert().code(3);
    let stderr = String::from_utf8(missing.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("ResourceNotFound"), "{stderr}");
}
