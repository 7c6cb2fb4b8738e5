//! `imgadm docker-import` / `docker-push` end to end: the in-process
//! server, a real registry (`docker-registry`, CNCF distribution) on a free
//! loopback port, and a fixture image pushed there by `skopeo`. Skipped
//! when docker-registry, skopeo or python3 is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{spawn_with, Server};
use serde_json::Value;

/// A registry process, killed when dropped.
struct Registry {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(program: &str) -> bool {
    Process::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn start_registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {:?}}}}}\n\
             http: {{addr: {addr:?}, secret: imgadm-test}}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let child = Process::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < end,
            "docker-registry did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Registry {
        addr,
        child,
        _dir: dir,
    }
}

/// Write the fixture OCI layout (tests/docker/oci_fixture.py) and push it
/// as `<registry>/<repo>:1`; returns the fixture's description (digests).
fn push_fixture(registry: &Registry, dir: &Path, repo: &str) -> Value {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/docker/oci_fixture.py");
    let layout = dir.join("oci");
    let out = succeed(
        Process::new("python3")
            .arg(&script)
            .arg(&layout)
            .args(["--layers", "2", "--tag", "1"]),
    );
    let description: Value = serde_json::from_slice(&out).unwrap();
    succeed(
        Process::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:1", layout.display()))
            .arg(format!("docker://{}/{repo}:1", registry.addr)),
    );
    description
}

/// Run `cmd`, expect success, return its stdout.
fn succeed(cmd: &mut Process) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn imgadm(server: &Server) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env("IMGAPI_URL", &server.url)
        .env("IMGADM_CONFIG_DIR", server.dir.path().join("config"))
        .env("HOME", server.dir.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("IMGAPI_CHANNEL")
        .env_remove("IMGADM_REGISTRY_USER")
        .env_remove("IMGADM_REGISTRY_PASSWORD");
    cmd
}

fn stdout_of(cmd: &mut Command, exit: i32) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(exit),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn import_reimport_and_push_against_a_registry() {
    if !["docker-registry", "skopeo", "python3"]
        .iter()
        .all(|p| installed(p))
    {
        eprintln!("SKIP: docker-registry, skopeo or python3 not installed");
        return;
    }
    let registry = start_registry();
    let server = spawn_with(&format!(
        "[remote]\nallow_private_addresses = true\n[docker]\ninsecure_registries = [\"{}\"]\n",
        registry.addr
    ));
    let fixture = push_fixture(&registry, server.dir.path(), "fix/app");
    let short_ids: Vec<String> = fixture["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap()["sha256:".len()..][..12].to_string())
        .collect();
    let reference = format!("{}/fix/app:1", registry.addr);

    let out = stdout_of(imgadm(&server).args(["docker-import", &reference]), 0);
    for id in &short_ids {
        assert!(out.contains(&format!("{id}: Pull complete\n")), "{out}");
    }
    let manifest_digest = fixture["manifest"].as_str().unwrap();
    assert!(
        out.contains(&format!("Digest: {manifest_digest}\n")),
        "{out}"
    );
    let uuid = out
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("Image UUID: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let image: Value =
        serde_json::from_str(&stdout_of(imgadm(&server).args(["get", &uuid]), 0)).unwrap();
    assert_eq!(
        (image["type"].as_str(), image["state"].as_str()),
        (Some("docker"), Some("active"))
    );

    let again = stdout_of(imgadm(&server).args(["docker-import", &reference]), 0);
    for id in &short_ids {
        assert!(
            again.contains(&format!("{id}: Already exists\n")),
            "{again}"
        );
    }
    assert!(again.contains("Status: Image is up to date for"), "{again}");
    assert!(again.ends_with(&format!("Image UUID: {uuid}\n")), "{again}");

    let target = format!("{}/fix/copy:2", registry.addr);
    let pushed = stdout_of(imgadm(&server).args(["docker-push", &uuid, &target]), 0);
    assert!(
        pushed
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("2: digest: sha256:")),
        "{pushed}"
    );

    let missing = format!("{}/fix/absent:1", registry.addr);
    stdout_of(imgadm(&server).args(["docker-import", &missing]), 3);
}
