//! imgadm `channels`, `channel-add` and `--channel` / IMGAPI_CHANNEL against
//! an in-process imgapi-server configured with channels.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::{json, Value};

mod common;
use common::{spawn_with, Server};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

const CHANNELS: &str = r#"
[[channels]]
name = "dev"
description = "all development builds"
default = true
[[channels]]
name = "staging"
description = "builds for testing in staging"
[[channels]]
name = "release"
description = "release gold bits"
"#;

impl Server {
    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("imgadm").unwrap();
        cmd.env("IMGAPI_URL", &self.url)
            .env("IMGADM_CONFIG_DIR", self.dir.path().join("config"))
            .env_remove("IMGAPI_CHANNEL");
        cmd
    }

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

    /// Publish an image through `channel`; return its uuid.
    fn publish(&self, channel: &str, name: &str) -> String {
        let m = json!({
            "name": name, "version": "1.0.0", "type": "other", "os": "other",
            "owner": OWNER, "public": true
        });
        let m = self.write(&format!("{name}.json"), m.to_string().as_bytes());
        let f = self.write(&format!("{name}.bin"), name.as_bytes());
        let v = self.ok_json(&[
            "-j",
            "--channel",
            channel,
            "create",
            "-m",
            m.to_str().unwrap(),
            "-f",
            f.to_str().unwrap(),
        ]);
        assert_eq!(v["state"], "active");
        v["uuid"].as_str().unwrap().to_string()
    }

    fn names(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["list", "-j"];
        all.extend_from_slice(args);
        let mut names: Vec<String> = self
            .ok_json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stderr.clone()).unwrap()
}

#[test]
fn channels_lists_configured_channels() {
    let s = spawn_with(CHANNELS);
    let out = s.ok(&["channels"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("NAME") && lines[0].contains("DEFAULT"));
    assert!(lines[0].ends_with("DESCRIPTION"));
    assert!(lines[1].starts_with("dev") && lines[1].contains("true"));
    assert!(lines[1].ends_with("all development builds"));
    assert!(lines[3].starts_with("release") && lines[3].contains(" - "));
    let out = s.ok(&["channels", "-H"]);
    assert!(out.starts_with("dev"), "{out}");
    let v = s.ok_json(&["channels", "-j"]);
    assert_eq!(
        v,
        json!([
            {"name": "dev", "description": "all development builds", "default": true},
            {"name": "staging", "description": "builds for testing in staging"},
            {"name": "release", "description": "release gold bits"}
        ])
    );
}

#[test]
fn channels_on_a_server_without_channels_is_not_found() {
    let s = spawn_with("");
    let a = s.cmd().arg("channels").assert().code(3);
    let err = stderr_of(&a);
    assert!(err.contains("has no channels configured"), "{err}");
}

#[test]
fn channel_option_filters_and_channel_add_promotes() {
    let s = spawn_with(CHANNELS);
    let dev = s.publish("dev", "in-dev");
    let staging = s.publish("staging", "in-staging");

    // Default channel (dev) when unset; --channel and IMGAPI_CHANNEL select.
    assert_eq!(s.names(&[]), ["in-dev"]);
    assert_eq!(s.names(&["--channel", "staging"]), ["in-staging"]);
    assert_eq!(s.names(&["--channel", "*"]), ["in-dev", "in-staging"]);
    let out = s
        .cmd()
        .env("IMGAPI_CHANNEL", "staging")
        .args(["list", "-H", "-o", "name"])
        .assert()
        .success();
    assert_eq!(
        String::from_utf8(out.get_output().stdout.clone()).unwrap(),
        "in-staging\n"
    );
    // Lookups by uuid go through the channel too.
    s.cmd().args(["get", &staging]).assert().code(3);
    s.ok(&["--channel", "staging", "get", &staging]);
    s.ok(&["get", &dev]);

    // Promote staging → release (found through staging).
    let out = s.ok(&["--channel", "staging", "channel-add", &staging, "release"]);
    assert!(
        out.contains("Added image") && out.contains("to channel release"),
        "{out}"
    );
    assert_eq!(s.names(&["--channel", "release"]), ["in-staging"]);
    assert_eq!(s.names(&["--channel", "staging"]), ["in-staging"]);
    s.cmd()
        .env("IMGAPI_CHANNEL", "release")
        .args(["get", &staging])
        .assert()
        .success();
    // Already there: no change, still fine.
    s.ok(&["--channel", "release", "channel-add", &staging, "release"]);

    // Not found through the default channel; unknown channels are the
    // server's ValidationFailed.
    s.cmd()
        .args(["channel-add", &staging, "release"])
        .assert()
        .code(3);
    let a = s
        .cmd()
        .args(["--channel", "staging", "channel-add", &staging, "bogus"])
        .assert()
        .code(1);
    assert!(
        stderr_of(&a).starts_with("imgadm: error (ValidationFailed): unknown channel: bogus"),
        "{}",
        stderr_of(&a)
    );
    let a = s
        .cmd()
        .args(["--channel", "bogus", "list"])
        .assert()
        .code(1);
    assert!(stderr_of(&a).contains("unknown channel: bogus"));
}

#[test]
fn profile_channel_is_used_when_flag_and_env_are_absent() {
    let s = spawn_with(CHANNELS);
    s.publish("staging", "from-profile");
    let config = s.dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("profile.json"),
        json!({"url": s.url, "channel": "staging"}).to_string(),
    )
    .unwrap();
    let names = |cmd: &mut Command| {
        let out = cmd.args(["list", "-H", "-o", "name"]).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    assert_eq!(names(s.cmd().env_remove("IMGAPI_URL")), "from-profile\n");
    assert_eq!(names(s.cmd().env("IMGAPI_CHANNEL", "dev")), "");
    assert_eq!(names(s.cmd().args(["--channel", "dev"])), "");
}

#[test]
fn delete_says_whether_it_removed_from_a_channel_or_deleted() {
    let s = spawn_with(CHANNELS);
    let uuid = s.publish("dev", "multi");
    s.ok(&["--channel", "dev", "channel-add", &uuid, "staging"]);
    s.ok(&["--channel", "dev", "channel-add", &uuid, "release"]);
    // No --channel: the server's default channel (dev).
    let out = s.ok(&["delete", &uuid]);
    assert_eq!(
        out,
        format!("Removed image {uuid} from channel dev (still in channels staging, release)\n")
    );
    let out = s.ok(&["--channel", "staging", "delete", &uuid]);
    assert_eq!(
        out,
        format!("Removed image {uuid} from channel staging (still in channels release)\n")
    );
    let out = s.ok(&["--channel", "release", "delete", &uuid]);
    assert_eq!(out, format!("Deleted image {uuid}\n"));
    s.cmd()
        .args(["--channel", "*", "get", &uuid])
        .assert()
        .code(3);
}
