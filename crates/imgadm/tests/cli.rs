//! imgadm end to end against a real in-process imgapi-server.
// Helpers outside #[test] fns unwrap too (clippy.toml only covers test fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{spawn, Server};

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{json, Value};

const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
const ACCOUNT: &str = "5f9e3f1c-6d2e-4b0a-9d4e-2f1f3f0c7a11";

impl Server {
    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("imgadm").unwrap();
        cmd.env("IMGAPI_URL", &self.url);
        // Never pick up the developer's ~/.imgadm/profile.json or channel.
        cmd.env("IMGADM_CONFIG_DIR", self.dir.path().join("config"))
            .env_remove("IMGAPI_CHANNEL");
        cmd
    }

    /// Run imgadm with `args`, expect success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    fn ok_json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn manifest(&self, name: &str) -> PathBuf {
        let m = json!({
            "name": name, "version": "1.0.0", "type": "other", "os": "other",
            "owner": OWNER, "public": true
        });
        self.write(&format!("{name}.json"), m.to_string().as_bytes())
    }

    /// Create an unactivated image (no file) and return its uuid.
    fn create_bare(&self, name: &str) -> String {
        let m = self.manifest(name);
        let v = self.ok_json(&["-j", "create", "-m", m.to_str().unwrap()]);
        assert_eq!(v["state"], "unactivated");
        v["uuid"].as_str().unwrap().to_string()
    }

    /// Create, upload and activate an image; return its uuid.
    fn create_active(&self, name: &str, data: &[u8]) -> String {
        let m = self.manifest(name);
        let f = self.write(&format!("{name}.bin"), data);
        let v = self.ok_json(&["-j", "create", "-m", p(&m), "-f", p(&f)]);
        assert_eq!(v["state"], "active");
        v["uuid"].as_str().unwrap().to_string()
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stderr.clone()).unwrap()
}

#[test]
fn ping() {
    let s = spawn();
    assert!(s.ok(&["ping"]).starts_with("ok:"));
    s.ok_json(&["ping", "-j"]);
}

#[test]
fn get() {
    let s = spawn();
    let uuid = s.create_bare("get-me");
    let v = s.ok_json(&["get", &uuid]);
    assert_eq!(v["uuid"], uuid.as_str());
    assert_eq!(v["name"], "get-me");
}

/// The body of `GET path` as the server sent it (HTTP/1.0: no chunking).
fn raw_get(url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    body.to_string()
}

/// `get` prints the image as the server sent it: typed decoding keeps
/// every key, in the server's order, and the server's 2-space indentation.
#[test]
fn get_prints_the_servers_json() {
    let s = spawn();
    let m = json!({
        "name": "rich", "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
        "owner": OWNER, "public": true, "description": "d",
        "requirements": {"min_ram": 512, "brand": "", "networks": [{"name": "n", "description": "x"}]},
        "users": [{"name": "root"}], "generate_passwords": true,
        "inherited_directories": ["/opt"], "tags": {"z": 1, "a": {"b": [true, null]}}
    });
    let path = s.write("rich.json", m.to_string().as_bytes());
    let uuid = s.ok_json(&["-j", "create", "-m", p(&path)])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let printed = s.ok(&["get", &uuid]);
    let served = raw_get(&s.url, &format!("/images/{uuid}"));
    assert_eq!(printed.trim_end(), served.trim_end());
}

#[test]
fn list_table_json_filters_columns_sort() {
    let s = spawn();
    let a = s.create_active("bbb", b"one");
    let b = s.create_active("aaa", b"two");
    let table = s.ok(&["list"]);
    let header = table.lines().next().unwrap();
    for col in [
        "UUID",
        "NAME",
        "VERSION",
        "OS",
        "TYPE",
        "STATE",
        "PUBLISHED",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains(&a) && table.contains(&b));

    let arr = s.ok_json(&["list", "-j", "--name", "aaa"]);
    assert_eq!(arr.as_array().unwrap().len(), 1);
    assert_eq!(arr[0]["uuid"], b.as_str());
    let arr = s.ok_json(&["list", "-j", "name=bbb"]);
    assert_eq!(arr[0]["uuid"], a.as_str());

    let out = s.ok(&["list", "-H", "-o", "name,state", "-s", "name"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["aaa  active", "bbb  active"]
    );

    s.cmd().args(["list", "novalue"]).assert().code(2);
}

#[test]
fn create_uploads_and_activates() {
    let s = spawn();
    let m = s.manifest("full");
    let f = s.write("full.bin", &vec![7u8; 300_000]);
    let out = s.ok(&["create", "-m", p(&m), "-f", p(&f)]);
    assert!(
        out.contains("Created image") && out.contains("Activated image"),
        "{out}"
    );
    let uuid = s.ok_json(&["list", "-j", "--name", "full"])[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let v = s.ok_json(&["get", &uuid]);
    assert_eq!(v["state"], "active");
    assert_eq!(v["files"][0]["size"], 300_000);
}

#[test]
fn create_refuses_an_unreadable_file_before_creating_anything() {
    let s = spawn();
    let m = s.manifest("half");
    let missing = s.dir.path().join("no-such-file");
    let a = s
        .cmd()
        .args(["create", "-m", p(&m), "-f", p(&missing)])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(err.starts_with("imgadm: error: cannot read"), "{err}");
    assert_eq!(
        s.ok_json(&["list", "-j", "--name", "half", "state=all"]),
        json!([]),
        "no image was created"
    );
}

#[test]
fn add_file_then_activate() {
    let s = spawn();
    let uuid = s.create_bare("step");
    let f = s.write("step.bin", b"step by step");
    let out = s.ok(&["add-file", &uuid, "-f", p(&f), "-c", "none"]);
    assert!(out.contains("Added file"), "{out}");
    assert_eq!(s.ok_json(&["get", &uuid])["files"][0]["size"], 12);
    let v = s.ok_json(&["-j", "activate", &uuid]);
    assert_eq!(v["state"], "active");
}

#[test]
fn disable_and_enable() {
    let s = spawn();
    let uuid = s.create_active("toggle", b"x");
    assert!(s.ok(&["disable", &uuid]).contains("Disabled image"));
    assert_eq!(s.ok_json(&["get", &uuid])["state"], "disabled");
    assert!(s.ok(&["enable", &uuid]).contains("Enabled image"));
    assert_eq!(s.ok_json(&["get", &uuid])["state"], "active");
}

#[test]
fn update_fields() {
    let s = spawn();
    let uuid = s.create_bare("upd");
    s.ok(&[
        "update",
        &uuid,
        "description=a fine image",
        "tags={\"k\":\"v\"}",
    ]);
    let v = s.ok_json(&["get", &uuid]);
    assert_eq!(v["description"], "a fine image");
    assert_eq!(v["tags"]["k"], "v");
    s.cmd().args(["update", &uuid, "noequals"]).assert().code(2);
}

#[test]
fn delete() {
    let s = spawn();
    let uuid = s.create_active("gone", b"bye");
    assert!(s.ok(&["delete", &uuid]).contains("Deleted image"));
    s.cmd().args(["get", &uuid]).assert().code(3);
}

#[test]
fn add_and_remove_acl() {
    let s = spawn();
    let uuid = s.create_bare("acl");
    let v = s.ok_json(&["-j", "add-acl", &uuid, ACCOUNT]);
    assert_eq!(v["acl"], json!([ACCOUNT]));
    let v = s.ok_json(&["-j", "remove-acl", &uuid, ACCOUNT]);
    let acl = v.get("acl").cloned().unwrap_or(json!([]));
    assert_eq!(acl, json!([]));
}

#[test]
fn get_file_downloads_and_verifies() {
    let s = spawn();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let uuid = s.create_active("dl", &data);
    let dest = s.dir.path().join("out.bin");
    let out = s.ok(&["get-file", &uuid, "-o", p(&dest)]);
    assert!(out.contains("Saved file"), "{out}");
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    // Resume: a partial `.part` is completed, not re-downloaded from scratch.
    let dest2 = s.dir.path().join("out2.bin");
    std::fs::write(imgapi_client_part(&dest2), &data[..50_000]).unwrap();
    s.ok(&["get-file", &uuid, "-o", p(&dest2)]);
    assert_eq!(std::fs::read(&dest2).unwrap(), data);
}

fn imgapi_client_part(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

#[test]
fn missing_image_is_exit_3_with_rest_code() {
    let s = spawn();
    let a = s
        .cmd()
        .args(["get", "00000000-0000-4000-8000-000000000000"])
        .assert()
        .code(3);
    let err = stderr_of(&a);
    assert!(
        err.starts_with("imgadm: error (ResourceNotFound): "),
        "{err}"
    );
}

#[test]
fn refused_connection_is_exit_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = Command::cargo_bin("imgadm")
        .unwrap()
        .env("IMGAPI_URL", format!("http://127.0.0.1:{port}"))
        .arg("ping")
        .assert()
        .code(1);
    assert!(stderr_of(&a).starts_with("imgadm: error: "));
}

#[test]
fn usage_errors_are_exit_2() {
    Command::cargo_bin("imgadm")
        .unwrap()
        .env_remove("IMGAPI_URL")
        .arg("ping")
        .assert()
        .code(2);
    Command::cargo_bin("imgadm")
        .unwrap()
        .args(["-u", "http://127.0.0.1:1", "get", "not-a-uuid"])
        .assert()
        .code(2);
}

#[test]
fn every_verb_has_help() {
    for verb in [
        "ping",
        "get",
        "list",
        "create",
        "add-file",
        "activate",
        "disable",
        "enable",
        "update",
        "delete",
        "add-acl",
        "remove-acl",
        "get-file",
        "add-icon",
        "get-icon",
        "delete-icon",
        "channels",
        "channel-add",
        "admin-import",
        "create-manifest",
        "completions",
        "man",
    ] {
        Command::cargo_bin("imgadm")
            .unwrap()
            .args([verb, "--help"])
            .assert()
            .success();
    }
}

// ---- icons

#[test]
fn icon_add_get_delete() {
    let s = spawn();
    let uuid = s.create_active("iconic", b"x");
    let icon: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0..5000u32).map(|i| (i % 253) as u8))
        .collect();
    let f = s.write("icon.png", &icon);
    let out = s.ok(&["add-icon", &uuid, "-f", p(&f)]);
    assert!(
        out.contains("Added icon") && out.contains("image/png"),
        "{out}"
    );
    assert_eq!(s.ok_json(&["get", &uuid])["icon"], true);

    let dest = s.dir.path().join("got.png");
    let out = s.ok(&["get-icon", &uuid, "-o", p(&dest)]);
    assert!(out.contains("Saved icon"), "{out}");
    assert_eq!(std::fs::read(&dest).unwrap(), icon);
    let info = s.ok_json(&["-j", "get-icon", &uuid, "-o", p(&dest)]);
    assert_eq!(info["contentType"], "image/png");
    assert_eq!(info["size"], icon.len());

    // A JPEG replaces it, with its own content type.
    let jpg = s.write("icon.JPEG", b"\xff\xd8\xff\xe0 not really a jpeg");
    s.ok(&["add-icon", &uuid, "-f", p(&jpg)]);
    let info = s.ok_json(&["-j", "get-icon", &uuid, "-o", p(&dest)]);
    assert_eq!(info["contentType"], "image/jpeg");

    let out = s.ok(&["delete-icon", &uuid]);
    assert!(out.contains("Deleted icon"), "{out}");
    assert!(s.ok_json(&["get", &uuid]).get("icon").is_none());
    let a = s
        .cmd()
        .args(["get-icon", &uuid, "-o", p(&dest)])
        .assert()
        .code(3);
    assert!(
        stderr_of(&a).starts_with("imgadm: error (ResourceNotFound): "),
        "{}",
        stderr_of(&a)
    );
    assert!(!imgapi_client_part(&dest).exists());
}

#[test]
fn icon_usage_errors() {
    let s = spawn();
    let uuid = s.create_bare("icon-usage");
    let svg = s.write("icon.svg", b"<svg/>");
    let a = s
        .cmd()
        .args(["add-icon", &uuid, "-f", p(&svg)])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains(".png, .gif, .jpg or .jpeg"));
    let missing = s.dir.path().join("missing.png");
    s.cmd()
        .args(["add-icon", &uuid, "-f", p(&missing)])
        .assert()
        .code(2);
    // Too big for the server (128 KiB): its error, exit 1.
    let big = s.write("big.gif", &vec![0u8; 200 * 1024]);
    let a = s
        .cmd()
        .args(["add-icon", &uuid, "-f", p(&big)])
        .assert()
        .code(1);
    assert!(stderr_of(&a).contains("128 KiB"), "{}", stderr_of(&a));
    s.cmd()
        .args(["delete-icon", "00000000-0000-4000-8000-000000000000"])
        .assert()
        .code(3);
}

// ---- create-manifest, create, admin-import

/// `imgadm create-manifest ARGS -o <dir>/<out>`; returns the manifest.
fn create_manifest(s: &Server, out: &str, args: &[&str]) -> (PathBuf, Value) {
    let path = s.dir.path().join(out);
    let mut all = vec!["create-manifest"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", p(&path)]);
    let stdout = s.ok(&all);
    assert!(stdout.starts_with("Wrote manifest"), "{stdout}");
    let m = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, m)
}

fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(data))
}

fn qemu_img(args: &[&str]) -> bool {
    matches!(
        std::process::Command::new("qemu-img").args(args).output(),
        Ok(o) if o.status.success()
    )
}

#[test]
fn create_manifest_zvol_measures_with_qemu_img_and_publishes() {
    let s = spawn();
    if !qemu_img(&["--version"]) {
        eprintln!("SKIP: qemu-img not installed");
        return;
    }
    // qcow2: the virtual size (10 MiB), not the small file size.
    let qcow = s.dir.path().join("disk.qcow2");
    assert!(qemu_img(&["create", "-q", "-f", "qcow2", p(&qcow), "10M"]));
    let (mpath, m) = create_manifest(
        &s,
        "disk.json",
        &[
            "-f",
            p(&qcow),
            "--name",
            "disk",
            "--version",
            "1.0.0",
            "--type",
            "zvol",
            "--os",
            "linux",
            "--public",
        ],
    );
    let bytes = std::fs::read(&qcow).unwrap();
    assert_eq!(m["v"], 2);
    assert_eq!(m["image_size"], 10);
    assert_eq!(m["type"], "zvol");
    assert_eq!(m["files"][0]["sha1"], sha1_hex(&bytes).as_str());
    assert_eq!(m["files"][0]["size"], bytes.len());
    assert_eq!(m["files"][0]["compression"], "none");
    assert!(
        m.get("uuid").is_none(),
        "no uuid unless --uuid: create assigns one"
    );

    // Published unchanged: `create -m OUT -f FILE`.
    let v = s.ok_json(&["-j", "create", "-m", p(&mpath), "-f", p(&qcow)]);
    assert_eq!(v["state"], "active");
    assert_eq!(v["image_size"], 10);
    assert_eq!(v["files"][0]["sha1"], m["files"][0]["sha1"]);
    assert_eq!(v["files"][0]["compression"], "none");

    // Raw: a size that is not a whole number of MiB is rounded up.
    let raw = s.dir.path().join("disk.raw");
    assert!(qemu_img(&["create", "-q", "-f", "raw", p(&raw), "1500K"]));
    let (_, m) = create_manifest(
        &s,
        "raw.json",
        &[
            "-f",
            p(&raw),
            "--name",
            "raw",
            "--version",
            "1",
            "--type",
            "zvol",
        ],
    );
    assert_eq!(m["image_size"], 2);
    assert_eq!(m["public"], false);
    assert_eq!(m["owner"], "00000000-0000-0000-0000-000000000000");

    // --image-size wins over measuring.
    let (_, m) = create_manifest(
        &s,
        "given.json",
        &[
            "-f",
            p(&raw),
            "--name",
            "raw",
            "--version",
            "1",
            "--type",
            "zvol",
            "--image-size",
            "64",
        ],
    );
    assert_eq!(m["image_size"], 64);
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// An LXD image directory: `metadata.yaml` and `rootfs/etc/hostname`.
fn lxd_dir(s: &Server) -> PathBuf {
    let dir = s.dir.path().join("lxd-image");
    std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    std::fs::write(
        dir.join("metadata.yaml"),
        "architecture: x86_64\ncreation_date: 1704067200\nproperties:\n  os: Alpine\n  release: \"3.19\"\n  variant: default\n",
    )
    .unwrap();
    std::fs::write(dir.join("rootfs/etc/hostname"), "lxd\n").unwrap();
    dir
}

fn run_ok(cmd: &mut std::process::Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

#[test]
fn create_manifest_recognises_a_combined_lxd_image_and_publishes_it() {
    let s = spawn();
    let dir = lxd_dir(&s);
    let tarball = s.dir.path().join("lxd_combined.tar.gz");
    assert!(run_ok(
        std::process::Command::new("tar")
            .arg("-czf")
            .arg(&tarball)
            .arg("-C")
            .arg(&dir)
            .args(["metadata.yaml", "rootfs"])
    ));
    let (mpath, m) = create_manifest(
        &s,
        "lxd.json",
        &[
            "-f",
            p(&tarball),
            "--name",
            "my-lxd",
            "--version",
            "1.0",
            "--public",
        ],
    );
    let bytes = std::fs::read(&tarball).unwrap();
    let fingerprint = sha256_hex(&bytes);
    assert_eq!(m["type"], "lxd");
    assert_eq!(m["os"], "linux");
    assert_eq!(m["requirements"], json!({"brand": "lx"}));
    assert_eq!(m["tags"]["lxd:fingerprint"], fingerprint);
    assert_eq!(m["tags"]["lxd:sha256"], fingerprint);
    assert_eq!(m["tags"]["lxd:ftype"], "lxd_combined.tar.gz");
    // What metadata.yaml says names the image in a simplestreams listing.
    assert_eq!(m["tags"]["lxd:os"], "Alpine");
    assert_eq!(m["tags"]["lxd:release"], "3.19");
    assert_eq!(m["tags"]["lxd:arch"], "amd64");
    assert_eq!(m["tags"]["lxd:variant"], "default");
    assert_eq!(m["files"][0]["compression"], "gzip");

    // One command publishes it.
    let v = s.ok_json(&["-j", "create", "-m", p(&mpath), "-f", p(&tarball)]);
    assert_eq!(v["state"], "active");
    assert_eq!(v["type"], "lxd");
    assert_eq!(v["tags"]["lxd:fingerprint"], fingerprint);

    // A gzip'd tar without metadata.yaml stays `other`.
    let plain = s.dir.path().join("plain.tar.gz");
    assert!(run_ok(
        std::process::Command::new("tar")
            .arg("-czf")
            .arg(&plain)
            .arg("-C")
            .arg(&dir)
            .arg("rootfs")
    ));
    let (_, m) = create_manifest(
        &s,
        "plain.json",
        &["-f", p(&plain), "--name", "p", "--version", "1", "--public"],
    );
    assert_eq!(m["type"], "other");
    assert!(m.get("tags").is_none());
}

#[test]
fn create_manifest_of_a_split_lxd_image_lists_metadata_then_rootfs() {
    let s = spawn();
    if !run_ok(std::process::Command::new("mksquashfs").arg("-version")) {
        eprintln!("SKIP: mksquashfs not found (Debian package squashfs-tools)");
        return;
    }
    let dir = lxd_dir(&s);
    let meta = s.dir.path().join("lxd.tar.xz");
    assert!(run_ok(
        std::process::Command::new("tar")
            .arg("-cJf")
            .arg(&meta)
            .arg("-C")
            .arg(&dir)
            .arg("metadata.yaml")
    ));
    let rootfs = s.dir.path().join("root.squashfs");
    assert!(run_ok(
        std::process::Command::new("mksquashfs")
            .arg(dir.join("rootfs"))
            .arg(&rootfs)
            .args(["-noappend", "-quiet", "-all-root", "-no-progress"])
    ));
    let (_, m) = create_manifest(
        &s,
        "split.json",
        &[
            "-f",
            p(&rootfs),
            "--lxd-metadata",
            p(&meta),
            "--name",
            "split",
            "--version",
            "1",
            "--public",
        ],
    );
    let meta_bytes = std::fs::read(&meta).unwrap();
    let rootfs_bytes = std::fs::read(&rootfs).unwrap();
    let mut both = meta_bytes.clone();
    both.extend_from_slice(&rootfs_bytes);
    assert_eq!(m["type"], "lxd");
    assert_eq!(m["tags"]["lxd:fingerprint"], sha256_hex(&both));
    assert_eq!(m["tags"]["lxd:sha256"], sha256_hex(&meta_bytes));
    assert_eq!(m["tags"]["lxd:ftype"], "squashfs");
    assert_eq!(m["files"][0]["sha1"], sha1_hex(&meta_bytes).as_str());
    assert_eq!(m["files"][0]["compression"], "xz");
    assert_eq!(m["files"][1]["sha1"], sha1_hex(&rootfs_bytes).as_str());
    assert_eq!(m["files"][1]["compression"], "none");

    // --lxd-metadata with another type is a usage error.
    let a = s
        .cmd()
        .args([
            "create-manifest",
            "-f",
            p(&rootfs),
            "--lxd-metadata",
            p(&meta),
            "--name",
            "x",
            "--version",
            "1",
            "--type",
            "other",
        ])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("--lxd-metadata is only for --type lxd"));
}

#[test]
fn create_manifest_zvol_without_qemu_img_is_a_usage_error() {
    let s = spawn();
    let f = s.write("plain.img", &[0u8; 4096]);
    let a = s
        .cmd()
        .env("PATH", s.dir.path().join("empty-path"))
        .args([
            "create-manifest",
            "-f",
            p(&f),
            "--name",
            "n",
            "--version",
            "1",
            "--type",
            "zvol",
        ])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(
        err.contains("qemu-img") && err.contains("--image-size"),
        "{err}"
    );
}

/// A gzip tarball made with `tar -czf` (None when tar is missing).
fn tarball(s: &Server) -> Option<PathBuf> {
    let src = s.dir.path().join("root");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/motd"), "hello\n".repeat(1000)).unwrap();
    let out = s.dir.path().join("root.tgz");
    let ok = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .is_ok_and(|st| st.success());
    ok.then_some(out)
}

#[test]
fn create_manifest_gzip_tarball_then_publish() {
    let s = spawn();
    let Some(tgz) = tarball(&s) else {
        eprintln!("SKIP: tar not installed");
        return;
    };
    let (mpath, m) = create_manifest(
        &s,
        "tb.json",
        &[
            "-f",
            p(&tgz),
            "--name",
            "tarball",
            "--version",
            "2.0",
            "--type",
            "lx-dataset",
            "--os",
            "linux",
            "--description",
            "a tarball",
            "--owner",
            OWNER,
            "--public",
        ],
    );
    assert_eq!(m["files"][0]["compression"], "gzip");
    assert_eq!(m["owner"], OWNER);
    assert_eq!(m["description"], "a tarball");
    assert!(m.get("image_size").is_none());
    let bytes = std::fs::read(&tgz).unwrap();
    assert_eq!(m["files"][0]["sha1"], sha1_hex(&bytes).as_str());

    // Without stdout redirection the manifest is printed.
    let printed = s.ok_json(&[
        "create-manifest",
        "-f",
        p(&tgz),
        "--name",
        "tarball",
        "--version",
        "2.0",
    ]);
    assert_eq!(printed["files"][0]["compression"], "gzip");
    assert!(printed.get("uuid").is_none());
    // --uuid: a fresh one, or the one given (for admin-import).
    let base = [
        "create-manifest",
        "-f",
        p(&tgz),
        "--name",
        "t",
        "--version",
        "2",
    ];
    let fresh = s.ok_json(&[&base[..], &["--uuid"]].concat());
    uuid::Uuid::parse_str(fresh["uuid"].as_str().unwrap()).unwrap();
    let given = s.ok_json(&[&base[..], &["--uuid", OWNER]].concat());
    assert_eq!(given["uuid"], OWNER);

    // `create` takes the compression from the manifest (no -c).
    let a = s
        .cmd()
        .args(["create", "-m", p(&mpath), "-f", p(&tgz)])
        .assert()
        .success();
    let out = String::from_utf8(a.get_output().stdout.clone()).unwrap();
    assert!(out.contains("Activated image"), "{out}");
    assert!(!stderr_of(&a).contains("not used"), "{}", stderr_of(&a));
    let v = &s.ok_json(&["list", "-j", "--name", "tarball"])[0];
    assert_eq!(v["state"], "active");
    assert_eq!(v["files"][0]["compression"], "gzip");
    assert_eq!(v["files"][0]["sha1"], m["files"][0]["sha1"]);
    assert_eq!(v["description"], "a tarball");

    // A compressed zvol cannot be measured.
    let a = s
        .cmd()
        .args([
            "create-manifest",
            "-f",
            p(&tgz),
            "--name",
            "z",
            "--version",
            "1",
            "--type",
            "zvol",
        ])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("--image-size"), "{}", stderr_of(&a));
}

#[test]
fn create_manifest_rejects_invalid_input() {
    let s = spawn();
    let f = s.write("data.bin", b"some bytes");
    let base = ["create-manifest", "-f", p(&f), "--version", "1"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        stderr_of(&s.cmd().args(&args).assert().code(2))
    };
    let err = run(&["--name", "no good!"]);
    assert!(err.contains("invalid manifest: name:"), "{err}");
    let err = run(&["--name", "n", "--image-size", "5"]);
    assert!(err.contains("only for --type zvol"), "{err}");
    run(&["--name", "n", "--type", "bogus"]);
    let empty = s.write("empty.bin", b"");
    s.cmd()
        .args(["create-manifest", "-f", p(&empty), "--name", "n"])
        .args(["--version", "1"])
        .assert()
        .code(2);
}

#[test]
fn create_checks_the_file_against_the_manifest_first() {
    let s = spawn();
    let f = s.write("real.bin", b"the real bytes");
    let (mpath, _) = create_manifest(
        &s,
        "real.json",
        &["-f", p(&f), "--name", "real", "--version", "1", "--public"],
    );
    let other = s.write("other.bin", b"other bytes");
    let a = s
        .cmd()
        .args(["create", "-m", p(&mpath), "-f", p(&other)])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("files[0].size"), "{}", stderr_of(&a));
    let a = s
        .cmd()
        .args(["create", "-m", p(&mpath), "-f", p(&f), "-c", "gzip"])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("contradicts"), "{}", stderr_of(&a));
    // Same size, other bytes: refused by their sha1, before creating.
    let same_size = s.write("same.bin", b"the fake bytes");
    let a = s
        .cmd()
        .args(["create", "-m", p(&mpath), "-f", p(&same_size)])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(err.contains("files[0].sha1"), "{err}");
    assert_eq!(
        s.ok_json(&["list", "-j", "--name", "real", "state=all"]),
        json!([]),
        "no image was created"
    );
}

#[test]
fn admin_import_keeps_uuid_uploads_and_activates() {
    let s = spawn();
    let data = vec![42u8; 70_000];
    let f = s.write("imp.bin", &data);
    let (mpath, m) = create_manifest(
        &s,
        "imp.json",
        &[
            "--uuid",
            "-f",
            p(&f),
            "--name",
            "imported",
            "--version",
            "3.0",
            "--owner",
            OWNER,
            "--public",
        ],
    );
    let uuid = m["uuid"].as_str().unwrap();
    let out = s.ok(&["admin-import", "-m", p(&mpath), "-f", p(&f)]);
    assert!(
        out.contains("Imported image") && out.contains("Added file") && out.contains("Activated"),
        "{out}"
    );
    assert!(out.contains(uuid), "{out}");
    let v = s.ok_json(&["get", uuid]);
    assert_eq!(v["state"], "active");
    assert_eq!(v["files"][0]["sha1"], sha1_hex(&data).as_str());
    assert_eq!(v["files"][0]["size"], data.len());

    // Importing the same uuid again: the server's 409.
    let a = s
        .cmd()
        .args(["admin-import", "-m", p(&mpath)])
        .assert()
        .code(1);
    assert!(
        stderr_of(&a).contains("(ImageUuidAlreadyExists)"),
        "{}",
        stderr_of(&a)
    );

    // Without -f: imported, unactivated; a failing upload names the step.
    let (mpath, m) = create_manifest(
        &s,
        "imp2.json",
        &[
            "--uuid",
            "-f",
            p(&f),
            "--name",
            "imported2",
            "--version",
            "1",
            "--public",
        ],
    );
    let v = s.ok_json(&["-j", "admin-import", "-m", p(&mpath)]);
    assert_eq!(v["uuid"], m["uuid"]);
    assert_eq!(v["state"], "unactivated");

    let (mpath, m) = create_manifest(
        &s,
        "imp3.json",
        &[
            "--uuid",
            "-f",
            p(&f),
            "--name",
            "imported3",
            "--version",
            "1",
            "--public",
        ],
    );
    std::fs::remove_file(&f).unwrap();
    let a = s
        .cmd()
        .args(["admin-import", "-m", p(&mpath), "-f", p(&f)])
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(err.contains("cannot read"), "{err}");
    let uuid = m["uuid"].as_str().unwrap();
    s.cmd().args(["get", uuid]).assert().code(3);

    // A manifest without uuid is a usage error.
    let bare = s.manifest("no-uuid");
    s.cmd()
        .args(["admin-import", "-m", p(&bare)])
        .assert()
        .code(2);
}

// ---- profile

#[test]
fn profile_fills_what_flags_and_env_leave_unset() {
    let s = spawn();
    let dir = s.dir.path().join("profile-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let dead = {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    };
    let write_profile = |url: &str| {
        std::fs::write(dir.join("profile.json"), json!({ "url": url }).to_string()).unwrap();
    };
    let imgadm = || {
        let mut c = Command::cargo_bin("imgadm").unwrap();
        c.env_remove("IMGAPI_URL")
            .env_remove("IMGAPI_CHANNEL")
            .env("IMGADM_CONFIG_DIR", &dir);
        c
    };
    // profile only
    write_profile(&s.url);
    imgadm().arg("ping").assert().success();
    // env beats profile
    write_profile(&dead);
    imgadm()
        .env("IMGAPI_URL", &s.url)
        .arg("ping")
        .assert()
        .success();
    imgadm().arg("ping").assert().code(1);
    // flag beats env
    imgadm()
        .env("IMGAPI_URL", &dead)
        .args(["-u", &s.url, "ping"])
        .assert()
        .success();
    // --config-dir beats IMGADM_CONFIG_DIR
    let other = s.dir.path().join("other-dir");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("profile.json"),
        json!({ "url": s.url }).to_string(),
    )
    .unwrap();
    imgadm()
        .args(["--config-dir", p(&other), "ping"])
        .assert()
        .success();
    // A broken profile is a usage error naming the file.
    std::fs::write(dir.join("profile.json"), r#"{"uri": "typo"}"#).unwrap();
    let a = imgadm().arg("ping").assert().code(2);
    let err = stderr_of(&a);
    assert!(err.contains("profile.json") && err.contains("uri"), "{err}");
    // ... but does not break the verbs that read no configuration.
    imgadm().arg("man").assert().success();
}

// ---- completions and man page

#[test]
fn completions_for_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let a = Command::cargo_bin("imgadm")
            .unwrap()
            .env_remove("IMGAPI_URL")
            .args(["completions", shell])
            .assert()
            .success();
        let script = String::from_utf8(a.get_output().stdout.clone()).unwrap();
        assert!(script.len() > 500, "{shell}: {script}");
        assert!(script.contains("create-manifest"), "{shell}");
        assert!(script.contains("admin-import"), "{shell}");
    }
    Command::cargo_bin("imgadm")
        .unwrap()
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
}

#[test]
fn man_page_is_checked_in_and_current() {
    let a = Command::cargo_bin("imgadm")
        .unwrap()
        .env_remove("IMGAPI_URL")
        .arg("man")
        .assert()
        .success();
    let page = String::from_utf8(a.get_output().stdout.clone()).unwrap();
    assert!(page.contains("\n.TH imgadm 1 "), "{}", &page[..200]);
    for verb in ["create-manifest", "admin-import", "channel-add", "get-icon"] {
        assert!(page.contains(&format!("imgadm {verb}")), "{verb}");
    }
    let checked_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man/imgadm.1");
    let file = std::fs::read_to_string(&checked_in).unwrap_or_default();
    assert!(
        file == page,
        "docs/man/imgadm.1 is stale (or missing): regenerate it with \
         `cargo run -p imgadm -- man > docs/man/imgadm.1` and commit it"
    );
}

// ---- rough edges (issue 15) ----

/// Run imgadm with `args` and its stdout a pipe whose reader is already
/// closed (`imgadm … | true`); return (exit code, stderr).
fn run_into_closed_pipe(s: &Server, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("imgadm"));
    cmd.env("IMGAPI_URL", &s.url)
        .env("IMGADM_CONFIG_DIR", s.dir.path().join("config"))
        .env_remove("IMGAPI_CHANNEL")
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn closed_stdout_ends_quietly_with_exit_0() {
    let s = spawn();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let uuid = s.create_active("piped", &data);
    for i in 0..3 {
        s.create_bare(&format!("more-{i}"));
    }
    for args in [
        vec!["list", "-j"],
        vec!["list"],
        vec!["get", uuid.as_str()],
        vec!["man"],
    ] {
        let (code, err) = run_into_closed_pipe(&s, &args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }
}

#[test]
fn validation_errors_print_each_field_error_under_the_error_line() {
    let s = spawn();
    let m = json!({
        "name": "private", "version": "1.0.0", "type": "other", "os": "other",
        "owner": OWNER, "public": false
    });
    let path = s.write("private.json", m.to_string().as_bytes());
    let a = s.cmd().args(["create", "-m", p(&path)]).assert().code(1);
    let err = stderr_of(&a);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("imgadm: error (ValidationFailed): "),
        "{err}"
    );
    assert!(
        lines.contains(&"    public: private images are not allowed on a public Images API"),
        "{err}"
    );
}

#[test]
fn show_and_info_are_aliases_of_get() {
    let s = spawn();
    let uuid = s.create_bare("alias");
    let got = s.ok(&["get", &uuid]);
    assert_eq!(s.ok(&["show", &uuid]), got);
    assert_eq!(s.ok(&["info", &uuid]), got);
}

#[test]
fn get_file_without_o_writes_the_file_to_stdout_and_o_names_it_by_uuid() {
    let s = spawn();
    let data: Vec<u8> = (0..500_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let uuid = s.create_active("to-stdout", &data);
    let a = s.cmd().args(["get-file", &uuid]).assert().success();
    assert!(
        a.get_output().stdout == data,
        "stdout is the file, byte for byte"
    );
    assert_eq!(stderr_of(&a), "", "no progress bar without a terminal");
    let (code, err) = run_into_closed_pipe(&s, &["get-file", &uuid]);
    assert_eq!((code, err.as_str()), (Some(0), ""));

    // -O: `UUID-file` plus the compression's extension, in the current dir.
    let m = s.manifest("gz");
    let f = s.write("gz.bin", b"pretend gzip");
    let gz = s.ok_json(&["-j", "create", "-m", p(&m), "-f", p(&f), "-c", "gzip"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let cwd = tempfile::tempdir().unwrap();
    s.cmd()
        .current_dir(cwd.path())
        .args(["get-file", &gz, "-O"])
        .assert()
        .success();
    let saved = cwd.path().join(format!("{gz}-file.gz"));
    assert_eq!(std::fs::read(saved).unwrap(), b"pretend gzip");
    s.cmd()
        .current_dir(cwd.path())
        .args(["get-file", &uuid, "-O"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(cwd.path().join(format!("{uuid}-file"))).unwrap(),
        data
    );
    s.cmd()
        .args(["get-file", &uuid, "-O", "-o", "x"])
        .assert()
        .code(2);
}

#[test]
fn manifests_and_update_fields_from_stdin_or_a_file() {
    let s = spawn();
    let m = json!({
        "name": "from-stdin", "version": "1.0.0", "type": "other", "os": "other",
        "owner": OWNER, "public": true
    });
    let a = s
        .cmd()
        .args(["-j", "create", "-m", "-"])
        .write_stdin(m.to_string())
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(v["name"], "from-stdin");
    let uuid = v["uuid"].as_str().unwrap().to_string();

    let imported = "1d8751cb-47dd-43f5-8e26-74c31d87490b";
    let mut m2 = m.clone();
    m2["uuid"] = json!(imported);
    m2["v"] = json!(2);
    m2["name"] = json!("imported-from-stdin");
    s.cmd()
        .args(["admin-import", "-m", "-"])
        .write_stdin(m2.to_string())
        .assert()
        .success();
    assert_eq!(s.ok_json(&["get", imported])["name"], "imported-from-stdin");

    // update -f FILE, FIELD=VALUE applied over it; -f - reads stdin.
    let fields = s.write(
        "fields.json",
        br#"{"description": "from the file", "tags": {"role": "db"}}"#,
    );
    s.ok(&[
        "update",
        &uuid,
        "-f",
        p(&fields),
        "description=from the pair",
    ]);
    let v = s.ok_json(&["get", &uuid]);
    assert_eq!(v["description"], "from the pair");
    assert_eq!(v["tags"]["role"], "db");
    s.cmd()
        .args(["update", &uuid, "-f", "-"])
        .write_stdin(r#"{"homepage": "https://example.org"}"#)
        .assert()
        .success();
    assert_eq!(
        s.ok_json(&["get", &uuid])["homepage"],
        "https://example.org"
    );
    s.cmd()
        .args(["update", &uuid, "-f", "-"])
        .write_stdin("[1]")
        .assert()
        .code(2);
    s.cmd().args(["update", &uuid]).assert().code(2);
}

#[test]
fn usage_errors_do_not_list_settings_the_environment_supplies() {
    let s = spawn();
    let a = s
        .cmd()
        .env("IMGAPI_USER", "alice")
        .env("IMGAPI_CHANNEL", "staging")
        .arg("create")
        .assert()
        .code(2);
    let err = stderr_of(&a);
    assert!(err.contains("--manifest <MANIFEST>"), "{err}");
    let usage = err.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert_eq!(usage, "Usage: imgadm create --manifest <MANIFEST>", "{err}");
    // An error about an environment value itself still names it.
    let a = s
        .cmd()
        .env("IMGADM_RESUME_THRESHOLD", "lots")
        .args(["add-file", OWNER, "-f", "x", "-c", "none"])
        .assert()
        .code(2);
    assert!(stderr_of(&a).contains("'lots'"), "{}", stderr_of(&a));
    // --url missing everywhere: the error says where it may come from.
    let a = Command::cargo_bin("imgadm")
        .unwrap()
        .env_remove("IMGAPI_URL")
        .env("IMGADM_CONFIG_DIR", s.dir.path().join("no-config"))
        .arg("ping")
        .assert()
        .code(2);
    assert!(
        stderr_of(&a).contains("or IMGAPI_URL, or \"url\" in"),
        "{}",
        stderr_of(&a)
    );
}
