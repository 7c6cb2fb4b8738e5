//! Webhooks (docs/webhooks.md): a receiver of the test's own (axum on
//! 127.0.0.1) checks every signature and records every delivery. Events
//! arrive in order; a receiver that was down (refusing connections, then
//! answering 500) gets everything, also across a server restart; an
//! instance killed mid-delivery is taken over (PostgreSQL); dead-letter and
//! resume; the `[remote]` policy; the test action; operators only. Runs on
//! the suite's backend pair (SQLite + local, or PostgreSQL + S3).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use crate::remote_import::OPEN;
use crate::support::*;

const SECRET: &str = "receiver s3cret";

/// What the receiver answers.
const ANSWER_OK: u8 = 0;
const ANSWER_500: u8 = 1;
/// Answer 204 after a pause (a delivery in flight for a while).
const ANSWER_SLOW: u8 = 2;

#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    body: Value,
}

#[derive(Default)]
struct Inbox {
    answer: AtomicU8,
    bad_signatures: AtomicUsize,
    received: Mutex<Vec<Received>>,
}

/// A webhook receiver on a fixed 127.0.0.1 port; `stop` makes the port
/// refuse connections, `start` serves it again.
struct Receiver {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn receive(
    State(inbox): State<Arc<Inbox>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let expected = imgapi_server::service::webhooks::signature(SECRET, &body);
    if header("x-imgapi-signature") != expected || header("content-type") != "application/json" {
        inbox.bad_signatures.fetch_add(1, Ordering::SeqCst);
    }
    let answer = inbox.answer.load(Ordering::SeqCst);
    if answer != ANSWER_500 {
        inbox.received.lock().unwrap().push(Received {
            delivery: header("x-imgapi-delivery"),
            event: header("x-imgapi-event"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
    }
    if answer == ANSWER_SLOW {
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let status = if answer == ANSWER_500 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    // No keep-alive: a stopped receiver refuses the next delivery.
    (status, [("connection", "close")], "")
}

impl Receiver {
    async fn new() -> Receiver {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let mut r = Receiver {
            addr,
            inbox: Arc::new(Inbox::default()),
            task: None,
        };
        r.start().await;
        r
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::clone(&self.inbox));
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    fn answer(&self, answer: u8) {
        self.inbox.answer.store(answer, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// Deliveries, first occurrence of each delivery id only.
    fn distinct(&self) -> Vec<Received> {
        let mut seen = std::collections::BTreeSet::new();
        self.received()
            .into_iter()
            .filter(|r| seen.insert(r.delivery.clone()))
            .collect()
    }

    async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.distinct();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn assert_signatures(&self) {
        assert_eq!(
            self.inbox.bad_signatures.load(Ordering::SeqCst),
            0,
            "every delivery carries a valid signature"
        );
    }
}

async fn add_hook(s: &TestServer, body: Value) -> Value {
    let (status, hook) = s.post_json("/webhooks", &body).await;
    assert_eq!(status, 201, "AddWebhook: {hook}");
    assert_eq!(hook["secret"], "set", "the secret is never shown: {hook}");
    assert!(!hook.to_string().contains(SECRET), "{hook}");
    hook
}

/// The events received, checked against their headers: `(seq, type)`.
fn seqs(hook_id: &str, got: &[Received]) -> Vec<(i64, String)> {
    got.iter()
        .map(|r| {
            let seq = r.body["seq"].as_i64().unwrap();
            assert_eq!(r.delivery, format!("{hook_id}:{seq}"), "delivery id");
            assert_eq!(r.event, r.body["type"].as_str().unwrap(), "event header");
            (seq, r.event.clone())
        })
        .collect()
}

async fn wait_state(s: &TestServer, id: &str, state: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, hook) = s.get_json(&format!("/webhooks/{id}")).await;
        assert_eq!(status, 200, "{hook}");
        if hook["state"] == state || Instant::now() > deadline {
            return hook;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The endpoint once it has recorded every event of the log (the
/// receiver sees a body before the server has recorded its answer).
async fn wait_caught_up(base: &str, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let resp = reqwest::get(format!("{base}/webhooks/{id}")).await.unwrap();
        let (status, hook) = status_json(resp).await;
        assert_eq!(status, 200, "{hook}");
        if hook["lag"] == 0 || Instant::now() > deadline {
            return hook;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (a) create / file / activate / update / delete arrive in order, signed,
/// each within about a second; (f) the test action; the secret is never
/// shown; unknown ids are 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_signed() {
    let receiver = Receiver::new().await;
    let s = TestServer::spawn_with(OPEN).await;
    let hook = add_hook(
        &s,
        json!({"name": "ci", "url": receiver.url(), "secret": SECRET}),
    )
    .await;
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["state"], "active");
    assert_eq!(hook["source"], "api");
    assert_eq!(hook["lag"], 0);

    let started = Instant::now();
    let uuid = uuid_of(&s.create(json!({"name": "hooked"})).await);
    let first = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(first.len(), 1, "the create was delivered");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a live receiver gets an event within about a second: {:?}",
        started.elapsed()
    );
    assert_eq!(first[0].body["uuid"], uuid.as_str());
    assert_eq!(first[0].body["name"], "hooked");

    assert_eq!(s.upload(&uuid, b"bytes".to_vec()).await.0, 200);
    assert_eq!(s.activate(&uuid).await.0, 200);
    let (status, _) = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"description": "new words"}),
        )
        .await;
    assert_eq!(status, 200);
    let resp = s.delete(&format!("/images/{uuid}")).send().await.unwrap();
    assert_eq!(resp.status(), 204);

    let got = receiver.wait_for(5, Duration::from_secs(10)).await;
    let got = seqs(&id, &got);
    let kinds: Vec<&str> = got.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "image.created",
            "image.file_added",
            "image.activated",
            "image.updated",
            "image.deleted"
        ]
    );
    assert!(
        got.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "gapless, in order: {got:?}"
    );
    receiver.assert_signatures();
    assert_eq!(
        receiver.received().len(),
        5,
        "no repeats on a healthy receiver"
    );

    let hook = wait_caught_up(&s.url, &id, Duration::from_secs(5)).await;
    assert_eq!(hook["state"], "active");
    assert_eq!(hook["delivered"], 5);
    assert_eq!(hook["lag"], 0);
    assert_eq!(hook["cursor"], got[4].0);
    assert_eq!(hook["last_status"], 204);

    // (f) The test action: signed, its own delivery id, state unchanged.
    let (status, result) = s
        .post_json(&format!("/webhooks/{id}?action=test"), &json!({}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["status"], 204);
    let test = receiver.received().pop().unwrap();
    assert_eq!(test.event, "webhook.test");
    assert_eq!(test.body["type"], "webhook.test");
    assert_eq!(test.delivery, result["delivery"].as_str().unwrap());
    assert!(test.delivery.starts_with(&format!("{id}:test-")));
    receiver.assert_signatures();
    receiver.answer(ANSWER_500);
    let (_, result) = s
        .post_json(&format!("/webhooks/{id}?action=test"), &json!({}))
        .await;
    assert_eq!(
        (result["ok"].clone(), result["status"].clone()),
        (json!(false), json!(500))
    );
    assert!(
        result["error"].as_str().unwrap().contains("HTTP 500"),
        "{result}"
    );
    let (_, after) = s.get_json(&format!("/webhooks/{id}")).await;
    assert_eq!(after["failures"], 0, "a test does not count: {after}");

    // The list, a filter, 404s, delete.
    let filtered = add_hook(
        &s,
        json!({"url": receiver.url(), "secret": SECRET, "events": ["image.deleted"]}),
    )
    .await;
    let (_, list) = s.get_json("/webhooks").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[1]["events"], json!(["image.deleted"]));
    assert!(!list.to_string().contains(SECRET));
    for path in [
        "/webhooks/nope",
        &format!("/webhooks/{}", uuid::Uuid::new_v4()),
    ] {
        let got = s.get_json(path).await;
        assert_error(&got, 404, "ResourceNotFound", None);
    }
    let fid = filtered["id"].as_str().unwrap();
    let server = &s;
    let del = |p: String| async move { server.delete(&p).send().await.unwrap().status().as_u16() };
    assert_eq!(del(format!("/webhooks/{fid}")).await, 204);
    assert_eq!(del(format!("/webhooks/{fid}")).await, 404);
    let (status, got) = s
        .post_json(&format!("/webhooks/{id}?action=frobnicate"), &json!({}))
        .await;
    assert_eq!(status, 422, "{got}");
}

/// (b) The receiver refuses connections, then answers 500, while the
/// server restarts: once it is back, every event arrives, in sequence
/// order, duplicates only as repeats of one delivery id. The endpoint is
/// configured (`[[webhooks.endpoints]]`): its cursor survives the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_in_order() {
    let mut receiver = Receiver::new().await;
    let config = format!(
        "{OPEN}[webhooks]\n[[webhooks.endpoints]]\nname = \"mirror\"\nurl = {:?}\nsecret = {SECRET:?}\n",
        receiver.url()
    );
    let s = TestServer::spawn_with(&config).await;
    let (_, list) = s.get_json("/webhooks").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["source"], "config");
    assert_eq!(list[0]["name"], "mirror");
    let got = status_json(s.delete(&format!("/webhooks/{id}")).send().await.unwrap()).await;
    assert_error(&got, 422, "InvalidParameter", None);

    receiver.stop().await;
    let mut uuids = Vec::new();
    for i in 0..4 {
        uuids.push(uuid_of(
            &s.create(json!({"name": format!("down-{i}")})).await,
        ));
    }
    let hook = wait_state(&s, &id, "retrying", Duration::from_secs(5)).await;
    assert!(hook["failures"].as_u64().unwrap() >= 1, "{hook}");
    assert!(hook["last_error"].is_string(), "{hook}");
    assert!(hook["next_attempt"].is_string(), "{hook}");

    // Restart the server while the receiver is still down.
    let dir = s.stop().await.unwrap();
    let s = TestServer::spawn_in(dir.path(), &config).await;
    let (_, list) = s.get_json("/webhooks").await;
    assert_eq!(
        list[0]["id"],
        id.as_str(),
        "the configured endpoint is the same row"
    );
    for i in 4..6 {
        uuids.push(uuid_of(
            &s.create(json!({"name": format!("down-{i}")})).await,
        ));
    }
    // Back, but failing.
    receiver.answer(ANSWER_500);
    receiver.start().await;
    let hook = wait_state(&s, &id, "retrying", Duration::from_secs(1)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.get_json(&format!("/webhooks/{id}")).await.1["last_status"] != 500 {
        assert!(Instant::now() < deadline, "no attempt met the 500s: {hook}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        receiver.received().is_empty(),
        "nothing counted while failing"
    );
    // Healthy again.
    receiver.answer(ANSWER_OK);
    let got = receiver.wait_for(6, Duration::from_secs(30)).await;
    let got = seqs(&id, &got);
    assert_eq!(got.len(), 6, "every event arrives: {got:?}");
    assert!(
        got.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "in order, no gap: {got:?}"
    );
    let created: Vec<String> = receiver
        .distinct()
        .iter()
        .map(|r| r.body["uuid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created, uuids, "in the order they were written");
    receiver.assert_signatures();
    let hook = wait_caught_up(&s.url, &id, Duration::from_secs(5)).await;
    assert_eq!(hook["lag"], 0, "{hook}");
    assert_eq!(hook["state"], "active");
    assert_eq!(hook["failures"], 0);
}

/// (d) Dead after `max_failures`, visible in the API and the metrics;
/// resume delivers what was missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_after_max_failures_then_resume() {
    let receiver = Receiver::new().await;
    receiver.answer(ANSWER_500);
    let s = TestServer::spawn_with(&format!(
        "metrics_on_main = true\n{OPEN}[webhooks]\nmax_failures = 3\n"
    ))
    .await;
    let hook = add_hook(&s, json!({"url": receiver.url(), "secret": SECRET})).await;
    let id = hook["id"].as_str().unwrap().to_string();
    let uuid = uuid_of(&s.create(json!({"name": "dead"})).await);
    // Failures at about 0 s, 1 s and 3 s.
    let hook = wait_state(&s, &id, "dead", Duration::from_secs(15)).await;
    assert_eq!(hook["state"], "dead", "{hook}");
    assert_eq!(hook["failures"], 3);
    assert_eq!(hook["last_status"], 500);
    assert!(hook["dead_since"].is_string());
    assert!(
        hook["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{hook}"
    );
    assert_eq!(hook["lag"], 1);
    assert_eq!(hook["next_attempt"], Value::Null);
    // No attempts while dead.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, still) = s.get_json(&format!("/webhooks/{id}")).await;
    assert_eq!(still["failures"], 3);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = s
            .get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let dead = text.contains("imgapi_webhooks{state=\"dead\"} 1");
        let failed = text.contains("imgapi_webhook_deliveries_total{result=\"failed\"} 3");
        let lag = text.contains("imgapi_webhooks_lag_events 0");
        if dead && failed && lag {
            break;
        }
        assert!(Instant::now() < deadline, "metrics: {text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    receiver.answer(ANSWER_OK);
    let (status, resumed) = s
        .post_json(&format!("/webhooks/{id}?action=resume"), &json!({}))
        .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["failures"], 0);
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["uuid"], uuid.as_str());
    receiver.assert_signatures();
    let hook = wait_caught_up(&s.url, &id, Duration::from_secs(5)).await;
    assert_eq!(hook["lag"], 0, "{hook}");
    assert_eq!(hook["delivered"], 1);
}

/// (e) The `[remote]` policy refuses private and loopback receivers, by
/// literal and by name, and plain http unless allowed; (g) operators only.
#[tokio::test]
async fn ssrf_policy_and_operators_only() {
    let s = TestServer::spawn_with("[remote]\nallow_http = true\n").await;
    for (url, why) in [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost:9/hook", "loopback"),
        ("http://169.254.169.254/latest", "link-local"),
        ("http://10.1.2.3/hook", "RFC 1918"),
        ("http://[::1]:9/hook", "loopback"),
        ("ftp://example.com/hook", "not supported"),
    ] {
        let got = s
            .post_json("/webhooks", &json!({"url": url, "secret": "x"}))
            .await;
        assert_error(&got, 422, "InvalidParameter", None);
        let message = got.1["message"].as_str().unwrap();
        assert!(message.contains(why), "{url}: {message}");
        assert_eq!(got.1["errors"][0]["field"], "url", "{got:?}");
    }
    let https_only = TestServer::spawn().await;
    let got = https_only
        .post_json(
            "/webhooks",
            &json!({"url": "http://example.com/", "secret": "x"}),
        )
        .await;
    assert_error(&got, 422, "InvalidParameter", None);
    assert!(got.1["message"].as_str().unwrap().contains("allow_http"));
    // Validation names the field.
    for (body, field) in [
        (json!({"secret": "x"}), "url"),
        (json!({"url": "https://example.com/"}), "secret"),
        (
            json!({"url": "https://example.com/", "secret": "x", "events": ["image.nope"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/", "secret": "x", "since": -1}),
            "since",
        ),
        (
            json!({"url": "https://example.com/", "secret": "x", "colour": 1}),
            "colour",
        ),
        (json!({"url": "not a url", "secret": "x"}), "url"),
    ] {
        let got = s.post_json("/webhooks", &body).await;
        assert_error(&got, 422, "InvalidParameter", None);
        assert_eq!(got.1["errors"][0]["field"], field, "{body}: {got:?}");
    }

    // (g) Operators only.
    let acct = format!("account={OWNER}");
    let id = uuid::Uuid::new_v4();
    for got in [
        s.get_json(&format!("/webhooks?{acct}")).await,
        s.post_json(
            &format!("/webhooks?{acct}"),
            &json!({"url": "https://example.com/", "secret": "x"}),
        )
        .await,
        s.get_json(&format!("/webhooks/{id}?{acct}")).await,
        s.post_json(&format!("/webhooks/{id}?action=test&{acct}"), &json!({}))
            .await,
        s.post_json(&format!("/webhooks/{id}?action=resume&{acct}"), &json!({}))
            .await,
        status_json(
            s.delete(&format!("/webhooks/{id}?{acct}"))
                .send()
                .await
                .unwrap(),
        )
        .await,
    ] {
        assert_error(
            &got,
            403,
            "OperatorOnly",
            Some("this endpoint may only be called by an operator"),
        );
    }
}

/// A configured endpoint the `[remote]` policy refuses stops the start-up.
#[tokio::test]
async fn a_refused_configured_endpoint_stops_the_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[webhooks]\n[[webhooks.endpoints]]\nname = \"x\"\nurl = \"https://127.0.0.1/hook\"\nsecret = \"s\"\n",
        dir.path().display().to_string()
    );
    let config = imgapi_server::Config::from_toml(&toml).unwrap();
    let app = imgapi_server::AppState::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = imgapi_server::serve(app, listener, async {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("[[webhooks.endpoints]] \"x\"") && text.contains("loopback"),
        "{text}"
    );
}

/// (c) Two instances on one PostgreSQL: the one delivering is killed
/// mid-delivery (SIGKILL); the other takes the lease once it expires and
/// goes on from the cursor: nothing lost, order kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_delivery_is_taken_over() {
    let Some((admin_url, endpoint, bucket)) = scale_out_env() else {
        eprintln!("SKIP: webhook take-over needs IMGAPI_TEST_PG_URL and IMGAPI_TEST_S3_* (two instances share one database)");
        return;
    };
    let receiver = Receiver::new().await;
    receiver.answer(ANSWER_SLOW);
    let db = create_database(&admin_url);
    let prefix = format!("webhooks-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        let toml = format!(
            "listen = \"127.0.0.1:{}\"\nmetrics_listen = \"127.0.0.1:0\"\nmode = \"dc\"\ndata_dir = {:?}\ndatabase_url = {db:?}\n{OPEN}[webhooks]\ntimeout_secs = 2\nlease_secs = 3\n[storage]\nkind = \"s3\"\nendpoint = {endpoint:?}\nbucket = {bucket:?}\nprefix = {prefix:?}\n",
            crate::binary::free_port(),
            data.display().to_string()
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, toml).unwrap();
        path
    };
    let (config_a, config_b) = (config("a"), config("b"));
    let mut a = crate::binary::start(&config_a);
    let client = reqwest::Client::new();
    let base_a = format!("http://{}", a.addr);
    let resp = client
        .post(format!("{base_a}/webhooks"))
        .json(&json!({"url": receiver.url(), "secret": SECRET}))
        .send()
        .await
        .unwrap();
    let (status, hook) = status_json(resp).await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap().to_string();
    let mut uuids = Vec::new();
    for i in 0..8 {
        let mut body = manifest();
        merge(&mut body, json!({"name": format!("take-over-{i}")}));
        let resp = client
            .post(format!("{base_a}/images"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, img) = status_json(resp).await;
        assert_eq!(status, 200, "{img}");
        uuids.push(uuid_of(&img));
    }
    // A is delivering (slowly); B starts and cannot take the lease. The
    // limit is generous: CI runs this beside the whole suite.
    if receiver
        .wait_for(1, Duration::from_secs(30))
        .await
        .is_empty()
    {
        let resp = client
            .get(format!("{base_a}/webhooks/{id}"))
            .send()
            .await
            .unwrap();
        let (_, state) = status_json(resp).await;
        let log: Vec<String> = a.lines.try_iter().collect();
        panic!(
            "no delivery within 30 s; the endpoint: {state}\ninstance A's log:\n{}",
            log.join("\n")
        );
    }
    let b = crate::binary::start(&config_b);
    let base_b = format!("http://{}", b.addr);
    receiver.wait_for(3, Duration::from_secs(10)).await;
    let resp = client
        .get(format!("{base_b}/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    let (_, before) = status_json(resp).await;
    let holder_a = before["lease_holder"].clone();
    assert!(holder_a.is_string(), "A holds the lease: {before}");
    a.kill9();
    let killed_at = Instant::now();
    let got = receiver.wait_for(8, Duration::from_secs(30)).await;
    let got = seqs(&id, &got);
    assert_eq!(got.len(), 8, "every event arrives: {got:?}");
    assert!(
        got.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "in order: {got:?}"
    );
    let created: Vec<String> = receiver
        .distinct()
        .iter()
        .map(|r| r.body["uuid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created, uuids);
    receiver.assert_signatures();
    // In order also with the repeats: the raw sequence never goes back
    // except to repeat the event that was in flight.
    let raw: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| r.body["seq"].as_i64().unwrap())
        .collect();
    let mut max = 0;
    for seq in &raw {
        assert!(
            *seq >= max - 1 && *seq <= max + 1 || *seq == max,
            "order across the take-over: {raw:?}"
        );
        max = max.max(*seq);
    }
    eprintln!(
        "take-over: {} deliveries for 8 events, all in {:?} after the kill",
        raw.len(),
        killed_at.elapsed()
    );
    let after = wait_caught_up(&base_b, &id, Duration::from_secs(5)).await;
    assert_eq!(after["lag"], 0, "{after}");
    assert_ne!(
        after["lease_holder"], holder_a,
        "A's lease is gone: {after}"
    );
}
