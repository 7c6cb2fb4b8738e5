//! The connection loop: plain HTTP or TLS, a cap on concurrent connections
//! (excess connections get a clear 503 and are closed), a header-read
//! timeout against slowloris clients, a header size limit, and graceful
//! shutdown that lets in-flight requests finish.
//!
//! Shutdown: the listener is closed at once (new connections are refused),
//! idle keep-alive connections are closed, and requests in flight may
//! finish within `shutdown_grace`. Then every connection still open is
//! cut: its task is aborted, which drops the request's future, so an
//! upload in progress is abandoned the way a client disconnect abandons it
//! (staging file removed, S3 multipart upload aborted, record untouched).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::app::App;

/// Connection-level limits (config keys of the same names).
#[derive(Debug, Clone)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub tls_handshake_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl ServeLimits {
    pub fn of(config: &crate::config::Config) -> ServeLimits {
        ServeLimits {
            max_connections: config.max_connections,
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            max_header_bytes: config.max_header_bytes,
            tls_handshake_timeout: Duration::from_secs(config.header_read_timeout_secs),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        }
    }
}

/// The canned answer for a connection over the cap: the usual JSON error
/// body, then the connection is closed.
fn overloaded_response() -> Vec<u8> {
    let body = "{\n  \"code\": \"ServiceUnavailableError\",\n  \"message\": \"too many concurrent connections, retry later\"\n}";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serve `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    app: App,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = ServeLimits::of(&app.config);
    let router = crate::http::app_router(app);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // Connection tasks, to cut those still open when the grace period ends.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many concurrent connections");
            tokio::spawn(refuse(stream));
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // A client that sends its whole request and then shuts down its
            // writing side (`nc -N`, some HTTP/1.0 clients) still gets its
            // answer; hyper would otherwise cancel the request at that EOF.
            .half_close(true)
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192));
        match tls.clone() {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                connections.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let handshake_timeout = limits.tls_handshake_timeout;
                let watcher = graceful.watcher();
                connections.spawn(async move {
                    let tls_stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            while connections.try_join_next().is_some() {}
            tracing::warn!(
                connections = connections.len(),
                "grace period over: cutting the remaining connections"
            );
            connections.abort_all();
            // Let the aborted requests' clean-up run (drop guards, and the
            // S3 multipart aborts they spawn) before the runtime goes away.
            let cut = async { while connections.join_next().await.is_some() {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), cut).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let write = async {
        stream.write_all(&overloaded_response()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}
