//! `imgapi`: parse flags, load config, init logging, run the server.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use imgapi_server::telemetry::redacted_log::Redacted;
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
    /// Keep this registry in sync with an upstream IMGAPI (or a DSAPI
    /// `/datasets` URL): import what is missing (origins first), update
    /// changed manifests, disable/enable as upstream. Runs beside a server
    /// on the same config; the upstream URL must pass the `[remote]` policy.
    /// Exit status: 0 when nothing failed (conflicts are reported, not
    /// failures), 1 when something failed, 2 for bad arguments or config.
    Mirror(MirrorArgs),
    /// Verify every activated image's files and icons against its manifest
    /// (exists, size, SHA-1), list orphaned blobs and dangling manifests.
    /// Exit status: 0 all well, 1 a problem remains, 2 the check could not
    /// run. Progress on stderr, the report on stdout.
    Check(imgapi_server::check::CheckArgs),
    /// Images and bytes stored per owner and billing tag (as GET /usage).
    Usage(imgapi_server::usage_cmd::UsageArgs),
}

#[derive(Debug, clap::Args)]
struct MirrorArgs {
    /// Config file of this registry (else the top-level --config / IMGAPI_CONFIG).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// The upstream IMGAPI URL (a path ending in /datasets: a legacy DSAPI server).
    #[arg(long, required_unless_present = "upstream_simplestreams")]
    upstream: Option<String>,
    /// Instead of --upstream: a simplestreams (LXD image) server; the newest
    /// version of each product the filters pass is imported (docs/lxd.md).
    #[arg(long, conflicts_with_all = ["upstream", "owner", "channel", "delete"])]
    upstream_simplestreams: Option<String>,
    /// Run again this long after each run ends (e.g. 10m, 1h); SIGINT/SIGTERM
    /// stop after the image in progress. With --follow: a full run this
    /// often besides the feed, or the polling interval of an upstream
    /// without a change feed (default 60s).
    #[arg(long, value_parser = parse_interval)]
    interval: Option<Duration>,
    /// After the first full run, follow the upstream's change feed
    /// (GET /changes, long-polled) and apply each change within seconds;
    /// resumes from its saved cursor after a restart. An upstream without a
    /// feed (an original IMGAPI) is polled every --interval instead.
    #[arg(long, conflicts_with_all = ["dry_run", "upstream_simplestreams"])]
    follow: bool,
    /// Only images with this name (`~text`: containing it).
    #[arg(long)]
    name: Option<String>,
    /// Only images with this os.
    #[arg(long)]
    os: Option<String>,
    /// Only images of this type (`!type`: any other).
    #[arg(long = "type")]
    image_type: Option<String>,
    /// Only images of this owner.
    #[arg(long)]
    owner: Option<String>,
    /// The upstream channel to mirror.
    #[arg(long)]
    channel: Option<String>,
    /// Also delete images this mirror imported from this upstream that the
    /// upstream no longer lists (gone, or outside the filters).
    #[arg(long)]
    delete: bool,
    /// Print the plan only; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also print each run's summary as one JSON object on stdout.
    #[arg(long, short = 'j')]
    json: bool,
}

fn parse_interval(raw: &str) -> Result<Duration, String> {
    imgapi_server::service::import::mirror::parse_interval(raw)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Migrate { from, to, dry_run }) => {
            return migrate(&from, &to, dry_run).await;
        }
        Some(Command::Mirror(mirror_args)) => {
            let config = mirror_args.config.clone().or(args.config);
            return mirror(config.as_deref(), mirror_args).await;
        }
        Some(Command::Check(check_args)) => {
            return imgapi_server::check::cli(args.config, check_args).await;
        }
        Some(Command::Usage(usage_args)) => {
            return imgapi_server::usage_cmd::cli(args.config, usage_args).await;
        }
        None => {}
    }
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapi: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    // object_store logs each retry of an S3 request at info: an unreachable
    // store would print one line per attempt before the one that matters.
    let filter = match "object_store=warn".parse() {
        Ok(quiet) if !config.log_level.contains("object_store") => filter.add_directive(quiet),
        _ => filter,
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_writer(Redacted(std::io::stderr))
        .init();
    if let Some(refusal) = config.refusal_to_serve() {
        eprintln!("imgapi: {refusal}");
        return ExitCode::from(2);
    }
    // Before the stores open (and migrate), so two servers starting at
    // once on one embedded store cannot both migrate; held until exit.
    let _data_dir_lock = if config.embedded_database() {
        if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
            eprintln!(
                "imgapi: cannot create data directory {}: {e}",
                config.data_dir.display()
            );
            return ExitCode::from(1);
        }
        match imgapi_server::data_dir_lock::lock(&config.data_dir) {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("imgapi: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
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
    let metrics_listener = match app.config.metrics_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("imgapi: cannot listen on {addr} (metrics_listen): {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let bound =
        |l: &tokio::net::TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(listen = %bound(&listener), mode = %app.config.mode, "imgapi listening");
    // SIGTERM/SIGINT stop both listeners.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    if let Some(l) = metrics_listener {
        tracing::info!(metrics_listen = %bound(&l), "metrics listening");
        let (app, rx) = (app.clone(), stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = imgapi_server::telemetry::exporter::serve(app, l, stopped(rx)).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    match imgapi_server::serve(app, listener, stopped(stop_rx)).await {
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

/// Files at least this large get a byte progress line (on a terminal).
const PROGRESS_MIN: u64 = 16 * 1024 * 1024;

/// Progress on stderr: one line per image action; on a terminal, a byte
/// progress line for large files, rewritten in place.
struct StderrReporter {
    terminal: bool,
    /// A progress line is showing (to be cleared before the next line).
    showing: bool,
    /// `-j`: each summary `--follow` reports also as JSON on stdout.
    json: bool,
}

impl imgapi_server::service::import::mirror::Reporter for StderrReporter {
    fn line(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        if self.showing {
            let _ = write!(err, "\r\x1b[2K");
            self.showing = false;
        }
        let _ = writeln!(err, "{line}");
    }

    fn transfer(&mut self, uuid: uuid::Uuid, done: u64, total: u64) {
        if !self.terminal || total < PROGRESS_MIN {
            return;
        }
        let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
        let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K  {uuid}: {:.1} / {:.1} MiB ({pct}%)",
            mib(done),
            mib(total)
        );
        let _ = err.flush();
        self.showing = true;
    }

    fn summary(&mut self, summary: &imgapi_server::service::import::mirror::MirrorSummary) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", summary.to_json());
            let _ = out.flush();
        }
    }
}

/// Run `run` to its end, or until a second signal (`None`). The first
/// signal sets `stop`, which the mirror checks between images.
async fn until_signalled<T>(
    run: impl std::future::Future<Output = T>,
    signals: &mut tokio::sync::watch::Receiver<u32>,
    stop: &AtomicBool,
) -> Option<T> {
    tokio::pin!(run);
    loop {
        tokio::select! {
            result = &mut run => return Some(result),
            changed = signals.changed() => {
                let n = *signals.borrow_and_update();
                if changed.is_err() || n >= 2 {
                    return None;
                }
                stop.store(true, Ordering::SeqCst);
                eprintln!("imgapi mirror: stopping after the image in progress (signal again to stop at once)");
            }
        }
    }
}

/// `imgapi mirror`: one run, or runs every `--interval` until a signal.
async fn mirror(config: Option<&Path>, args: MirrorArgs) -> ExitCode {
    use imgapi_server::service::import::mirror::{self, MirrorOptions, Reporter};
    let config = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imgapi mirror: {e}");
            return ExitCode::from(2);
        }
    };
    // Before anything is read or written, so that a second mirror into
    // this registry stops at once; held until exit.
    let _mirror_lock = if config.embedded_database() {
        let locked = std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| {
                format!(
                    "cannot create data directory {}: {e}",
                    config.data_dir.display()
                )
            })
            .and_then(|()| {
                imgapi_server::data_dir_lock::lock_for(
                    imgapi_server::data_dir_lock::LockHolder::Mirror,
                    &config.data_dir,
                )
                .map_err(|e| e.to_string())
            });
        match locked {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("imgapi mirror: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    // Warnings of the stores and the fetcher; progress is ours.
    let filter = EnvFilter::try_new("warn").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Redacted(std::io::stderr))
        .init();
    let app = match mirror::open(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("imgapi mirror: {e}");
            return ExitCode::from(1);
        }
    };
    // A shared database (PostgreSQL): mirrors on other hosts see this one.
    let _registry_lock = match mirror::lock_registry(&app).await {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("imgapi mirror: {e}");
            let locked = matches!(e, mirror::MirrorError::Locked(_));
            return ExitCode::from(if locked { 2 } else { 1 });
        }
    };
    let opts = MirrorOptions {
        upstream: args
            .upstream
            .clone()
            .or_else(|| args.upstream_simplestreams.clone())
            .unwrap_or_default(),
        name: args.name.clone(),
        os: args.os.clone(),
        image_type: args.image_type.clone(),
        owner: args.owner.clone(),
        channel: args.channel.clone(),
        delete: args.delete,
        dry_run: args.dry_run,
        simplestreams: args.upstream_simplestreams.is_some(),
    };
    let mut reporter = StderrReporter {
        terminal: std::io::stderr().is_terminal(),
        showing: false,
        json: args.json,
    };
    // First signal: stop after the image in progress; second: at once.
    let stop = Arc::new(AtomicBool::new(false));
    let (signals_tx, mut signals) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            shutdown_signal_quiet().await;
            n += 1;
            if signals_tx.send(n).is_err() {
                return;
            }
        }
    });
    if args.follow {
        let how = mirror::FollowOptions {
            interval: args.interval,
        };
        let run = mirror::follow(&app, &opts, &how, &mut reporter, &stop);
        let result = until_signalled(run, &mut signals, &stop).await;
        return match result {
            Some(Ok(())) => ExitCode::SUCCESS,
            Some(Err(e)) => {
                reporter.line(&format!("imgapi mirror: {e}"));
                let usage = matches!(e, mirror::MirrorError::Options(_));
                ExitCode::from(if usage { 2 } else { 1 })
            }
            None => {
                reporter.line("imgapi mirror: stopped; a file cut mid-transfer is fetched again from its start by the next run");
                ExitCode::from(130)
            }
        };
    }
    loop {
        let run = mirror::mirror(&app, &opts, &mut reporter, &stop);
        let result = until_signalled(run, &mut signals, &stop).await;
        let Some(result) = result else {
            reporter.line("imgapi mirror: stopped; a file cut mid-transfer is fetched again from its start by the next run");
            return ExitCode::from(130);
        };
        match result {
            Ok(summary) => {
                if args.json {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", summary.to_json());
                    let _ = out.flush();
                }
                let code = if summary.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                };
                if summary.stopped {
                    return if args.interval.is_some() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(130)
                    };
                }
                if args.interval.is_none() {
                    return code;
                }
            }
            Err(e) => {
                reporter.line(&format!("imgapi mirror: {e}"));
                if args.interval.is_none() {
                    return ExitCode::from(1);
                }
            }
        }
        let Some(interval) = args.interval else {
            return ExitCode::SUCCESS;
        };
        if stop.load(Ordering::SeqCst) {
            return ExitCode::SUCCESS;
        }
        reporter.line(&format!(
            "imgapi mirror: next run in {}s",
            interval.as_secs()
        ));
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = signals.changed() => return ExitCode::SUCCESS,
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal_quiet() {
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
