//! The IMGAPI server: configuration, application state, services and the
//! HTTP layer. `main.rs` only wires these together.

pub mod app;
pub mod config;
pub mod docs;
pub mod http;
pub mod service;

use std::future::Future;

use tokio::net::TcpListener;

pub use app::{App, AppState};
pub use config::Config;

/// Serve the API on `listener` until `shutdown` resolves; in-flight requests
/// are allowed to finish.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::app_router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
