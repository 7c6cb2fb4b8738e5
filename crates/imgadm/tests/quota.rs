//! `imgadm quota`: show, set (with size suffixes) and clear an owner's
//! quota against an in-process imgapi-server with `[quotas]`.
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

fn ok(s: &Server, args: &[&str]) -> String {
    let out = cmd(s).args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn ok_json(s: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&ok(s, args)).unwrap()
}

#[test]
fn quota_show_set_and_clear() {
    let s = spawn_with("[quotas]\ndefault_images = 5\n");
    let shown = ok(&s, &["quota", OWNER]);
    assert_eq!(
        shown.trim(),
        format!("{OWNER}: 0 of 5 images, 0 B (no limit)")
    );
    let set = ok_json(&s, &["-j", "quota", "set", OWNER, "--bytes", "10G"]);
    assert_eq!(
        set["bytes"],
        json!({"limit": 10u64 << 30, "used": 0, "reserved": 0})
    );
    assert_eq!(
        set["override"],
        json!({"images": null, "bytes": 10u64 << 30})
    );
    let shown = ok(&s, &["quota", OWNER]);
    assert_eq!(
        shown.trim(),
        format!("{OWNER}: 0 of 5 images, 0 B of 10.0 GiB")
    );
    let all = ok_json(&s, &["-j", "quota"]);
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    ok(&s, &["quota", "clear", OWNER]);
    let after = ok_json(&s, &["-j", "quota", OWNER]);
    assert_eq!(after["bytes"]["limit"], 0);
    assert_eq!(after["override"], Value::Null);
    // Clearing what is not stored is "not found" (exit 3).
    cmd(&s).args(["quota", "clear", OWNER]).assert().code(3);
    // set without a limit, and a bad size, are usage errors.
    cmd(&s).args(["quota", "set", OWNER]).assert().code(2);
    cmd(&s)
        .args(["quota", "set", OWNER, "--bytes", "ten"])
        .assert()
        .code(2);
}
