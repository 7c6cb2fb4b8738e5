//! ExportImage (api.md §5.23) to a local directory or an S3 bucket
//! (`[export]`): both path forms, byte-identical verified files, the
//! manifest as GetImage shows it, and every step of the validation order.

use std::path::Path;

use crate::support::*;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const BYTES: &[u8] = b"image bytes";

fn export_toml(dir: &Path) -> String {
    format!(
        "[export]\nkind = \"local\"\ndir = {:?}\n",
        dir.display().to_string()
    )
}

async fn export(s: &TestServer, uuid: &str, query: &str) -> (u16, Value) {
    s.post_json(&format!("/images/{uuid}?action=export{query}"), &json!({}))
        .await
}

/// The exported pair is the image's file and its manifest as GetImage shows it.
async fn check_exported(s: &TestServer, root: &Path, uuid: &str, got: &Value) {
    let rel = |key: &str| {
        got[key]
            .as_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    };
    let file = std::fs::read(root.join(rel("image_path"))).unwrap();
    assert_eq!(file, BYTES);
    let text = std::fs::read_to_string(root.join(rel("manifest_path"))).unwrap();
    assert!(
        text.starts_with("{\n    \"v\": 2,\n    \"uuid\""),
        "4-space JSON: {text}"
    );
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(manifest, img);
    assert_eq!(
        manifest["files"][0]["sha1"],
        hex::encode(Sha1::digest(&file))
    );
    assert_eq!(manifest["files"][0]["size"], file.len());
}

#[tokio::test]
async fn export_to_a_local_prefix_and_an_existing_directory() {
    let root = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(&export_toml(root.path())).await;
    let uuid = uuid_of(
        &s.publish(json!({"name": "smartos", "version": "1.6.2"}))
            .await,
    );
    let manta_url = format!(
        "file://{}",
        std::path::absolute(root.path()).unwrap().display()
    );

    // Prefix form: <path>.imgmanifest and <path>.zfs.gz (gzip).
    let (status, got) = export(&s, &uuid, "&manta_path=/alice/stor/imgapi/smartos").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({"manta_url": manta_url,
               "image_path": "/alice/stor/imgapi/smartos.zfs.gz",
               "manifest_path": "/alice/stor/imgapi/smartos.imgmanifest"})
    );
    check_exported(&s, root.path(), &uuid, &got).await;

    // Existing-directory form: <path>/<name>-<version>.*; the path is
    // normalised first.
    std::fs::create_dir_all(root.path().join("alice/stor/dir")).unwrap();
    let (status, got) = export(&s, &uuid, "&manta_path=/alice/./stor/x/../dir").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["image_path"], "/alice/stor/dir/smartos-1.6.2.zfs.gz");
    assert_eq!(
        got["manifest_path"],
        "/alice/stor/dir/smartos-1.6.2.imgmanifest"
    );
    check_exported(&s, root.path(), &uuid, &got).await;

    // A trailing slash names a directory, created when missing.
    let (status, got) = export(&s, &uuid, "&manta_path=/alice/stor/new/").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["image_path"], "/alice/stor/new/smartos-1.6.2.zfs.gz");
    check_exported(&s, root.path(), &uuid, &got).await;

    // Exporting again replaces the pair; the export root holds nothing else
    // (only the empty staging directory).
    let (status, _) = export(&s, &uuid, "&manta_path=/alice/stor/imgapi/smartos").await;
    assert_eq!(status, 200);
    let staging: Vec<_> = std::fs::read_dir(root.path().join(".staging"))
        .unwrap()
        .collect();
    assert!(staging.is_empty());
    let mut names: Vec<String> = std::fs::read_dir(root.path().join("alice/stor/imgapi"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["smartos.imgmanifest", "smartos.zfs.gz"]);
}

#[tokio::test]
async fn export_manifest_follows_accept_version() {
    let root = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(&format!(
        "[[channels]]\nname = \"dev\"\ndefault = true\n{}",
        export_toml(root.path())
    ))
    .await;
    let img = s.create(json!({})).await;
    let uuid = uuid_of(&img);
    assert_eq!(s.upload(&uuid, BYTES.to_vec()).await.0, 200);
    assert_eq!(s.activate(&uuid).await.0, 200);
    for (version, channels) in [(None, false), (Some("~2"), true)] {
        let mut req = s.post(&format!(
            "/images/{uuid}?action=export&manta_path=/alice/v{}",
            u8::from(channels)
        ));
        if let Some(v) = version {
            req = req.header("accept-version", v);
        }
        let (status, got) = status_json(req.send().await.unwrap()).await;
        assert_eq!(status, 200, "{got}");
        let path = root.path().join(
            got["manifest_path"]
                .as_str()
                .unwrap()
                .trim_start_matches('/'),
        );
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(manifest.get("channels").is_some(), channels, "{manifest}");
    }
}

#[tokio::test]
async fn export_validation_order() {
    let root = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(&export_toml(root.path())).await;
    let uuid = uuid_of(&s.publish(json!({})).await);

    // 1. manta_path missing.
    let got = export(&s, &uuid, "").await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("missing 'manta_path' prefix parameter"),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "manta_path", "code": "MissingParameter"}])
    );
    // 2. Empty login after normalisation (also for an empty value).
    for bad in ["/", "", "//", "/..", "relative"] {
        let got = export(&s, &uuid, &format!("&manta_path={bad}")).await;
        assert_error(
            &got,
            422,
            "InvalidParameter",
            Some("invalid manta_path prefix, not a valid manta path"),
        );
        assert_eq!(
            got.1["errors"],
            json!([{"field": "manta_path", "code": "Invalid"}])
        );
    }
    // Paths our stores cannot hold are refused the same way (after the
    // checks of the spec).
    for bad in ["/alice/a%20b", "/.staging/x", "user/stor/x"] {
        let got = export(&s, &uuid, &format!("&manta_path={bad}")).await;
        assert_error(&got, 422, "InvalidParameter", None);
    }
    // 3. No export configured.
    let plain = TestServer::spawn().await;
    let other = uuid_of(&plain.publish(json!({})).await);
    let got = export(&plain, &other, "&manta_path=/alice/x").await;
    assert_error(
        &got,
        503,
        "StorageUnsupported",
        Some("storage type is unsupported"),
    );
    // … after the path checks.
    let got = export(&plain, &other, "&manta_path=/").await;
    assert_error(&got, 422, "InvalidParameter", None);
    // Image without a file: 404 (recommended by the spec).
    let bare = uuid_of(&s.create(json!({"name": "bare"})).await);
    let got = export(&s, &bare, "&manta_path=/alice/x").await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!("image \"{bare}\" has no file")),
    );
    // 4. More than one file (only LXD images have two; made by hand here).
    let two = uuid_of(&s.publish(json!({"name": "two"})).await);
    add_second_file(&s, &two).await;
    let got = export(&s, &two, "&manta_path=/alice/x").await;
    assert_error(
        &got,
        400,
        "NotImplemented",
        Some("cannot export images with multiple files"),
    );
    // Ownership of the image comes before everything (api.md §2.1).
    let got = export(&s, &uuid, &format!("&account={BOB}")).await;
    assert_error(&got, 422, "NotImageOwner", None);
    // 5. With `account` and no account directory, the first path component
    // must be the account uuid itself.
    let got = export(&s, &uuid, &format!("&account={OWNER}&manta_path=/alice/x")).await;
    assert_error(
        &got,
        422,
        "NotMantaPathOwner",
        Some(&format!(
            "account {OWNER} is not the owner of Manta path /alice/x"
        )),
    );
    let got = export(
        &s,
        &uuid,
        &format!("&account={OWNER}&manta_path=/{OWNER}/stor/x"),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["image_path"], format!("/{OWNER}/stor/x.zfs.gz"));
    // Without `account`: no restriction (the operator).
    let got = export(&s, &uuid, "&manta_path=/anyone/x").await;
    assert_eq!(got.0, 200, "{}", got.1);
}

#[tokio::test]
async fn export_account_must_exist() {
    let root = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(&format!(
        "[account_directory]\nkind = \"static\"\naccounts = [\"{BOB}\"]\n{}",
        export_toml(root.path())
    ))
    .await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    let got = export(
        &s,
        &uuid,
        &format!("&account={OWNER}&manta_path=/{OWNER}/x"),
    )
    .await;
    assert_error(
        &got,
        422,
        "AccountDoesNotExist",
        Some(&format!("account \"{OWNER}\" does not exist")),
    );
    // 5 comes after 1–4.
    let got = export(&s, &uuid, &format!("&account={OWNER}&manta_path=/")).await;
    assert_error(&got, 422, "InvalidParameter", None);
}

/// Give an image a second file entry (as an LXD image has) in the store.
async fn add_second_file(s: &TestServer, uuid: &str) {
    let marker = s.data_dir.join("pg-database-url");
    let url = std::fs::read_to_string(&marker)
        .unwrap_or_else(|_| format!("sqlite://{}", s.data_dir.join("imgapi.sqlite").display()));
    let meta = imgapi_meta::open(&url).await.unwrap();
    let stored = meta
        .get(uuid::Uuid::parse_str(uuid).unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut img = stored.image.clone();
    img.files.push(img.files[0].clone());
    meta.update(&img, stored.revision).await.unwrap();
}

#[tokio::test]
async fn export_to_s3() {
    let Some((endpoint, bucket)) = s3_env() else {
        eprintln!("SKIP: S3 export test needs IMGAPI_TEST_S3_ENDPOINT and IMGAPI_TEST_S3_BUCKET (set by .ci/run)");
        return;
    };
    let prefix = format!("export-{}", uuid::Uuid::new_v4().simple());
    let s = TestServer::spawn_with(&format!(
        "[export]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n"
    ))
    .await;
    let uuid = uuid_of(
        &s.publish(json!({"name": "smartos", "version": "1.6.2"}))
            .await,
    );
    let (status, got) = export(&s, &uuid, "&manta_path=/alice/stor/smartos").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got,
        json!({"manta_url": format!("s3://{bucket}/{prefix}"),
               "image_path": "/alice/stor/smartos.zfs.gz",
               "manifest_path": "/alice/stor/smartos.imgmanifest"})
    );
    // "Directory" form: a prefix that holds objects.
    let (status, got) = export(&s, &uuid, "&manta_path=/alice/stor").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["image_path"], "/alice/stor/smartos-1.6.2.zfs.gz");

    let store = imgapi_blob::S3BlobStore::open(imgapi_blob::S3Config {
        endpoint: Some(endpoint),
        bucket,
        region: "us-east-1".into(),
        prefix,
        access_key_id: None,
        secret_access_key: None,
    })
    .unwrap();
    let read = |key: &'static str| {
        let store = store.clone();
        async move {
            use futures_util::TryStreamExt;
            use imgapi_blob::BlobStore;
            let r = store.get_stream(key, None).await.unwrap();
            let chunks: Vec<bytes::Bytes> = r.stream.try_collect().await.unwrap();
            chunks.concat()
        }
    };
    assert_eq!(read("alice/stor/smartos.zfs.gz").await, BYTES);
    assert_eq!(read("alice/stor/smartos-1.6.2.zfs.gz").await, BYTES);
    let manifest: Value =
        serde_json::from_slice(&read("alice/stor/smartos.imgmanifest").await).unwrap();
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(manifest, img);
}

fn s3_env() -> Option<(String, String)> {
    #[allow(clippy::disallowed_methods)] // test harness switch
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some((
        get("IMGAPI_TEST_S3_ENDPOINT")?,
        get("IMGAPI_TEST_S3_BUCKET")?,
    ))
}

/// With the LDAP directory (UFDS), the path's first component must be the
/// account's login (the fixture's `imgapitestvader` for OWNER).
#[tokio::test]
async fn export_path_owner_is_the_ldap_login() {
    #[allow(clippy::disallowed_methods)] // test harness switch
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(base)) = (get("LDAP_TEST_URL"), get("LDAP_TEST_BASE")) else {
        eprintln!("SKIP: LDAP export test needs LDAP_TEST_URL (started by .ci/slapd-start.sh)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(&format!(
        "mode = \"dc\"\n[account_directory]\nkind = \"ldap\"\nurl = {url:?}\nbase_dn = {base:?}\n{}",
        export_toml(root.path())
    ))
    .await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    let ok = export(
        &s,
        &uuid,
        &format!("&account={OWNER}&manta_path=/imgapitestvader/stor/base"),
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    for path in ["/imgapitestluke/stor/base", &format!("/{OWNER}/stor/base")] {
        let got = export(&s, &uuid, &format!("&account={OWNER}&manta_path={path}")).await;
        assert_error(
            &got,
            422,
            "NotMantaPathOwner",
            Some(&format!(
                "account {OWNER} is not the owner of Manta path {path}"
            )),
        );
    }
}

/// A signed image's export carries its signatures beside the manifest, and
/// the export alone checks out with `ssh-keygen -Y verify` and `sha256sum`
/// (docs/signing.md "Checking an export").
#[tokio::test]
async fn export_carries_signatures_checkable_with_openssh() {
    let Some(ssh) = crate::signatures::OpenSsh::new() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let s = TestServer::spawn_with(&export_toml(root.path())).await;
    let img = s.create(json!({"name": "signed", "version": "1.0"})).await;
    let uuid = uuid_of(&img);
    assert_eq!(s.upload(&uuid, BYTES.to_vec()).await.0, 200);
    let key = ssh.keygen("publisher", "ed25519", None);
    let text = crate::signatures::statement(&s, &uuid).await;
    let (status, _) = crate::signatures::add_signature(&s, &uuid, &ssh.sign(&key, &text)).await;
    assert_eq!(status, 200);
    assert_eq!(s.activate(&uuid).await.0, 200);

    let (status, got) = export(&s, &uuid, "&manta_path=/alice/stor/signed").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["signatures_path"], "/alice/stor/signed.imgsignatures");
    check_exported(&s, root.path(), &uuid, &got).await;
    let sidecar: Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join("alice/stor/signed.imgsignatures")).unwrap(),
    )
    .unwrap();
    assert_eq!(sidecar, crate::signatures::signatures(&s, &uuid, "").await);

    // What a consumer does with the export and ssh-keygen only.
    let statement = sidecar["statement"].as_str().unwrap();
    let sha256 = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(BYTES))
    };
    assert!(statement.ends_with(&format!("file {sha256} {}\n", BYTES.len())));
    let dir = ssh.path("");
    std::fs::write(dir.join("statement"), statement).unwrap();
    std::fs::write(
        dir.join("statement.sig"),
        sidecar["signatures"][0]["signature"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("allowed_signers"),
        format!("publisher@example.com {}\n", ssh.public_line(&key)),
    )
    .unwrap();
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "imgapi",
            "-I",
            "publisher@example.com",
            "-f",
        ])
        .arg(dir.join("allowed_signers"))
        .arg("-s")
        .arg(dir.join("statement.sig"))
        .stdin(std::fs::File::open(dir.join("statement")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // Without signatures, a re-export leaves no stale sidecar behind.
    let id = sidecar["signatures"][0]["id"].as_str().unwrap();
    let resp = s
        .delete(&format!("/images/{uuid}/signatures/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, got) = export(&s, &uuid, "&manta_path=/alice/stor/signed").await;
    assert_eq!(status, 200, "{got}");
    assert!(got.get("signatures_path").is_none(), "{got}");
    assert!(!root.path().join("alice/stor/signed.imgsignatures").exists());
}
