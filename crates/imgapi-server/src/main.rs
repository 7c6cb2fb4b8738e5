//! `imgapi`: parse flags, load config, init logging, run the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use imgapi_server::{AppState, Config};
use tracing_subscriber::EnvFilter;

/// The IMGAPI image registry server.
#[derive(Debug, Parser)]
#[command(name = "imgapi", version, about)]
struct Args {
    /// TOML configuration file (keys in docs/config.md; IMGAPI_* variables override it).
    #[arg(long, short = 'c', env = "IMGAPI_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapi: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(std::io::stderr)
        .init();
    let listen = config.listen;
    let app = match AppState::open(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("imgapi: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("imgapi: cannot listen on {listen}: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(%listen, mode = %app.config.mode, "imgapi listening");
    match imgapi_server::serve(app, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgapi: server error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
