//! Prometheus metrics (docs/operating.md "Monitoring").
//!
//! Each [`AppState`](crate::AppState) owns one [`Metrics`] registry (a
//! `metrics-exporter-prometheus` recorder, not the process-global one), so
//! servers sharing a process (tests) never mix their numbers. Recording
//! points:
//! - the HTTP layer ([`crate::http`]'s `handle`, next to the audit line):
//!   requests by endpoint name and status, latency to the response head,
//!   body bytes in and out, requests / uploads / downloads in flight;
//! - the store decorators of [`backend`]: every MetaStore / BlobStore call's
//!   latency and errors;
//! - scrape time ([`Metrics::render`]): images by state and jobs by
//!   execution, read from the MetaStore at most every [`GAUGE_TTL`].
//!
//! With metrics turned off (`metrics_listen = ""` and no `metrics_on_main`)
//! nothing is recorded and the stores are not wrapped.

pub mod backend;
pub mod exporter;
pub mod redacted_log;

use std::borrow::Cow;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Scrape-time gauges read from the database at most this often.
pub const GAUGE_TTL: Duration = Duration::from_secs(5);
/// How often histogram samples are folded into their buckets when nobody
/// scrapes (bounds the recorder's memory).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Latency buckets (seconds) of every histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

pub const HTTP_REQUESTS: &str = "imgapi_http_requests_total";
pub const HTTP_DURATION: &str = "imgapi_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "imgapi_http_requests_in_flight";
pub const UPLOADED_BYTES: &str = "imgapi_uploaded_bytes_total";
pub const DOWNLOADED_BYTES: &str = "imgapi_downloaded_bytes_total";
pub const UPLOADS_IN_FLIGHT: &str = "imgapi_uploads_in_flight";
pub const DOWNLOADS_IN_FLIGHT: &str = "imgapi_downloads_in_flight";
pub const BACKEND_DURATION: &str = "imgapi_backend_duration_seconds";
pub const BACKEND_ERRORS: &str = "imgapi_backend_errors_total";
pub const BACKEND_UNREACHABLE: &str = "imgapi_backend_unreachable";
pub const BACKEND_OUTAGES: &str = "imgapi_backend_outages_total";
pub const IMAGES: &str = "imgapi_images";
pub const JOBS: &str = "imgapi_jobs";
pub const BUILD_INFO: &str = "imgapi_build_info";
pub const SCRAPE_ERRORS: &str = "imgapi_metrics_refresh_errors_total";
pub const LIFECYCLE_PURGED: &str = "imgapi_lifecycle_purged_total";
pub const LIFECYCLE_ABANDONED_REMOVED: &str = "imgapi_lifecycle_abandoned_removed_total";
pub const LIFECYCLE_SWEEPS: &str = "imgapi_lifecycle_sweeps_total";
pub const WEBHOOK_DELIVERIES: &str = "imgapi_webhook_deliveries_total";
pub const WEBHOOKS: &str = "imgapi_webhooks";
pub const WEBHOOKS_LAG: &str = "imgapi_webhooks_lag_events";

/// `(name, kind, help)` of every metric, for `# HELP` lines and the docs.
pub const DESCRIPTIONS: &[(&str, &str, &str)] = &[
    (HTTP_REQUESTS, "counter", "HTTP requests answered, by endpoint name (`route`), `method` and `status`."),
    (HTTP_DURATION, "histogram", "Time from request to response head, by `route`, `method` and `status`."),
    (HTTP_IN_FLIGHT, "gauge", "HTTP requests being handled (until the response head)."),
    (UPLOADED_BYTES, "counter", "Request body bytes received, by `route`."),
    (DOWNLOADED_BYTES, "counter", "Response body bytes sent, by `route`."),
    (UPLOADS_IN_FLIGHT, "gauge", "File and icon uploads being received."),
    (DOWNLOADS_IN_FLIGHT, "gauge", "File and icon downloads being sent."),
    (BACKEND_DURATION, "histogram", "Latency of metadata (`backend=\"meta\"`) and blob (`backend=\"blob\"`) store calls, by `store` and `op`."),
    (BACKEND_ERRORS, "counter", "Failed store calls, by `backend`, `store`, `op` and error `kind`."),
    (BACKEND_UNREACHABLE, "gauge", "1 while the circuit breaker of a network store (`backend`, `store`) is open: requests needing it answer 503 at once."),
    (BACKEND_OUTAGES, "counter", "Times the circuit breaker of a network store (`backend`, `store`) opened."),
    (IMAGES, "gauge", "Image records by `state` (read at scrape time, cached 5 s)."),
    (JOBS, "gauge", "Jobs by `execution` (read at scrape time, cached 5 s)."),
    (BUILD_INFO, "gauge", "Always 1; `version` is the server's version."),
    (SCRAPE_ERRORS, "counter", "Scrapes whose image/job counts could not be read."),
    (LIFECYCLE_PURGED, "counter", "Expired recycle-bin entries purged by this instance's lifecycle sweep (docs/lifecycle.md)."),
    (LIFECYCLE_ABANDONED_REMOVED, "counter", "Abandoned (never activated, older than `abandoned_upload_hours`) images removed by this instance's lifecycle sweep."),
    (LIFECYCLE_SWEEPS, "counter", "Lifecycle sweeps this instance ran (`result`: `ran`, `skipped` when another instance held the sweep lock, `failed`)."),
    (WEBHOOK_DELIVERIES, "counter", "Webhook POSTs of events by this instance (docs/webhooks.md), by `result`: `delivered` (2xx) or `failed` (any other status, timeout, connection error, refused address)."),
    (WEBHOOKS, "gauge", "Webhook endpoints by `state`: `active`, `retrying` (backing off after a failure), `dead` (dead-lettered after `max_failures`: alert on > 0). Read at scrape time, cached 5 s."),
    (WEBHOOKS_LAG, "gauge", "Events in the change log after the cursors of the live (not dead) webhook endpoints, summed: how far delivery is behind. Read at scrape time, cached 5 s."),
];

static METADATA: Metadata<'static> = Metadata::new("imgapi", Level::INFO, Some(module_path!()));

/// One server's metrics registry. Cheap to clone; a disabled one records
/// nothing.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// When the scrape-time gauges were last read (`None`: never).
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

impl Metrics {
    /// A registry that records nothing.
    pub fn disabled() -> Metrics {
        Metrics { inner: None }
    }

    /// A registry with every metric described. Must be called within a
    /// tokio runtime for the periodic upkeep (else histograms are folded
    /// only at scrape time).
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets(BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: histogram buckets refused; using summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        for (name, kind, help) in DESCRIPTIONS {
            let key = KeyName::from_const_str(name);
            let unit = name.ends_with("_seconds").then_some(Unit::Seconds);
            match *kind {
                "counter" => recorder.describe_counter(key, unit, (*help).into()),
                "histogram" => recorder.describe_histogram(key, unit, (*help).into()),
                _ => recorder.describe_gauge(key, unit, (*help).into()),
            }
        }
        let inner = Arc::new(Inner {
            recorder,
            handle,
            refreshed: tokio::sync::Mutex::new(None),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(upkeep(Arc::downgrade(&inner)));
        }
        let metrics = Metrics { inner: Some(inner) };
        metrics
            .gauge(
                BUILD_INFO,
                vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
            )
            .set(1.0);
        metrics.counter(SCRAPE_ERRORS, vec![]).absolute(0);
        metrics.counter(LIFECYCLE_PURGED, vec![]).absolute(0);
        metrics
            .counter(LIFECYCLE_ABANDONED_REMOVED, vec![])
            .absolute(0);
        for result in ["ran", "skipped", "failed"] {
            metrics
                .counter(LIFECYCLE_SWEEPS, vec![Label::new("result", result)])
                .absolute(0);
        }
        for result in ["delivered", "failed"] {
            metrics
                .counter(WEBHOOK_DELIVERIES, vec![Label::new("result", result)])
                .absolute(0);
        }
        metrics
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        match &self.inner {
            Some(i) => i
                .recorder
                .register_counter(&Key::from_parts(name, labels), &METADATA),
            None => Counter::noop(),
        }
    }

    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        match &self.inner {
            Some(i) => i
                .recorder
                .register_gauge(&Key::from_parts(name, labels), &METADATA),
            None => Gauge::noop(),
        }
    }

    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        match &self.inner {
            Some(i) => i
                .recorder
                .register_histogram(&Key::from_parts(name, labels), &METADATA),
            None => Histogram::noop(),
        }
    }

    /// The Prometheus text exposition of everything recorded, after
    /// refreshing the scrape-time gauges (images by state, jobs by
    /// execution) if they are older than [`GAUGE_TTL`]. Empty when
    /// disabled.
    pub async fn render(&self, meta: &dyn imgapi_meta::MetaStore) -> String {
        let Some(inner) = &self.inner else {
            return String::new();
        };
        {
            let mut refreshed = inner.refreshed.lock().await;
            if refreshed.is_none_or(|t| t.elapsed() >= GAUGE_TTL) {
                if self.refresh_gauges(meta).await {
                    *refreshed = Some(Instant::now());
                } else {
                    self.counter(SCRAPE_ERRORS, vec![]).increment(1);
                }
            }
        }
        inner.handle.run_upkeep();
        inner.handle.render()
    }

    /// Read the image and job counts; `false` if either failed (the
    /// previous values stay).
    async fn refresh_gauges(&self, meta: &dyn imgapi_meta::MetaStore) -> bool {
        let mut ok = true;
        match meta.count_by_state().await {
            Ok(counts) => {
                for state in imgapi_domain::ImageState::ALL {
                    let n = counts
                        .iter()
                        .find(|(s, _)| s == state.as_str())
                        .map_or(0, |(_, n)| *n);
                    self.gauge(IMAGES, vec![Label::new("state", state.as_str())])
                        .set(n as f64);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot count images by state");
                ok = false;
            }
        }
        match meta.count_jobs_by_execution().await {
            Ok(counts) => {
                for exec in imgapi_meta::JobExecution::ALL {
                    let n = counts
                        .iter()
                        .find(|(e, _)| e == exec.as_str())
                        .map_or(0, |(_, n)| *n);
                    self.gauge(JOBS, vec![Label::new("execution", exec.as_str())])
                        .set(n as f64);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot count jobs by execution");
                ok = false;
            }
        }
        ok &= self.refresh_webhook_gauges(meta).await;
        ok
    }

    /// The webhook endpoints by state and their total lag.
    async fn refresh_webhook_gauges(&self, meta: &dyn imgapi_meta::MetaStore) -> bool {
        let read = async {
            Ok::<_, imgapi_meta::MetaError>((
                meta.webhooks().await?,
                meta.change_log_bounds().await?,
            ))
        };
        match read.await {
            Ok((hooks, bounds)) => {
                let (active, retrying, dead, lag) =
                    crate::service::webhooks::deliver::gauges(&hooks, bounds.last_seq);
                for (state, n) in [("active", active), ("retrying", retrying), ("dead", dead)] {
                    self.gauge(WEBHOOKS, vec![Label::new("state", state)])
                        .set(n as f64);
                }
                self.gauge(WEBHOOKS_LAG, vec![]).set(lag as f64);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot read the webhook endpoints");
                false
            }
        }
    }

    /// Count a request that has just arrived for endpoint `route`; the
    /// guard counts it out when dropped (at the response head).
    pub fn request_started(&self, route: &str, method: &http::Method) -> InFlight {
        if !self.is_enabled() {
            return InFlight::default();
        }
        let mut gauges = vec![self.gauge(HTTP_IN_FLIGHT, vec![])];
        if is_upload(route, method) {
            gauges.push(self.gauge(UPLOADS_IN_FLIGHT, vec![]));
        }
        for g in &gauges {
            g.increment(1.0);
        }
        InFlight { gauges }
    }

    /// A request of `route` was answered with `status` after `elapsed`.
    pub fn request_finished(
        &self,
        route: Cow<'static, str>,
        method: &http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        if !self.is_enabled() {
            return;
        }
        let labels = || {
            vec![
                Label::new("route", route.clone()),
                Label::new("method", method.as_str().to_owned()),
                Label::new("status", status.to_string()),
            ]
        };
        self.counter(HTTP_REQUESTS, labels()).increment(1);
        self.histogram(HTTP_DURATION, labels())
            .record(elapsed.as_secs_f64());
    }

    /// `body` (a request's), counting its bytes as they are read.
    pub fn count_request_body(&self, body: Body, route: Cow<'static, str>) -> Body {
        if !self.is_enabled() {
            return body;
        }
        let bytes = self.counter(UPLOADED_BYTES, vec![Label::new("route", route)]);
        Body::new(body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                bytes.increment(data.len() as u64);
            }
            frame
        }))
    }

    /// `body` (a response's), counting its bytes as they are sent; a file
    /// or icon download counts as in flight until the body is dropped.
    pub fn count_response_body(&self, body: Body, route: Cow<'static, str>) -> Body {
        if !self.is_enabled() {
            return body;
        }
        let in_flight = if is_download(&route) {
            let g = self.gauge(DOWNLOADS_IN_FLIGHT, vec![]);
            g.increment(1.0);
            InFlight { gauges: vec![g] }
        } else {
            InFlight::default()
        };
        let bytes = self.counter(DOWNLOADED_BYTES, vec![Label::new("route", route)]);
        Body::new(CountedBody {
            inner: body,
            bytes,
            _in_flight: in_flight,
        })
    }
}

/// A response body that counts the bytes it sends. Its size hint is the
/// inner body's, so a body of known length keeps its `Content-Length`
/// (http-body-util's `MapFrame` drops the hint, which made every answer
/// chunked).
struct CountedBody {
    inner: Body,
    bytes: Counter,
    _in_flight: InFlight,
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.bytes.increment(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Gauges incremented while something is in flight; decremented on drop.
#[derive(Default)]
pub struct InFlight {
    gauges: Vec<Gauge>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for g in &self.gauges {
            g.decrement(1.0);
        }
    }
}

/// Requests that receive an image file or icon: AddImageFile and
/// AddImageIcon, the server-side fetches (from a source or a URL), and the
/// chunks (`PUT`) of upload sessions.
fn is_upload(route: &str, method: &http::Method) -> bool {
    matches!(
        route,
        "AddImageFile" | "AddImageFileFromSource" | "AddImageFileFromUrl" | "AddImageIcon"
    ) || (route.contains("Upload") && method == http::Method::PUT)
}

/// Endpoints that send an image file or icon.
fn is_download(route: &str) -> bool {
    matches!(route, "GetImageFile" | "GetImageIcon" | "GetDatasetFile")
}

async fn upkeep(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match inner.upgrade() {
            Some(inner) => inner.handle.run_upkeep(),
            None => return,
        }
    }
}
