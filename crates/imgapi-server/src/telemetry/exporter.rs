//! `GET /metrics`: on a listener of its own (`metrics_listen`) and, with
//! `metrics_on_main`, on the API listener (route `GetMetrics`).

use std::future::Future;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use tokio::net::TcpListener;

use crate::app::{App, AppState};

/// Prometheus text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serve `GET /metrics` (anything else: 404) on `listener` until
/// `shutdown` resolves.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics is served here\n") })
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(app): State<App>) -> Response {
    metrics_response(&app).await
}

/// The scrape answer: everything recorded, in the text format.
pub async fn metrics_response(app: &AppState) -> Response {
    let body = app.metrics.render(app.meta.as_ref()).await;
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}
