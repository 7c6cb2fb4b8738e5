//! Registries that feed each other: AdminImportRemoteImage as an
//! in-process job (origins, verification, clean failure, restart),
//! ListImageJobs, AdminImportImageFromSource, AddImageFileFromSource,
//! AddImageFileFromUrl and its `[remote]` policy, ImportFromDatacenter.
//!
//! Sources are real servers, or a fake IMGAPI (below) that can cut a file,
//! corrupt it, stream it slowly or redirect.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// Everything on 127.0.0.1: plain http and loopback must be allowed.
pub(crate) const OPEN: &str = "[remote]\nallow_http = true\nallow_private_addresses = true\n";

// ---------------------------------------------------------------------------
// A fake IMGAPI

/// What the fake answers for one request.
#[derive(Clone)]
pub(crate) enum Reply {
    Json(u16, Value),
    /// `bytes`, announced whole; the connection closes after `cut_at`
    /// bytes when set; `delay` between 64 KiB chunks.
    File {
        bytes: Vec<u8>,
        cut_at: Option<usize>,
        delay: Duration,
    },
    Redirect(String),
}

pub(crate) type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

pub(crate) struct FakeSource {
    pub(crate) url: String,
    /// Bytes of files sent so far.
    pub(crate) sent: Arc<AtomicUsize>,
    /// File requests seen.
    pub(crate) file_requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSource {
    pub(crate) async fn start(handler: Handler) -> FakeSource {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicUsize::new(0));
        let file_requests = Arc::new(AtomicUsize::new(0));
        let (s, f) = (sent.clone(), file_requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (handler, sent, files) = (handler.clone(), s.clone(), f.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let target = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let reply = handler(&target);
                    let _ = write_reply(&mut conn, reply, &sent, &files).await;
                });
            }
        });
        FakeSource {
            url,
            sent,
            file_requests,
            task,
        }
    }
}

async fn write_reply(
    conn: &mut tokio::net::TcpStream,
    reply: Reply,
    sent: &AtomicUsize,
    files: &AtomicUsize,
) -> std::io::Result<()> {
    match reply {
        Reply::Json(status, body) => {
            let body = serde_json::to_vec_pretty(&body).unwrap();
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(&body).await?;
        }
        Reply::Redirect(location) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await?;
        }
        Reply::File {
            bytes,
            cut_at,
            delay,
        } => {
            files.fetch_add(1, Ordering::SeqCst);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                bytes.len()
            );
            conn.write_all(head.as_bytes()).await?;
            let end = cut_at.unwrap_or(bytes.len());
            for chunk in bytes[..end].chunks(64 * 1024) {
                conn.write_all(chunk).await?;
                conn.flush().await?;
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    conn.shutdown().await
}

pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    hex(&Sha1::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A remote manifest as an IMGAPI shows it.
pub(crate) fn fake_manifest(uuid: &str, origin: Option<&str>, file: &[u8], state: &str) -> Value {
    let mut m = json!({
        "v": 2, "uuid": uuid, "owner": OWNER, "name": "fake", "version": "1.0.0",
        "state": state, "disabled": false, "public": true,
        "published_at": "2024-05-06T07:08:09.123Z", "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": sha1_hex(file), "size": file.len(), "compression": "gzip"}]
    });
    if let Some(o) = origin {
        m["origin"] = json!(o);
    }
    m
}

pub(crate) fn not_found(target: &str) -> Reply {
    Reply::Json(
        404,
        json!({"code": "ResourceNotFound", "message": format!("{target} not found")}),
    )
}

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------
// Helpers

/// Create, upload `bytes` and activate on `s`.
pub(crate) async fn publish_bytes(s: &TestServer, extra: Value, bytes: &[u8]) -> Value {
    let img = s.create(extra).await;
    let uuid = uuid_of(&img);
    let (status, body) = s.upload(&uuid, bytes.to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let (status, img) = s.activate(&uuid).await;
    assert_eq!(status, 200, "{img}");
    img
}

pub(crate) async fn import_remote(target: &TestServer, uuid: &str, source: &str) -> (u16, Value) {
    let resp = target
        .post(&format!(
            "/images/{uuid}?action=import-remote&source={}",
            enc(source)
        ))
        .send()
        .await
        .unwrap();
    if resp.status() == 200 {
        // This server answers GET /jobs/:uuid itself.
        assert_eq!(
            resp.headers()
                .get("workflow-api")
                .and_then(|v| v.to_str().ok()),
            Some(target.url.as_str())
        );
    }
    status_json(resp).await
}

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Poll ListImageJobs until the job has finished; returns it.
pub(crate) async fn wait_job(s: &TestServer, image: &str, job: &str) -> Value {
    for _ in 0..600 {
        let (status, jobs) = s.get_json(&format!("/images/{image}/jobs")).await;
        if status == 200 {
            let found = jobs
                .as_array()
                .unwrap()
                .iter()
                .find(|j| j["uuid"] == job)
                .cloned();
            if let Some(j) = found {
                if j["execution"] == "succeeded" || j["execution"] == "failed" {
                    return j;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} did not finish");
}

pub(crate) async fn started(target: &TestServer, uuid: &str, source: &str) -> String {
    let (status, body) = import_remote(target, uuid, source).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["image_uuid"], uuid);
    body["job_uuid"].as_str().unwrap().to_string()
}

fn steps(job: &Value) -> Vec<(String, String, String)> {
    job["chain_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["image_uuid"].as_str().unwrap_or_default().to_string(),
                s["result"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Regular files under `<data_dir>/files` (blobs and staging leftovers).
pub(crate) fn blob_files(data_dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir.join("files"), &mut out);
    out
}

pub(crate) async fn get_bytes(s: &TestServer, path: &str) -> Vec<u8> {
    let resp = s.get(path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.bytes().await.unwrap().to_vec()
}

// ---------------------------------------------------------------------------
// AdminImportRemoteImage + ListImageJobs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_remote_with_two_level_origin_chain() {
    let source = TestServer::spawn().await;
    let target = TestServer::spawn_with(OPEN).await;
    let base = publish_bytes(&source, json!({"name": "base"}), b"base bytes").await;
    let mid = publish_bytes(
        &source,
        json!({"name": "mid", "origin": uuid_of(&base)}),
        b"mid bytes!",
    )
    .await;
    let top = publish_bytes(
        &source,
        json!({"name": "top", "origin": uuid_of(&mid)}),
        &vec![7u8; 300_000],
    )
    .await;
    let uuid = uuid_of(&top);
    // An icon too (the original does not copy icons).
    let icon = b"\x89PNG\r\n\x1a\n not really a png".to_vec();
    let resp = source
        .put(&format!("/images/{uuid}/icon"))
        .header("content-type", "image/png")
        .body(icon.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let job_uuid = started(&target, &uuid, &source.url).await;
    let job = wait_job(&target, &uuid, &job_uuid).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    assert_eq!(job["name"], "import-remote-image");
    assert_eq!(job["params"]["source"], format!("{}/", source.url));
    assert_eq!(
        job["params"]["origins"],
        json!([uuid_of(&base), uuid_of(&mid)]),
        "origins base first"
    );
    let done = steps(&job);
    let order: Vec<(&str, &str)> = done
        .iter()
        .map(|(n, i, _)| (n.as_str(), i.as_str()))
        .collect();
    let (b, m, t) = (uuid_of(&base), uuid_of(&mid), uuid_of(&top));
    assert_eq!(
        order,
        vec![
            ("import_image", b.as_str()),
            ("add_file", b.as_str()),
            ("activate_image", b.as_str()),
            ("import_image", m.as_str()),
            ("add_file", m.as_str()),
            ("activate_image", m.as_str()),
            ("import_image", t.as_str()),
            ("add_file", t.as_str()),
            ("add_icon", t.as_str()),
            ("activate_image", t.as_str()),
        ]
    );
    assert_eq!(get_bytes(&target, &format!("/images/{t}/icon")).await, icon);
    for step in job["chain_results"].as_array().unwrap() {
        assert_eq!(step["error"], "", "{step}");
        assert!(step["started_at"].is_string() && step["finished_at"].is_string());
    }
    for img in [&base, &mid, &top] {
        let id = uuid_of(img);
        let (status, local) = target.get_json(&format!("/images/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(local["state"], "active");
        assert_eq!(local["uuid"], img["uuid"]);
        assert_eq!(local["published_at"], img["published_at"]);
        assert_eq!(local["origin"], img["origin"]);
        assert_eq!(local["files"][0]["sha1"], img["files"][0]["sha1"]);
        assert_eq!(local["files"][0]["size"], img["files"][0]["size"]);
        let path = format!("/images/{id}/file");
        assert_eq!(
            get_bytes(&target, &path).await,
            get_bytes(&source, &path).await
        );
    }

    // GET /jobs/:uuid, where `workflow-api` points.
    let (status, one) = target.get_json(&format!("/jobs/{job_uuid}")).await;
    assert_eq!(status, 200);
    assert_eq!(one, job);
    let got = target.get_json(&format!("/jobs/{}", new_uuid())).await;
    assert_error(&got, 404, "ResourceNotFound", None);
    let got = target.get_json("/jobs/not-a-uuid").await;
    assert_error(&got, 404, "ResourceNotFound", None);

    // ListImageJobs filters.
    let list = |q: &'static str| {
        let target = &target;
        let uuid = uuid.clone();
        async move {
            let (status, jobs) = target.get_json(&format!("/images/{uuid}/jobs{q}")).await;
            assert_eq!(status, 200, "{jobs}");
            jobs.as_array().unwrap().len()
        }
    };
    assert_eq!(list("").await, 1);
    assert_eq!(list("?task=import-remote-image").await, 1);
    assert_eq!(list("?task=create-from-vm").await, 0);
    assert_eq!(list("?execution=succeeded").await, 1);
    assert_eq!(list("?execution=failed").await, 0);
    let got = target
        .get_json(&format!("/images/{uuid}/jobs?execution=bogus"))
        .await;
    assert_error(&got, 422, "InvalidParameter", None);
    // The base image has no job of its own.
    let (status, jobs) = target.get_json(&format!("/images/{b}/jobs")).await;
    assert_eq!((status, jobs), (200, json!([])));

    // Importing the same image again: already here, same file → a job
    // that has already succeeded (the original answers 409).
    let (status, body) = import_remote(&target, &uuid, &source.url).await;
    assert_eq!(status, 200, "{body}");
    let again = body["job_uuid"].as_str().unwrap().to_string();
    assert_ne!(again, job_uuid);
    let (_, jobs) = target.get_json(&format!("/images/{uuid}/jobs")).await;
    let newest = &jobs[0];
    assert_eq!(newest["uuid"], again, "newest first");
    assert_eq!(newest["execution"], "succeeded");
    assert_eq!(steps(newest)[0].0, "check");
}

#[tokio::test]
async fn import_remote_validation_order_and_errors() {
    let source = TestServer::spawn().await;
    let target = TestServer::spawn_with(OPEN).await;
    let img = publish_bytes(&source, json!({}), b"bytes").await;
    let uuid = uuid_of(&img);
    let path = |q: &str| format!("/images/{uuid}?action=import-remote{q}");

    let got = target.post_json(&path(""), &json!({})).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("missing source parameter"),
    );
    assert_eq!(got.1["errors"][0]["field"], "source");
    assert_eq!(got.1["errors"][0]["code"], "MissingParameter");
    let src = enc(&source.url);
    let got = target
        .post_json(&path(&format!("&source={src}&account={OWNER}")), &json!({}))
        .await;
    assert_error(&got, 403, "OperatorOnly", None);
    let got = target
        .post_json(
            &path(&format!("&source={src}&skip_owner_check=maybe")),
            &json!({}),
        )
        .await;
    assert_error(&got, 422, "InvalidParameter", None);
    let got = target
        .post_json(&path("&source=ftp%3A%2F%2Fx"), &json!({}))
        .await;
    assert_error(&got, 422, "InvalidParameter", None);

    // Unknown to the source.
    let missing = new_uuid();
    let got = import_remote(&target, &missing, &source.url).await;
    assert_error(
        &got,
        503,
        "RemoteSourceError",
        Some(&format!(
            "Unable to get manifest for image {missing}. Error from remote: image {missing} not found"
        )),
    );

    // A local image that is not the same finished image: 409.
    let (status, body) = target
        .post_json(
            &format!("/images/{uuid}?action=import&source={src}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = import_remote(&target, &uuid, &source.url).await;
    assert_error(
        &got,
        409,
        "ImageUuidAlreadyExists",
        Some(&format!("image uuid \"{uuid}\" already exists")),
    );

    // Origins: not active remotely / locally.
    let base = publish_bytes(&source, json!({"name": "b"}), b"b").await;
    let child = publish_bytes(
        &source,
        json!({"name": "c", "origin": uuid_of(&base)}),
        b"c",
    )
    .await;
    let (s, _) = source
        .post_json(
            &format!("/images/{}?action=disable", uuid_of(&base)),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let got = import_remote(&target, &uuid_of(&child), &source.url).await;
    assert_error(
        &got,
        422,
        "OriginIsNotActive",
        Some(&format!(
            "origin image \"{}\" is not active",
            uuid_of(&base)
        )),
    );
    let (s, _) = source
        .post_json(
            &format!("/images/{}?action=enable", uuid_of(&base)),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    // Here, imported but never activated: not active either.
    let (status, _) = target
        .post_json(
            &format!("/images/{}?action=import&source={src}", uuid_of(&base)),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let got = import_remote(&target, &uuid_of(&child), &source.url).await;
    assert_error(&got, 422, "OriginIsNotActive", None);

    // The default policy refuses an http source on a loopback address.
    let strict = TestServer::spawn().await;
    let got = import_remote(&strict, &uuid, &source.url).await;
    assert_error(&got, 422, "InvalidParameter", None);
    let message = got.1["message"].as_str().unwrap();
    assert!(
        message.starts_with("source refused by the [remote] policy: ")
            && message.contains("allow_http = false"),
        "{message}"
    );
    let https = source.url.replace("http:", "https:");
    let got = import_remote(&strict, &uuid, &https).await;
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1 is a loopback address"),
        "{}",
        got.1
    );
}

/// A fake source with an origin and an image whose file is served by
/// `file_for_image` (the origin's file is always whole).
async fn fake_pair(
    origin_bytes: Vec<u8>,
    image_bytes: Vec<u8>,
    file_for_image: Arc<dyn Fn() -> Reply + Send + Sync>,
) -> (FakeSource, String, String) {
    let (origin, image) = (new_uuid(), new_uuid());
    let om = fake_manifest(&origin, None, &origin_bytes, "active");
    let im = fake_manifest(&image, Some(&origin), &image_bytes, "active");
    let (o, i) = (origin.clone(), image.clone());
    let handler: Handler = Arc::new(move |target: &str| {
        let path = target.split('?').next().unwrap_or_default();
        if path == format!("/images/{o}") {
            Reply::Json(200, om.clone())
        } else if path == format!("/images/{i}") {
            Reply::Json(200, im.clone())
        } else if path == format!("/images/{o}/file") {
            Reply::File {
                bytes: origin_bytes.clone(),
                cut_at: None,
                delay: Duration::ZERO,
            }
        } else if path == format!("/images/{i}/file") {
            file_for_image()
        } else {
            not_found(path)
        }
    });
    (FakeSource::start(handler).await, origin, image)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_cut_mid_file_fails_cleanly_and_a_retry_succeeds() {
    let target = TestServer::spawn_with(OPEN).await;
    let image_bytes = vec![3u8; 500_000];
    let whole = Arc::new(AtomicBool::new(false));
    let (w, bytes) = (whole.clone(), image_bytes.clone());
    let (fake, origin, image) = fake_pair(
        b"origin bytes".to_vec(),
        image_bytes.clone(),
        Arc::new(move || Reply::File {
            bytes: bytes.clone(),
            cut_at: (!w.load(Ordering::SeqCst)).then_some(200_000),
            delay: Duration::ZERO,
        }),
    )
    .await;
    let job_uuid = started(&target, &image, &fake.url).await;
    let job = wait_job(&target, &image, &job_uuid).await;
    assert_eq!(job["execution"], "failed", "{job:#}");
    let chain = job["chain_results"].as_array().unwrap();
    let failed = chain
        .iter()
        .find(|s| s["error"] != "")
        .expect("a failed step");
    assert_eq!(failed["name"], "add_file");
    assert_eq!(failed["image_uuid"], image.as_str());
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Unable to get stream for image file {image}.")),
        "{failed}"
    );
    assert_eq!(
        fake.file_requests.load(Ordering::SeqCst),
        3,
        "origin once, image twice (one retry)"
    );
    assert_eq!(
        chain.last().unwrap()["name"],
        "add_file",
        "the failed step is last"
    );
    let cleanup = &job["onerror_results"][0];
    assert_eq!(cleanup["name"], "cleanup");
    assert_eq!(cleanup["result"], format!("deleted {image}, {origin}"));
    for id in [&image, &origin] {
        let got = target.get_json(&format!("/images/{id}")).await;
        assert_error(&got, 404, "ResourceNotFound", None);
    }
    if expected_stor() == "local" {
        assert_eq!(
            blob_files(&target.data_dir),
            Vec::<PathBuf>::new(),
            "no blob left"
        );
    }
    // The failed job is still listed although its image is gone.
    let (status, jobs) = target.get_json(&format!("/images/{image}/jobs")).await;
    assert_eq!(status, 200);
    assert_eq!(jobs[0]["uuid"], job_uuid.as_str());
    let got = target
        .get_json(&format!("/images/{image}/jobs?account={BOB}"))
        .await;
    assert_error(&got, 404, "ResourceNotFound", None);

    // The source recovers: the same import succeeds.
    whole.store(true, Ordering::SeqCst);
    let job_uuid = started(&target, &image, &fake.url).await;
    let job = wait_job(&target, &image, &job_uuid).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    let got = get_bytes(&target, &format!("/images/{image}/file")).await;
    assert_eq!(got, image_bytes);
    let (_, origin_img) = target.get_json(&format!("/images/{origin}")).await;
    assert_eq!(origin_img["state"], "active");
}

#[tokio::test]
async fn corrupted_source_file_is_refused_and_nothing_kept() {
    let target = TestServer::spawn_with(OPEN).await;
    let good = vec![1u8; 10_000];
    let mut bad = good.clone();
    bad[5_000] ^= 0xff;
    let (fake, origin, image) = fake_pair(
        b"o".to_vec(),
        good.clone(),
        Arc::new(move || Reply::File {
            bytes: bad.clone(),
            cut_at: None,
            delay: Duration::ZERO,
        }),
    )
    .await;
    let job_uuid = started(&target, &image, &fake.url).await;
    let job = wait_job(&target, &image, &job_uuid).await;
    assert_eq!(job["execution"], "failed");
    let failed = job["chain_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["error"] != "")
        .cloned()
        .unwrap();
    let expected = format!(
        "\"sha1\" file field, {}, does not match the downloaded file sha1 hash, ",
        sha1_hex(&good)
    );
    assert!(
        failed["error"].as_str().unwrap().starts_with(&expected),
        "{failed}"
    );
    for id in [&image, &origin] {
        let got = target.get_json(&format!("/images/{id}")).await;
        assert_eq!(got.0, 404);
    }
    if expected_stor() == "local" {
        assert!(blob_files(&target.data_dir).is_empty());
    }

    // The same check on the synchronous endpoints (§5.19 + §5.6).
    let src = enc(&fake.url);
    let (status, img) = target
        .post_json(
            &format!("/images/{origin}?action=import&source={src}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{img}");
    let (status, img) = target
        .post_json(
            &format!("/images/{image}?action=import&source={src}"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{img}");
    let got = status_json(
        target
            .put(&format!("/images/{image}/file?source={src}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 400, "Download", None);
    assert!(got.1["message"].as_str().unwrap().starts_with(&expected));
    let (_, img) = target.get_json(&format!("/images/{image}")).await;
    assert_eq!(img["files"], json!([]), "the record is unchanged");
    if expected_stor() == "local" {
        assert!(blob_files(&target.data_dir).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_interrupted_by_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestServer::spawn_in(dir.path(), OPEN).await;
    let image_bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let bytes = image_bytes.clone();
    let (fake, origin, image) = fake_pair(
        b"origin".to_vec(),
        image_bytes.clone(),
        Arc::new(move || Reply::File {
            bytes: bytes.clone(),
            cut_at: None,
            delay: Duration::from_millis(40),
        }),
    )
    .await;
    let job_uuid = started(&target, &image, &fake.url).await;
    // Wait until the image's file is on its way, then stop the server.
    for _ in 0..300 {
        if fake.sent.load(Ordering::SeqCst) > 200_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fake.sent.load(Ordering::SeqCst) > 200_000);
    target.stop().await;
    let sent_before = fake.sent.load(Ordering::SeqCst);
    assert!(sent_before < 2_000_000, "stopped mid-transfer");

    // A new server on the same data: the job resumes at start-up.
    let target = TestServer::spawn_in(dir.path(), OPEN).await;
    let job = wait_job(&target, &image, &job_uuid).await;
    match job["execution"].as_str() {
        Some("succeeded") => {
            let (_, img) = target.get_json(&format!("/images/{image}")).await;
            assert_eq!(img["state"], "active");
            assert_eq!(img["files"][0]["sha1"], sha1_hex(&image_bytes));
            let got = get_bytes(&target, &format!("/images/{image}/file")).await;
            assert_eq!(got, image_bytes);
            // The interrupted add_file never finished; a second one did.
            let adds: Vec<&Value> = job["chain_results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["name"] == "add_file" && s["image_uuid"] == image.as_str())
                .collect();
            assert_eq!(adds.len(), 2, "{job:#}");
            assert!(adds[0]["finished_at"].is_null());
            assert!(adds[1]["finished_at"].is_string());
            // The origin, complete before the restart, was not fetched again.
            let origin_adds: Vec<&Value> = job["chain_results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["name"] == "add_file" && s["image_uuid"] == origin.as_str())
                .collect();
            assert_eq!(origin_adds.len(), 2, "{job:#}");
            assert_eq!(origin_adds[1]["result"], "file already complete");
            assert_eq!(
                fake.file_requests.load(Ordering::SeqCst),
                3,
                "origin once, image twice"
            );
        }
        _ => {
            for id in [&image, &origin] {
                assert_eq!(target.get_json(&format!("/images/{id}")).await.0, 404);
            }
        }
    }
    if expected_stor() == "local" {
        for f in blob_files(&target.data_dir) {
            assert!(
                !f.to_string_lossy().contains(".staging"),
                "staging leftover {f:?}"
            );
        }
    }
    target.stop().await;
}

/// A job left `running` by an instance that died (its lease expired) is
/// taken over at start-up.
#[tokio::test]
async fn job_of_a_dead_instance_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    // Start once so the data dir (and its database) exists, then stop.
    let first = TestServer::spawn_in(dir.path(), OPEN).await;
    let db_url = match std::fs::read_to_string(dir.path().join("pg-database-url")) {
        Ok(url) => url,
        Err(_) => format!("sqlite://{}", dir.path().join("imgapi.sqlite").display()),
    };
    first.stop().await;
    let bytes = vec![9u8; 1000];
    let b = bytes.clone();
    let (fake, origin, image) = fake_pair(
        b"o".to_vec(),
        bytes.clone(),
        Arc::new(move || Reply::File {
            bytes: b.clone(),
            cut_at: None,
            delay: Duration::ZERO,
        }),
    )
    .await;
    let job_uuid = uuid::Uuid::new_v4();
    {
        let meta = imgapi_meta::open(&db_url).await.unwrap();
        let job = imgapi_meta::JobRecord {
            uuid: job_uuid,
            image_uuid: image.parse().unwrap(),
            name: "import-remote-image".into(),
            execution: imgapi_meta::JobExecution::Running,
            params: json!({
                "task": "import-remote-image", "image_uuid": image, "source": fake.url,
                "origins": [origin], "skip_owner_check": false
            }),
            chain_results: vec![],
            created_at: "2024-01-01T00:00:00.000Z".into(),
            started_at: Some("2024-01-01T00:00:00.000Z".into()),
            finished_at: None,
            lease: Some(imgapi_meta::JobLease {
                owner: "dead-host/instance".into(),
                expires_ms: 1,
            }),
            attempts: 1,
        };
        meta.insert_job(&job).await.unwrap();
    }
    let target = TestServer::spawn_in(dir.path(), OPEN).await;
    let job = wait_job(&target, &image, &job_uuid.to_string()).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    let (_, img) = target.get_json(&format!("/images/{image}")).await;
    assert_eq!(img["state"], "active");
    target.stop().await;
}

// ---------------------------------------------------------------------------
// AdminImportImageFromSource (§5.19), AddImageFileFromSource (§5.6)

#[tokio::test]
async fn import_from_source_and_add_file_from_source() {
    let source = TestServer::spawn().await;
    let target = TestServer::spawn_with(OPEN).await;
    let img = publish_bytes(
        &source,
        json!({"name": "src", "description": "from the source"}),
        b"source file bytes",
    )
    .await;
    let uuid = uuid_of(&img);
    let src = enc(&source.url);
    let import = |q: String| {
        let target = &target;
        async move { target.post_json(&q, &json!({"ignored": true})).await }
    };
    let got = import(format!(
        "/images/{uuid}?action=import&source={src}&account={OWNER}"
    ))
    .await;
    assert_error(&got, 403, "OperatorOnly", None);
    let (status, local) = import(format!("/images/{uuid}?action=import&source={src}")).await;
    assert_eq!(status, 200, "{local}");
    assert_eq!(local["state"], "unactivated");
    assert_eq!(local["published_at"], img["published_at"]);
    assert_eq!(local["description"], "from the source");
    assert_eq!(local["owner"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(local["files"], json!([]));
    let got = import(format!("/images/{uuid}?action=import&source={src}")).await;
    assert_error(
        &got,
        409,
        "ImageUuidAlreadyExists",
        Some(&format!("image uuid \"{uuid}\" already exists")),
    );
    let missing = new_uuid();
    let got = import(format!("/images/{missing}?action=import&source={src}")).await;
    assert_error(
        &got,
        503,
        "RemoteSourceError",
        Some(&format!(
            "Unable to get manifest for image {missing}. Error from remote: image {missing} not found"
        )),
    );
    // A source that does not answer at all.
    let dead = "http://127.0.0.1:9";
    let got = import(format!(
        "/images/{missing}?action=import&source={}",
        enc(dead)
    ))
    .await;
    assert_error(&got, 503, "RemoteSourceError", None);
    assert!(got.1["message"].as_str().unwrap().starts_with(&format!(
        "Unable to get manifest for image {missing}. Error from remote: "
    )));

    // The file, from the source, verified (query compression/sha1 ignored).
    let resp = target
        .put(&format!(
            "/images/{uuid}/file?source={src}&compression=bzip2&sha1=0000"
        ))
        .send()
        .await
        .unwrap();
    let (status, local) = status_json(resp).await;
    assert_eq!(status, 200, "{local}");
    assert_eq!(local["files"][0]["sha1"], img["files"][0]["sha1"]);
    assert_eq!(local["files"][0]["size"], img["files"][0]["size"]);
    assert_eq!(local["files"][0]["compression"], "gzip");
    assert_eq!(
        get_bytes(&target, &format!("/images/{uuid}/file")).await,
        b"source file bytes"
    );
    let (status, _) = target.activate(&uuid).await;
    assert_eq!(status, 200);
    let got = status_json(
        target
            .put(&format!("/images/{uuid}/file?source={src}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&got, 422, "ImageFilesImmutable", None);
}

// ---------------------------------------------------------------------------
// AddImageFileFromUrl (§5.7) and the [remote] policy

async fn from_url(s: &TestServer, uuid: &str, q: &str, body: Value) -> (u16, Value) {
    s.post_json(&format!("/images/{uuid}/file/from-url{q}"), &body)
        .await
}

#[tokio::test]
async fn add_file_from_url_policy() {
    // The default policy: https only, public addresses only.
    let strict = TestServer::spawn().await;
    let uuid = uuid_of(&strict.create(json!({})).await);
    let q = "?compression=gzip";
    let got = from_url(
        &strict,
        &uuid,
        "",
        json!({"file_url": "https://x.example/f"}),
    )
    .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("missing \"compression\""),
    );
    let got = from_url(&strict, &uuid, q, json!({})).await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("missing \"file_url\" field from request body"),
    );
    let got = from_url(&strict, &uuid, q, json!({"file_url": 12})).await;
    assert_error(&got, 422, "InvalidParameter", None);
    let got = from_url(
        &strict,
        &uuid,
        q,
        json!({"file_url": "http://example.com/f"}),
    )
    .await;
    assert_error(
        &got,
        422,
        "InvalidParameter",
        Some("Only URLs using the https: scheme are supported"),
    );
    assert_eq!(got.1["errors"][0]["field"], "file_url");
    for (url, rule) in [
        ("https://127.0.0.1/f", "127.0.0.1 is a loopback address"),
        ("https://[::1]:8443/f", "::1 is a loopback address"),
        (
            "https://10.1.2.3/f",
            "10.1.2.3 is a private (RFC 1918) address",
        ),
        (
            "https://169.254.169.254/latest/meta-data/",
            "is a link-local address",
        ),
        ("https://100.64.1.1/f", "CGNAT"),
        // A DNS name is resolved and every address checked.
        (
            "https://localhost:8443/f",
            "(from localhost) is a loopback address",
        ),
    ] {
        let got = from_url(&strict, &uuid, q, json!({ "file_url": url })).await;
        assert_error(&got, 422, "InvalidParameter", None);
        let message = got.1["message"].as_str().unwrap();
        assert!(
            message.starts_with("file_url refused by the [remote] policy: ")
                && message.contains(rule)
                && message.contains("allow_private_addresses = false"),
            "{url}: {message}"
        );
    }
    let (_, img) = strict.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["files"], json!([]));

    // Loopback and http allowed: the bytes of another server.
    let source = TestServer::spawn().await;
    let src_img = publish_bytes(&source, json!({}), b"bytes from a url").await;
    let file_url = format!("{}/images/{}/file", source.url, uuid_of(&src_img));
    let open = TestServer::spawn_with(OPEN).await;
    let uuid = uuid_of(&open.create(json!({})).await);
    let got = from_url(
        &open,
        &uuid,
        &format!("{q}&sha1=1234"),
        json!({ "file_url": file_url }),
    )
    .await;
    assert_error(&got, 400, "Download", None);
    assert_eq!(
        got.1["message"],
        format!(
            "expected sha1 hash, 1234, does not match the uploaded file sha1 hash, {}",
            sha1_hex(b"bytes from a url")
        )
    );
    let (_, img) = open.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(img["files"], json!([]), "a mismatch keeps nothing");
    if expected_stor() == "local" {
        assert!(blob_files(&open.data_dir).is_empty());
    }
    let sha1 = sha1_hex(b"bytes from a url");
    let (status, img) = from_url(
        &open,
        &uuid,
        &format!("{q}&sha1={sha1}&dataset_guid=g1"),
        json!({ "file_url": file_url }),
    )
    .await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["files"][0]["sha1"], sha1);
    assert_eq!(img["files"][0]["compression"], "gzip");
    assert_eq!(img["files"][0]["dataset_guid"], "g1");
    let missing = format!("{}/images/{}/file", source.url, new_uuid());
    let got = from_url(&open, &uuid, q, json!({ "file_url": missing })).await;
    assert_error(
        &got,
        400,
        "Download",
        Some("HTTP 404 error attempting to download image"),
    );
    let got = from_url(&open, &uuid, q, json!({"file_url": "http://127.0.0.1:9/x"})).await;
    assert_error(&got, 400, "Download", None);
    assert!(got.1["message"]
        .as_str()
        .unwrap()
        .starts_with("Error getting image: "));
    // Activated: files are immutable.
    assert_eq!(open.activate(&uuid).await.0, 200);
    let got = from_url(&open, &uuid, q, json!({ "file_url": file_url })).await;
    assert_error(&got, 422, "ImageFilesImmutable", None);
}

#[tokio::test]
async fn add_file_from_url_redirects_are_checked_hop_by_hop() {
    let bytes = b"redirected bytes".to_vec();
    let b = bytes.clone();
    let fake_port = Arc::new(std::sync::OnceLock::<String>::new());
    let port = fake_port.clone();
    let handler: Handler = Arc::new(move |target: &str| {
        let here = port.get().cloned().unwrap_or_default();
        match target {
            "/file" => Reply::File {
                bytes: b.clone(),
                cut_at: None,
                delay: Duration::ZERO,
            },
            "/hop1" => Reply::Redirect(format!("{here}/hop2")),
            "/hop2" => Reply::Redirect(format!("{here}/file")),
            "/to-private" => Reply::Redirect("http://10.255.255.1/file".into()),
            "/to-localhost" => {
                Reply::Redirect(format!("{}/file", here.replace("127.0.0.1", "localhost")))
            }
            "/loop" => Reply::Redirect(format!("{here}/loop")),
            other => not_found(other),
        }
    });
    let fake = FakeSource::start(handler).await;
    fake_port.set(fake.url.clone()).unwrap();
    // Only 127.0.0.1 may be fetched from (and loopback is allowed).
    let s = TestServer::spawn_with(&format!(
        "{OPEN}allowed_hosts = [\"127.0.0.1\"]\nmax_redirects = 3\n"
    ))
    .await;
    let uuid = uuid_of(&s.create(json!({})).await);
    let q = "?compression=none";
    let url = |p: &str| json!({ "file_url": format!("{}{p}", fake.url) });
    for (path, rule) in [
        ("/to-private", "redirect to http://10.255.255.1/file refused: host 10.255.255.1 is not in [remote] allowed_hosts"),
        ("/to-localhost", "refused: host localhost is not in [remote] allowed_hosts"),
        ("/loop", "more than 3 redirects ([remote] max_redirects)"),
    ] {
        let got = from_url(&s, &uuid, q, url(path)).await;
        assert_error(&got, 400, "Download", None);
        let message = got.1["message"].as_str().unwrap();
        assert!(
            message.starts_with("Error getting image: ") && message.contains(rule),
            "{path}: {message}"
        );
    }
    // Allowed hops are followed (the original does not follow redirects).
    let (status, img) = from_url(&s, &uuid, q, url("/hop1")).await;
    assert_eq!(status, 200, "{img}");
    assert_eq!(img["files"][0]["sha1"], sha1_hex(&bytes));
    // A host outside the allow-list is refused before any request.
    let got = from_url(
        &s,
        &uuid,
        q,
        json!({"file_url": "https://images.example.com/f"}),
    )
    .await;
    assert_error(&got, 422, "InvalidParameter", None);
}

// ---------------------------------------------------------------------------
// ImportFromDatacenter (§5.21)

const DC: &str = "mode = \"dc\"\nadmin_uuid = \"930896af-bf8c-48d4-885c-6573a94b1853\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_datacenter_checks_and_copy() {
    let west = TestServer::spawn_with(&format!("{DC}datacenter_name = \"us-west-1\"\n")).await;
    // [datacenters] URLs are trusted configuration: no [remote] needed.
    let east = TestServer::spawn_with(&format!(
        "{DC}datacenter_name = \"us-east-1\"\n[datacenters]\nus-east-1 = \"http://127.0.0.1:1\"\nus-west-1 = \"{}\"\neu-central-1 = \"http://127.0.0.1:2\"\n",
        west.url
    ))
    .await;
    let base = publish_bytes(
        &west,
        json!({"name": "own-base", "public": false}),
        b"own base",
    )
    .await;
    let img = publish_bytes(
        &west,
        json!({"name": "own-app", "public": false, "origin": uuid_of(&base)}),
        b"own app",
    )
    .await;
    let uuid = uuid_of(&img);
    let go = |q: String| {
        let east = &east;
        let uuid = uuid.clone();
        async move {
            east.post_json(
                &format!("/images/{uuid}?action=import-from-datacenter{q}"),
                &json!({}),
            )
            .await
        }
    };
    let got = go(String::new()).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("invalid image \"account\" (not a UUID): undefined"),
    );
    let got = go("&account=nope".into()).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("invalid image \"account\" (not a UUID): nope"),
    );
    let got = go(format!("&account={OWNER}")).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("missing datacenter parameter"),
    );
    assert_eq!(got.1["errors"][0]["code"], "MissingParameter");
    let got = go(format!("&account={OWNER}&datacenter=mars")).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("datacenter \"mars\" is not supported, valid datacenters names are: eu-central-1, us-west-1"),
    );
    let got = go(format!("&account={OWNER}&datacenter=us-east-1")).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("cannot import into the same datacenter, valid datacenters names are: eu-central-1, us-west-1"),
    );
    // Not the owner; an unknown image (the remote's own 404, passed on).
    let got = go(format!("&account={BOB}&datacenter=us-west-1")).await;
    assert_eq!(
        got.0, 404,
        "not visible to BOB: the remote's 404: {}",
        got.1
    );
    assert_eq!(got.1["code"], "ResourceNotFound");
    let missing = new_uuid();
    let got = east
        .post_json(
            &format!("/images/{missing}?action=import-from-datacenter&account={OWNER}&datacenter=us-west-1"),
            &json!({}),
        )
        .await;
    assert_error(&got, 404, "ResourceNotFound", None);
    // A public image of someone else: visible, but not BOB's.
    let foreign = publish_bytes(&west, json!({"name": "public-one"}), b"pub").await;
    let got = east
        .post_json(
            &format!(
                "/images/{}?action=import-from-datacenter&account={BOB}&datacenter=us-west-1",
                uuid_of(&foreign)
            ),
            &json!({}),
        )
        .await;
    assert_error(
        &got,
        401,
        "UnauthorizedError",
        Some(&format!(
            "Cannot import image {} - you are not the owner.",
            uuid_of(&foreign)
        )),
    );
    // Not active.
    let draft = west.create(json!({"name": "draft", "public": false})).await;
    let got = east
        .post_json(
            &format!(
                "/images/{}?action=import-from-datacenter&account={OWNER}&datacenter=us-west-1",
                uuid_of(&draft)
            ),
            &json!({}),
        )
        .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some(&format!(
            "Cannot import image {} - image is not active.",
            uuid_of(&draft)
        )),
    );
    assert_eq!(got.1["errors"], json!([]));
    // An origin owned by someone else must already be here.
    let bobs_base = publish_bytes(&west, json!({"name": "bob-base", "owner": BOB}), b"bob").await;
    let on_bobs = publish_bytes(
        &west,
        json!({"name": "on-bobs", "public": false, "origin": uuid_of(&bobs_base)}),
        b"mine",
    )
    .await;
    let got = east
        .post_json(
            &format!(
                "/images/{}?action=import-from-datacenter&account={OWNER}&datacenter=us-west-1",
                uuid_of(&on_bobs)
            ),
            &json!({}),
        )
        .await;
    assert_error(
        &got,
        404,
        "ResourceNotFound",
        Some(&format!(
            "Unable to import - origin image {} must already exist in the datacenter (as this image is not owned by you).",
            uuid_of(&bobs_base)
        )),
    );

    // The copy: the image and its own origin, owner kept.
    let resp = east
        .post(&format!(
            "/images/{uuid}?action=import-from-datacenter&account={OWNER}&datacenter=us-west-1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("workflow-api")
            .and_then(|v| v.to_str().ok()),
        Some(east.url.as_str())
    );
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    let job_uuid = body["job_uuid"].as_str().unwrap().to_string();
    let job = wait_job(&east, &uuid, &job_uuid).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    assert_eq!(job["params"]["account"], OWNER);
    assert_eq!(job["params"]["datacenter"], "us-west-1");
    for src in [&base, &img] {
        let id = uuid_of(src);
        let (status, local) = east
            .get_json(&format!("/images/{id}?account={OWNER}"))
            .await;
        assert_eq!(status, 200, "{local}");
        assert_eq!(local["state"], "active");
        assert_eq!(local["owner"], OWNER);
        assert_eq!(local["public"], false);
        assert_eq!(local["published_at"], src["published_at"]);
        assert_eq!(local["files"][0]["sha1"], src["files"][0]["sha1"]);
    }
    // The account sees its job.
    let (status, jobs) = east
        .get_json(&format!("/images/{uuid}/jobs?account={OWNER}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(jobs[0]["uuid"], job_uuid.as_str());
    // Now here: 409.
    let got = go(format!("&account={OWNER}&datacenter=us-west-1")).await;
    assert_error(&got, 409, "ImageUuidAlreadyExists", None);
}

// ---------------------------------------------------------------------------
// Several instances on one PostgreSQL + one bucket

/// The instance running a job stops mid-transfer: another instance takes
/// the job over (at its next look for jobs) and it runs exactly once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_takes_over_a_job() {
    let Some((admin_url, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: needs IMGAPI_TEST_PG_URL and IMGAPI_TEST_S3_* (set by .ci/run)");
        return;
    };
    let db = create_database(&admin_url);
    let prefix = format!("takeover-{}", uuid::Uuid::new_v4().simple());
    let toml = format!(
        "database_url = {db:?}\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n{OPEN}"
    );
    let first = TestServer::spawn_raw(&toml).await;
    let others = [
        TestServer::spawn_raw(&toml).await,
        TestServer::spawn_raw(&toml).await,
    ];
    let image_bytes: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let bytes = image_bytes.clone();
    let (fake, _origin, image) = fake_pair(
        b"origin".to_vec(),
        image_bytes.clone(),
        Arc::new(move || Reply::File {
            bytes: bytes.clone(),
            cut_at: None,
            delay: Duration::from_millis(30),
        }),
    )
    .await;
    let job_uuid = started(&first, &image, &fake.url).await;
    for _ in 0..300 {
        if fake.sent.load(Ordering::SeqCst) > 150_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await;
    let job = wait_job(&others[0], &image, &job_uuid).await;
    assert_eq!(job["execution"], "succeeded", "{job:#}");
    let adds = job["chain_results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "add_file" && s["image_uuid"] == image.as_str())
        .count();
    assert_eq!(
        adds, 2,
        "interrupted once, then run by one instance: {job:#}"
    );
    assert_eq!(fake.file_requests.load(Ordering::SeqCst), 3);
    for s in &others {
        let got = get_bytes(s, &format!("/images/{image}/file")).await;
        assert_eq!(got, image_bytes);
    }
}
