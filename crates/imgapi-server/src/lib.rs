//! The IMGAPI server: configuration, application state, services and the
//! HTTP layer. `main.rs` only wires these together.

pub mod accounts;
pub mod app;
pub mod auth_keys;
pub mod breaker;
pub mod check;
pub mod config;
pub mod data_dir_lock;
pub mod docs;
pub mod http;
pub mod migrate;
pub mod serve;
pub mod service;
pub mod sizes;
pub mod telemetry;
pub mod tls;
pub mod usage_cmd;

use std::future::Future;

use tokio::net::TcpListener;

pub use app::{App, AppState};
pub use config::Config;

/// Serve the API on `listener` (HTTPS when the config names a certificate)
/// until `shutdown` resolves; in-flight requests are allowed to finish.
/// The job runner runs meanwhile; at shutdown its running jobs stop and
/// their leases are released, for the next instance to resume them. The
/// upload-session sweeper runs meanwhile too; before serving, the upload
/// leases of this instance's previous run (killed) are released. Webhook
/// endpoints are delivered meanwhile (`[[webhooks.endpoints]]` are stored
/// first).
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = match (&app.config.tls_cert, &app.config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(std::io::Error::other)?),
        _ => None,
    };
    // Sessions this instance's previous run was writing when it died take
    // a chunk at once, not after their lease runs out.
    service::uploads::release_stale_leases(&app).await;
    // `[[webhooks.endpoints]]` upserted by name (a refused URL stops here).
    service::webhooks::sync_configured(&app)
        .await
        .map_err(std::io::Error::other)?;
    // Jobs (remote imports) run beside the API, and resume at start-up.
    let jobs = service::import::jobs::start(app.clone());
    // Expired upload sessions are swept now and periodically.
    let uploads = service::uploads::start_sweeper(app.clone());
    // Finished jobs older than the retention are deleted now and hourly.
    let job_pruner = service::import::jobs::retention::start_pruner(app.clone());
    // Scheduled retention runs (`[retention] interval_hours`).
    let retention = service::retention::schedule::start(app.clone());
    // Expired recycle-bin entries and abandoned uploads: now and periodically.
    let sweeper = service::sweeper::start_sweeper(app.clone());
    // Webhook delivery of the change log (one instance per endpoint).
    let webhooks = service::webhooks::deliver::start(app.clone());
    let served = serve::serve(app, listener, tls, shutdown).await;
    webhooks.stop().await;
    retention.stop();
    sweeper.stop();
    job_pruner.stop();
    uploads.stop();
    jobs.stop().await;
    served
}
