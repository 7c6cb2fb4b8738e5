//! Circuit breakers in front of the network backends (PostgreSQL, S3), so an
//! outage answers 503 at once instead of after each request's own timeouts
//! (docs/operating.md "Backend outages").
//!
//! - **Detection costs nothing while all is well**: a breaker probes its
//!   backend only when something looks wrong: a call failed as unreachable,
//!   or calls have been outstanding for [`STUCK_AFTER`] with none finishing
//!   (a frozen or silently dropped backend never answers with an error). A
//!   probe that fails, or finds no answer within [`PROBE_TIMEOUT`] while no
//!   other call finished meanwhile, opens the breaker. A slow query on a
//!   healthy backend passes its probe and opens nothing.
//! - **Open**: new calls fail at once with the backend's `Unavailable`
//!   (→ 503 with `Retry-After`), and calls still waiting fail at the same
//!   moment. An upload counts as progressing while the store takes its
//!   bytes ([`Breaker::pace`]), so a healthy but busy store never loses an
//!   upload to a slow probe.
//! - **Healing**: while open the backend is probed every
//!   [`OPEN_PROBE_EVERY`]; the first answer closes the breaker.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use imgapi_blob::{BlobError, BlobStore, ByteStream};
use imgapi_meta::postgres::PostgresProber;
use imgapi_meta::{MetaError, MetaStore};
use tokio::sync::{watch, Notify};

use crate::telemetry::{Metrics, BACKEND_OUTAGES, BACKEND_UNREACHABLE};

/// Outstanding calls with nothing finishing for this long make the
/// breaker probe its backend.
pub const STUCK_AFTER: Duration = Duration::from_millis(300);
/// A probe without an answer within this long counts as failed (unless
/// another call finished meanwhile).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);
/// How often an open breaker probes for the backend's return.
pub const OPEN_PROBE_EVERY: Duration = Duration::from_millis(250);
/// The `Retry-After` (seconds) of an answer failed by an outage.
pub const RETRY_AFTER_SECS: u64 = 1;
/// How often the watchdog looks at the outstanding calls.
const TICK: Duration = Duration::from_millis(50);

/// The breaker of a PostgreSQL metadata store (`None` for SQLite, which
/// cannot be unreachable). Its probe has a connection of its own, so a
/// pool busy with slow queries does not look like an outage.
pub fn for_meta(
    meta: &Arc<dyn MetaStore>,
    database_url: &str,
    metrics: &Metrics,
) -> Option<Arc<Breaker>> {
    if !matches!(
        database_url.parse::<imgapi_meta::Engine>(),
        Ok(imgapi_meta::Engine::Postgres)
    ) {
        return None;
    }
    let probe: Probe = match PostgresProber::new(database_url) {
        Ok(prober) => {
            let prober = Arc::new(prober);
            Box::new(move || {
                let prober = prober.clone();
                Box::pin(async move { prober.probe().await.map_err(|e| e.to_string()) })
            })
        }
        // Cannot happen for a URL the store opened with; the pool will do.
        Err(_) => {
            let meta = meta.clone();
            Box::new(move || {
                let meta = meta.clone();
                Box::pin(async move { meta.ping().await.map_err(|e| e.to_string()) })
            })
        }
    };
    let signals = Signals::new(metrics, "meta", "postgres");
    Some(Breaker::start("PostgreSQL", probe, signals))
}

/// The breaker of a network blob store (`None` for the local disk).
pub fn for_blobs(blobs: &Arc<dyn BlobStore>, metrics: &Metrics) -> Option<Arc<Breaker>> {
    if blobs.kind() == "local" {
        return None;
    }
    let store = blobs.clone();
    let probe: Probe = Box::new(move || {
        let store = store.clone();
        Box::pin(async move { store.health_check().await.map_err(|e| e.to_string()) })
    });
    let signals = Signals::new(metrics, "blob", blobs.kind());
    Some(Breaker::start("S3 storage", probe, signals))
}

/// One cheap question to the backend: reachable or not, and why not.
pub type Probe =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The error type of a store behind a breaker.
pub trait Outage: Sized {
    /// The backend could not be reached (or did not answer).
    fn is_outage(&self) -> bool;
    /// The error of a call refused because the breaker is open.
    fn outage(message: String) -> Self;
}

impl Outage for MetaError {
    fn is_outage(&self) -> bool {
        matches!(self, MetaError::Unavailable(_))
    }
    fn outage(message: String) -> Self {
        MetaError::Unavailable(message)
    }
}

impl Outage for BlobError {
    fn is_outage(&self) -> bool {
        matches!(self, BlobError::Unavailable(_))
    }
    fn outage(message: String) -> Self {
        BlobError::Unavailable(message)
    }
}

/// Where a breaker reports its state (no-ops when metrics are off).
pub struct Signals {
    /// 1 while open.
    pub unreachable: metrics::Gauge,
    /// Incremented each time it opens.
    pub outages: metrics::Counter,
}

impl Signals {
    /// The series of `backend` (`meta`, `blob`) and `store` (`postgres`,
    /// `s3`), present at 0 from now on.
    pub fn new(metrics: &Metrics, backend: &'static str, store: &'static str) -> Signals {
        let labels = || {
            vec![
                metrics::Label::new("backend", backend),
                metrics::Label::new("store", store),
            ]
        };
        let signals = Signals {
            unreachable: metrics.gauge(BACKEND_UNREACHABLE, labels()),
            outages: metrics.counter(BACKEND_OUTAGES, labels()),
        };
        signals.unreachable.set(0.0);
        signals.outages.absolute(0);
        signals
    }
}

/// The breaker of one backend.
pub struct Breaker {
    /// What the messages call the backend (`PostgreSQL`, `S3 storage`).
    backend: &'static str,
    signals: Signals,
    open: watch::Sender<bool>,
    /// Why it opened (the failed probe's error).
    cause: Mutex<String>,
    /// Short calls outstanding.
    in_flight: AtomicUsize,
    /// When a call last finished with an answer from the backend, or the
    /// outstanding count last rose from zero (ms since `epoch`).
    last_progress_ms: AtomicU64,
    epoch: Instant,
    /// A call failed as unreachable: probe now.
    suspect: AtomicBool,
    wake: Arc<Notify>,
}

impl Breaker {
    /// A closed breaker for `backend`, with its watchdog running on the
    /// current runtime until the breaker is dropped.
    pub fn start(backend: &'static str, probe: Probe, signals: Signals) -> Arc<Breaker> {
        let breaker = Arc::new(Breaker {
            backend,
            signals,
            open: watch::Sender::new(false),
            cause: Mutex::new(String::new()),
            in_flight: AtomicUsize::new(0),
            last_progress_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            suspect: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
        });
        let wake = breaker.wake.clone();
        tokio::spawn(watchdog(Arc::downgrade(&breaker), wake, probe));
        breaker
    }

    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Run a call: refused at once while open, and failed at the moment
    /// the breaker opens while it waits.
    pub async fn call<T, E: Outage>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let mut opened = self.open.subscribe();
        if *opened.borrow_and_update() {
            return Err(self.refusal());
        }
        let _outstanding = Outstanding::enter(self);
        let result = tokio::select! {
            result = call => result,
            _ = opened.wait_for(|open| *open) => return Err(self.refusal()),
        };
        self.observe(&result);
        result
    }

    /// `body`, counting each chunk that the store takes as progress: a
    /// store that keeps taking an upload's bytes is alive, however long
    /// the upload.
    pub fn pace(self: &Arc<Self>, body: ByteStream) -> ByteStream {
        let breaker = self.clone();
        Box::pin(body.inspect(move |_| breaker.progress()))
    }

    fn refusal<E: Outage>(&self) -> E {
        let cause = match self.cause.lock() {
            Ok(cause) => cause.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        E::outage(format!(
            "{} is unreachable ({cause}); requests fail fast until it answers again",
            self.backend
        ))
    }

    fn observe<T, E: Outage>(&self, result: &Result<T, E>) {
        match result {
            Err(e) if e.is_outage() => {
                self.suspect.store(true, Ordering::Relaxed);
                self.wake.notify_one();
            }
            // Any answer, an error one included, shows the backend is there.
            _ => self.progress(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progress(&self) {
        self.last_progress_ms
            .store(self.now_ms(), Ordering::Relaxed);
    }

    /// Calls are outstanding and none has finished for [`STUCK_AFTER`].
    fn stuck(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
            && self
                .now_ms()
                .saturating_sub(self.last_progress_ms.load(Ordering::Relaxed))
                >= u64::try_from(STUCK_AFTER.as_millis()).unwrap_or(u64::MAX)
    }

    fn trip(&self, cause: String) {
        if let Ok(mut current) = self.cause.lock() {
            current.clone_from(&cause);
        }
        if !self.open.send_replace(true) {
            self.signals.unreachable.set(1.0);
            self.signals.outages.increment(1);
            tracing::error!(
                backend = self.backend,
                cause = %cause,
                "backend unreachable: answering 503 at once until it is back"
            );
        }
    }

    fn close(&self, opened_at: Option<Instant>) {
        if self.open.send_replace(false) {
            self.signals.unreachable.set(0.0);
            let down_ms = opened_at.map(|at| at.elapsed().as_millis() as u64);
            tracing::warn!(backend = self.backend, down_ms, "backend reachable again");
        }
    }
}

/// Counts one short call as outstanding while it lives.
struct Outstanding<'a>(&'a Breaker);

impl<'a> Outstanding<'a> {
    fn enter(breaker: &'a Breaker) -> Self {
        if breaker.in_flight.fetch_add(1, Ordering::Relaxed) == 0 {
            // Waiting starts now, not at the last call of a quiet period.
            breaker.progress();
        }
        Outstanding(breaker)
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn watchdog(breaker: Weak<Breaker>, wake: Arc<Notify>, probe: Probe) {
    let mut opened_at: Option<Instant> = None;
    let mut last_probe = Instant::now();
    loop {
        let Some(strong) = breaker.upgrade() else {
            return;
        };
        let open = strong.is_open();
        let due = if open {
            last_probe.elapsed() >= OPEN_PROBE_EVERY
        } else {
            strong.suspect.swap(false, Ordering::Relaxed) || strong.stuck()
        };
        if due {
            last_probe = Instant::now();
            let progress_before = strong.last_progress_ms.load(Ordering::Relaxed);
            match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                Ok(Ok(())) => {
                    strong.progress();
                    strong.close(opened_at.take());
                }
                Ok(Err(cause)) => {
                    opened_at.get_or_insert_with(Instant::now);
                    strong.trip(cause);
                }
                Err(_) => {
                    let others_answered =
                        strong.last_progress_ms.load(Ordering::Relaxed) != progress_before;
                    if !others_answered || open {
                        opened_at.get_or_insert_with(Instant::now);
                        strong.trip(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis()));
                    }
                }
            }
        }
        drop(strong);
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = wake.notified() => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU8;

    const UP: u8 = 0;
    const DOWN: u8 = 1;
    const FROZEN: u8 = 2;

    /// A breaker whose probe answers as `state` says.
    fn breaker(state: Arc<AtomicU8>) -> Arc<Breaker> {
        let probe: Probe = Box::new(move || {
            let state = state.clone();
            Box::pin(async move {
                match state.load(Ordering::Relaxed) {
                    UP => Ok(()),
                    DOWN => Err("connection refused".to_string()),
                    _ => std::future::pending().await,
                }
            })
        });
        let signals = Signals::new(&Metrics::disabled(), "meta", "test");
        Breaker::start("test backend", probe, signals)
    }

    async fn call(state: &AtomicU8) -> Result<(), MetaError> {
        match state.load(Ordering::Relaxed) {
            UP => Ok(()),
            DOWN => Err(MetaError::Unavailable("connection refused".into())),
            _ => std::future::pending().await,
        }
    }

    #[tokio::test]
    async fn a_refused_call_opens_it_and_the_backends_return_closes_it() {
        let state = Arc::new(AtomicU8::new(DOWN));
        let breaker = breaker(state.clone());
        assert!(breaker.call(call(&state)).await.is_err());
        tokio::time::sleep(TICK * 3).await;
        assert!(breaker.is_open());
        let refused = Instant::now();
        let err = breaker.call(call(&state)).await.unwrap_err();
        assert!(refused.elapsed() < Duration::from_millis(10));
        assert!(
            err.to_string()
                .contains("test backend is unreachable (connection refused)"),
            "{err}"
        );
        state.store(UP, Ordering::Relaxed);
        tokio::time::sleep(OPEN_PROBE_EVERY + TICK * 3).await;
        assert!(!breaker.is_open());
        assert!(breaker.call(call(&state)).await.is_ok());
    }

    #[tokio::test]
    async fn a_frozen_backend_fails_waiting_calls_within_a_second() {
        let state = Arc::new(AtomicU8::new(FROZEN));
        let breaker = breaker(state.clone());
        let started = Instant::now();
        let err = breaker.call(call(&state)).await.unwrap_err();
        let waited = started.elapsed();
        assert!(waited <= Duration::from_millis(900), "{waited:?}");
        assert!(err.to_string().contains("no answer within 400 ms"), "{err}");
    }

    #[tokio::test]
    async fn a_slow_call_on_a_live_backend_opens_nothing() {
        let state = Arc::new(AtomicU8::new(UP));
        let breaker = breaker(state.clone());
        let slow = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok::<_, MetaError>(())
        };
        assert!(breaker.call(slow).await.is_ok());
        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn an_upload_the_store_keeps_taking_is_not_cut() {
        let state = Arc::new(AtomicU8::new(FROZEN));
        let breaker = breaker(state.clone());
        let chunks = futures_util::stream::iter(0..12).then(|_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(bytes::Bytes::from_static(b"chunk"))
        });
        let mut body = breaker.pace(Box::pin(chunks));
        let upload = async move {
            let mut taken = 0;
            while let Some(chunk) = body.next().await {
                taken += chunk.map_err(|e| MetaError::Backend(e.to_string()))?.len();
            }
            Ok::<_, MetaError>(taken)
        };
        assert_eq!(breaker.call(upload).await.unwrap(), 60);
        assert!(!breaker.is_open());
    }
}
