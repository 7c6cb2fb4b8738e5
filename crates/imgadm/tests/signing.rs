//! imgadm `--user`/`--key` against an in-process imgapi-server with
//! `auth_type = "signature"` (key made with ssh-keygen; SKIP without it).
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use assert_cmd::Command;
use imgapi_server::{AppState, Config};
use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

#[test]
fn create_signed_with_user_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "", "-q", "-f"])
        .arg(&key)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("SKIP: ssh-keygen unavailable");
        return;
    }
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = dir.path().join("data");
    let url = rt.block_on(async {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\nauth_type = \"signature\"\n\n[auth_keys]\nalice = [{:?}]\n",
            data.display().to_string(),
            public.trim()
        );
        let app = AppState::open(Config::from_toml(&toml).unwrap())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            imgapi_server::serve(app, listener, std::future::pending::<()>())
                .await
                .unwrap();
        });
        format!("http://{addr}")
    });

    let m = dir.path().join("m.json");
    let manifest = json!({
        "name": "signed", "version": "1.0.0", "type": "other", "os": "other",
        "owner": OWNER, "public": true
    });
    std::fs::write(&m, manifest.to_string()).unwrap();
    let m = m.to_str().unwrap();
    let key = key.to_str().unwrap();
    let cmd = || {
        let mut c = Command::cargo_bin("imgadm").unwrap();
        c.env("IMGAPI_URL", &url)
            .env_remove("IMGAPI_USER")
            .env_remove("IMGAPI_KEY");
        c
    };

    // Unsigned: 401.
    let out = cmd().args(["create", "-m", m]).assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("UnauthorizedError"), "{err}");

    // Signed via flags.
    let out = cmd()
        .args(["--user", "alice", "--key", key, "-j", "create", "-m", m])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["state"], "unactivated");

    // Signed via the environment; ping shows the user.
    let out = cmd()
        .env("IMGAPI_USER", "alice")
        .env("IMGAPI_KEY", key)
        .args(["-j", "ping"])
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["user"], "alice");

    // Unreadable key: exit 2 with a clear message.
    let missing = dir.path().join("nope");
    let out = cmd()
        .args([
            "--user",
            "alice",
            "--key",
            missing.to_str().unwrap(),
            "ping",
        ])
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("cannot read private key"), "{err}");
}
