//! Storage errors tell the truth: a file or icon whose bytes are gone is
//! 500 ImageFileMissing naming the image (never the storage key); an S3
//! bucket deleted while the server runs, or credentials it refuses, are 503
//! StorageIsDown naming the bucket and the cause, on the wire and in the
//! audit line; a start-up that cannot reach its stores says so in one line.
//! The S3 cases run only on the postgres+s3 pass (`IMGAPI_TEST_S3_*`), each
//! on a private bucket it creates and deletes.

use std::path::Path;
use std::process::Command;

use imgapi_blob::{BlobStore, S3BlobStore, S3Config};
use serde_json::json;

use crate::audit::read_audit;
use crate::check::{key_of, stores_of};
use crate::restart::start;
use crate::support::*;

/// Take the blob of `part` (`file`, `icon`) of `uuid` away behind the
/// server's back; returns its storage key.
async fn delete_blob(s: &TestServer, uuid: &str, part: &str) -> String {
    let stores = stores_of(s).await;
    let key = key_of(&stores, uuid, part == "icon").await;
    stores.blobs[0].delete(&key).await.unwrap();
    key
}

#[tokio::test]
async fn a_missing_file_or_icon_is_image_file_missing_without_the_key() {
    let s = TestServer::spawn().await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    let resp = s
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/png")
        .body(vec![1u8; 64])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for (part, path) in [("file", "file"), ("icon", "icon")] {
        let key = delete_blob(&s, &uuid, part).await;
        let got = status_json(
            s.get(&format!("/images/{uuid}/{path}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let message = format!("the {part} of image \"{uuid}\" is missing from storage");
        assert_error(&got, 500, "ImageFileMissing", Some(&message));
        let text = got.1.to_string();
        assert!(!text.contains(&key) && !text.contains("images/"), "{text}");
    }
}

// ------------------------------------------------------------------ S3

/// What the S3 tests need: endpoint, region and credentials.
struct S3Env {
    endpoint: String,
    region: String,
    key_id: String,
    secret: String,
}

fn s3_env() -> Option<S3Env> {
    #[allow(clippy::disallowed_methods)] // test harness switch
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(S3Env {
        endpoint: get("IMGAPI_TEST_S3_ENDPOINT")?,
        region: get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
        key_id: get("AWS_ACCESS_KEY_ID")?,
        secret: get("AWS_SECRET_ACCESS_KEY")?,
    })
}

impl S3Env {
    /// A signed bucket-level request (`PUT` creates, `DELETE` removes);
    /// curl signs it. Returns the HTTP status.
    fn bucket_call(&self, method: &str, bucket: &str) -> u16 {
        const EMPTY_SHA256: &str =
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.key_id, self.secret))
            .arg("-H")
            .arg(format!("x-amz-content-sha256: {EMPTY_SHA256}"))
            .arg(format!("{}/{bucket}", self.endpoint.trim_end_matches('/')))
            .output()
            .expect("curl must be installed to run the S3 tests");
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
    }

    fn store(&self, bucket: &str) -> S3BlobStore {
        S3BlobStore::open(S3Config {
            endpoint: Some(self.endpoint.clone()),
            bucket: bucket.to_owned(),
            region: self.region.clone(),
            prefix: String::new(),
            access_key_id: Some(self.key_id.clone()),
            secret_access_key: Some(self.secret.clone()),
        })
        .unwrap()
    }

    /// A new private bucket (the test key needs the right to create
    /// buckets: `.ci/garage-start.sh` grants it).
    fn create_bucket(&self) -> String {
        let bucket = format!(
            "imgapi-it-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        let status = self.bucket_call("PUT", &bucket);
        assert_eq!(status, 200, "CreateBucket {bucket}");
        bucket
    }

    /// Empty the bucket (S3 deletes only empty buckets), then delete it.
    async fn delete_bucket(&self, bucket: &str) {
        let store = self.store(bucket);
        for key in store.list("").await.unwrap() {
            store.delete(&key).await.unwrap();
        }
        for upload in store.pending_uploads().await.unwrap() {
            store.abort_upload(&upload).await.unwrap();
        }
        let status = self.bucket_call("DELETE", bucket);
        assert!(
            status == 204 || status == 200,
            "DeleteBucket {bucket}: {status}"
        );
    }
}

fn s3_config(dir: &Path, env: &S3Env, bucket: &str) -> std::path::PathBuf {
    let path = dir.join("imgapi.toml");
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"info\"\nmetrics_listen = \"127.0.0.1:0\"\n[storage]\nkind = \"s3\"\nendpoint = {:?}\nbucket = {bucket:?}\n",
        dir.display().to_string(),
        env.endpoint
    );
    std::fs::write(&path, toml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_deleted_while_running_is_storage_is_down_naming_it() {
    let Some(env) = s3_env() else {
        eprintln!("SKIP: needs IMGAPI_TEST_S3_ENDPOINT and AWS credentials");
        return;
    };
    let bucket = env.create_bucket();
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start(&s3_config(dir.path(), &env, &bucket));
    let base = format!("http://{}", proc.addr);
    let client = reqwest::Client::new();
    let create_image = || async {
        let resp = client.post(format!("{base}/images")).json(&manifest());
        let (status, img) = status_json(resp.send().await.unwrap()).await;
        assert_eq!(status, 200, "{img}");
        uuid_of(&img)
    };
    let uuid = create_image().await;
    let put_file = |uuid: String| {
        client
            .put(format!("{base}/images/{uuid}/file?compression=none"))
            .body(vec![7u8; 1000])
    };
    let resp = put_file(uuid.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    env.delete_bucket(&bucket).await;

    let expected = format!("storage is unavailable: bucket \"{bucket}\" does not exist");
    let get = client
        .get(format!("{base}/images/{uuid}/file"))
        .header("x-request-id", "get-file")
        .send()
        .await
        .unwrap();
    assert_error(
        &status_json(get).await,
        503,
        "StorageIsDown",
        Some(&expected),
    );
    let put = put_file(create_image().await)
        .header("x-request-id", "add-file")
        .send()
        .await
        .unwrap();
    assert_error(
        &status_json(put).await,
        503,
        "StorageIsDown",
        Some(&expected),
    );

    let (audit, _) = read_audit(&proc, &["get-file", "add-file"]);
    let _ = proc.child.kill();
    let _ = proc.child.wait();
    for id in ["get-file", "add-file"] {
        let cause = audit[id]["fields"]["cause"].as_str().unwrap_or_default();
        assert!(cause.contains(&expected), "{id}: {cause}");
        assert!(
            !cause.contains('<'),
            "{id}: the S3 document leaked: {cause}"
        );
    }
}

/// The lines a failed start-up printed, JSON log lines left out.
fn plain_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(str::to_owned)
        .collect()
}

fn run_to_exit(config: &Path, envs: &[(&str, &str)]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(config)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success());
    plain_lines(&out.stderr)
}

#[test]
fn a_start_up_that_cannot_use_its_bucket_says_so_in_one_line() {
    let Some(env) = s3_env() else {
        eprintln!("SKIP: needs IMGAPI_TEST_S3_ENDPOINT and AWS credentials");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let missing = format!(
        "imgapi-never-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let lines = run_to_exit(&s3_config(dir.path(), &env, &missing), &[]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].ends_with(&format!(
            "storage is unavailable: bucket \"{missing}\" does not exist"
        )),
        "{}",
        lines[0]
    );
    #[allow(clippy::disallowed_methods)] // test harness switch
    let bucket = std::env::var("IMGAPI_TEST_S3_BUCKET").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let config = s3_config(dir.path(), &env, &bucket);
    let lines = run_to_exit(&config, &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")]);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("access to bucket \"{bucket}\" denied (")),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains('<'), "{}", lines[0]);
}

#[test]
fn a_start_up_that_cannot_use_its_database_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imgapi.toml");
    let missing = format!(
        "imgapi_never_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    #[allow(clippy::disallowed_methods)] // test harness switch
    let server = std::env::var("IMGAPI_TEST_PG_URL")
        .ok()
        .and_then(|url| url.rsplit_once('/').map(|(base, _)| base.to_owned()));
    let mut cases: Vec<(String, &str)> = vec![(
        "postgres://imgapi@127.0.0.1:1/imgapi".to_owned(),
        "Connection refused",
    )];
    if let Some(server) = server {
        cases.push((format!("{server}/{missing}"), "does not exist"));
    }
    for (url, why) in cases {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ndatabase_url = {url:?}\n",
            dir.path().display().to_string()
        );
        std::fs::write(&path, toml).unwrap();
        let lines = run_to_exit(&path, &[]);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains(why), "{}", lines[0]);
        assert!(!lines[0].contains(" at line "), "{}", lines[0]);
    }
}
