//! `GET /health`: 200 while the database and the file store answer, 503
//! naming the failing check within a second otherwise, and cheap to poll
//! (one round of backend checks per second, whatever the callers).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::faults::{host_port, within, Proxy};
use crate::metrics::{scrape, value};
use crate::support::*;

const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// `GET /health`: status, body, and how long it took.
async fn health(s: &TestServer) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = s.get_json("/health").await;
    (status, body, started.elapsed())
}

#[tokio::test]
async fn healthy_backends_answer_200_with_every_check() {
    let s = TestServer::spawn().await;
    let (status, body, took) = health(&s).await;
    assert_eq!(status, 200, "{body}");
    assert!(took < ANSWER_WITHIN, "{took:?}");
    assert_eq!(body["status"], "ok");
    for check in ["database", "storage"] {
        assert_eq!(body["checks"][check]["status"], "ok", "{body}");
        assert!(body["checks"][check]["latency_ms"].is_u64(), "{body}");
        assert!(body["checks"][check].get("message").is_none(), "{body}");
    }
    let head = s
        .req(reqwest::Method::HEAD, "/health")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    // No credentials needed, and /ping is unchanged beside it.
    let (status, ping) = s.get_json("/ping").await;
    assert_eq!(status, 200);
    assert_eq!(ping["ping"], "pong");
}

#[tokio::test]
async fn a_missing_file_store_is_a_503_naming_storage_and_heals() {
    // Local storage whatever the suite's backends: the test removes its
    // directory.
    let s = TestServer::spawn_raw("").await;
    assert_eq!(health(&s).await.0, 200);
    let files = s.data_dir.join("files");
    let moved = s.data_dir.join("files.away");
    std::fs::rename(&files, &moved).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the cached answer

    let (status, body, took) = health(&s).await;
    assert_eq!(status, 503, "{body}");
    assert!(took < ANSWER_WITHIN, "{took:?}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["checks"]["storage"]["status"], "error", "{body}");
    assert_eq!(body["checks"]["storage"]["message"], "storage I/O error");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    assert!(
        !body.to_string().contains(&*s.data_dir.to_string_lossy()),
        "the answer shows a server path: {body}"
    );

    std::fs::rename(&moved, &files).unwrap();
    let healed = within(Duration::from_secs(3), async || health(&s).await.0 == 200).await;
    assert!(
        healed.is_some(),
        "health stayed 503 after the store came back"
    );
}

#[tokio::test]
async fn a_flood_of_polls_checks_the_backends_once() {
    let s = TestServer::spawn_raw("metrics_on_main = true\n").await;
    let polls = (0..40).map(|_| health(&s));
    let started = Instant::now();
    for (status, body, _) in futures_util::future::join_all(polls).await {
        assert_eq!(status, 200, "{body}");
    }
    assert!(started.elapsed() < ANSWER_WITHIN, "{:?}", started.elapsed());
    let samples = scrape(&s.client, &format!("{}/metrics", s.url)).await;
    let pings = value(
        &samples,
        "imgapi_backend_duration_seconds_count",
        &[("backend", "meta"), ("op", "ping")],
    );
    let store_checks = value(
        &samples,
        "imgapi_backend_duration_seconds_count",
        &[("backend", "blob"), ("op", "health_check")],
    );
    assert_eq!(
        pings,
        Some(1.0),
        "database pinged more than once per second"
    );
    assert_eq!(
        store_checks,
        Some(1.0),
        "store checked more than once per second"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_a_503_naming_database_within_a_second() {
    #[allow(clippy::disallowed_methods)] // test harness switch
    let Ok(admin_url) = std::env::var("IMGAPI_TEST_PG_URL") else {
        eprintln!("SKIP: needs IMGAPI_TEST_PG_URL (set by .ci/run)");
        return;
    };
    let db = create_database(&admin_url);
    let real = host_port(&db);
    let proxy = Proxy::start(real.clone()).await;
    let proxied = db.replacen(&real, &proxy.addr.to_string(), 1);
    let s = TestServer::spawn_raw(&format!("database_url = {proxied:?}\n")).await;
    assert_eq!(health(&s).await.0, 200);

    proxy.set(false);
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the cached answer
    for _ in 0..3 {
        let (status, body, took) = health(&s).await;
        assert_eq!(status, 503, "{body}");
        assert!(took < ANSWER_WITHIN, "slow health answer: {took:?}");
        assert_eq!(body["checks"]["database"]["status"], "error", "{body}");
        assert!(body["checks"]["database"]["message"].is_string(), "{body}");
        assert_eq!(body["checks"]["storage"]["status"], "ok", "{body}");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    proxy.set(true);
    let healed = within(Duration::from_secs(10), async || health(&s).await.0 == 200).await;
    assert!(
        healed.is_some(),
        "health stayed 503 after the database came back"
    );
}
