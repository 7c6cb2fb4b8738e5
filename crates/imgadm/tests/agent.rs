//! imgadm signing through a real `ssh-agent` and with passphrase-protected
//! keys, against an in-process imgapi-server with `auth_type = "signature"`.
//! Prints SKIP and passes when ssh-agent, ssh-add or ssh-keygen is missing.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use imgapi_server::{AppState, Config};
use serde_json::Value;

/// `ssh-keygen` a key without passphrase; false when ssh-keygen is missing.
fn keygen(path: &Path, args: &[&str]) -> bool {
    let status = std::process::Command::new("ssh-keygen")
        .args(args)
        .args(["-N", "", "-q", "-C", "test", "-f"])
        .arg(path)
        .status();
    matches!(status, Ok(s) if s.success())
}

/// Start a signature-auth server for `alice` with `public_keys`.
fn spawn_server(rt: &tokio::runtime::Runtime, data: &Path, public_keys: &[String]) -> String {
    let keys: Vec<String> = public_keys
        .iter()
        .map(|k| format!("{:?}", k.trim()))
        .collect();
    rt.block_on(async {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\nauth_type = \"signature\"\n\n[auth_keys]\nalice = [{}]\n",
            data.display().to_string(),
            keys.join(", ")
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
    })
}

/// A real `ssh-agent -D` on a socket in a temp dir, killed (by PID) on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Option<Agent> {
        let sock = dir.join("agent.sock");
        let Ok(child) = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return None;
        };
        let mut agent = Agent { child, sock };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            assert!(
                agent.child.try_wait().unwrap().is_none(),
                "ssh-agent exited"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(agent)
    }

    fn add(&self, key: &Path) {
        let out = std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock)
            .stdin(Stdio::null())
            .output()
            .expect("ssh-add");
        assert!(out.status.success(), "ssh-add: {out:?}");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

fn stdout_json(out: &assert_cmd::assert::Assert) -> Value {
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn signs_through_ssh_agent_and_with_passphrases() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut agent) = Agent::start(dir.path()) else {
        eprintln!("SKIP: ssh-agent not installed");
        return;
    };
    let (rsa, ed, lone) = (
        dir.path().join("rsa"),
        dir.path().join("ed"),
        dir.path().join("lone"),
    );
    if !keygen(&rsa, &["-t", "rsa", "-b", "2048"])
        || !keygen(&ed, &["-t", "ed25519"])
        || !keygen(&lone, &["-t", "ed25519", "-a", "4"])
    {
        eprintln!("SKIP: ssh-keygen unavailable");
        return;
    }
    let public = |k: &Path| std::fs::read_to_string(k.with_extension("pub")).unwrap();
    // The agent's first key is RSA, then ed25519.
    agent.add(&rsa);
    agent.add(&ed);
    // Encrypt the files afterwards: the agent keeps the decrypted keys.
    for key in [&ed, &lone] {
        let status = std::process::Command::new("ssh-keygen")
            .args(["-p", "-q", "-a", "4", "-P", "", "-N", "sesame", "-f"])
            .arg(key)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = spawn_server(
        &rt,
        &dir.path().join("data"),
        &[public(&rsa), public(&ed), public(&lone)],
    );
    // An empty HOME: no ~/.ssh/id_ed25519 to fall back to.
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let sock = agent.sock.clone();
    let cmd = |with_agent: bool| {
        let mut c = Command::cargo_bin("imgadm").unwrap();
        c.env("IMGAPI_URL", &url)
            .env("HOME", &home)
            .env_remove("IMGAPI_USER")
            .env_remove("IMGAPI_KEY")
            .env_remove("IMGAPI_KEY_PASSPHRASE")
            .write_stdin("");
        if with_agent {
            c.env("SSH_AUTH_SOCK", &sock);
        } else {
            c.env_remove("SSH_AUTH_SOCK");
        }
        c
    };

    // --user only: the agent's first key (RSA) signs.
    let out = cmd(true)
        .args(["--user", "alice", "-j", "ping"])
        .assert()
        .success();
    assert_eq!(stdout_json(&out)["user"], "alice");
    let m = dir.path().join("m.json");
    std::fs::write(
        &m,
        r#"{"name": "agent", "version": "1.0.0", "type": "other", "os": "other",
            "owner": "86055c40-2547-11e2-8a6b-4bb37edc84ba", "public": true}"#,
    )
    .unwrap();
    let out = cmd(true)
        .args(["--user", "alice", "-j", "create", "-m", m.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(stdout_json(&out)["state"], "unactivated");

    // --key naming an encrypted file whose key the agent holds: no
    // passphrase needed; so is naming its .pub.
    for key in [ed.clone(), ed.with_extension("pub")] {
        let out = cmd(true)
            .args([
                "--user",
                "alice",
                "--key",
                key.to_str().unwrap(),
                "-j",
                "ping",
            ])
            .assert()
            .success();
        assert_eq!(stdout_json(&out)["user"], "alice");
    }

    // An encrypted key the agent does not hold, stdin not a terminal: a
    // usage error naming IMGAPI_KEY_PASSPHRASE and ssh-agent.
    let lone_arg = lone.to_str().unwrap();
    let out = cmd(true)
        .args(["--user", "alice", "--key", lone_arg, "ping"])
        .assert()
        .code(2);
    let err = stderr(&out);
    assert!(
        err.contains("encrypted")
            && err.contains("IMGAPI_KEY_PASSPHRASE")
            && err.contains("ssh-agent"),
        "{err}"
    );
    // ... decrypted with IMGAPI_KEY_PASSPHRASE, with or without an agent.
    for with_agent in [true, false] {
        let out = cmd(with_agent)
            .env("IMGAPI_KEY_PASSPHRASE", "sesame")
            .args(["--user", "alice", "--key", lone_arg, "-j", "ping"])
            .assert()
            .success();
        assert_eq!(stdout_json(&out)["user"], "alice");
    }
    // ... and a wrong one is a clear usage error.
    let out = cmd(false)
        .env("IMGAPI_KEY_PASSPHRASE", "not-it")
        .args(["--user", "alice", "--key", lone_arg, "ping"])
        .assert()
        .code(2);
    let err = stderr(&out);
    assert!(err.contains("wrong passphrase"), "{err}");

    // The public key of a key the agent does not hold.
    let lone_pub = lone.with_extension("pub");
    let out = cmd(true)
        .args([
            "--user",
            "alice",
            "--key",
            lone_pub.to_str().unwrap(),
            "ping",
        ])
        .assert()
        .code(2);
    let err = stderr(&out);
    assert!(
        err.contains("public key") && err.contains("does not hold"),
        "{err}"
    );

    // The agent gone and no ~/.ssh/id_ed25519: both reasons are told.
    agent.kill();
    let out = cmd(true).args(["--user", "alice", "ping"]).assert().code(2);
    let err = stderr(&out);
    assert!(
        err.contains("id_ed25519") && err.contains("ssh-agent"),
        "{err}"
    );
}
