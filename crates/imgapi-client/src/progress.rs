//! Progress reporting for uploads and downloads. The library has no terminal
//! code: callers (e.g. `imgadm`) implement [`Reporter`] with progress bars.

/// Receives transfer progress.
///
/// Calls come in the order `on_start`, any number of `on_progress`, then
/// `on_complete` (only when the transfer succeeded).
pub trait Reporter: Send + Sync {
    /// The transfer starts. `total` is the full size in bytes when known;
    /// `already` is how many of them are already present (a resumed
    /// download), so a progress bar can start there.
    fn on_start(&self, total: Option<u64>, already: u64);
    /// `bytes` more bytes were transferred (a delta, not a running total).
    fn on_progress(&self, bytes: u64);
    /// The transfer finished and was verified.
    fn on_complete(&self);
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Reporter for NoProgress {
    fn on_start(&self, _total: Option<u64>, _already: u64) {}
    fn on_progress(&self, _bytes: u64) {}
    fn on_complete(&self) {}
}
