//! `imgapi`: parse flags, load config, init logging, run the server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use imgapi_server::{AppState, Config};
use tracing_subscriber::EnvFilter;

/// The IMGAPI image registry server.
#[derive(Debug, Parser)]
#[command(name = "imgapi", version, about)]
struct Args {
    /// TOML configuration file (keys in docs/config.md; IMGAPI_* variables override it).
    #[arg(long, short = 'c', env = "IMGAPI_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy every image (manifest, files, icon) from one registry to another,
    /// verifying every digest; resumable (rerun after an interruption).
    /// Only `database_url`, `data_dir` and `storage` of the two files matter;
    /// IMGAPI_* variables are NOT applied to them.
    Migrate {
        /// Config file of the source registry.
        #[arg(long)]
        from: PathBuf,
        /// Config file of the target registry.
        #[arg(long)]
        to: PathBuf,
        /// Report what would be copied without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Migrate { from, to, dry_run }) = args.command {
        return migrate(&from, &to, dry_run).await;
    }
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

/// `imgapi migrate`: exit 0 only if every image was migrated (or skipped).
async fn migrate(from: &Path, to: &Path, dry_run: bool) -> ExitCode {
    let load = |path: &Path| -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    };
    let (from_cfg, to_cfg) = match (load(from), load(to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("imgapi migrate: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = imgapi_server::migrate::MigrateOptions { dry_run };
    let run = async {
        let mut err = std::io::stderr();
        imgapi_server::migrate::migrate_configs(&from_cfg, &to_cfg, opts, &mut err).await
    };
    tokio::select! {
        result = run => match result {
            Ok(summary) if summary.ok() => ExitCode::SUCCESS,
            Ok(_) => ExitCode::from(1),
            Err(e) => {
                eprintln!("imgapi migrate: {e}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            // Records are written only after their blobs are verified, so
            // the target is consistent; a rerun resumes.
            eprintln!("imgapi migrate: interrupted; run the same command again to resume");
            ExitCode::from(130)
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
