//! Signed images with imgadm (docs/signing.md), against a source that
//! serves exactly what each test sets up (common/signed_source.rs: a mirror
//! that may lie) and the real OpenSSH tools: signatures made by `ssh-keygen
//! -Y sign -n imgapi` are accepted by `imgadm verify` and `import`, those
//! made by `imgadm sign` (key files and ssh-agent, every key type) verify
//! with `ssh-keygen -Y verify`, and every kind of tampering is refused by
//! `import` before anything is installed. Tests print SKIP and pass when
//! ssh-keygen (or ssh-agent) is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "common/signed_source.rs"]
mod signed_source;

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use assert_cmd::Command;
use serde_json::Value;
use signed_source::{manifest, statement, Served, SignedSource};

const IMAGE: &str = "2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11";
const ORIGIN: &str = "3c0b5b2f-1a4d-4c66-8d4a-5c3a9d2a6b22";
const OTHER: &str = "4d1c6c3a-2b5e-4d77-9e5b-6d4b0e3b7c33";

fn have_ssh_keygen() -> bool {
    let found = Process::new("ssh-keygen")
        .arg("-?")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        println!("SKIP: ssh-keygen unavailable");
    }
    found
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A publisher's or a consumer's world: keys, trust files, config and store.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ssh-keygen -t TYPE [-b BITS]` into `<dir>/<name>`.
    fn keygen(&self, name: &str, key_type: &str, bits: Option<u32>) -> PathBuf {
        let key = self.path(name);
        let mut cmd = Process::new("ssh-keygen");
        cmd.args(["-q", "-t", key_type, "-N", "", "-C", name, "-f"])
            .arg(&key);
        if let Some(bits) = bits {
            cmd.args(["-b", &bits.to_string()]);
        }
        assert!(cmd.status().unwrap().success());
        key
    }

    /// An allowed_signers file trusting `keys` as `<name>@example.com`.
    fn trust(&self, file: &str, keys: &[&Path]) -> PathBuf {
        let mut text = String::from("# publishers this consumer trusts\n");
        for key in keys {
            let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
            let mut fields = public.split_whitespace();
            let name = key.file_name().unwrap().to_str().unwrap();
            text.push_str(&format!(
                "{name}@example.com namespaces=\"imgapi\" {} {}\n",
                fields.next().unwrap(),
                fields.next().unwrap()
            ));
        }
        let path = self.path(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `ssh-keygen -Y sign -n imgapi -f KEY` over `statement`.
    fn ssh_keygen_sign(&self, key: &Path, statement: &str) -> String {
        let file = self.path("statement");
        std::fs::write(&file, statement).unwrap();
        let status = Process::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", "imgapi", "-f"])
            .arg(key)
            .arg(&file)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let sig = self.path("statement.sig");
        let armored = std::fs::read_to_string(&sig).unwrap();
        std::fs::remove_file(&sig).unwrap();
        armored
    }

    fn imgadm(&self) -> Command {
        let mut c = Command::cargo_bin("imgadm").unwrap();
        c.env("IMGADM_CONFIG_DIR", self.path("config"))
            .env_remove("IMGAPI_URL")
            .env_remove("IMGAPI_USER")
            .env_remove("IMGAPI_KEY")
            .env_remove("IMGAPI_CHANNEL")
            .env_remove("IMGADM_STORE")
            .env_remove("SSH_AUTH_SOCK");
        c
    }

    fn store(&self) -> PathBuf {
        self.path("config").join("images")
    }

    /// Installed image uuids, and whether anything else is in the store.
    fn installed(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.store()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
            .filter(|n| !n.starts_with(".lock-"))
            .collect();
        names.sort();
        names
    }

    /// `imgadm import UUID`: (success, stdout, stderr).
    fn import(&self, uuid: &str) -> (bool, String, String) {
        let out = self.imgadm().args(["import", uuid]).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn add_source(&self, url: &str, trust: Option<&Path>) {
        let mut c = self.imgadm();
        c.args(["sources", "add", url]);
        if let Some(t) = trust {
            c.args(["--trust", p(t)]);
        }
        c.assert().success();
    }
}

/// An image of `name` with `file`, signed by `keys` (ssh-keygen).
fn signed_image(
    w: &World,
    uuid: &str,
    name: &str,
    file: &[u8],
    origin: Option<&str>,
    keys: &[&Path],
) -> Served {
    let m = manifest(uuid, name, file, origin);
    let st = statement(&m, file);
    Served {
        signatures: keys.iter().map(|k| w.ssh_keygen_sign(k, &st)).collect(),
        manifest: m,
        file: file.to_vec(),
        statement: Some(Some(st)),
    }
}

/// Assert an import of `uuid` is refused with `why` in its message, and
/// that nothing is installed (nor left in the store).
fn assert_refused(w: &World, uuid: &str, why: &str) -> String {
    let (ok, stdout, stderr) = w.import(uuid);
    assert!(!ok, "import of {uuid} succeeded: {stdout}");
    assert!(stderr.contains("refusing to import"), "{stderr}");
    assert!(stderr.contains(why), "expected {why:?} in: {stderr}");
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert!(!stdout.contains("Installed image"), "{stdout}");
    let leftovers: Vec<String> = w
        .installed()
        .into_iter()
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "installed: {leftovers:?}");
    stderr
}

const KEY_TYPES: &[(&str, Option<u32>)] = &[
    ("ed25519", None),
    ("ecdsa", Some(256)),
    ("ecdsa", Some(384)),
    ("ecdsa", Some(521)),
    ("rsa", Some(3072)),
];

#[test]
fn import_accepts_ssh_keygen_signatures_of_every_key_type() {
    if !have_ssh_keygen() {
        return;
    }
    let w = World::new();
    let source = SignedSource::start();
    let mut keys = Vec::new();
    for (i, (key_type, bits)) in KEY_TYPES.iter().enumerate() {
        keys.push(w.keygen(&format!("pub{i}-{key_type}"), key_type, *bits));
    }
    let key_refs: Vec<&Path> = keys.iter().map(PathBuf::as_path).collect();
    let trust = w.trust("allowed_signers", &key_refs);
    w.add_source(&source.url, Some(&trust));
    let mut uuids = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let uuid = format!("{}{i}", &IMAGE[..IMAGE.len() - 1]);
        let file = format!("image signed by key {i}").into_bytes();
        source.put(signed_image(
            &w,
            &uuid,
            &format!("img{i}"),
            &file,
            None,
            &[key],
        ));
        uuids.push(uuid);
    }
    for (uuid, key) in uuids.iter().zip(&keys) {
        let (ok, stdout, stderr) = w.import(uuid);
        assert!(ok, "{uuid} ({}): {stderr}", key.display());
        let name = key.file_name().unwrap().to_str().unwrap();
        assert!(
            stdout.contains(&format!(
                "is signed by {name}@example.com (trusted by {})",
                trust.display()
            )),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("Installed image {uuid}")),
            "{stdout}"
        );
        // The publisher's check of the same signature.
        let out = w
            .imgadm()
            .env("IMGAPI_URL", &source.url)
            .args(["verify", uuid, "--trust", p(&trust)])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("FINGERPRINT"), "{text}");
        assert!(text.contains(&format!("{name}@example.com")), "{text}");
    }
    assert_eq!(w.installed(), {
        let mut u = uuids.clone();
        u.sort();
        u
    });
}

#[test]
fn tampering_is_refused_before_anything_is_installed() {
    if !have_ssh_keygen() {
        return;
    }
    let w = World::new();
    let source = SignedSource::start();
    let publisher = w.keygen("publisher", "ed25519", None);
    let stranger = w.keygen("stranger", "ed25519", None);
    let trust = w.trust("allowed_signers", &[&publisher]);
    w.add_source(&source.url, Some(&trust));
    let file = b"the signed image bytes".to_vec();
    let good = signed_image(&w, IMAGE, "base", &file, None, &[&publisher]);

    // A changed manifest field, the signed statement still served.
    let mut t = good.clone();
    t.manifest["name"] = "evil".into();
    source.put(t);
    assert_refused(&w, IMAGE, "the manifest served differs from the statement its signatures sign (name: signed \"base\", served \"evil\")");

    // A changed field with the statement rebuilt to match (as a server
    // whose record was changed serves it): the signature no longer verifies.
    let mut t = good.clone();
    t.manifest["version"] = "6.6.6".into();
    t.statement = Some(Some(statement(&t.manifest, &file)));
    source.put(t);
    assert_refused(&w, IMAGE, "no valid signature");

    // The file changed, same size (its sha1 in the manifest changed too,
    // so the download's own checks pass): its SHA-256 is not the signed one.
    let mut t = good.clone();
    let mut evil = file.clone();
    evil[0] ^= 0x20;
    t.manifest = manifest(IMAGE, "base", &evil, None);
    t.file = evil;
    source.put(t);
    let before = source.file_requests();
    assert_refused(&w, IMAGE, "its file differs from the signed one");
    assert_eq!(source.file_requests(), before + 1);
    assert!(w.installed().is_empty(), "{:?}", w.installed());

    // A signature by a key the consumer does not trust.
    let mut t = good.clone();
    t.signatures =
        vec![w.ssh_keygen_sign(&stranger, t.statement.clone().unwrap().as_deref().unwrap())];
    source.put(t);
    assert_refused(&w, IMAGE, "signed only by keys not trusted by");

    // The publisher's signature of another image.
    let other = signed_image(&w, OTHER, "other", b"another image", None, &[&publisher]);
    let mut t = good.clone();
    t.signatures = other.signatures.clone();
    source.put(t);
    assert_refused(&w, IMAGE, "does not match this image's statement");

    // A truncated signature.
    let mut t = good.clone();
    let sig = &good.signatures[0];
    t.signatures = vec![sig[..sig.len() / 2].to_string()];
    source.put(t);
    assert_refused(&w, IMAGE, "no valid signature");

    // No signatures at all, and a source without the extension.
    let mut t = good.clone();
    t.signatures.clear();
    source.put(t);
    assert_refused(&w, IMAGE, "it has no signatures");
    let mut t = good.clone();
    t.statement = None;
    source.put(t);
    assert_refused(&w, IMAGE, "this source does not support image signatures");

    // None of the refusals downloaded anything but the changed file.
    assert_eq!(source.file_requests(), 1);

    // The untampered image imports.
    source.put(good);
    let (ok, stdout, stderr) = w.import(IMAGE);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("is signed by publisher@example.com"),
        "{stdout}"
    );
    assert_eq!(w.installed(), vec![IMAGE.to_string()]);
}

#[test]
fn an_unsigned_origin_refuses_the_whole_chain_before_any_download() {
    if !have_ssh_keygen() {
        return;
    }
    let w = World::new();
    let source = SignedSource::start();
    let publisher = w.keygen("publisher", "ecdsa", Some(256));
    let trust = w.trust("allowed_signers", &[&publisher]);
    w.add_source(&source.url, Some(&trust));
    source.put(signed_image(
        &w,
        ORIGIN,
        "origin",
        b"origin bytes",
        None,
        &[],
    ));
    source.put(signed_image(
        &w,
        IMAGE,
        "child",
        b"child bytes",
        Some(ORIGIN),
        &[&publisher],
    ));
    let stderr = assert_refused(&w, IMAGE, "it has no signatures");
    assert!(
        stderr.contains(&format!("its origin {ORIGIN} (origin@1.0.0)")),
        "{stderr}"
    );
    assert_eq!(source.file_requests(), 0);

    // The origin signed too: both install, the origin first.
    source.put(signed_image(
        &w,
        ORIGIN,
        "origin",
        b"origin bytes",
        None,
        &[&publisher],
    ));
    let (ok, stdout, stderr) = w.import(IMAGE);
    assert!(ok, "{stderr}");
    let origin_at = stdout.find(&format!("Installed image {ORIGIN}")).unwrap();
    let child_at = stdout.find(&format!("Installed image {IMAGE}")).unwrap();
    assert!(origin_at < child_at, "{stdout}");

    // An origin whose file was changed: refused, and the image above it
    // (downloaded and fine) is not installed either.
    let w2 = World::new();
    w2.add_source(&source.url, Some(&trust));
    let mut origin = source.get(ORIGIN);
    let evil = b"Origin bytes".to_vec();
    origin.manifest = manifest(ORIGIN, "origin", &evil, None);
    origin.file = evil;
    source.put(origin);
    let (ok, _, stderr) = w2.import(IMAGE);
    assert!(!ok);
    assert!(
        stderr.contains("its file differs from the signed one"),
        "{stderr}"
    );
    let installed: Vec<String> = w2
        .installed()
        .into_iter()
        .filter(|n| !n.starts_with(".tmp-"))
        .collect();
    assert!(installed.is_empty(), "{installed:?}");
}

#[test]
fn sources_without_trust_import_as_before_and_list_unchanged() {
    if !have_ssh_keygen() {
        return;
    }
    let w = World::new();
    let source = SignedSource::start();
    let plain = SignedSource::start();
    // Unsigned, from a source without a trust file: imported as always.
    plain.put(signed_image(&w, IMAGE, "plain", b"plain", None, &[]));
    w.add_source(&plain.url, None);
    let out = w.imgadm().args(["sources"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", plain.url)
    );
    let (ok, _, stderr) = w.import(IMAGE);
    assert!(ok, "{stderr}");

    let key = w.keygen("k", "ed25519", None);
    let trust = w.trust("allowed_signers", &[&key]);
    w.add_source(&source.url, Some(&trust));
    let out = w.imgadm().args(["sources"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}\n{} (trust {})\n",
            plain.url,
            source.url,
            trust.display()
        )
    );
    let out = w.imgadm().args(["-j", "sources"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0], serde_json::json!({"url": plain.url}));
    assert_eq!(v[1]["trust"], trust.display().to_string());

    // Adding a configured source again with --trust replaces its file.
    let other_trust = w.trust("other_signers", &[&key]);
    let out = w
        .imgadm()
        .args(["sources", "add", &plain.url, "--trust", p(&other_trust)])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "Source {} is already configured; it now trusts {}\n",
            plain.url,
            other_trust.display()
        )
    );
    let out = w.imgadm().args(["sources"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!(
        "{} (trust {})\n",
        plain.url,
        other_trust.display()
    )));
    // The unsigned image is now refused from that source.
    w.imgadm()
        .args(["installed", "delete", IMAGE])
        .assert()
        .success();
    assert_refused(&w, IMAGE, "it has no signatures");

    // A trust file that is not one is refused when added.
    let bad = w.path("bad_signers");
    std::fs::write(&bad, "alice@example.com ssh-ed25519 not-base64\n").unwrap();
    let out = w
        .imgadm()
        .args(["sources", "add", "http://127.0.0.1:9", "--trust", p(&bad)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1"),
        "{:?}",
        out
    );
}

/// An `ssh-agent -D` of the test's own, killed by its pid when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(w: &World) -> Option<Agent> {
        let socket = w.path("agent.sock");
        let Ok(child) = Process::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            println!("SKIP: ssh-agent unavailable");
            return None;
        };
        let agent = Agent { child, socket };
        for _ in 0..100 {
            if agent.socket.exists() {
                return Some(agent);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("ssh-agent did not create its socket");
    }

    fn add(&self, key: &Path) {
        let ok = Process::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "ssh-add {}", key.display());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssh-keygen -Y verify -n imgapi -I IDENTITY -f allowed_signers -s sig < statement`.
fn ssh_keygen_verify(
    w: &World,
    trust: &Path,
    identity: &str,
    armored: &str,
    statement: &str,
) -> bool {
    use std::io::Write as _;
    let sig = w.path("check.sig");
    std::fs::write(&sig, armored).unwrap();
    let mut child = Process::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "imgapi", "-I", identity, "-f"])
        .arg(trust)
        .arg("-s")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(statement.as_bytes())
        .unwrap();
    child.wait().unwrap().success()
}

#[test]
fn imgadm_sign_makes_signatures_ssh_keygen_verifies_with_files_and_agent() {
    if !have_ssh_keygen() {
        return;
    }
    let w = World::new();
    let source = SignedSource::start();
    let agent = Agent::start(&w);
    for (i, (key_type, bits)) in KEY_TYPES.iter().enumerate() {
        let key = w.keygen(&format!("signer{i}"), key_type, *bits);
        let trust = w.trust(&format!("trust{i}"), &[&key]);
        let identity = format!("signer{i}@example.com");
        // Through the key file, then (when there is an agent) through ssh-agent.
        let mut ways: Vec<(&str, Option<&Agent>)> = vec![("file", None)];
        if let Some(agent) = &agent {
            agent.add(&key);
            ways.push(("agent", Some(agent)));
        }
        for (way, through) in ways {
            let uuid = format!("{}{i}", &OTHER[..OTHER.len() - 1]);
            let served = signed_image(
                &w,
                &uuid,
                &format!("{way}{i}"),
                format!("{way} {i}").as_bytes(),
                None,
                &[],
            );
            let st = served.statement.clone().unwrap().unwrap();
            source.put(served);
            let mut cmd = w.imgadm();
            cmd.env("IMGAPI_URL", &source.url);
            match through {
                // The agent is named by the public key only: no private key file is read.
                Some(agent) => {
                    cmd.env("SSH_AUTH_SOCK", &agent.socket)
                        .args(["--key", p(&key.with_extension("pub"))]);
                }
                None => {
                    cmd.args(["--key", p(&key)]);
                }
            }
            let out = cmd.args(["sign", &uuid]).output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{way} {key_type}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                stdout.starts_with(&format!("Signed image {uuid} ({way}{i}@1.0.0) with ")),
                "{stdout}"
            );
            let stored = source.get(&uuid).signatures;
            assert_eq!(stored.len(), 1);
            assert!(
                ssh_keygen_verify(&w, &trust, &identity, &stored[0], &st),
                "ssh-keygen -Y verify refused imgadm's {way} {key_type} signature"
            );
            // Another statement: ssh-keygen refuses it.
            assert!(!ssh_keygen_verify(
                &w,
                &trust,
                &identity,
                &stored[0],
                &st.replace("1.0.0", "1.0.1")
            ));
            // And imgadm's own verify accepts it.
            w.imgadm()
                .env("IMGAPI_URL", &source.url)
                .args(["verify", &uuid, "--trust", p(&trust)])
                .assert()
                .success();
        }
    }
    drop(agent);
}

#[test]
fn sign_and_verify_refuse_what_they_cannot_vouch_for() {
    if !have_ssh_keygen() {
        return;
    }
    let w = World::new();
    let source = SignedSource::start();
    let key = w.keygen("publisher", "ed25519", None);
    let stranger = w.keygen("stranger", "ed25519", None);
    let trust = w.trust("allowed_signers", &[&key]);
    let imgadm = |args: &[&str]| {
        w.imgadm()
            .env("IMGAPI_URL", &source.url)
            .args(["--key", p(&key)])
            .args(args)
            .output()
            .unwrap()
    };

    // The server's statement disagrees with its manifest: not signed.
    let mut t = signed_image(&w, IMAGE, "base", b"bytes", None, &[]);
    t.manifest["os"] = "linux".into();
    source.put(t);
    let out = imgadm(&["sign", IMAGE]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot sign image"), "{stderr}");
    assert!(
        stderr.contains("os: signed \"smartos\", served \"linux\""),
        "{stderr}"
    );
    assert!(source.get(IMAGE).signatures.is_empty());

    // No file yet, and a server without the extension.
    let mut t = signed_image(&w, IMAGE, "base", b"bytes", None, &[]);
    t.statement = Some(None);
    source.put(t);
    let out = imgadm(&["sign", IMAGE]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no file yet"),
        "{out:?}"
    );
    let mut t = signed_image(&w, IMAGE, "base", b"bytes", None, &[]);
    t.statement = None;
    source.put(t);
    let out = imgadm(&["sign", IMAGE]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "{}: this source does not support image signatures",
            source.url
        )),
        "{out:?}"
    );
    let out = imgadm(&["verify", IMAGE]);
    assert_eq!(out.status.code(), Some(1));

    // verify: no signatures; untrusted only; then a valid trusted one (JSON).
    source.put(signed_image(&w, IMAGE, "base", b"bytes", None, &[]));
    let out = imgadm(&["verify", IMAGE]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("it has no signatures"));
    source.put(signed_image(
        &w,
        IMAGE,
        "base",
        b"bytes",
        None,
        &[&stranger],
    ));
    imgadm(&["verify", IMAGE])
        .status
        .success()
        .then_some(())
        .unwrap();
    let out = imgadm(&["verify", IMAGE, "--trust", p(&trust)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no valid signature by a key of"),
        "{out:?}"
    );
    let out = imgadm(&["sign", IMAGE]);
    assert!(out.status.success(), "{out:?}");
    let out = imgadm(&["-j", "verify", IMAGE, "--trust", p(&trust)]);
    assert!(out.status.success(), "{out:?}");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["trusted"], Value::Null);
    assert_eq!(rows[0]["valid"], true);
    assert_eq!(rows[1]["trusted"], "publisher@example.com");

    // A truncated signature shows as invalid.
    let mut t = source.get(IMAGE);
    let s = t.signatures[0].clone();
    t.signatures = vec![s[..s.len() / 2].to_string()];
    source.put(t);
    let out = imgadm(&["verify", IMAGE]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(" no"), "{stdout}");
}
