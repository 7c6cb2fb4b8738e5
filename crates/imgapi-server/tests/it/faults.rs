//! Backend outages: with PostgreSQL or the S3 store cut
//! off, requests fail fast with 503 and the documented restCode; when the
//! backend returns, the server recovers by itself.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::*;

/// What the proxy does with traffic, as a backend would.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Up,
    /// Stopped: connections cut, new ones refused in effect.
    Down,
    /// Frozen (SIGSTOP): connections stay open, bytes are taken but
    /// nothing is forwarded or answered until it thaws; then everything
    /// flows on, as after SIGCONT.
    Frozen,
}

/// A TCP proxy in front of a backend that can stop or freeze it.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Proxy {
    pub(crate) async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Up);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut rx = rx.clone();
                if *rx.borrow() == Mode::Down {
                    continue; // dropped: connection refused in effect
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if !thawed(&mut rx).await {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, rx.clone()),
                        pump(server_read, client_write, rx),
                    );
                });
            }
        });
        Proxy { addr, mode }
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        let _ = self.mode.send(mode);
    }

    pub(crate) fn set(&self, up: bool) {
        self.set_mode(if up { Mode::Up } else { Mode::Down });
    }
}

/// Wait while frozen; false once down.
async fn thawed(mode: &mut watch::Receiver<Mode>) -> bool {
    match mode.wait_for(|m| *m != Mode::Frozen).await {
        Ok(m) => *m == Mode::Up,
        Err(_) => false,
    }
}

/// Copy one direction, holding bytes while frozen; ends (closing both
/// halves) when the proxy goes down.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut down = mode.clone();
    let went_down = async move {
        let _ = down.wait_for(|m| *m == Mode::Down).await;
    };
    let copy = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !thawed(&mut mode).await || to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::select! {
        () = copy => {}
        () = went_down => {}
    }
}

pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_string()
}

/// Poll `check` until it is true or `limit` passes; returns the time taken.
pub(crate) async fn within(
    limit: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// One request's answer and how long it took.
async fn timed(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, retry_after, body, started.elapsed())
}

/// What an outage test measured, printed for the record before anything
/// is asserted.
struct Outage {
    name: &'static str,
    /// (request, status, restCode, Retry-After, latency)
    answers: Vec<(String, u16, String, Option<String>, Duration)>,
    healed_after: Option<Duration>,
}

impl Outage {
    fn new(name: &'static str) -> Self {
        Outage {
            name,
            answers: Vec::new(),
            healed_after: None,
        }
    }

    async fn ask(&mut self, what: &str, request: reqwest::RequestBuilder) {
        let (status, retry_after, body, took) = timed(request).await;
        let code = body["code"].as_str().unwrap_or("").to_string();
        self.answers
            .push((what.to_string(), status, code, retry_after, took));
    }

    /// Every answer a 503 `code` with Retry-After: the first within
    /// `first`, the rest within `rest`; healed within `heal`.
    fn check(&self, code: &str, first: Duration, rest: Duration, heal: Duration) {
        for (what, status, got, retry_after, took) in &self.answers {
            eprintln!(
                "[outage] {}: {what} -> {status} {got} Retry-After={retry_after:?} in {} ms",
                self.name,
                took.as_millis()
            );
        }
        eprintln!(
            "[outage] {}: healed after {:?} ms",
            self.name,
            self.healed_after.map(|d| d.as_millis())
        );
        for (i, (what, status, got, retry_after, took)) in self.answers.iter().enumerate() {
            assert_eq!(
                (*status, got.as_str()),
                (503, code),
                "{}: {what}",
                self.name
            );
            assert_eq!(retry_after.as_deref(), Some("1"), "{}: {what}", self.name);
            let limit = if i == 0 { first } else { rest };
            assert!(
                *took <= limit,
                "{}: {what} took {took:?} (limit {limit:?})",
                self.name
            );
        }
        let healed = self.healed_after.unwrap_or(Duration::MAX);
        assert!(
            healed <= heal,
            "{}: healed after {healed:?} (limit {heal:?})",
            self.name
        );
    }
}

/// Generous for a loaded CI machine; the printed figures are the record.
const FIRST_WITHIN: Duration = Duration::from_millis(1500);
const NEXT_WITHIN: Duration = Duration::from_millis(1000);
const HEAL_WITHIN: Duration = Duration::from_secs(3);

async fn database_outage(mode: Mode, name: &'static str) {
    let Some((admin_url, _, _)) = scale_out_env() else {
        eprintln!("SKIP: outage test needs IMGAPI_TEST_PG_URL (set by .ci/run)");
        return;
    };
    let db = create_database(&admin_url);
    let real = host_port(&db);
    let proxy = Proxy::start(real.clone()).await;
    let proxied = db.replacen(&real, &proxy.addr.to_string(), 1);
    let s = TestServer::spawn_raw(&format!(
        "mode = \"dc\"\nmetrics_on_main = true\ndatabase_url = {proxied:?}\n"
    ))
    .await;
    let uuid = uuid_of(&s.create(json!({})).await);
    assert_breaker_metrics(&s, "meta", "postgres", 0).await;

    proxy.set_mode(mode);
    let mut outage = Outage::new(name);
    outage
        .ask("GetImage", s.get(&format!("/images/{uuid}")))
        .await;
    outage.ask("ListImages", s.get("/images")).await;
    let mut body = manifest();
    merge(&mut body, json!({}));
    outage
        .ask("CreateImage", s.post("/images").json(&body))
        .await;
    outage
        .ask(
            "UpdateImage",
            s.post(&format!("/images/{uuid}?action=update"))
                .json(&json!({"description": "x"})),
        )
        .await;
    outage
        .ask("GetImage again", s.get(&format!("/images/{uuid}")))
        .await;

    proxy.set_mode(Mode::Up);
    outage.healed_after = within(Duration::from_secs(20), async || {
        s.get_json(&format!("/images/{uuid}")).await.0 == 200
    })
    .await;
    outage.check(
        "ServiceUnavailableError",
        FIRST_WITHIN,
        NEXT_WITHIN,
        HEAL_WITHIN,
    );
    // Nothing half-written: the image is as it was, writes work again.
    let (status, image) = s.get_json(&format!("/images/{uuid}")).await;
    assert_eq!(status, 200);
    assert!(
        image.get("description").is_none() || image["description"] != "x",
        "{image}"
    );
    assert_eq!(s.create(json!({})).await["state"], "unactivated");
    assert_breaker_metrics(&s, "meta", "postgres", 1).await;
}

/// The breaker's series: closed now, opened `outages` times so far.
async fn assert_breaker_metrics(s: &TestServer, backend: &str, store: &str, outages: u32) {
    let text = s
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = format!("{{backend=\"{backend}\",store=\"{store}\"}}");
    for (name, want) in [
        ("imgapi_backend_outages_total", outages),
        ("imgapi_backend_unreachable", 0),
    ] {
        let line = format!("{name}{labels} {want}\n");
        assert!(text.contains(&line), "no `{}` in\n{text}", line.trim());
    }
}

#[tokio::test]
async fn a_stopped_database_is_a_fast_503_and_heals() {
    database_outage(Mode::Down, "database stopped").await;
}

#[tokio::test]
async fn a_frozen_database_is_a_fast_503_and_heals() {
    database_outage(Mode::Frozen, "database frozen").await;
}

async fn storage_outage(mode: Mode, name: &'static str) {
    let Some((_, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: outage test needs IMGAPI_TEST_S3_* (set by .ci/run)");
        return;
    };
    let real = host_port(&endpoint);
    let proxy = Proxy::start(real).await;
    let prefix = format!("outage-{}", uuid::Uuid::new_v4().simple());
    let s = TestServer::spawn_raw(&format!(
        "mode = \"dc\"\nmetrics_on_main = true\n[storage]\nkind = \"s3\"\nendpoint = \"http://{}\"\nbucket = {bucket:?}\nprefix = {prefix:?}\n",
        proxy.addr
    ))
    .await;
    let uuid = uuid_of(&s.publish(json!({})).await);
    let fresh = uuid_of(&s.create(json!({})).await);
    assert_breaker_metrics(&s, "blob", "s3", 0).await;

    proxy.set_mode(mode);
    let mut outage = Outage::new(name);
    outage
        .ask("GetImageFile", s.get(&format!("/images/{uuid}/file")))
        .await;
    outage
        .ask(
            "AddImageFile",
            s.put(&format!("/images/{fresh}/file?compression=gzip"))
                .body(vec![7u8; 1 << 20]),
        )
        .await;
    outage
        .ask("GetImageFile again", s.get(&format!("/images/{uuid}/file")))
        .await;
    // Metadata still answers while the store is away.
    assert_eq!(s.get_json(&format!("/images/{uuid}")).await.0, 200);

    proxy.set_mode(Mode::Up);
    outage.healed_after = within(Duration::from_secs(20), async || {
        let resp = s.get(&format!("/images/{uuid}/file")).send().await.unwrap();
        resp.status() == 200 && &resp.bytes().await.unwrap()[..] == b"image bytes"
    })
    .await;
    outage.check("StorageIsDown", FIRST_WITHIN, NEXT_WITHIN, HEAL_WITHIN);
    let (status, _) = s.upload(&fresh, b"after".to_vec()).await;
    assert_eq!(status, 200, "uploads work again");
    assert_breaker_metrics(&s, "blob", "s3", 1).await;
}

#[tokio::test]
async fn a_stopped_store_is_a_fast_503_and_heals() {
    storage_outage(Mode::Down, "storage stopped").await;
}

#[tokio::test]
async fn a_frozen_store_is_a_fast_503_and_heals() {
    storage_outage(Mode::Frozen, "storage frozen").await;
}
