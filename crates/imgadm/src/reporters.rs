//! indicatif implementations of [`imgapi_client::Reporter`].

use std::io::IsTerminal;

use imgapi_client::Reporter;
use indicatif::{ProgressBar, ProgressStyle};

/// A byte progress bar on stderr, drawn only when stderr is a terminal.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(message: &str) -> Bar {
        let pb = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(message.to_string());
        Bar(pb)
    }

    /// A bar that never draws (`-q`).
    pub fn hidden() -> Bar {
        Bar(ProgressBar::hidden())
    }
}

impl Reporter for Bar {
    fn on_start(&self, total: Option<u64>, already: u64) {
        if let Some(total) = total {
            self.0.set_length(total);
        }
        self.0.set_position(already);
    }

    fn on_progress(&self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn on_complete(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if !self.0.is_finished() {
            self.0.abandon();
        }
    }
}
