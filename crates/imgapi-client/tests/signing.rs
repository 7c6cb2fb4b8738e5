//! HTTP Signature signing against a real in-process imgapi-server with
//! `auth_type = "signature"`. Keys are made with `ssh-keygen`; the tests
//! print SKIP and pass when it is missing.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

use imgapi_client::{Client, ClientError, Signer};
use imgapi_server::{AppState, Config};
use serde_json::json;
use tempfile::TempDir;
use tokio::sync::oneshot;
use uuid::Uuid;

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

/// Generate a private key `<dir>/<name>` with `ssh-keygen <args>`; `None`
/// (after printing SKIP) when ssh-keygen is not available.
fn keygen(dir: &Path, name: &str, args: &[&str]) -> Option<(PathBuf, String)> {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(args)
        .args(["-N", "", "-q", "-C", "test", "-f"])
        .arg(&path)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            println!("SKIP: ssh-keygen unavailable or failed: {other:?}");
            return None;
        }
    }
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    Some((path, public))
}

struct Server {
    url: String,
    _dir: TempDir,
    _shutdown: oneshot::Sender<()>,
}

async fn spawn_signature(public_keys: &[String]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = public_keys.iter().map(|k| format!("{k:?}")).collect();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\nauth_type = \"signature\"\n\n[auth_keys]\nalice = [{}]\n",
        dir.path().display().to_string(),
        keys.join(", ")
    );
    let config = Config::from_toml(&toml).unwrap();
    let app = AppState::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        imgapi_server::serve(app, listener, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Server {
        url: format!("http://{addr}"),
        _dir: dir,
        _shutdown: tx,
    }
}

fn manifest(name: &str) -> serde_json::Value {
    json!({
        "name": name, "version": "1.0.0", "type": "other", "os": "other",
        "owner": OWNER, "public": true
    })
}

fn assert_unauthorized(r: Result<serde_json::Value, ClientError>) {
    match r {
        Err(ClientError::Api {
            status, rest_code, ..
        }) => {
            assert_eq!(status, 401);
            assert_eq!(rest_code, "UnauthorizedError");
        }
        other => panic!("expected 401 UnauthorizedError, got {other:?}"),
    }
}

/// The full signed flow with the key at `key`.
async fn signed_flow(server: &Server, key: &Path, dir: &Path) {
    // Unsigned: refused.
    let anon = Client::new(&server.url).unwrap();
    assert_unauthorized(anon.create_image(&manifest("anon")).await);
    assert!(anon.ping().await.unwrap().get("user").is_none());

    // Signed: create, upload, activate.
    let client = Client::new(&server.url)
        .unwrap()
        .with_signer(Signer::from_key_file("alice", key).unwrap());
    let img = client.create_image(&manifest("signed")).await.unwrap();
    let uuid: Uuid = img["uuid"].as_str().unwrap().parse().unwrap();
    let file = dir.join("file.bin");
    std::fs::write(&file, b"hello signed world").unwrap();
    client
        .add_image_file(&uuid, &file, "none", None)
        .await
        .unwrap();
    let img = client.activate_image(&uuid).await.unwrap();
    assert_eq!(img["state"], "active");
    assert_eq!(client.ping().await.unwrap()["user"], "alice");

    // Right key, wrong user: refused.
    let bob = Client::new(&server.url)
        .unwrap()
        .with_signer(Signer::from_key_file("bob", key).unwrap());
    assert_unauthorized(bob.create_image(&manifest("bob")).await);
}

#[tokio::test]
async fn ed25519_openssh_key_signs() {
    let dir = tempfile::tempdir().unwrap();
    let Some((key, public)) = keygen(dir.path(), "key", &["-t", "ed25519"]) else {
        return;
    };
    let server = spawn_signature(&[public]).await;
    let signer = Signer::from_key_file("alice", &key).unwrap();
    assert_eq!(signer.algorithm(), "ed25519");
    signed_flow(&server, &key, dir.path()).await;
}

#[tokio::test]
async fn rsa_pem_and_openssh_keys_sign() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pem, pem_pub)) = keygen(dir.path(), "pem", &["-t", "rsa", "-b", "2048", "-m", "PEM"])
    else {
        return;
    };
    let Some((ossh, ossh_pub)) = keygen(dir.path(), "ossh", &["-t", "rsa", "-b", "2048"]) else {
        return;
    };
    assert!(std::fs::read_to_string(&pem)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    let server = spawn_signature(&[pem_pub, ossh_pub]).await;
    assert_eq!(
        Signer::from_key_file("alice", &pem).unwrap().algorithm(),
        "rsa-sha256"
    );
    signed_flow(&server, &pem, dir.path()).await;
    signed_flow(&server, &ossh, dir.path()).await;
}

#[tokio::test]
async fn ecdsa_p256_keys_sign() {
    let dir = tempfile::tempdir().unwrap();
    let Some((ossh, ossh_pub)) = keygen(dir.path(), "ossh", &["-t", "ecdsa", "-b", "256"]) else {
        return;
    };
    let Some((pem, pem_pub)) = keygen(
        dir.path(),
        "pem",
        &["-t", "ecdsa", "-b", "256", "-m", "PEM"],
    ) else {
        return;
    };
    let server = spawn_signature(&[ossh_pub, pem_pub]).await;
    assert_eq!(
        Signer::from_key_file("alice", &ossh).unwrap().algorithm(),
        "ecdsa-sha256"
    );
    signed_flow(&server, &ossh, dir.path()).await;
    signed_flow(&server, &pem, dir.path()).await;
}

#[test]
fn encrypted_and_bad_keys_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc");
    let status = Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "secret-pass", "-q", "-f"])
        .arg(&path)
        .status();
    if matches!(status, Ok(s) if s.success()) {
        let err = Signer::from_key_file("alice", &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("encrypted") && err.contains("unencrypted"),
            "{err}"
        );
    } else {
        println!("SKIP: ssh-keygen unavailable");
    }
    let err = Signer::from_key_file("alice", dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read private key"), "{err}");
    let err = Signer::from_key_text("alice", "not a key")
        .unwrap_err()
        .to_string();
    assert!(err.contains("PEM"), "{err}");
}
