//! Image signatures (docs/signing.md): `/images/:uuid/signatures`.
//! Signatures made by the real OpenSSH (`ssh-keygen -Y sign -n imgapi`) over
//! the statement the server gives are accepted for every key type; tampered,
//! foreign, truncated and other-namespace signatures are refused with 422
//! InvalidSignature and nothing stored; a later change of a signed field
//! shows as `valid: false`; events; the activation policy in every mode.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::auth::User;
use crate::support::*;

const DC: &str = "mode = \"dc\"";

/// Real OpenSSH in a directory of its own; `None` (with a visible message)
/// when `ssh-keygen` is not installed.
pub(crate) struct OpenSsh {
    dir: tempfile::TempDir,
}

impl OpenSsh {
    pub(crate) fn new() -> Option<OpenSsh> {
        if which("ssh-keygen").is_none() {
            eprintln!("SKIPPED: ssh-keygen not installed (Debian: openssh-client)");
            return None;
        }
        Some(OpenSsh {
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// A new key pair `name` made by `ssh-keygen -t <kind> [-b bits]`.
    pub(crate) fn keygen(&self, name: &str, kind: &str, bits: Option<&str>) -> PathBuf {
        let path = self.dir.path().join(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-N", "", "-C", name, "-t", kind, "-f"])
            .arg(&path);
        if let Some(bits) = bits {
            cmd.args(["-b", bits]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        path
    }

    /// `ssh-keygen -Y sign -n <namespace> -f key` over `text`.
    pub(crate) fn sign_ns(&self, key: &Path, text: &str, namespace: &str) -> String {
        let file = self.dir.path().join("statement");
        std::fs::write(&file, text).unwrap();
        let sig = self.dir.path().join("statement.sig");
        let _ = std::fs::remove_file(&sig);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
            .arg(key)
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(sig).unwrap()
    }

    pub(crate) fn sign(&self, key: &Path, text: &str) -> String {
        self.sign_ns(key, text, "imgapi")
    }

    /// The `SHA256:...` fingerprint `ssh-keygen -l` prints for `key`.
    pub(crate) fn fingerprint(&self, key: &Path) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    }

    /// The public key line of `key`.
    pub(crate) fn public_line(&self, key: &Path) -> String {
        let pub_path = PathBuf::from(format!("{}.pub", key.display()));
        std::fs::read_to_string(pub_path)
            .unwrap()
            .trim()
            .to_string()
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// An SSHSIG over `text` by the ed25519 key of seed `seed` (the same key
/// as `auth::User::new(_, seed)`), made with ssh-key.
pub(crate) fn sshsig(seed: u8, text: &str) -> String {
    let key = ssh_key::PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]));
    key.sign("imgapi", ssh_key::HashAlg::Sha512, text.as_bytes())
        .unwrap()
        .to_pem(ssh_key::LineEnding::LF)
        .unwrap()
}

pub(crate) async fn signatures(s: &TestServer, uuid: &str, query: &str) -> Value {
    let (status, body) = s
        .get_json(&format!("/images/{uuid}/signatures{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

pub(crate) async fn statement(s: &TestServer, uuid: &str) -> String {
    signatures(s, uuid, "").await["statement"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) async fn add_signature(s: &TestServer, uuid: &str, armored: &str) -> (u16, Value) {
    s.post_json(
        &format!("/images/{uuid}/signatures"),
        &json!({ "signature": armored }),
    )
    .await
}

/// An unactivated image with a file.
async fn with_file(s: &TestServer, extra: Value) -> String {
    let img = s.create(extra).await;
    let uuid = uuid_of(&img);
    assert_eq!(s.upload(&uuid, b"signed bytes".to_vec()).await.0, 200);
    uuid
}

#[tokio::test]
async fn the_statement_is_the_documented_text() {
    let s = TestServer::spawn_with(DC).await;
    let img = s.create(json!({"name": "stmt", "version": "2.0"})).await;
    let uuid = uuid_of(&img);
    let before = signatures(&s, &uuid, "").await;
    assert_eq!(
        before,
        json!({"uuid": uuid, "statement": null, "signatures": []}),
        "no file yet: nothing to sign"
    );
    let got = add_signature(&s, &uuid, &sshsig(1, "anything")).await;
    assert_error(&got, 422, "InvalidSignature", None);
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("has no file yet"),
        "{got:?}"
    );

    let bytes = b"signed bytes".to_vec();
    assert_eq!(s.upload(&uuid, bytes.clone()).await.0, 200);
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(
        statement(&s, &uuid).await,
        format!(
            "imgapi-signed-image-v1\nuuid {uuid}\nowner {OWNER}\nname stmt\nversion 2.0\n\
             type zone-dataset\nos smartos\norigin -\nfile {sha256} {}\n",
            bytes.len()
        )
    );
}

#[tokio::test]
async fn openssh_signatures_of_every_key_type_are_accepted() {
    let Some(ssh) = OpenSsh::new() else { return };
    let s = TestServer::spawn_with(DC).await;
    let uuid = with_file(&s, json!({"name": "keys"})).await;
    let text = statement(&s, &uuid).await;
    let kinds = [
        ("ed", "ed25519", None, "ssh-ed25519"),
        ("p256", "ecdsa", Some("256"), "ecdsa-sha2-nistp256"),
        ("p384", "ecdsa", Some("384"), "ecdsa-sha2-nistp384"),
        ("p521", "ecdsa", Some("521"), "ecdsa-sha2-nistp521"),
        ("rsa", "rsa", Some("3072"), "ssh-rsa"),
    ];
    let mut ids = Vec::new();
    for (name, kind, bits, algorithm) in kinds {
        let key = ssh.keygen(name, kind, bits);
        let armored = ssh.sign(&key, &text);
        let (status, sig) = add_signature(&s, &uuid, &armored).await;
        assert_eq!(status, 200, "{name}: {sig}");
        assert_eq!(sig["valid"], true, "{name}");
        assert_eq!(sig["algorithm"], algorithm);
        assert_eq!(sig["fingerprint"], ssh.fingerprint(&key), "{name}");
        assert_eq!(
            sig["signature"], armored,
            "{name}: kept as OpenSSH wrote it"
        );
        let line = ssh.public_line(&key);
        assert!(
            line.starts_with(sig["public_key"].as_str().unwrap()),
            "{line}"
        );
        assert_eq!(sig["added_by"], "operator");
        assert!(
            sig.get("role").is_none(),
            "an unknown key has no role: {sig}"
        );
        ids.push(sig["id"].as_str().unwrap().to_string());
    }
    let listed = signatures(&s, &uuid, "").await;
    let listed = listed["signatures"].as_array().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|s| s["valid"] == true));

    // The same key again replaces its signature.
    let key = ssh.path("ed");
    let (status, _) = add_signature(&s, &uuid, &ssh.sign(&key, &text)).await;
    assert_eq!(status, 200);
    assert_eq!(
        signatures(&s, &uuid, "").await["signatures"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // Remove by id; twice is 404.
    let path = format!("/images/{uuid}/signatures/{}", ids[0]);
    let resp = s.delete(&path).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let got = status_json(s.delete(&path).send().await.unwrap()).await;
    assert_error(&got, 404, "ResourceNotFound", None);
    assert_eq!(
        signatures(&s, &uuid, "").await["signatures"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn bad_signatures_are_refused_and_nothing_is_stored() {
    let Some(ssh) = OpenSsh::new() else { return };
    let s = TestServer::spawn_with(DC).await;
    let uuid = with_file(&s, json!({"name": "tamper"})).await;
    let other = with_file(&s, json!({"name": "tamper"})).await;
    let text = statement(&s, &uuid).await;
    let key = ssh.keygen("k", "ed25519", None);

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another namespace",
            ssh.sign_ns(&key, &text, "git"),
            "not \"imgapi\"",
        ),
        (
            "another image",
            ssh.sign(&key, &statement(&s, &other).await),
            "does not match",
        ),
        (
            "a changed field",
            ssh.sign(&key, &text.replace("name tamper", "name tampered")),
            "does not match",
        ),
        (
            "a changed file digest",
            ssh.sign(&key, &{
                let line = text.lines().last().unwrap().to_string();
                let size = line.rsplit(' ').next().unwrap();
                text.replace(&line, &format!("file {} {size}", "0".repeat(64)))
            }),
            "does not match",
        ),
        (
            "truncated",
            {
                let armored = ssh.sign(&key, &text);
                armored[..armored.len() / 2].to_string()
            },
            "not an SSH signature",
        ),
        (
            "not a signature",
            "hello".to_string(),
            "not an SSH signature",
        ),
    ];
    for (what, armored, message) in cases {
        let got = add_signature(&s, &uuid, &armored).await;
        assert_error(&got, 422, "InvalidSignature", None);
        let text = got.1["message"].as_str().unwrap();
        assert!(text.contains(message), "{what}: {text}");
        assert!(text.contains(&uuid), "{what}: names the image: {text}");
    }
    assert_eq!(
        signatures(&s, &uuid, "").await["signatures"],
        json!([]),
        "nothing stored"
    );

    // Bodies.
    for (body, status, code) in [
        (json!({}), 422, "ValidationFailed"),
        (json!({"signature": 5}), 422, "InvalidParameter"),
        (
            json!({"signature": "x", "extra": 1}),
            422,
            "InvalidParameter",
        ),
    ] {
        let got = s
            .post_json(&format!("/images/{uuid}/signatures"), &body)
            .await;
        assert_error(&got, status, code, None);
    }
    let got = add_signature(&s, "not-a-uuid", "x").await;
    assert_eq!(got.0, 404, "{got:?}");
}

#[tokio::test]
async fn a_changed_image_shows_its_signatures_invalid_and_events_follow() {
    let s = TestServer::spawn_with(DC).await;
    let start = s.get_json("/changes?limit=0").await.1["next"]
        .as_i64()
        .unwrap();
    let uuid = with_file(&s, json!({"name": "drift"})).await;
    let text = statement(&s, &uuid).await;
    let (status, sig) = add_signature(&s, &uuid, &sshsig(7, &text)).await;
    assert_eq!(status, 200, "{sig}");
    let id = sig["id"].as_str().unwrap().to_string();

    // A signed field changes: the signature no longer verifies.
    let (status, _) = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"version": "9.9.9"}),
        )
        .await;
    assert_eq!(status, 200);
    let listed = signatures(&s, &uuid, "").await;
    assert_eq!(listed["signatures"][0]["valid"], false, "{listed}");
    assert!(listed["statement"]
        .as_str()
        .unwrap()
        .contains("version 9.9.9\n"));
    // An unsigned field does not matter.
    let (status, _) = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"version": "1.0.0", "description": "new words"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        signatures(&s, &uuid, "").await["signatures"][0]["valid"],
        true
    );

    let resp = s
        .delete(&format!("/images/{uuid}/signatures/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, page) = s
        .get_json(&format!("/changes?since={start}&limit=100"))
        .await;
    let kinds: Vec<(String, Value)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["uuid"] == uuid.as_str() && e["type"].as_str().unwrap().contains("signature"))
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["fields"].clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("image.signature_added".to_string(), json!([id.clone()])),
            ("image.signature_removed".to_string(), json!([id])),
        ]
    );
}

#[tokio::test]
async fn signatures_stay_through_the_recycle_bin_and_go_with_the_image() {
    let s = TestServer::spawn_with(&format!("{DC}\n[lifecycle]\nrecycle_days = 1\n")).await;
    let uuid = with_file(&s, json!({"name": "binned"})).await;
    let text = statement(&s, &uuid).await;
    assert_eq!(add_signature(&s, &uuid, &sshsig(3, &text)).await.0, 200);
    let resp = s.delete(&format!("/images/{uuid}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let got = s.get_json(&format!("/images/{uuid}/signatures")).await;
    assert_eq!(got.0, 404, "a binned image has no signatures to show");
    let (status, body) = s
        .post_json(&format!("/recycle-bin/{uuid}?action=restore"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let listed = signatures(&s, &uuid, "").await;
    assert_eq!(
        listed["signatures"][0]["valid"], true,
        "restored with it: {listed}"
    );

    // Purged for good: an image imported later with the same uuid starts bare.
    let resp = s.delete(&format!("/images/{uuid}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s
        .delete(&format!("/recycle-bin/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let mut m = manifest();
    merge(&mut m, json!({"v": 2, "uuid": uuid, "name": "binned"}));
    let (status, body) = s
        .post_json(&format!("/images/{uuid}?action=import"), &m)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(signatures(&s, &uuid, "").await["signatures"], json!([]));
}

/// `[signing] require_for_activation` in dc mode: keys of `allowed_signers`
/// are operators'.
#[tokio::test]
async fn activation_policy_dc_mode_with_allowed_signers() {
    let Some(ssh) = OpenSsh::new() else { return };
    let trusted = ssh.keygen("trusted", "ecdsa", Some("256"));
    let stranger = ssh.keygen("stranger", "ed25519", None);
    let signers = ssh.path("allowed_signers");
    std::fs::write(
        &signers,
        format!(
            "ops@example.com namespaces=\"imgapi\" {}\n",
            ssh.public_line(&trusted)
        ),
    )
    .unwrap();
    let s = TestServer::spawn_with(&format!(
        "{DC}\n[signing]\nrequire_for_activation = true\nallowed_signers = {:?}\n",
        signers.display().to_string()
    ))
    .await;
    let uuid = with_file(&s, json!({"name": "gated"})).await;
    let got = s.activate(&uuid).await;
    assert_error(&got, 422, "SignatureRequired", None);
    assert!(got.1["message"].as_str().unwrap().contains(&uuid));

    let text = statement(&s, &uuid).await;
    let (status, sig) = add_signature(&s, &uuid, &ssh.sign(&stranger, &text)).await;
    assert_eq!(status, 200);
    assert!(sig.get("role").is_none());
    assert_error(&s.activate(&uuid).await, 422, "SignatureRequired", None);

    let (status, sig) = add_signature(&s, &uuid, &ssh.sign(&trusted, &text)).await;
    assert_eq!(status, 200);
    assert_eq!(sig["role"], "operator");
    let (status, img) = s.activate(&uuid).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["state"], "active");
    // Already active: the original's own error, not the policy's.
    assert_error(&s.activate(&uuid).await, 422, "ImageAlreadyActivated", None);

    // No file: the original's own error first.
    let bare = uuid_of(&s.create(json!({"name": "gated"})).await);
    assert_error(&s.activate(&bare).await, 422, "NoActivationNoFile", None);
}

/// Private mode with HTTP Signature users: the owner's own key and an
/// operator's key satisfy the policy; another account's key does not.
#[tokio::test]
async fn activation_policy_private_mode_owner_and_operator_keys() {
    let alice = User::new("alice", 21);
    let bob = User::new("bob", 22);
    let root = User::new("root", 23);
    let alice_account = OWNER;
    let bob_account = "4cd2d8ac-61e6-11e6-9a3c-33ab0bee1a3c";
    let mut toml = format!(
        "mode = \"private\"\nauth_type = \"signature\"\n\
         [signing]\nrequire_for_activation = true\n[user_accounts]\nalice = {alice_account:?}\nbob = {bob_account:?}\n[auth_keys]\n"
    );
    for u in [&alice, &bob, &root] {
        toml.push_str(&format!("{} = [{:?}]\n", u.name, u.public_line()));
    }
    let s = TestServer::spawn_with(&toml).await;
    let create = |user: &User| {
        let mut m = manifest();
        merge(&mut m, json!({"public": false, "name": "private"}));
        user.sign(s.post("/images")).json(&m)
    };
    let (status, img) = status_json(create(&alice).send().await.unwrap()).await;
    assert_eq!(status, 200, "{img}");
    let uuid = uuid_of(&img);
    let resp = alice
        .sign(s.put(&format!("/images/{uuid}/file?compression=gzip")))
        .body(b"private bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let activate = |user: &User| {
        user.sign(s.post(&format!("/images/{uuid}?action=activate")))
            .json(&json!({}))
    };
    let got = status_json(activate(&alice).send().await.unwrap()).await;
    assert_error(&got, 422, "SignatureRequired", None);

    let listed = status_json(
        alice
            .sign(s.get(&format!("/images/{uuid}/signatures")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.0, 200, "{listed:?}");
    let text = listed.1["statement"].as_str().unwrap().to_string();
    let add = |user: &User, armored: String| {
        user.sign(s.post(&format!("/images/{uuid}/signatures")))
            .json(&json!({ "signature": armored }))
    };

    // Bob cannot touch alice's image (it does not exist for him).
    let got = status_json(add(&bob, sshsig(22, &text)).send().await.unwrap()).await;
    assert_eq!(got.0, 404, "{got:?}");
    // Alice may store bob's signature, but it is nobody the policy trusts.
    let got = status_json(add(&alice, sshsig(22, &text)).send().await.unwrap()).await;
    assert_eq!(got.0, 200, "{got:?}");
    assert!(got.1.get("role").is_none(), "{got:?}");
    assert_eq!(got.1["added_by"], alice_account);
    let got = status_json(activate(&alice).send().await.unwrap()).await;
    assert_error(&got, 422, "SignatureRequired", None);

    // The owner's own key.
    let got = status_json(add(&alice, sshsig(21, &text)).send().await.unwrap()).await;
    assert_eq!(got.1["role"], "owner", "{got:?}");
    let got = status_json(activate(&alice).send().await.unwrap()).await;
    assert_eq!(got.0, 200, "{got:?}");

    // An operator's key on a second image.
    let (_, img) = status_json(create(&alice).send().await.unwrap()).await;
    let second = uuid_of(&img);
    let resp = alice
        .sign(s.put(&format!("/images/{second}/file?compression=gzip")))
        .body(b"second".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let listed = status_json(
        root.sign(s.get(&format!("/images/{second}/signatures")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let text = listed.1["statement"].as_str().unwrap().to_string();
    let got = status_json(
        root.sign(s.post(&format!("/images/{second}/signatures")))
            .json(&json!({ "signature": sshsig(23, &text) }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.1["role"], "operator", "{got:?}");
    assert_eq!(got.1["added_by"], "operator");
    let got = status_json(
        alice
            .sign(s.post(&format!("/images/{second}?action=activate")))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
}

/// Public mode with HTTP Signature auth: anonymous callers read the
/// signatures of public images but cannot add or remove any.
#[tokio::test]
async fn public_mode_reads_for_everyone_writes_for_signed_callers() {
    let root = User::new("root", 31);
    let s = TestServer::spawn_with(&format!(
        "auth_type = \"signature\"\n[signing]\nrequire_for_activation = true\n[auth_keys]\nroot = [{:?}]\n",
        root.public_line()
    ))
    .await;
    let (status, img) = status_json(
        root.sign(s.post("/images"))
            .json(&manifest())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{img}");
    let uuid = uuid_of(&img);
    let resp = root
        .sign(s.put(&format!("/images/{uuid}/file?compression=gzip")))
        .body(b"public bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = statement(&s, &uuid).await;
    let got = add_signature(&s, &uuid, &sshsig(31, &text)).await;
    assert_error(&got, 401, "UnauthorizedError", None);
    let got = status_json(
        root.sign(s.post(&format!("/images/{uuid}/signatures")))
            .json(&json!({ "signature": sshsig(31, &text) }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.1["role"], "operator", "{got:?}");
    let got = status_json(
        root.sign(s.post(&format!("/images/{uuid}?action=activate")))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    // Anyone reads them.
    let listed = signatures(&s, &uuid, "").await;
    assert_eq!(listed["signatures"][0]["valid"], true);
    let id = listed["signatures"][0]["id"].as_str().unwrap().to_string();
    let resp = s
        .delete(&format!("/images/{uuid}/signatures/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
