//! HTTP Signature signing against a real in-process imgapi-server with
//! `auth_type = "signature"`. Keys are made with `ssh-keygen`, plain and
//! passphrase-protected, and signed with directly or through a real
//! `ssh-agent`; the tests print SKIP and pass when those are missing.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    keygen_pass(dir, name, args, "")
}

/// [`keygen`] with passphrase `pass` ("" for none).
fn keygen_pass(dir: &Path, name: &str, args: &[&str], pass: &str) -> Option<(PathBuf, String)> {
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(args)
        .args(["-N", pass, "-q", "-C", "test", "-f"])
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

fn assert_unauthorized<T: std::fmt::Debug>(r: Result<T, ClientError>) {
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
    signed_flow_with(
        server,
        |user| Signer::from_key_file(user, key).unwrap(),
        dir,
    )
    .await;
}

/// The full signed flow with the signers `make(user)` returns.
async fn signed_flow_with(server: &Server, make: impl Fn(&str) -> Signer, dir: &Path) {
    // Unsigned: refused.
    let anon = Client::new(&server.url).unwrap();
    assert_unauthorized(anon.create_image(&manifest("anon")).await);
    assert!(anon.ping().await.unwrap().user.is_none());

    // Signed: create, upload, activate.
    let client = Client::new(&server.url).unwrap().with_signer(make("alice"));
    let img = client.create_image(&manifest("signed")).await.unwrap();
    let uuid: Uuid = img.uuid;
    let file = dir.join("file.bin");
    std::fs::write(&file, b"hello signed world").unwrap();
    client
        .add_image_file(&uuid, &file, "none", None)
        .await
        .unwrap();
    let img = client.activate_image(&uuid).await.unwrap();
    assert_eq!(img.state, "active");
    assert_eq!(client.ping().await.unwrap().user.as_deref(), Some("alice"));

    // Right key, wrong user: refused.
    let bob = Client::new(&server.url).unwrap().with_signer(make("bob"));
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

/// ssh-key's own RSA conversion refuses 1024-bit keys; OpenSSH files of
/// that size still load and sign.
#[tokio::test]
async fn rsa_1024_openssh_key_signs() {
    let dir = tempfile::tempdir().unwrap();
    let Some((key, public)) = keygen(dir.path(), "key", &["-t", "rsa", "-b", "1024"]) else {
        return;
    };
    let server = spawn_signature(&[public]).await;
    let signer = Signer::from_key_file("alice", &key).unwrap();
    assert_eq!(signer.algorithm(), "rsa-sha256");
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
    if let Some((path, _)) = keygen_pass(dir.path(), "enc", &["-t", "ed25519"], "secret-pass") {
        let err = Signer::from_key_file("alice", &path).unwrap_err();
        assert!(matches!(err, ClientError::KeyEncrypted { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("encrypted") && msg.contains("passphrase") && msg.contains("enc"),
            "{msg}"
        );
        // A public key given as the private key says so.
        let err = Signer::from_key_file("alice", path.with_extension("pub"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("public key"), "{err}");
    }
    // Legacy OpenSSL-encrypted PEM: not supported, and says how to convert.
    if let Some((path, _)) = keygen_pass(
        dir.path(),
        "legacy",
        &["-t", "rsa", "-b", "2048", "-m", "PEM"],
        "secret-pass",
    ) {
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("Proc-Type: 4,ENCRYPTED"));
        let err = Signer::from_key_file_with_passphrase("alice", &path, Some("secret-pass"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ssh-keygen -p"), "{err}");
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

/// Check that `key` (encrypted with `pass`) is refused without a
/// passphrase and with a wrong one, then run the signed flow with `pass`.
async fn encrypted_flow(server: &Server, key: &Path, pass: &str, algorithm: &str, dir: &Path) {
    let err = Signer::from_key_file("alice", key).unwrap_err();
    assert!(matches!(err, ClientError::KeyEncrypted { .. }), "{err:?}");
    let err = Signer::from_key_file_with_passphrase("alice", key, Some("wrong")).unwrap_err();
    assert!(matches!(err, ClientError::KeyPassphrase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("wrong passphrase") && msg.contains(&key.display().to_string()),
        "{msg}"
    );
    let signer = Signer::from_key_file_with_passphrase("alice", key, Some(pass)).unwrap();
    assert_eq!(signer.algorithm(), algorithm);
    assert!(!signer.uses_agent());
    signed_flow_with(
        server,
        |user| Signer::from_key_file_with_passphrase(user, key, Some(pass)).unwrap(),
        dir,
    )
    .await;
}

#[tokio::test]
async fn passphrase_protected_openssh_keys_sign() {
    let dir = tempfile::tempdir().unwrap();
    let pass = "correct horse";
    // `-a 4` KDF rounds (default 16) keeps the debug-build bcrypt fast.
    let Some((ed, ed_pub)) = keygen_pass(dir.path(), "ed", &["-t", "ed25519", "-a", "4"], pass)
    else {
        return;
    };
    let Some((rsa, rsa_pub)) = keygen_pass(
        dir.path(),
        "rsa",
        &["-t", "rsa", "-b", "2048", "-a", "4"],
        pass,
    ) else {
        return;
    };
    let Some((ec, ec_pub)) = keygen_pass(
        dir.path(),
        "ec",
        &["-t", "ecdsa", "-b", "256", "-a", "4"],
        pass,
    ) else {
        return;
    };
    let text = std::fs::read_to_string(&ed).unwrap();
    assert!(text.contains("BEGIN OPENSSH PRIVATE KEY"), "{text}");
    let server = spawn_signature(&[ed_pub, rsa_pub, ec_pub]).await;
    encrypted_flow(&server, &ed, pass, "ed25519", dir.path()).await;
    encrypted_flow(&server, &rsa, pass, "rsa-sha256", dir.path()).await;
    encrypted_flow(&server, &ec, pass, "ecdsa-sha256", dir.path()).await;
    // The text API decrypts too; an unencrypted key ignores a passphrase.
    let signer = Signer::from_key_text_with_passphrase("alice", &text, Some(pass)).unwrap();
    assert_eq!(signer.algorithm(), "ed25519");
    let Some((plain, _)) = keygen(dir.path(), "plain", &["-t", "ed25519"]) else {
        return;
    };
    assert!(Signer::from_key_file_with_passphrase("alice", &plain, Some("x")).is_ok());
}

#[tokio::test]
async fn default_kdf_rounds_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let Some((key, public)) = keygen_pass(dir.path(), "key", &["-t", "ed25519"], "secret") else {
        return;
    };
    let server = spawn_signature(&[public]).await;
    let client = Client::new(&server.url)
        .unwrap()
        .with_signer(Signer::from_key_file_with_passphrase("alice", &key, Some("secret")).unwrap());
    assert_eq!(client.ping().await.unwrap().user.as_deref(), Some("alice"));
}

#[tokio::test]
async fn passphrase_protected_pkcs8_keys_sign() {
    let dir = tempfile::tempdir().unwrap();
    let pass = "pkcs8-pass";
    let Some((rsa, rsa_pub)) = keygen_pass(
        dir.path(),
        "rsa",
        &["-t", "rsa", "-b", "2048", "-m", "PKCS8"],
        pass,
    ) else {
        return;
    };
    let Some((ec, ec_pub)) = keygen_pass(
        dir.path(),
        "ec",
        &["-t", "ecdsa", "-b", "256", "-m", "PKCS8"],
        pass,
    ) else {
        return;
    };
    for key in [&rsa, &ec] {
        let text = std::fs::read_to_string(key).unwrap();
        assert!(text.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{text}");
    }
    let server = spawn_signature(&[rsa_pub, ec_pub]).await;
    encrypted_flow(&server, &rsa, pass, "rsa-sha256", dir.path()).await;
    encrypted_flow(&server, &ec, pass, "ecdsa-sha256", dir.path()).await;
}

/// A real `ssh-agent -D` on a socket in a temp dir, killed on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
    _dir: TempDir,
}

impl Agent {
    /// `None` (after printing SKIP) when ssh-agent or ssh-add is missing.
    fn start() -> Option<Agent> {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = match Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(_) => {
                eprintln!("SKIP: ssh-agent not installed");
                return None;
            }
        };
        let mut agent = Agent {
            child,
            sock,
            _dir: dir,
        };
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

    /// `ssh-add` the unencrypted private key at `key`.
    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.sock)
            .stdin(Stdio::null())
            .output()
            .expect("ssh-add");
        assert!(out.status.success(), "ssh-add: {out:?}");
    }

    /// Stop the agent (by its PID) and reap it.
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

#[tokio::test]
async fn agent_signs_with_each_key_type() {
    let Some(mut agent) = Agent::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((ed, ed_pub)) = keygen(dir.path(), "ed", &["-t", "ed25519"]) else {
        return;
    };
    let Some((rsa, rsa_pub)) = keygen(dir.path(), "rsa", &["-t", "rsa", "-b", "2048"]) else {
        return;
    };
    let Some((ec, ec_pub)) = keygen(dir.path(), "ec", &["-t", "ecdsa", "-b", "256"]) else {
        return;
    };
    let Some((other, _)) = keygen(dir.path(), "other", &["-t", "ed25519"]) else {
        return;
    };
    // An empty agent has no key to offer.
    let err = Signer::from_agent("alice", &agent.sock, None).unwrap_err();
    assert!(matches!(err, ClientError::Agent(_)), "{err:?}");
    assert!(err.to_string().contains("no usable key"), "{err}");

    for key in [&ed, &rsa, &ec] {
        agent.add(key);
    }
    let ids = imgapi_client::agent::list_identities(&agent.sock).unwrap();
    let types: Vec<String> = ids.iter().map(|i| i.key_type()).collect();
    assert_eq!(types, ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]);

    let server = spawn_signature(&[ed_pub, rsa_pub, ec_pub]).await;
    for (key, algorithm) in [
        (&ed, "ed25519"),
        (&rsa, "rsa-sha256"),
        (&ec, "ecdsa-sha256"),
    ] {
        // Chosen by the private key file, and by its .pub.
        let signer = Signer::from_agent("alice", &agent.sock, Some(key)).unwrap();
        assert!(signer.uses_agent());
        assert_eq!(signer.algorithm(), algorithm);
        let public = key.with_extension("pub");
        let signer = Signer::from_agent("alice", &agent.sock, Some(&public)).unwrap();
        assert_eq!(signer.algorithm(), algorithm);
        signed_flow_with(
            &server,
            |user| Signer::from_agent(user, &agent.sock, Some(key)).unwrap(),
            dir.path(),
        )
        .await;
    }
    // No key: the agent's first usable identity.
    let signer = Signer::from_agent("alice", &agent.sock, None).unwrap();
    assert_eq!(signer.algorithm(), "ed25519");

    // A key the agent does not hold.
    let err = Signer::from_agent("alice", &agent.sock, Some(&other)).unwrap_err();
    assert!(matches!(err, ClientError::Agent(_)), "{err:?}");
    assert!(err.to_string().contains("does not hold"), "{err}");

    // The agent goes away: signing fails with a clear error, no request.
    let client = Client::new(&server.url).unwrap().with_signer(signer);
    agent.kill();
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Agent(_)), "{err:?}");
    assert!(err.to_string().contains("ssh-agent"), "{err}");
}
