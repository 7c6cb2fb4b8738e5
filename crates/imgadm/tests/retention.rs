//! imgadm `retention rules|add|delete|run [--dry-run]` against an
//! in-process imgapi-server.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use serde_json::{json, Value};

mod common;
use common::{spawn_with, Server};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

fn cmd(s: &Server) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env("IMGAPI_URL", &s.url)
        .env("IMGADM_CONFIG_DIR", s.dir.path().join("config"))
        .env_remove("IMGAPI_CHANNEL");
    cmd
}

fn ok(s: &Server, args: &[&str]) -> (String, String) {
    let out = cmd(s).args(args).assert().success();
    let o = out.get_output();
    (
        String::from_utf8(o.stdout.clone()).unwrap(),
        String::from_utf8(o.stderr.clone()).unwrap(),
    )
}

fn ok_json(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&ok(s, args).0).unwrap()
}

/// Publish version `version` of `web`; its uuid.
fn publish(s: &Server, version: &str) -> String {
    let m = json!({"name": "web", "version": version, "type": "other", "os": "other",
        "owner": OWNER, "public": true});
    let mpath = s.dir.path().join(format!("{version}.json"));
    std::fs::write(&mpath, m.to_string()).unwrap();
    let fpath = s.dir.path().join(format!("{version}.bin"));
    std::fs::write(&fpath, version).unwrap();
    let img = ok_json(
        s,
        &[
            "-j",
            "create",
            "-m",
            mpath.to_str().unwrap(),
            "-f",
            fpath.to_str().unwrap(),
        ],
    );
    assert_eq!(img["state"], "active", "{img}");
    img["uuid"].as_str().unwrap().to_string()
}

#[test]
fn retention_verbs() {
    let s = spawn_with("[retention]\n[[retention.rules]]\nname = \"db-*\"\nkeep_days = 30\n");
    let versions: Vec<String> = ["1", "2", "3"].iter().map(|v| publish(&s, v)).collect();

    let (out, _) = ok(&s, &["retention", "rules"]);
    assert!(out.starts_with("ID"), "{out}");
    assert!(out.contains("config-1") && out.contains("db-*"), "{out}");

    // A rule needs something to keep.
    cmd(&s)
        .args(["retention", "add", "--name", "web"])
        .assert()
        .failure()
        .code(2);
    let (out, _) = ok(
        &s,
        &[
            "retention",
            "add",
            "--owner",
            OWNER,
            "--name",
            "web",
            "--keep-versions",
            "1",
        ],
    );
    assert!(out.starts_with("Added retention rule "), "{out}");
    let rules = ok_json(&s, &["-j", "retention", "rules"]);
    assert_eq!(rules.as_array().unwrap().len(), 2);
    let id = rules[1]["id"].as_str().unwrap().to_string();
    assert_eq!(rules[1]["keep_versions"], 1);

    let plan = ok_json(&s, &["-j", "retention", "run", "--dry-run"]);
    let planned: Vec<&str> = plan["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(planned, vec![versions[0].as_str(), versions[1].as_str()]);
    let (out, _) = ok(&s, &["retention", "run", "--dry-run"]);
    assert!(out.starts_with("Would delete 2 image(s):"), "{out}");
    assert!(
        out.contains(&versions[0]) && !out.contains(&versions[2]),
        "{out}"
    );

    let (out, err) = ok(&s, &["retention", "run"]);
    assert!(out.starts_with("Retention job "), "{out}");
    assert!(out.contains("succeeded: deleted 2 ["), "{out}");
    assert!(
        err.contains("queued") && err.contains("delete_image"),
        "{err}"
    );
    cmd(&s)
        .args(["get", &versions[0]])
        .assert()
        .failure()
        .code(3);
    ok(&s, &["get", &versions[2]]);

    // Config rules cannot be deleted; API rules can, once.
    let out = cmd(&s)
        .args(["retention", "delete", "config-1"])
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("configuration file"), "{err}");
    let (out, _) = ok(&s, &["retention", "delete", &id]);
    assert_eq!(out.trim(), format!("Deleted retention rule {id}"));
    cmd(&s)
        .args(["retention", "delete", &id])
        .assert()
        .failure()
        .code(3);
}
