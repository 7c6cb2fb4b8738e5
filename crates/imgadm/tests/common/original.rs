//! An "original IMGAPI" serving one image (manifest and file) without the
//! lifecycle extension: every other path, the lifecycle one included, is a
//! 404 ResourceNotFound as the original answers it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use serde_json::Value;

pub struct Original {
    pub url: String,
    asked: Arc<AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

impl Original {
    /// Whether a lifecycle path was requested.
    pub fn lifecycle_asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Image {
    uuid: String,
    manifest: Arc<Value>,
    file: Arc<Vec<u8>>,
    asked: Arc<AtomicBool>,
}

fn answer(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap()
}

async fn serve(State(img): State<Image>, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    if path == format!("/images/{}", img.uuid) {
        return answer(
            StatusCode::OK,
            "application/json",
            img.manifest.to_string().into_bytes(),
        );
    }
    if path == format!("/images/{}/file", img.uuid) {
        return answer(
            StatusCode::OK,
            "application/octet-stream",
            img.file.to_vec(),
        );
    }
    if path.ends_with("/lifecycle") {
        img.asked.store(true, Ordering::SeqCst);
    }
    let body = format!(r#"{{"code":"ResourceNotFound","message":"{path} does not exist"}}"#);
    answer(StatusCode::NOT_FOUND, "application/json", body.into_bytes())
}

/// Serve the image `manifest` with `file` as its file.
pub fn serving(manifest: Value, file: Vec<u8>) -> Original {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let asked = Arc::new(AtomicBool::new(false));
    let state = Image {
        uuid: manifest["uuid"].as_str().unwrap().to_string(),
        manifest: Arc::new(manifest),
        file: Arc::new(file),
        asked: Arc::clone(&asked),
    };
    let url = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(serve).with_state(state);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        format!("http://{addr}")
    });
    Original {
        url,
        asked,
        _rt: rt,
    }
}
