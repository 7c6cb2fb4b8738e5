//! The real `imgapi` binary as a child process: start it, read its log,
//! signal it. A [`Proc`] kills its process when dropped, so a failing test
//! leaves no server running.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `imgapi` and the addresses it listens on.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) metrics_addr: String,
    /// stderr lines after the listening line (kept draining).
    pub(crate) lines: mpsc::Receiver<String>,
}

/// Starts the `imgapi` binary on `config` (which needs `metrics_listen`).
pub(crate) fn start(config: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imgapi"))
        .arg("--config")
        .arg(config)
        .env("IMGAPI_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                // Nobody listens any more: keep draining the pipe.
                continue;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut addr, mut metrics_addr) = (None, None);
    while addr.is_none() || metrics_addr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("imgapi did not report its listening addresses");
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let field = |name: &str| v["fields"][name].as_str().map(str::to_string);
        match v["fields"]["message"].as_str() {
            Some("imgapi listening") => addr = field("listen"),
            Some("metrics listening") => metrics_addr = field("metrics_listen"),
            _ => {}
        }
    }
    Proc {
        child,
        addr: addr.unwrap(),
        metrics_addr: metrics_addr.unwrap(),
        lines: rx,
    }
}

pub(crate) fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Wait for the child to exit (at most `limit`); its exit code.
pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("imgapi did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Proc {
    /// SIGKILL: no clean-up of any kind runs. Returns once it is gone.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// A free port on 127.0.0.1 (for a server that must come back on the
/// same address: its instance identity includes it).
pub(crate) fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}
