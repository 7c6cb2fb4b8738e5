//! Signed images with imgadm against the real in-process imgapi-server
//! (docs/signing.md): `create --sign` on a server that requires signatures
//! for activation, a signature made by `ssh-keygen -Y sign` accepted by the
//! server and then by `imgadm verify` and `import` from a source with a
//! trust file, and a signed field changed on the server refused by
//! `import`. SKIP (passing) without ssh-keygen.
// dead_code: not every helper of common/ is used here.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use assert_cmd::Command;
use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn keygen(dir: &Path, name: &str) -> Option<PathBuf> {
    let key = dir.join(name);
    let status = Process::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("SKIP: ssh-keygen unavailable");
        return None;
    }
    Some(key)
}

/// An allowed_signers file trusting `key` as `<principal>`.
fn trust(dir: &Path, principal: &str, key: &Path) -> PathBuf {
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mut fields = public.split_whitespace();
    let path = dir.join(format!("{principal}.allowed_signers"));
    std::fs::write(
        &path,
        format!(
            "{principal} {} {}\n",
            fields.next().unwrap(),
            fields.next().unwrap()
        ),
    )
    .unwrap();
    path
}

fn imgadm(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("imgadm").unwrap();
    c.env("IMGADM_CONFIG_DIR", dir.join("config"))
        .env_remove("IMGAPI_URL")
        .env_remove("IMGAPI_USER")
        .env_remove("IMGAPI_KEY")
        .env_remove("IMGAPI_CHANNEL")
        .env_remove("IMGADM_STORE")
        .env_remove("SSH_AUTH_SOCK");
    c
}

/// A manifest and file to publish.
fn image_files(dir: &Path, name: &str, data: &[u8]) -> (PathBuf, PathBuf) {
    let m = dir.join(format!("{name}.json"));
    std::fs::write(
        &m,
        json!({"name": name, "version": "1.0.0", "type": "other", "os": "other",
               "owner": OWNER, "public": true})
        .to_string(),
    )
    .unwrap();
    let f = dir.join(format!("{name}.bin"));
    std::fs::write(&f, data).unwrap();
    (m, f)
}

#[test]
fn create_sign_activates_where_signatures_are_required_and_consumers_import_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(key) = keygen(dir.path(), "publisher") else {
        return;
    };
    let signers = trust(dir.path(), "publisher@example.com", &key);
    let server = common::spawn_with(&format!(
        "\n[signing]\nrequire_for_activation = true\nallowed_signers = {:?}\n",
        p(&signers)
    ));
    let (m, f) = image_files(dir.path(), "signed", b"signed image bytes");

    // Without --sign the server refuses to activate; imgadm rolls back.
    let out = imgadm(dir.path())
        .env("IMGAPI_URL", &server.url)
        .args(["create", "-m", p(&m), "-f", p(&f)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SignatureRequired"), "{stderr}");
    assert!(stderr.contains("was deleted again"), "{stderr}");

    // With --sign: signed between the upload and the activation.
    let out = imgadm(dir.path())
        .env("IMGAPI_URL", &server.url)
        .args([
            "--key",
            p(&key),
            "create",
            "--sign",
            "-m",
            p(&m),
            "-f",
            p(&f),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("Created image "), "{stdout}");
    assert!(lines[1].starts_with("Added file "), "{stdout}");
    assert!(
        lines[2].contains("with ssh-ed25519 key SHA256:"),
        "{stdout}"
    );
    assert!(lines[2].ends_with("(as operator)"), "{stdout}");
    assert!(lines[3].starts_with("Activated image "), "{stdout}");
    let uuid = lines[0].split_whitespace().nth(2).unwrap().to_string();

    // The publisher's check, then a consumer that trusts the publisher.
    imgadm(dir.path())
        .env("IMGAPI_URL", &server.url)
        .args(["verify", &uuid, "--trust", p(&signers)])
        .assert()
        .success();
    let consumer = tempfile::tempdir().unwrap();
    imgadm(consumer.path())
        .args(["sources", "add", &server.url, "--trust", p(&signers)])
        .assert()
        .success();
    let out = imgadm(consumer.path())
        .args(["import", &uuid])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("is signed by publisher@example.com"),
        "{stdout}"
    );
    assert!(consumer
        .path()
        .join("config/images")
        .join(&uuid)
        .join("file")
        .is_file());
}

#[test]
fn ssh_keygen_signature_through_the_server_and_a_changed_field_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(key) = keygen(dir.path(), "publisher") else {
        return;
    };
    let signers = trust(dir.path(), "publisher@example.com", &key);
    let server = common::spawn();
    let (m, f) = image_files(dir.path(), "plain", b"plain image bytes");
    let out = imgadm(dir.path())
        .env("IMGAPI_URL", &server.url)
        .args(["-j", "create", "-m", p(&m), "-f", p(&f)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let image: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uuid = image["uuid"].as_str().unwrap().to_string();

    // A consumer trusting the publisher refuses the unsigned image.
    let consumer = tempfile::tempdir().unwrap();
    imgadm(consumer.path())
        .args(["sources", "add", &server.url, "--trust", p(&signers)])
        .assert()
        .success();
    let out = imgadm(consumer.path())
        .args(["import", &uuid])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it has no signatures"),
        "{out:?}"
    );

    // The publisher signs the statement with ssh-keygen alone and adds it
    // through the API.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = imgapi_client::Client::new(&server.url).unwrap();
    let image_uuid: uuid::Uuid = uuid.parse().unwrap();
    let listed = rt
        .block_on(client.list_image_signatures(&image_uuid, None))
        .unwrap();
    let statement = listed.statement.unwrap();
    std::fs::write(dir.path().join("statement"), &statement).unwrap();
    let status = Process::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "imgapi", "-f"])
        .arg(&key)
        .arg(dir.path().join("statement"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let armored = std::fs::read_to_string(dir.path().join("statement.sig")).unwrap();
    let added = rt
        .block_on(client.add_image_signature(&image_uuid, &armored, None))
        .unwrap();
    assert!(added.valid);

    let out = imgadm(consumer.path())
        .args(["import", &uuid])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    imgadm(consumer.path())
        .args(["installed", "delete", &uuid])
        .assert()
        .success();

    // A signed field changed on the server: the signature no longer
    // verifies, and the consumer refuses the image.
    imgadm(dir.path())
        .env("IMGAPI_URL", &server.url)
        .args(["update", &uuid, "version=6.6.6"])
        .assert()
        .success();
    let out = imgadm(consumer.path())
        .args(["import", &uuid])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no valid signature"), "{stderr}");
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    let out = imgadm(dir.path())
        .env("IMGAPI_URL", &server.url)
        .args(["verify", &uuid])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // Removing the signature through the client.
    rt.block_on(client.remove_image_signature(&image_uuid, &added.id, None))
        .unwrap();
    let listed = rt
        .block_on(client.list_image_signatures(&image_uuid, None))
        .unwrap();
    assert!(listed.signatures.is_empty());
    let err = rt
        .block_on(client.remove_image_signature(&image_uuid, &added.id, None))
        .unwrap_err();
    assert!(
        err.is_not_found() && !err.is_signatures_unsupported(),
        "{err:?}"
    );
}
