//! Image signatures made by [`ImageSigner`] against the real OpenSSH
//! (`ssh-keygen`, `ssh-agent`, `ssh-add` of Debian's openssh-client), both
//! ways: what the client signs `ssh-keygen -Y verify -n imgapi` accepts,
//! with every key type and format and through ssh-agent. Each test prints
//! SKIP and passes when the tools are missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use imgapi_client::{ClientError, ImageSigner};

const STATEMENT: &str = "imgapi-signed-image-v1\nuuid 2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11\n\
owner 930896af-bf8c-48d4-885c-6573a94b1853\nname base-64\nversion 24.4.0\ntype zone-dataset\n\
os smartos\norigin -\nfile abababababababababababababababababababababababababababababababab 1234\n";

fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("-?")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        println!("SKIP: {tool} unavailable");
    }
    found
}

/// `ssh-keygen -t TYPE [-b BITS] [-m FORMAT] -N PASS -f DIR/NAME`.
fn keygen(
    dir: &Path,
    name: &str,
    key_type: &str,
    bits: Option<u32>,
    format: Option<&str>,
    pass: &str,
) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", key_type, "-N", pass, "-C", name, "-f"])
        .arg(&path);
    if let Some(bits) = bits {
        cmd.args(["-b", &bits.to_string()]);
    }
    if let Some(format) = format {
        cmd.args(["-m", format]);
    }
    assert!(cmd.status().unwrap().success(), "ssh-keygen {key_type}");
    path
}

/// `ssh-keygen -Y verify` of `armored` over the statement by the key `public`.
fn ssh_keygen_verifies(dir: &Path, public: &Path, armored: &str) -> Result<(), String> {
    let key = std::fs::read_to_string(public).unwrap();
    let mut fields = key.split_whitespace();
    let line = format!(
        "publisher@example.com {} {}\n",
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    let signers = dir.join("allowed_signers");
    std::fs::write(&signers, line).unwrap();
    let sig = dir.join("statement.sig");
    std::fs::write(&sig, armored).unwrap();
    let mut child = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "imgapi",
            "-I",
            "publisher@example.com",
            "-f",
        ])
        .arg(&signers)
        .arg("-s")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(STATEMENT.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The key types of image signatures, as `ssh-keygen -t/-b` and the
/// algorithm name the signature reports.
const KEY_TYPES: &[(&str, Option<u32>, &str)] = &[
    ("ed25519", None, "ssh-ed25519"),
    ("ecdsa", Some(256), "ecdsa-sha2-nistp256"),
    ("ecdsa", Some(384), "ecdsa-sha2-nistp384"),
    ("ecdsa", Some(521), "ecdsa-sha2-nistp521"),
    ("rsa", Some(3072), "ssh-rsa"),
];

/// Check a signature made by `signer` with both verifiers; RSA must sign
/// with rsa-sha2-512.
fn check_signature(dir: &Path, signer: &ImageSigner, public: &Path, algorithm: &str) {
    let armored = signer.sign(STATEMENT.as_bytes()).unwrap();
    assert!(
        armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"),
        "{armored}"
    );
    assert!(
        armored.ends_with("-----END SSH SIGNATURE-----\n"),
        "{armored}"
    );
    assert!(!armored.contains('\r'));
    let verified = imgapi_signing::verify(STATEMENT.as_bytes(), &armored).unwrap();
    assert_eq!(verified.algorithm, algorithm);
    assert_eq!(verified.fingerprint, signer.fingerprint());
    let sig = ssh_key::SshSig::from_pem(armored.trim()).unwrap();
    assert_eq!(sig.hash_alg(), ssh_key::HashAlg::Sha512);
    if algorithm == "ssh-rsa" {
        assert_eq!(sig.signature().algorithm().as_str(), "rsa-sha2-512");
    }
    if let Err(e) = ssh_keygen_verifies(dir, public, &armored) {
        panic!("ssh-keygen -Y verify refused the {algorithm} signature: {e}");
    }
    // Another statement: refused by both.
    let other = STATEMENT.replace("24.4.0", "24.4.1");
    assert!(imgapi_signing::verify(other.as_bytes(), &armored).is_err());
}

#[test]
fn key_files_of_every_type_and_format_sign_what_ssh_keygen_verifies() {
    if !have("ssh-keygen") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (key_type, bits, algorithm) in KEY_TYPES {
        // OpenSSH (the default), PEM (PKCS#1 / SEC1) and PKCS#8; Ed25519
        // keys exist only in the OpenSSH format.
        let formats: &[Option<&str>] = if *key_type == "ed25519" {
            &[None]
        } else {
            &[None, Some("PEM"), Some("PKCS8")]
        };
        for format in formats {
            let name = format!(
                "{key_type}{}-{}",
                bits.unwrap_or(0),
                format.unwrap_or("openssh")
            );
            let key = keygen(dir.path(), &name, key_type, *bits, *format, "");
            let signer =
                ImageSigner::from_key_file(&key, None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!signer.uses_agent());
            check_signature(dir.path(), &signer, &key.with_extension("pub"), algorithm);
        }
    }
}

#[test]
fn encrypted_key_files_need_their_passphrase() {
    if !have("ssh-keygen") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "enc", "ecdsa", Some(384), None, "s3cret");
    assert!(matches!(
        ImageSigner::from_key_file(&key, None),
        Err(ClientError::KeyEncrypted { .. })
    ));
    assert!(matches!(
        ImageSigner::from_key_file(&key, Some("wrong")),
        Err(ClientError::KeyPassphrase { .. })
    ));
    let signer = ImageSigner::from_key_file(&key, Some("s3cret")).unwrap();
    check_signature(
        dir.path(),
        &signer,
        &key.with_extension("pub"),
        "ecdsa-sha2-nistp384",
    );
    // A public key is not a private key.
    let err = ImageSigner::from_key_file(&key.with_extension("pub"), None).unwrap_err();
    assert!(
        err.to_string().contains("public key, not a private key"),
        "{err}"
    );
}

/// An `ssh-agent -D` of the test's own, killed by its pid when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(socket.exists(), "ssh-agent did not create its socket");
        Agent { child, socket }
    }

    fn add(&self, key: &Path) {
        let status = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-add {}", key.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_agent_signs_what_ssh_keygen_verifies() {
    if !have("ssh-keygen") || !have("ssh-agent") || !have("ssh-add") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path());
    let mut keys = Vec::new();
    for (key_type, bits, algorithm) in KEY_TYPES {
        let name = format!("agent-{key_type}{}", bits.unwrap_or(0));
        let key = keygen(dir.path(), &name, key_type, *bits, None, "");
        agent.add(&key);
        keys.push((key, *algorithm));
    }
    for (key, algorithm) in &keys {
        let public = key.with_extension("pub");
        // Named by its public key file, as `--key KEY.pub`.
        let signer = ImageSigner::from_agent(&agent.socket, Some(&public)).unwrap();
        assert!(signer.uses_agent());
        check_signature(dir.path(), &signer, &public, algorithm);
    }
    // Without a key: the agent's first key (the Ed25519 one, added first).
    let first = ImageSigner::from_agent(&agent.socket, None).unwrap();
    check_signature(
        dir.path(),
        &first,
        &keys[0].0.with_extension("pub"),
        "ssh-ed25519",
    );
    // A key the agent does not hold.
    let other = keygen(dir.path(), "not-in-agent", "ed25519", None, None, "");
    let err = ImageSigner::from_agent(&agent.socket, Some(&other)).unwrap_err();
    assert!(matches!(err, ClientError::Agent(_)), "{err:?}");
}

#[test]
fn ssh_keygen_signatures_verify_in_the_client_too() {
    if !have("ssh-keygen") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let statement = dir.path().join("statement");
    std::fs::write(&statement, STATEMENT).unwrap();
    for (key_type, bits, algorithm) in KEY_TYPES {
        let key = keygen(
            dir.path(),
            &format!("kg-{key_type}{}", bits.unwrap_or(0)),
            key_type,
            *bits,
            None,
            "",
        );
        let status = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", "imgapi", "-f"])
            .arg(&key)
            .arg(&statement)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let sig_path = dir.path().join("statement.sig");
        let armored = std::fs::read_to_string(&sig_path).unwrap();
        std::fs::remove_file(&sig_path).unwrap();
        let verified = imgapi_signing::verify(STATEMENT.as_bytes(), &armored).unwrap();
        assert_eq!(verified.algorithm, *algorithm);
    }
}
