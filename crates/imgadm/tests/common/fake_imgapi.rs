//! A fake IMGAPI for the docker verbs: it records every request (method,
//! path, query, headers, body) and answers each with one canned reply:
//! a `200` streaming the given chunks (each written and flushed on its
//! own, so messages can be split anywhere), optionally never ending, or an
//! error status with a JSON body.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

/// What the fake answers every request with.
#[derive(Clone)]
pub enum Reply {
    /// 200, `application/json`, the chunks in turn; with `hold`, the answer
    /// then stays open (until the client goes away).
    Stream { chunks: Vec<String>, hold: bool },
    /// An error status and its JSON body.
    Error(u16, String),
}

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct FakeImgapi {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    _rt: tokio::runtime::Runtime,
}

impl FakeImgapi {
    pub fn start(reply: Reply) -> FakeImgapi {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let url = rt.block_on(async move {
            let app = axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let log = Arc::clone(&log);
                    let reply = reply.clone();
                    async move {
                        log.lock()
                            .unwrap()
                            .push(record(&method, &uri, &headers, &body));
                        respond(reply)
                    }
                },
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        });
        FakeImgapi {
            url,
            received,
            _rt: rt,
        }
    }

    /// The one request received (fails unless there was exactly one).
    pub fn only_request(&self) -> Received {
        let all = self.received.lock().unwrap().clone();
        assert_eq!(all.len(), 1, "{all:#?}");
        all[0].clone()
    }

    pub fn request_count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

fn record(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Received {
    let query = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        query,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

fn respond(reply: Reply) -> Response {
    match reply {
        Reply::Error(status, body) => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
        Reply::Stream { chunks, hold } => {
            let chunks = futures_util::stream::iter(
                chunks
                    .into_iter()
                    .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
            );
            let body = if hold {
                Body::from_stream(futures_util::StreamExt::chain(
                    chunks,
                    futures_util::stream::pending(),
                ))
            } else {
                Body::from_stream(chunks)
            };
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(body)
                .unwrap()
        }
    }
}
