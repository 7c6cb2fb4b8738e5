//! The in-process server the imgadm end-to-end tests talk to.

pub mod original;
pub mod proxy;
pub mod tmux;

use imgapi_server::{AppState, Config};
use tempfile::TempDir;

/// A server on its own multi-threaded runtime: its workers keep serving
/// while the (synchronous) assert_cmd calls run on the test thread.
pub struct Server {
    pub url: String,
    pub dir: TempDir,
    _rt: tokio::runtime::Runtime,
}

/// Start a public-mode server on 127.0.0.1 with a fresh data dir.
#[allow(dead_code)] // not every test binary uses every helper
pub fn spawn() -> Server {
    spawn_with("")
}

/// [`spawn`], with `extra` appended to the server's TOML config.
pub fn spawn_with(extra: &str) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = rt.block_on(async {
        let toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nlog_level = \"warn\"\n{extra}",
            data.display().to_string()
        );
        let app = AppState::open(Config::from_toml(&toml).unwrap())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            imgapi_server::serve(app, listener, std::future::pending::<()>())
                .await
                .unwrap();
        });
        format!("http://{addr}")
    });
    Server { url, dir, _rt: rt }
}
