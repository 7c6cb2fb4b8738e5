//! TestServer and request helpers.

use std::path::{Path, PathBuf};

use imgapi_server::{AppState, Config};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const OWNER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
pub const BOB: &str = "91ba0e64-2547-11e2-a972-df579e5fddb3";
pub const CAROL: &str = "a0b6b534-2547-11e2-b758-63a2afd747d1";

pub struct TestServer {
    pub url: String,
    pub client: Client,
    pub dir: Option<TempDir>,
    pub data_dir: PathBuf,
    /// The configuration the server runs with (for tools opening the
    /// same stores, such as `imgapi mirror`).
    pub config_toml: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Public mode, no channels.
    pub async fn spawn() -> TestServer {
        Self::spawn_with("").await
    }

    pub async fn spawn_with(extra_toml: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let mut server = Self::spawn_in(&data_dir, extra_toml).await;
        server.dir = Some(dir);
        server
    }

    /// A server configured by `toml` alone (no backend overrides), on a
    /// temp data dir: for tests that wire several servers together.
    pub async fn spawn_raw(toml: &str) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let full = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\n{toml}",
            dir.path().display().to_string()
        );
        let mut server = Self::start(&full, dir.path()).await;
        server.dir = Some(dir);
        server
    }

    /// A server on an existing data dir (restarts).
    pub async fn spawn_in(data_dir: &Path, extra_toml: &str) -> TestServer {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\n{}{extra_toml}\n{}",
            data_dir.display().to_string(),
            pg_override(data_dir),
            s3_override(data_dir),
        );
        Self::start(&toml, data_dir).await
    }

    async fn start(toml: &str, data_dir: &Path) -> TestServer {
        let config = Config::from_toml(toml).unwrap();
        let app = AppState::open(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            imgapi_server::serve(app, listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            url: format!("http://{addr}"),
            client: Client::new(),
            dir: None,
            data_dir: data_dir.to_path_buf(),
            config_toml: toml.to_string(),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stop the server gracefully; returns the temp dir so data survives.
    pub async fn stop(mut self) -> Option<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.dir.take()
    }

    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.req(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.req(Method::DELETE, path)
    }

    /// POST JSON and return (status, body).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        status_json(self.post(path).json(body).send().await.unwrap()).await
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        status_json(self.get(path).send().await.unwrap()).await
    }

    /// CreateImage with a valid public-mode manifest plus `extra` fields.
    pub async fn create(&self, extra: Value) -> Value {
        let mut body = manifest();
        merge(&mut body, extra);
        let (status, img) = self.post_json("/images", &body).await;
        assert_eq!(status, 200, "create failed: {img}");
        img
    }

    pub async fn upload(&self, uuid: &str, bytes: Vec<u8>) -> (u16, Value) {
        status_json(
            self.put(&format!("/images/{uuid}/file?compression=gzip"))
                .body(bytes)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn activate(&self, uuid: &str) -> (u16, Value) {
        self.post_json(&format!("/images/{uuid}?action=activate"), &json!({}))
            .await
    }

    /// Create, upload and activate; returns the active image.
    pub async fn publish(&self, extra: Value) -> Value {
        let img = self.create(extra).await;
        let uuid = img["uuid"].as_str().unwrap().to_string();
        let (s, _) = self.upload(&uuid, b"image bytes".to_vec()).await;
        assert_eq!(s, 200);
        let (s, img) = self.activate(&uuid).await;
        assert_eq!(s, 200, "{img}");
        img
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn status_json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A valid public-mode manifest.
pub fn manifest() -> Value {
    json!({
        "name": "base",
        "version": "1.0.0",
        "type": "zone-dataset",
        "os": "smartos",
        "owner": OWNER,
        "public": true
    })
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

pub fn uuid_of(img: &Value) -> String {
    img["uuid"].as_str().unwrap().to_string()
}

/// Assert an error response: status, restCode, and optionally the message.
pub fn assert_error(got: &(u16, Value), status: u16, code: &str, message: Option<&str>) {
    assert_eq!(got.0, status, "unexpected status, body: {}", got.1);
    assert_eq!(got.1["code"], code, "body: {}", got.1);
    if let Some(m) = message {
        assert_eq!(got.1["message"], m, "body: {}", got.1);
    }
}

/// Config lines that point a test server at the scale-out backends when
/// `.ci/run` asks for them (`IMGAPI_TEST_PG_URL` = an admin URL of a
/// PostgreSQL server): every server gets a database of its own, created here
/// (or reused by a restart on the same data dir). Empty = SQLite + local disk.
/// `IMGAPI_TEST_S3_ENDPOINT` + `IMGAPI_TEST_S3_BUCKET` (credentials in the
/// AWS_* variables): files go to that bucket under a prefix of their own.
fn s3_override(data_dir: &Path) -> String {
    #[allow(clippy::disallowed_methods)] // test harness switch, not server config
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("IMGAPI_TEST_S3_ENDPOINT"),
        std::env::var("IMGAPI_TEST_S3_BUCKET"),
    ) else {
        return String::new();
    };
    let marker = data_dir.join("s3-prefix");
    let prefix = std::fs::read_to_string(&marker).unwrap_or_else(|_| {
        let p = format!("it-{}", uuid::Uuid::new_v4().simple());
        std::fs::write(&marker, &p).unwrap();
        p
    });
    format!(
        "[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n"
    )
}

fn pg_override(data_dir: &Path) -> String {
    #[allow(clippy::disallowed_methods)] // test harness switch, not server config
    let Ok(admin_url) = std::env::var("IMGAPI_TEST_PG_URL") else {
        return String::new();
    };
    // A restart on the same data dir finds its database again.
    let marker = data_dir.join("pg-database-url");
    let url = std::fs::read_to_string(&marker).unwrap_or_else(|_| {
        let url = create_database(&admin_url);
        std::fs::write(&marker, &url).unwrap();
        url
    });
    format!("database_url = \"{url}\"\n")
}

/// The `stor` name of the blob backend the suite runs on.
/// `(admin PostgreSQL URL, S3 endpoint, S3 bucket)` when the suite runs on
/// the scale-out backends.
pub fn scale_out_env() -> Option<(String, String, String)> {
    #[allow(clippy::disallowed_methods)] // test harness switch
    let get = |k: &str| std::env::var(k).ok();
    Some((
        get("IMGAPI_TEST_PG_URL")?,
        get("IMGAPI_TEST_S3_ENDPOINT")?,
        get("IMGAPI_TEST_S3_BUCKET")?,
    ))
}

/// A fresh, empty database on the test PostgreSQL server; returns its URL.
pub fn create_database(admin_url: &str) -> String {
    let name = format!("imgapi_it_{}", uuid::Uuid::new_v4().simple());
    let out = std::process::Command::new("psql")
        .args([admin_url, "-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql must be installed to run the suite on PostgreSQL");
    assert!(out.status.success(), "CREATE DATABASE failed: {out:?}");
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    format!("{base}/{name}")
}

pub fn expected_stor() -> &'static str {
    #[allow(clippy::disallowed_methods)] // test harness switch
    let s3 = std::env::var("IMGAPI_TEST_S3_ENDPOINT").is_ok();
    if s3 {
        "s3"
    } else {
        "local"
    }
}

/// The path of `cmd` on `PATH`, if installed.
pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(cmd))
            .find(|p| p.is_file())
    })
}

/// A self-signed certificate for `names`, written to `dir` as `cert.pem`
/// and `key.pem`.
pub struct SelfSigned {
    pub cert: rcgen::Certificate,
    pub cert_path: PathBuf,
    /// The `tls_cert` / `tls_key` lines that serve it.
    pub config: String,
}

impl SelfSigned {
    pub fn write(dir: &Path, names: &[&str]) -> SelfSigned {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, made.cert.pem()).unwrap();
        std::fs::write(&key_path, made.signing_key.serialize_pem()).unwrap();
        let config = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert_path.display().to_string(),
            key_path.display().to_string()
        );
        SelfSigned {
            cert: made.cert,
            cert_path,
            config,
        }
    }

    /// A rustls client configuration that trusts this certificate only.
    pub fn client_config(&self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
    }
}

/// The `imgapi` binary run with `args` (`IMGAPI_CONFIG` unset): its exit
/// code, stdout and stderr.
pub async fn run_imgapi(args: Vec<String>) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .args(&args)
        .env_remove("IMGAPI_CONFIG")
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The arguments of `imgapi mirror --config CFG EXTRA…`.
pub fn mirror_args(cfg: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "mirror".to_string(),
        "--config".into(),
        cfg.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}
