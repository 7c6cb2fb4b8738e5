//! indicatif implementations of [`imgapi_client::Reporter`].

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imgapi_client::Reporter;
use imgapi_domain::units::human_size;
use indicatif::{HumanBytes, ProgressBar, ProgressState, ProgressStyle};

/// A byte progress bar on stderr, drawn only when stderr is a terminal.
///
/// A transfer that starts with bytes already there (a resumed download or
/// upload) says so on stderr, terminal or not, and its rate and eta count
/// only the bytes moved in this run: indicatif's own `{bytes_per_sec}`
/// counted the jump to the resume point as if it had just been moved.
pub struct Bar {
    bar: ProgressBar,
    /// What a resume note calls the transfer: "the download of image X".
    what: String,
    /// Bytes already there when the transfer started.
    already: Arc<AtomicU64>,
}

impl Bar {
    pub fn new(message: &str) -> Bar {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        let already = Arc::new(AtomicU64::new(0));
        let (for_rate, for_eta) = (already.clone(), already.clone());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {run_rate} eta {run_eta}",
        ) {
            let style = style
                .progress_chars("=> ")
                .with_key(
                    "run_rate",
                    move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let rate = run_rate(s.pos(), for_rate.load(Ordering::Relaxed), s.elapsed());
                        let _ = write!(w, "{}/s", HumanBytes(rate as u64));
                    },
                )
                .with_key(
                    "run_eta",
                    move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let rate = run_rate(s.pos(), for_eta.load(Ordering::Relaxed), s.elapsed());
                        let left = s.len().unwrap_or(0).saturating_sub(s.pos());
                        let _ = write!(w, "{}", eta(left, rate));
                    },
                );
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        Bar {
            bar,
            what: "the transfer".to_string(),
            already,
        }
    }

    /// A bar that never draws (`-q`).
    pub fn hidden() -> Bar {
        Bar {
            bar: ProgressBar::hidden(),
            what: "the transfer".to_string(),
            already: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Name the transfer for the resume note ("the upload of FILE").
    pub fn about(mut self, what: impl Into<String>) -> Bar {
        self.what = what.into();
        self
    }
}

/// Bytes per second moved in this run: `pos` bytes are there, `already` of
/// them were before it started, `elapsed` ago.
pub fn run_rate(pos: u64, already: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    pos.saturating_sub(already) as f64 / secs
}

/// Time left for `left` bytes at `rate` bytes per second: `1m05s`, `7s`, `-`
/// while there is no rate yet.
fn eta(left: u64, rate: f64) -> String {
    if rate < 1.0 {
        return "-".to_string();
    }
    let secs = (left as f64 / rate).ceil() as u64;
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// The line said when a transfer starts with `already` bytes there.
fn resume_note(what: &str, already: u64, total: Option<u64>) -> String {
    let of = total.map_or_else(String::new, |t| format!(" of {}", human_size(t)));
    format!(
        "imgadm: resuming {what} at {}{of} (at byte {already})",
        human_size(already)
    )
}

impl Reporter for Bar {
    fn on_start(&self, total: Option<u64>, already: u64) {
        if already > 0 {
            self.bar
                .suspend(|| eprintln!("{}", resume_note(&self.what, already, total)));
        }
        if let Some(total) = total {
            self.bar.set_length(total);
        }
        self.already.store(already, Ordering::Relaxed);
        self.bar.set_position(already);
        // The rate and eta count from here: this run's bytes only.
        self.bar.reset_elapsed();
    }

    fn on_progress(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn on_complete(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_counts_only_this_runs_bytes() {
        let mib = 1024 * 1024;
        // 90 MiB were there; 10 MiB more in one second: 10 MiB/s, not 100.
        let rate = run_rate(100 * mib, 90 * mib, Duration::from_secs(1));
        assert_eq!(rate, (10 * mib) as f64);
        assert_eq!(run_rate(5, 0, Duration::ZERO), 0.0);
        assert_eq!(eta(100, 10.0), "10s");
        assert_eq!(eta(65 * 10, 10.0), "1m05s");
        assert_eq!(eta(1, 0.0), "-");
    }

    #[test]
    fn the_resume_note_reads_in_units() {
        let mib = 1024 * 1024;
        assert_eq!(
            resume_note(
                "the download of image x",
                66 * mib + 7 * mib / 10,
                Some(200 * mib)
            ),
            "imgadm: resuming the download of image x at 66.7 MiB of 200.0 MiB (at byte 69940019)"
        );
    }
}
