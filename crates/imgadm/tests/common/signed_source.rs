//! A source serving images with signatures exactly as a test sets them up:
//! a mirror that may lie (a changed manifest, a changed file, someone
//! else's signatures), or an IMGAPI without the signatures extension.
//! `POST /images/:uuid/signatures` verifies and stores as the real server
//! does (422 InvalidSignature), so `imgadm sign` can be checked against it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use sha1::Digest as _;

/// One image as served.
#[derive(Clone)]
pub struct Served {
    pub manifest: Value,
    pub file: Vec<u8>,
    /// `None`: the signatures path is a 404 (no extension).
    pub statement: Option<Option<String>>,
    /// Armored signatures served (each as an ImageSignature with
    /// `valid: true`, whatever it is).
    pub signatures: Vec<String>,
}

#[derive(Default)]
struct Inner {
    images: HashMap<String, Served>,
    /// Paths of the `/file` requests, in order.
    file_requests: Vec<String>,
}

pub struct SignedSource {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    _rt: tokio::runtime::Runtime,
}

impl SignedSource {
    pub fn start() -> SignedSource {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = Arc::clone(&inner);
        let url = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = axum::Router::new().fallback(serve).with_state(state);
            tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            format!("http://{addr}")
        });
        SignedSource {
            url,
            inner,
            _rt: rt,
        }
    }

    pub fn put(&self, served: Served) {
        let uuid = served.manifest["uuid"].as_str().unwrap().to_string();
        self.inner.lock().unwrap().images.insert(uuid, served);
    }

    pub fn get(&self, uuid: &str) -> Served {
        self.inner.lock().unwrap().images[uuid].clone()
    }

    /// How many file downloads were asked for.
    pub fn file_requests(&self) -> usize {
        self.inner.lock().unwrap().file_requests.len()
    }
}

fn answer(status: StatusCode, body: Vec<u8>, content_type: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap()
}

fn json_answer(status: StatusCode, v: &Value) -> Response {
    answer(status, v.to_string().into_bytes(), "application/json")
}

fn not_found(message: String) -> Response {
    json_answer(
        StatusCode::NOT_FOUND,
        &json!({"code": "ResourceNotFound", "message": message}),
    )
}

/// The ImageSignature of `armored` as a server would list it.
pub fn signature_object(armored: &str) -> Value {
    let sig = ssh_key::SshSig::from_pem(armored.trim());
    let (id, fingerprint, algorithm, public_key) = match sig {
        Ok(sig) => {
            let key = ssh_key::PublicKey::from(sig.public_key().clone());
            (
                imgapi_signing::key_id(key.key_data()),
                key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
                key.algorithm().as_str().to_string(),
                key.to_openssh().unwrap(),
            )
        }
        // A damaged signature still gets listed (a lying mirror).
        Err(_) => (
            "0".repeat(64),
            String::new(),
            "unknown".into(),
            String::new(),
        ),
    };
    json!({
        "id": id, "fingerprint": fingerprint, "algorithm": algorithm,
        "public_key": public_key, "signature": armored, "valid": true,
        "added_at": "2026-01-01T00:00:00.000Z", "added_by": "operator"
    })
}

async fn serve(State(inner): State<Arc<Mutex<Inner>>>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if parts.first() != Some(&"images") || parts.len() < 2 {
        return not_found(format!("{path} does not exist"));
    }
    let uuid = parts[1].to_string();
    let Some(image) = inner.lock().unwrap().images.get(&uuid).cloned() else {
        return not_found(format!("image {uuid} not found"));
    };
    match (method, &parts[2..]) {
        (Method::GET, []) => json_answer(StatusCode::OK, &image.manifest),
        (Method::GET, ["file"]) => {
            inner.lock().unwrap().file_requests.push(path.clone());
            answer(
                StatusCode::OK,
                image.file.clone(),
                "application/octet-stream",
            )
        }
        (Method::GET, ["signatures"]) => match &image.statement {
            None => not_found(format!("{path} does not exist")),
            Some(statement) => json_answer(
                StatusCode::OK,
                &json!({
                    "uuid": uuid, "statement": statement,
                    "signatures": image.signatures.iter().map(|s| signature_object(s)).collect::<Vec<_>>()
                }),
            ),
        },
        (Method::POST, ["signatures"]) => {
            let Some(Some(statement)) = image.statement.clone() else {
                return not_found(format!("{path} does not exist"));
            };
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            let armored = body["signature"].as_str().unwrap_or_default().to_string();
            match imgapi_signing::verify(statement.as_bytes(), &armored) {
                Err(e) => json_answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({"code": "InvalidSignature", "message": e.to_string()}),
                ),
                Ok(_) => {
                    let mut guard = inner.lock().unwrap();
                    let stored = guard.images.get_mut(&uuid).unwrap();
                    stored.signatures.push(armored.clone());
                    json_answer(StatusCode::OK, &signature_object(&armored))
                }
            }
        }
        _ => not_found(format!("{path} does not exist")),
    }
}

/// A manifest for `file`, as a source serves it.
pub fn manifest(uuid: &str, name: &str, file: &[u8], origin: Option<&str>) -> Value {
    let mut m = json!({
        "v": 2, "uuid": uuid, "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
        "name": name, "version": "1.0.0", "state": "active", "disabled": false,
        "public": true, "published_at": "2026-01-01T00:00:00Z",
        "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": hex::encode(sha1::Sha1::digest(file)), "size": file.len(), "compression": "none"}]
    });
    if let Some(o) = origin {
        m["origin"] = json!(o);
    }
    m
}

/// The statement of `manifest` with `file`, as docs/signing.md defines it.
pub fn statement(manifest: &Value, file: &[u8]) -> String {
    use sha2::Digest as _;
    let s = |k: &str| manifest[k].as_str().unwrap().to_string();
    imgapi_signing::Statement {
        uuid: s("uuid"),
        owner: s("owner"),
        name: s("name"),
        version: s("version"),
        image_type: s("type"),
        os: s("os"),
        origin: manifest["origin"].as_str().map(str::to_string),
        files: vec![imgapi_signing::FileDigest {
            sha256: hex::encode(sha2::Sha256::digest(file)),
            size: file.len() as u64,
        }],
    }
    .to_text()
    .unwrap()
}
