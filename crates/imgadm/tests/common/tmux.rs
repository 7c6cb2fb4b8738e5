//! A private tmux server for the imgadm tests that need a real terminal.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

/// How long a wait that only fails when something is broken may take.
const PATIENCE: Duration = Duration::from_secs(300);

/// An exited command's status and output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A tmux server on its own socket in a temp dir, killed when dropped (also
/// when the test panics). Never touches the user's tmux server.
pub struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

const SESSION: &str = "imgadm-test";

impl Tmux {
    pub fn available() -> bool {
        std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Start a detached 120x30 session running `sh -c script`.
    pub fn start(script: &str) -> Tmux {
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let out = tmux
            .cmd()
            .args(["new-session", "-d", "-s", SESSION, "-x", "120", "-y", "30"])
            .args(["sh", "-c", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux new-session: {}", show(&out));
        tmux
    }

    fn cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("tmux");
        cmd.arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .env_remove("TMUX");
        cmd
    }

    /// The visible pane.
    pub fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", SESSION])
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux capture-pane: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn send_keys(&self, keys: &str) {
        let out = self
            .cmd()
            .args(["send-keys", "-t", SESSION, keys])
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux send-keys: {}", show(&out));
    }

    /// Poll the screen until `done` (which may look elsewhere too) holds;
    /// panic with the screen after `PATIENCE`.
    pub fn wait_for(&self, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
        let end = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
    }
}

/// Single-quote for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
