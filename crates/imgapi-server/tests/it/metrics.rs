//! Prometheus metrics: requests by endpoint name and status, latency
//! histograms, body bytes, in-flight gauges, store calls, images by state;
//! scraped over HTTP from the API listener (`metrics_on_main`) and from a
//! listener of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use imgapi_server::{AppState, Config};
use reqwest::Client;
use serde_json::json;

use crate::support::*;

/// One sample line: name, labels, value.
#[derive(Debug)]
pub(crate) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        // Label values here never contain `",` (endpoint names, numbers).
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap();
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value: value.parse().unwrap(),
        });
    }
    out
}

/// Sum of the samples of `name` whose labels include all of `want`
/// (`None` when there is none).
pub(crate) fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

pub(crate) async fn scrape(client: &Client, url: &str) -> Vec<Sample> {
    let resp = client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&resp.text().await.unwrap())
}

#[tokio::test]
async fn requests_bytes_backends_and_states_on_the_api_listener() {
    let s = TestServer::spawn_with("metrics_on_main = true\n").await;
    for _ in 0..2 {
        assert_eq!(s.get("/ping").send().await.unwrap().status(), 200);
    }
    let active = s.publish(json!({"name": "active"})).await;
    let img = s.create(json!({"name": "pending"})).await;
    let uuid = uuid_of(&img);
    let (status, _) = s.upload(&uuid, vec![7u8; 1000]).await;
    assert_eq!(status, 200);
    let body = s
        .get(&format!("/images/{uuid}/file"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 1000);
    let missing = s.get("/images/not-a-uuid").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(s.delete("/ping").send().await.unwrap().status(), 405);
    assert_eq!(s.get("/no/such/path").send().await.unwrap().status(), 404);
    let (status, _) = s
        .post_json(
            &format!("/images/{}?action=disable", uuid_of(&active)),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);

    let url = format!("{}/metrics", s.url);
    let m = scrape(&s.client, &url).await;
    let requests = |route: &str, method: &str, status: &str| {
        value(
            &m,
            "imgapi_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("Ping", "GET", "200"), Some(2.0));
    assert_eq!(requests("CreateImage", "POST", "200"), Some(2.0));
    assert_eq!(requests("AddImageFile", "PUT", "200"), Some(2.0));
    assert_eq!(requests("ActivateImage", "POST", "200"), Some(1.0));
    assert_eq!(requests("DisableImage", "POST", "200"), Some(1.0));
    assert_eq!(requests("GetImageFile", "GET", "200"), Some(1.0));
    assert_eq!(requests("GetImage", "GET", "404"), Some(1.0));
    assert_eq!(requests("MethodNotAllowed", "DELETE", "405"), Some(1.0));
    assert_eq!(requests("NotFound", "GET", "404"), Some(1.0));
    // Endpoint names only, never raw paths.
    for sample in m.iter().filter(|s| s.labels.contains_key("route")) {
        let route = &sample.labels["route"];
        assert!(
            route.chars().all(|c| c.is_ascii_alphanumeric()),
            "route label {route:?}"
        );
    }

    // Latency histograms, by the same labels.
    let ping = [("route", "Ping"), ("status", "200")];
    assert_eq!(
        value(&m, "imgapi_http_request_duration_seconds_count", &ping),
        Some(2.0)
    );
    let mut inf = ping.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        value(&m, "imgapi_http_request_duration_seconds_bucket", &inf),
        Some(2.0)
    );
    assert!(value(&m, "imgapi_http_request_duration_seconds_sum", &ping).unwrap() > 0.0);

    // Body bytes: the 1000-byte upload and download, plus the publish's 11.
    assert_eq!(
        value(
            &m,
            "imgapi_uploaded_bytes_total",
            &[("route", "AddImageFile")]
        ),
        Some(1011.0)
    );
    assert_eq!(
        value(
            &m,
            "imgapi_downloaded_bytes_total",
            &[("route", "GetImageFile")]
        ),
        Some(1000.0)
    );
    assert_eq!(value(&m, "imgapi_uploads_in_flight", &[]), Some(0.0));

    // Store calls, by backend and operation.
    let meta_insert = [("backend", "meta"), ("op", "insert")];
    assert_eq!(
        value(&m, "imgapi_backend_duration_seconds_count", &meta_insert),
        Some(2.0)
    );
    let blob_put = [
        ("backend", "blob"),
        ("op", "put_stream"),
        ("store", expected_stor()),
    ];
    assert_eq!(
        value(&m, "imgapi_backend_duration_seconds_count", &blob_put),
        Some(2.0)
    );

    // Images by state and jobs by execution, read at scrape time.
    assert_eq!(
        value(&m, "imgapi_images", &[("state", "disabled")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "imgapi_images", &[("state", "unactivated")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "imgapi_images", &[("state", "active")]),
        Some(0.0)
    );
    assert_eq!(
        value(&m, "imgapi_jobs", &[("execution", "queued")]),
        Some(0.0)
    );
    assert_eq!(value(&m, "imgapi_build_info", &[]), Some(1.0));

    // The download's body is gone once sent: nothing in flight.
    let mut downloads = None;
    for _ in 0..50 {
        let m = scrape(&s.client, &url).await;
        downloads = value(&m, "imgapi_downloads_in_flight", &[]);
        if downloads == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(downloads, Some(0.0));
    // Scrapes on the API listener are requests too.
    let m = scrape(&s.client, &url).await;
    assert!(value(&m, "imgapi_http_requests_total", &[("route", "GetMetrics")]).unwrap() >= 2.0);
}

#[tokio::test]
async fn a_missing_referenced_blob_counts_as_data_loss() {
    let s = TestServer::spawn_with("metrics_on_main = true\n").await;
    let img = s.publish(json!({})).await;
    let uuid = uuid_of(&img);
    // Take the file away behind the server's back.
    let config = Config::from_toml(&s.config_toml).unwrap();
    let stores = imgapi_server::check::Stores::open(&config).await.unwrap();
    let stored = stores
        .meta
        .get(uuid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let key = stored.image.files[0].blob_key.clone().unwrap();
    stores.blobs[0].delete(&key).await.unwrap();
    let resp = s.get(&format!("/images/{uuid}/file")).send().await.unwrap();
    assert!(!resp.status().is_success());
    // A referenced blob that is gone is data loss (the documented alert
    // watches it), not an ordinary not-found.
    let m = scrape(&s.client, &format!("{}/metrics", s.url)).await;
    let of_kind = |kind| {
        let labels = [("backend", "blob"), ("op", "get_stream"), ("kind", kind)];
        value(&m, "imgapi_backend_errors_total", &labels)
    };
    assert_eq!(of_kind("data_loss"), Some(1.0));
    assert_eq!(of_kind("not_found"), None);
}

#[tokio::test]
async fn metrics_on_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\nmetrics_listen = \"127.0.0.1:0\"\n",
        dir.path().display().to_string()
    );
    let app = AppState::open(Config::from_toml(&toml).unwrap())
        .await
        .unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api_addr, metrics_addr) = (api.local_addr().unwrap(), metrics.local_addr().unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let exporter = tokio::spawn(imgapi_server::telemetry::exporter::serve(
        app.clone(),
        metrics,
        stopped(rx.clone()),
    ));
    let server = tokio::spawn(imgapi_server::serve(app, api, stopped(rx)));
    let client = Client::new();
    let ping = client
        .get(format!("http://{api_addr}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    // Not on the API listener without `metrics_on_main`.
    let on_main = client
        .get(format!("http://{api_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_main.status(), 404);
    let m = scrape(&client, &format!("http://{metrics_addr}/metrics")).await;
    assert_eq!(
        value(
            &m,
            "imgapi_http_requests_total",
            &[("route", "Ping"), ("status", "200")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "imgapi_http_requests_total",
            &[("route", "NotFound"), ("status", "404")]
        ),
        Some(1.0)
    );
    let other = client
        .get(format!("http://{metrics_addr}/images"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    tx.send(true).unwrap();
    exporter.await.unwrap().unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn nothing_is_recorded_with_metrics_off() {
    let s = TestServer::spawn_with("metrics_listen = \"\"\n").await;
    let resp = s.get("/metrics").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let config = Config::from_toml(&s.config_toml).unwrap();
    let app = AppState::open(config).await.unwrap();
    assert!(!app.metrics.is_enabled());
    assert_eq!(app.metrics.render(app.meta.as_ref()).await, "");
}

/// docs/operating.md documents every metric.
#[test]
fn every_metric_is_documented() {
    let doc = include_str!("../../../../docs/operating.md");
    for (name, _, _) in imgapi_server::telemetry::DESCRIPTIONS {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/operating.md does not document {name}"
        );
    }
}

#[tokio::test]
async fn counter_families_exist_at_zero_from_start_up() {
    let s = TestServer::spawn_raw("metrics_on_main = true\n").await;
    let samples = scrape(&s.client, &format!("{}/metrics", s.url)).await;
    let zero = |name: &str, want: &[(&str, &str)]| {
        assert_eq!(value(&samples, name, want), Some(0.0), "{name} {want:?}");
    };
    for kind in ["unavailable", "backend", "corrupt"] {
        zero(
            "imgapi_backend_errors_total",
            &[
                ("backend", "meta"),
                ("store", "sqlite"),
                ("op", "get"),
                ("kind", kind),
            ],
        );
    }
    for kind in ["unavailable", "io", "data_loss"] {
        zero(
            "imgapi_backend_errors_total",
            &[
                ("backend", "blob"),
                ("store", "local"),
                ("op", "get_stream"),
                ("kind", kind),
            ],
        );
    }
    zero("imgapi_metrics_refresh_errors_total", &[]);
}
