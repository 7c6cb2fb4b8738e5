//! imgadm consumer verbs (sources, avail, import, installed, vacuum) end to
//! end against real in-process imgapi-servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{spawn, Server};

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";

impl Server {
    /// Create, upload and activate an image (publisher verbs); return its uuid.
    fn publish(&self, name: &str, data: &[u8], origin: Option<&str>) -> String {
        let mut m = json!({
            "name": name, "version": "1.0.0", "type": "other", "os": "other",
            "owner": OWNER, "public": true
        });
        if let Some(o) = origin {
            m["origin"] = json!(o);
        }
        let mp = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&mp, m.to_string()).unwrap();
        let fp = self.dir.path().join(format!("{name}.bin"));
        std::fs::write(&fp, data).unwrap();
        let out = Command::cargo_bin("imgadm")
            .unwrap()
            .env("IMGAPI_URL", &self.url)
            .args(["-j", "create", "-m", p(&mp), "-f", p(&fp)])
            .assert()
            .success();
        let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        assert_eq!(v["state"], "active");
        v["uuid"].as_str().unwrap().to_string()
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A consumer: its own config dir (and store below it), no IMGAPI_URL.
struct Consumer {
    dir: tempfile::TempDir,
}

impl Consumer {
    fn new() -> Consumer {
        Consumer {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("imgadm").unwrap();
        cmd.env_remove("IMGAPI_URL")
            .env_remove("IMGADM_STORE")
            .env("IMGADM_CONFIG_DIR", self.dir.path());
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    fn fail(&self, args: &[&str], code: i32) -> String {
        let out = self.cmd().args(args).assert().code(code);
        String::from_utf8(out.get_output().stderr.clone()).unwrap()
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(bytes))
}

#[test]
fn sources_add_list_delete() {
    let c = Consumer::new();
    assert_eq!(c.ok(&["sources"]), "");
    assert!(c
        .ok(&["sources", "add", "http://one.example:8080/"])
        .contains("Added source http://one.example:8080"));
    c.ok(&["sources", "add", "https://two.example"]);
    assert!(c
        .ok(&["sources", "add", "http://one.example:8080"])
        .contains("already configured"));
    assert_eq!(
        c.ok(&["sources", "list"]),
        "http://one.example:8080\nhttps://two.example\n"
    );
    let v: Value = serde_json::from_str(&c.ok(&["sources", "-j"])).unwrap();
    assert_eq!(v[1]["url"], "https://two.example");
    assert!(c.dir.path().join("sources.json").is_file());
    c.fail(&["sources", "add", "ftp://x.example"], 2);
    c.fail(&["sources", "add", "not a url"], 2);
    c.ok(&["sources", "delete", "http://one.example:8080"]);
    assert_eq!(c.ok(&["sources"]), "https://two.example\n");
    c.fail(&["sources", "delete", "http://one.example:8080"], 3);
}

#[test]
fn avail_across_two_sources() {
    let a = spawn();
    let b = spawn();
    let ua = a.publish("alpha", b"aaaa", None);
    let ub = b.publish("beta", b"bbbb", None);
    let c = Consumer::new();
    c.fail(&["avail"], 2);
    c.ok(&["sources", "add", &a.url]);
    c.ok(&["sources", "add", &b.url]);
    let out = c.ok(&["avail"]);
    assert!(out.starts_with("UUID"));
    assert!(out.contains("SOURCE"));
    let la = out.lines().find(|l| l.contains(&ua)).unwrap();
    assert!(la.contains("alpha") && la.contains(&a.url));
    let lb = out.lines().find(|l| l.contains(&ub)).unwrap();
    assert!(lb.contains("beta") && lb.contains(&b.url));
    let v: Value = serde_json::from_str(&c.ok(&["avail", "-j"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    // The same source twice (another spelling) does not duplicate images.
    c.ok(&["sources", "add", &format!("{}/", a.url)]);
    let v: Value = serde_json::from_str(&c.ok(&["avail", "-j"])).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
}

#[test]
fn import_with_origin_installed_list_get_delete() {
    let s = spawn();
    let base_data = data(300_000, 1);
    let child_data = data(123_457, 7);
    let base = s.publish("base", &base_data, None);
    let child = s.publish("child", &child_data, Some(&base));
    let c = Consumer::new();
    // Unknown image: not found.
    c.ok(&["sources", "add", &s.url]);
    c.fail(&["import", "00000000-0000-4000-8000-000000000000"], 3);

    let out = c.ok(&["import", &child]);
    assert!(out.contains(&format!("Installed image {base}")), "{out}");
    assert!(out.contains(&format!("Installed image {child}")), "{out}");
    let store = c.store();
    assert_eq!(
        std::fs::read(store.join(&base).join("file")).unwrap(),
        base_data
    );
    assert_eq!(
        std::fs::read(store.join(&child).join("file")).unwrap(),
        child_data
    );
    // Nothing temporary is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    assert!(c.ok(&["import", &child]).contains("already installed"));

    let list = c.ok(&["installed"]);
    assert!(list.starts_with("UUID"));
    assert!(list.contains(&base) && list.contains(&child));
    let m: Value = serde_json::from_str(&c.ok(&["installed", "get", &child])).unwrap();
    assert_eq!(m["uuid"], child.as_str());
    assert_eq!(m["origin"], base.as_str());
    assert_eq!(m["files"][0]["size"], child_data.len() as u64);

    // The origin cannot go while its child is installed.
    c.fail(&["installed", "delete", &base], 1);
    assert!(c.ok(&["installed", "delete", &child]).contains("Deleted"));
    assert!(!store.join(&child).exists());
    c.fail(&["installed", "get", &child], 3);
    c.ok(&["installed", "delete", &base]);
    assert_eq!(c.ok(&["installed", "-H"]), "");
}

#[test]
fn import_verifies_sha1() {
    let s = spawn();
    let bytes = data(50_000, 3);
    let uuid = s.publish("v", &bytes, None);
    let c = Consumer::new();
    c.ok(&["sources", "add", &s.url]);
    c.ok(&["import", &uuid]);
    let m: Value = serde_json::from_str(&c.ok(&["installed", "get", &uuid])).unwrap();
    let sha1 = m["files"][0]["sha1"].as_str().unwrap().to_string();
    // The import's own output reports the verified sha1.
    let store = c.store();
    assert_eq!(
        std::fs::read(store.join(&uuid).join("file")).unwrap(),
        bytes
    );
    assert_eq!(sha1, sha1_hex(&bytes));
    assert_eq!(
        sha1_hex(&std::fs::read(store.join(&uuid).join("file")).unwrap()),
        sha1
    );
}

#[test]
fn lock_stops_second_import() {
    let s = spawn();
    let uuid = s.publish("locked", b"locked data", None);
    let c = Consumer::new();
    c.ok(&["sources", "add", &s.url]);
    let store = c.store();
    std::fs::create_dir_all(&store).unwrap();
    // Held by a live process (this test).
    let lock = store.join(format!(".lock-{uuid}"));
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let err = c.fail(&["import", &uuid], 1);
    assert!(err.contains("already being imported"), "{err}");
    assert!(!store.join(&uuid).exists());
    std::fs::remove_file(&lock).unwrap();
    c.ok(&["import", &uuid]);
}

#[test]
fn partial_tmp_dir_is_resumed() {
    let s = spawn();
    let bytes = data(200_001, 9);
    let uuid = s.publish("partial", &bytes, None);
    let c = Consumer::new();
    c.ok(&["sources", "add", "--store", p(&c.store()), &s.url]);
    let tmp = c.store().join(format!(".tmp-{uuid}"));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("file.part"), &bytes[..100_000]).unwrap();
    // A stale lock from a dead importer is taken over.
    std::fs::write(c.store().join(format!(".lock-{uuid}")), "999999999\n").unwrap();
    c.ok(&["import", &uuid, "--store", p(&c.store())]);
    assert!(!tmp.exists());
    assert!(!c.store().join(format!(".lock-{uuid}")).exists());
    assert_eq!(
        std::fs::read(c.store().join(&uuid).join("file")).unwrap(),
        bytes
    );
}

#[test]
fn vacuum_dry_run_then_real() {
    let c = Consumer::new();
    let store = c.store();
    let u1 = "11111111-1111-4111-8111-111111111111";
    let u2 = "22222222-2222-4222-8222-222222222222";
    std::fs::create_dir_all(store.join(format!(".tmp-{u1}"))).unwrap();
    std::fs::write(store.join(format!(".tmp-{u1}")).join("file.part"), b"x").unwrap();
    std::fs::write(store.join(format!(".lock-{u2}")), "999999999\n").unwrap();
    // A live import's lock and tmp dir are left alone.
    let u3 = "33333333-3333-4333-8333-333333333333";
    std::fs::create_dir_all(store.join(format!(".tmp-{u3}"))).unwrap();
    std::fs::write(
        store.join(format!(".lock-{u3}")),
        format!("{}\n", std::process::id()),
    )
    .unwrap();

    let out = c.ok(&["vacuum", "-n"]);
    assert!(
        out.contains(&format!(
            "Would remove {}",
            store.join(format!(".tmp-{u1}")).display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!(".lock-{u2}")), "{out}");
    assert!(!out.contains(u3), "{out}");
    assert!(store.join(format!(".tmp-{u1}")).exists());

    let out = c.ok(&["vacuum"]);
    assert!(out.contains("Removed"), "{out}");
    assert!(!store.join(format!(".tmp-{u1}")).exists());
    assert!(!store.join(format!(".lock-{u2}")).exists());
    assert!(store.join(format!(".tmp-{u3}")).exists());
    assert!(c.ok(&["vacuum"]).contains("Nothing to remove"));
}
