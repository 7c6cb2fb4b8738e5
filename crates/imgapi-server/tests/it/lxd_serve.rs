//! Serving simplestreams (`[simplestreams] enabled`, docs/lxd.md) to the
//! real clients: the `lxc` CLI (Debian `lxd-client`, no daemon) over the
//! server's TLS listener, and python-simplestreams' `sstream-query` and
//! `sstream-mirror` over http. LXD images are published through the API as
//! a user would.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::*;

/// dc mode: public and private images side by side.
const DC: &str = "mode = \"dc\"\nadmin_uuid = \"930896af-bf8c-48d4-885c-6573a94b1853\"";
const ENABLED: &str = "[simplestreams]\nenabled = true\n";

/// A real combined LXD image (metadata.yaml + rootfs/ in a tar.gz) and
/// its LXD fingerprint, the sha256 of the tarball.
pub(crate) fn combined_tarball(dir: &Path, os: &str, release: &str) -> (Vec<u8>, String) {
    let src = dir.join(format!("src-{os}-{release}"));
    std::fs::create_dir_all(src.join("rootfs/etc")).unwrap();
    std::fs::write(
        src.join("metadata.yaml"),
        format!(
            "architecture: x86_64\ncreation_date: 1765000000\nproperties:\n  os: {os}\n  release: \"{release}\"\n  description: {os} {release}\n"
        ),
    )
    .unwrap();
    std::fs::write(src.join("rootfs/etc/hostname"), format!("{os}\n")).unwrap();
    let out = dir.join(format!("{os}-{release}.tar.gz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .args(["metadata.yaml", "rootfs"])
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let fingerprint = hex::encode(Sha256::digest(&bytes));
    (bytes, fingerprint)
}

/// Create, upload and activate an `lxd` image with these bytes.
pub(crate) async fn publish_lxd(s: &TestServer, extra: Value, bytes: Vec<u8>) -> String {
    let mut body = json!({"type": "lxd", "os": "linux", "requirements": {"brand": "lx"}});
    merge(&mut body, extra);
    let img = s.create(body).await;
    let uuid = uuid_of(&img);
    let (status, answer) = s.upload(&uuid, bytes).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = s.activate(&uuid).await;
    assert_eq!(status, 200, "{answer}");
    uuid
}

pub(crate) fn lxd_tags(os: &str, release: &str, aliases: &str) -> Value {
    json!({"lxd:os": os, "lxd:release": release, "lxd:arch": "amd64", "lxd:aliases": aliases})
}

/// A server on https with a certificate for 127.0.0.1, simplestreams
/// enabled and `extra` configuration after it, and a client that trusts it;
/// the certificate's path for `SSL_CERT_FILE`.
pub(crate) async fn tls_server(dir: &Path, extra: &str) -> (TestServer, PathBuf) {
    let tls = SelfSigned::write(dir, &["127.0.0.1", "localhost"]);
    let mut s = TestServer::spawn_with(&format!("{DC}\n{}{ENABLED}{extra}", tls.config)).await;
    s.client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config())
        .build()
        .unwrap();
    s.url = s.url.replace("http://", "https://");
    (s, tls.cert_path)
}

/// `lxc` with its configuration and home in `dir`, trusting `cert`.
pub(crate) struct Lxc {
    bin: PathBuf,
    dir: PathBuf,
    cert: PathBuf,
}

impl Lxc {
    /// An `lxc` whose remote `t` is the simplestreams tree at `url`.
    pub(crate) fn with_remote(bin: PathBuf, dir: PathBuf, cert: PathBuf, url: &str) -> Lxc {
        std::fs::create_dir_all(dir.join("home")).unwrap();
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        let lxc = Lxc { bin, dir, cert };
        lxc.run(&[
            "remote",
            "add",
            "t",
            url,
            "--protocol=simplestreams",
            "--public",
        ]);
        lxc
    }

    pub(crate) fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .env("LXD_CONF", self.dir.join("conf"))
            .env("HOME", self.dir.join("home"))
            .env("SSL_CERT_FILE", &self.cert)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lxc {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn list(&self) -> Vec<Value> {
        serde_json::from_str(&self.run(&["image", "list", "t:", "--format", "json"])).unwrap()
    }

    /// The files `lxc image export t:{alias} out` writes (lxc checks each
    /// item's sha256 and the fingerprint), their bytes sorted.
    pub(crate) fn export(&self, alias: &str, out: &Path) -> Vec<Vec<u8>> {
        std::fs::create_dir_all(out).unwrap();
        self.run(&[
            "image",
            "export",
            &format!("t:{alias}"),
            out.to_str().unwrap(),
        ]);
        let mut files: Vec<Vec<u8>> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        files.sort();
        files
    }
}

pub(crate) fn fingerprints(images: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = images
        .iter()
        .map(|i| i["fingerprint"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

// Multi-threaded: the clients run as blocking child processes while the
// server answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lxc_lists_shows_and_exports_the_public_lxd_images() {
    let Some(bin) = which("lxc") else {
        eprintln!("SKIP: lxc not installed (Debian lxd-client)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (s, cert) = tls_server(dir.path(), "").await;
    let (bytes, fingerprint) = combined_tarball(dir.path(), "mylinux", "1.0");
    let uuid = publish_lxd(
        &s,
        json!({"name": "mylinux", "version": "1.0", "tags": lxd_tags("MyLinux", "1.0", "mylinux/1.0,mylinux")}),
        bytes.clone(),
    )
    .await;
    // Never listed: a private lxd image, a disabled one, a non-lxd image.
    let (private_bytes, private_fp) = combined_tarball(dir.path(), "secret", "1.0");
    let private = publish_lxd(
        &s,
        json!({"name": "secret", "version": "1.0", "public": false, "tags": lxd_tags("Secret", "1.0", "secret")}),
        private_bytes,
    )
    .await;
    let (disabled_bytes, disabled_fp) = combined_tarball(dir.path(), "gone", "1.0");
    let disabled = publish_lxd(
        &s,
        json!({"name": "gone", "version": "1.0", "tags": lxd_tags("Gone", "1.0", "gone")}),
        disabled_bytes,
    )
    .await;
    let (st, _) = s
        .post_json(&format!("/images/{disabled}?action=disable"), &json!({}))
        .await;
    assert_eq!(st, 200);
    let zone = s.publish(json!({"name": "zone"})).await;

    let lxc = Lxc::with_remote(bin, dir.path().join("lxc"), cert, &s.url);

    let listed = lxc.list();
    assert_eq!(
        fingerprints(&listed),
        vec![fingerprint.clone()],
        "{listed:?}"
    );
    let aliases: Vec<&str> = listed[0]["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(aliases.contains(&"mylinux"), "{aliases:?}");
    assert_eq!(listed[0]["size"], json!(bytes.len()));
    assert_eq!(listed[0]["properties"]["os"], "MyLinux");

    let info = lxc.run(&["image", "info", "t:mylinux"]);
    assert!(
        info.contains(&format!("Fingerprint: {fingerprint}")),
        "{info}"
    );

    // lxc checks the item's sha256 and the fingerprint while exporting.
    assert_eq!(
        lxc.export("mylinux", &dir.path().join("export")),
        vec![bytes.clone()]
    );

    // The hidden images are nowhere: not in the products file, and their
    // item paths answer 404.
    let products = s.get("/streams/v1/images.json").send().await.unwrap();
    let products = products.text().await.unwrap();
    for hidden in [&private, &disabled, &uuid_of(&zone)] {
        assert!(!products.contains(hidden.as_str()), "{products}");
        let path = format!("/streams/v1/files/{hidden}/lxd_combined.tar.gz");
        assert_eq!(s.get(&path).send().await.unwrap().status(), 404, "{path}");
    }
    assert!(!products.contains(&private_fp) && !products.contains(&disabled_fp));

    // Item paths take ranges (GetImageFile's download path).
    let item = format!("/streams/v1/files/{uuid}/lxd_combined.tar.gz");
    let part = s
        .get(&item)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[..10]);

    // A newly activated image shows at once: the cached documents are
    // dropped on every write.
    let (st, index_before) = s.get_json("/streams/v1/index.json").await;
    assert_eq!(st, 200);
    assert_eq!(
        index_before["index"]["images"]["products"],
        json!(["MyLinux:1.0:amd64:default"])
    );
    let (bytes2, fingerprint2) = combined_tarball(dir.path(), "mylinux", "2.0");
    publish_lxd(
        &s,
        json!({"name": "mylinux", "version": "2.0", "tags": lxd_tags("MyLinux", "2.0", "mylinux/2.0")}),
        bytes2,
    )
    .await;
    let (_, index_after) = s.get_json("/streams/v1/index.json").await;
    assert_eq!(
        index_after["index"]["images"]["products"],
        json!(["MyLinux:1.0:amd64:default", "MyLinux:2.0:amd64:default"])
    );
    let mut both = vec![fingerprint, fingerprint2.clone()];
    both.sort();
    assert_eq!(fingerprints(&lxc.list()), both);

    // And a disabled one is gone at once.
    let (st, _) = s
        .post_json(&format!("/images/{uuid}?action=disable"), &json!({}))
        .await;
    assert_eq!(st, 200);
    let (_, index_disabled) = s.get_json("/streams/v1/index.json").await;
    assert_eq!(
        index_disabled["index"]["images"]["products"],
        json!(["MyLinux:2.0:amd64:default"])
    );
    assert_eq!(fingerprints(&lxc.list()), vec![fingerprint2]);
}

/// `tar` of `entries` under `src`, compressed with `flag` (`-J`: xz).
fn tar_of(src: &Path, entries: &[&str], flag: &str, out: &Path) -> Vec<u8> {
    let status = Command::new("tar")
        .arg(flag)
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(src)
        .args(entries)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// Give an activated image a second file, as AdminImportLxdImage stores a
/// split image (the API itself adds one file per image): the bytes go into
/// the blob store and `files[1]` into the record, beside the running server.
async fn add_second_file(s: &TestServer, uuid: &str, bytes: Vec<u8>) {
    let stores = imgapi_server::check::Stores::open(
        &imgapi_server::Config::from_toml(&s.config_toml).unwrap(),
    )
    .await
    .unwrap();
    let uuid: uuid::Uuid = uuid.parse().unwrap();
    let key = imgapi_server::service::files::new_blob_key(uuid, "file1");
    let body: imgapi_blob::ByteStream =
        Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(bytes))]));
    let put = stores.blobs[0]
        .put_stream(&key, body, u64::MAX)
        .await
        .unwrap();
    let mut image = stores.meta.get(uuid).await.unwrap().unwrap().image;
    let mut file = image.files[0].clone();
    file.sha1 = put.sha1;
    file.size = put.size;
    file.content_md5 = put.md5_base64;
    file.sha256 = Some(put.sha256);
    file.compression = "none".into();
    file.blob_key = Some(key);
    image.files.push(file);
    stores.meta.put(&image).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lxc_exports_split_images_checking_their_fingerprints() {
    let Some(bin) = which("lxc") else {
        eprintln!("SKIP: lxc not installed (Debian lxd-client)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (s, cert) = tls_server(dir.path(), "").await;
    let src = dir.path().join("split");
    std::fs::create_dir_all(src.join("rootfs/etc")).unwrap();
    std::fs::write(
        src.join("metadata.yaml"),
        "architecture: x86_64\ncreation_date: 1765000000\nproperties:\n  os: split\n",
    )
    .unwrap();
    std::fs::write(src.join("rootfs/etc/hostname"), "split\n").unwrap();
    let meta = tar_of(
        &src,
        &["metadata.yaml"],
        "-J",
        &dir.path().join("lxd.tar.xz"),
    );
    let root_xz = tar_of(
        &src.join("rootfs"),
        &["."],
        "-J",
        &dir.path().join("root.tar.xz"),
    );
    // lxc does not look inside a squashfs it exports: any bytes stand in.
    let root_squashfs = b"hsqs stand-in for a squashfs rootfs".to_vec();
    let lxc = Lxc::with_remote(bin, dir.path().join("lxc"), cert, &s.url);

    for (release, ftype, root) in [
        ("1", "squashfs", root_squashfs),
        ("2", "root.tar.xz", root_xz),
    ] {
        let fingerprint = hex::encode(Sha256::digest([meta.as_slice(), root.as_slice()].concat()));
        let alias = format!("split{release}");
        let mut tags = lxd_tags("Split", release, &alias);
        merge(
            &mut tags,
            json!({"lxd:ftype": ftype, "lxd:fingerprint": fingerprint}),
        );
        let uuid = publish_lxd(
            &s,
            json!({"name": alias, "version": "1.0", "tags": tags}),
            meta.clone(),
        )
        .await;
        // One file only: not described yet, so not listed.
        assert!(!fingerprints(&lxc.list()).contains(&fingerprint));
        add_second_file(&s, &uuid, root.clone()).await;
        assert!(fingerprints(&lxc.list()).contains(&fingerprint), "{ftype}");

        let exported = lxc.export(&alias, &dir.path().join(format!("export-{release}")));
        let mut expected = vec![meta.clone(), root.clone()];
        expected.sort();
        assert_eq!(exported, expected, "{ftype}");
    }
}

/// python-simplestreams, from the venv .ci/run installs (or `PATH`).
pub(crate) fn sstream_query() -> Option<PathBuf> {
    which("sstream-query").or_else(|| {
        let home = std::env::var_os("HOME")?;
        let venv = Path::new(&home).join(".cache/imgapi-simplestreams/venv/bin/sstream-query");
        venv.is_file().then_some(venv)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sstream_query_and_mirror_read_the_served_tree_over_http() {
    let Some(bin) = sstream_query() else {
        eprintln!("SKIP: sstream-query not installed (PyPI python-simplestreams)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(ENABLED).await;
    let (bytes, fingerprint) = combined_tarball(dir.path(), "mylinux", "1.0");
    let uuid = publish_lxd(
        &s,
        json!({"name": "mylinux", "version": "1.0", "tags": lxd_tags("MyLinux", "1.0", "mylinux")}),
        bytes.clone(),
    )
    .await;
    let out = Command::new(&bin)
        .args(["--no-verify", "--json"])
        .arg(format!("{}/streams/v1/index.json", s.url))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item["sha256"], fingerprint);
    assert_eq!(item["ftype"], "lxd_combined.tar.gz");
    assert_eq!(item["product_name"], "MyLinux:1.0:amd64:default");
    assert_eq!(item["aliases"], "mylinux");
    // sstream-query prints every field as a string.
    assert_eq!(item["size"], bytes.len().to_string());
    let path = format!("streams/v1/files/{uuid}/lxd_combined.tar.gz");
    assert_eq!(item["path"], path);
    // The item URL it gives serves the bytes.
    let got = s.get(&format!("/{path}")).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // sstream-mirror copies the tree: the documents and the item's bytes.
    let mirror = bin.with_file_name("sstream-mirror");
    let target = dir.path().join("mirror");
    let out = Command::new(&mirror)
        .args(["--no-verify", "--path", "streams/v1/index.json"])
        .arg(format!("{}/", s.url))
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(target.join(&path)).unwrap(), bytes);
    assert!(target.join("streams/v1/index.json").is_file());
}

#[tokio::test]
async fn off_by_default() {
    let s = TestServer::spawn().await;
    for path in [
        "/streams/v1/index.json",
        "/streams/v1/images.json",
        "/streams/v1/files/11111111-2222-3333-4444-555555555555/lxd_combined.tar.gz",
    ] {
        let (status, body) = s.get_json(path).await;
        assert_error(&(status, body), 404, "ResourceNotFound", None);
    }
}

#[tokio::test]
async fn an_empty_registry_serves_an_empty_tree() {
    let s = TestServer::spawn_with(ENABLED).await;
    s.publish(json!({"name": "zone"})).await;
    let (status, index) = s.get_json("/streams/v1/index.json").await;
    assert_eq!(status, 200);
    assert_eq!(index["format"], "index:1.0");
    assert_eq!(index["index"]["images"]["path"], "streams/v1/images.json");
    assert_eq!(index["index"]["images"]["products"], json!([]));
    let (status, products) = s.get_json("/streams/v1/images.json").await;
    assert_eq!(status, 200);
    assert_eq!(products["format"], "products:1.0");
    assert_eq!(products["datatype"], "image-downloads");
    assert_eq!(products["products"], json!({}));
}

#[tokio::test]
async fn with_channels_only_the_default_channel_is_served() {
    let s = TestServer::spawn_with(&format!(
        "[[channels]]\nname = \"stable\"\ndefault = true\n[[channels]]\nname = \"dev\"\n{ENABLED}"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut uuids = Vec::new();
    for channel in ["stable", "dev"] {
        let (bytes, _) = combined_tarball(dir.path(), channel, "1.0");
        let mut body = manifest();
        merge(
            &mut body,
            json!({"name": channel, "type": "lxd", "os": "linux", "tags": lxd_tags(channel, "1.0", channel)}),
        );
        let (st, img) = s
            .post_json(&format!("/images?channel={channel}"), &body)
            .await;
        assert_eq!(st, 200, "{img}");
        let uuid = uuid_of(&img);
        let resp = s
            .put(&format!(
                "/images/{uuid}/file?compression=gzip&channel={channel}"
            ))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let (st, img) = s
            .post_json(
                &format!("/images/{uuid}?action=activate&channel={channel}"),
                &json!({}),
            )
            .await;
        assert_eq!(st, 200, "{img}");
        uuids.push(uuid);
    }
    let (_, index) = s.get_json("/streams/v1/index.json").await;
    assert_eq!(
        index["index"]["images"]["products"],
        json!(["stable:1.0:amd64:default"])
    );
    let path = format!("/streams/v1/files/{}/lxd_combined.tar.gz", uuids[1]);
    assert_eq!(s.get(&path).send().await.unwrap().status(), 404);
    let path = format!("/streams/v1/files/{}/lxd_combined.tar.gz", uuids[0]);
    assert_eq!(s.get(&path).send().await.unwrap().status(), 200);
}
