//! A loopback TCP proxy for the imgadm end-to-end tests. It forwards every
//! connection to one upstream server and watches the server→client direction:
//! it counts the bytes it forwards, and can throttle them to a fixed rate,
//! hold them (stop forwarding at a byte count until released) or cut the
//! connection once after a byte count. The client→server direction (uploads)
//! is counted too, and can be throttled or cut once after a byte count.
//!
//! Byte counts are raw TCP payload (status lines and headers included) summed
//! over all connections; for a file download that is the body plus well under
//! a KiB per response.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Largest piece written to the client at once (keeps throttling smooth).
const PIECE: usize = 32 * 1024;

#[derive(Debug)]
struct State {
    /// Bytes forwarded server→client, all connections.
    down: u64,
    /// Throttle for server→client bytes per second per connection; 0 = none.
    rate: u64,
    /// Forwarding pauses while `down` is at this count (`u64::MAX` = never).
    hold_at: u64,
    /// When `down` reaches this count the connection carrying that byte is
    /// closed and the cut disarmed (`u64::MAX` = never).
    cut_at: u64,
    cuts: u64,
    /// Bytes forwarded client→server, all connections.
    up: u64,
    /// Throttle for client→server bytes per second per connection; 0 = none.
    up_rate: u64,
    /// When `up` reaches this count the connection carrying that byte is
    /// closed and the cut disarmed (`u64::MAX` = never).
    up_cut_at: u64,
    up_cuts: u64,
    /// Connections accepted / currently open.
    connections: u64,
    active: u64,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The proxy; listens on `127.0.0.1:0` until dropped.
pub struct Proxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    /// Proxy to the server at `upstream` (an `http://host:port` URL).
    pub fn start(upstream: &str) -> Proxy {
        let target: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream must be http://<ip>:<port>");
        assert!(target.ip().is_loopback(), "loopback only: {target}");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                down: 0,
                rate: 0,
                hold_at: u64::MAX,
                cut_at: u64::MAX,
                cuts: 0,
                up: 0,
                up_rate: 0,
                up_cut_at: u64::MAX,
                up_cuts: 0,
                connections: 0,
                active: 0,
            }),
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let acc = Arc::clone(&shared);
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                acc.with(|s| {
                    s.connections += 1;
                    s.active += 1;
                });
                tokio::spawn(connection(client, target, Arc::clone(&acc)));
            }
        });
        Proxy {
            url,
            shared,
            _rt: rt,
        }
    }

    /// Throttle server→client traffic to `bytes_per_sec` (0 = unthrottled).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.shared.with(|s| s.rate = bytes_per_sec);
    }

    /// Stop forwarding server→client bytes once `bytes` have been forwarded
    /// in total, until [`Proxy::release`]. Connections stay open.
    pub fn hold_at(&self, bytes: u64) {
        self.shared.with(|s| s.hold_at = bytes);
    }

    /// Undo [`Proxy::hold_at`].
    pub fn release(&self) {
        self.hold_at(u64::MAX);
    }

    /// Once `bytes` have been forwarded server→client in total, close the
    /// connection that carried the last of them (once; later connections
    /// pass untouched).
    pub fn cut_once_at(&self, bytes: u64) {
        self.shared.with(|s| s.cut_at = bytes);
    }

    /// Once `bytes` more have been forwarded client→server (in total),
    /// close the connection that carried the last of them (once).
    pub fn cut_up_once_after(&self, bytes: u64) {
        self.shared
            .with(|s| s.up_cut_at = s.up.saturating_add(bytes));
    }

    /// Throttle client→server traffic to `bytes_per_sec` (0 = unthrottled).
    pub fn set_up_rate(&self, bytes_per_sec: u64) {
        self.shared.with(|s| s.up_rate = bytes_per_sec);
    }

    /// Bytes forwarded client→server so far.
    pub fn up(&self) -> u64 {
        self.shared.with(|s| s.up)
    }

    /// How many connections were cut in the client→server direction.
    pub fn up_cuts(&self) -> u64 {
        self.shared.with(|s| s.up_cuts)
    }

    /// Bytes forwarded server→client so far.
    pub fn down(&self) -> u64 {
        self.shared.with(|s| s.down)
    }

    /// Zero the server→client count; returns what it was.
    pub fn reset_down(&self) -> u64 {
        self.shared.with(|s| std::mem::take(&mut s.down))
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> u64 {
        self.shared.with(|s| s.cuts)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.with(|s| s.connections)
    }

    /// Wait (polling) until no connection is open; false on timeout.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.shared.with(|s| s.active) == 0 {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Decrements the open-connection count when a connection task ends.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.with(|s| s.active -= 1);
    }
}

async fn connection(client: TcpStream, target: SocketAddr, shared: Arc<Shared>) {
    let _active = Active(Arc::clone(&shared));
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = upward(&mut cr, &mut sw, &shared);
    // HTTP/1.1 clients never half-close while waiting for a response, so
    // the end of either direction ends the connection (a killed client
    // thereby also ends a held or throttled download).
    tokio::select! {
        () = up => {}
        () = down(&mut sr, &mut cw, &shared) => {}
    }
}

/// Pump client→server with counting, throttling and cutting.
async fn upward(cr: &mut OwnedReadHalf, sw: &mut OwnedWriteHalf, shared: &Shared) {
    let mut buf = vec![0u8; PIECE];
    let epoch = Instant::now();
    let mut sent = 0u64;
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (take, cut, rate) = shared.with(|s| {
            let to_cut = s.up_cut_at.saturating_sub(s.up);
            let cut = s.up_cut_at != u64::MAX && (n as u64) >= to_cut;
            let take = if cut { to_cut as usize } else { n };
            (take, cut, s.up_rate)
        });
        if rate > 0 {
            sent += take as u64;
            tokio::time::sleep_until((epoch + secs(sent, rate)).into()).await;
        }
        if sw.write_all(&buf[..take]).await.is_err() {
            return;
        }
        shared.with(|s| {
            s.up += take as u64;
            if cut {
                s.up_cut_at = u64::MAX;
                s.up_cuts += 1;
            }
        });
        if cut {
            return; // the select in `connection` drops both sockets
        }
    }
    let _ = sw.shutdown().await;
}

/// Pump server→client with counting, throttling, holding and cutting.
async fn down(sr: &mut OwnedReadHalf, cw: &mut OwnedWriteHalf, shared: &Shared) {
    let mut buf = vec![0u8; PIECE];
    // Throttle bookkeeping: bytes sent since `epoch` at rate `epoch_rate`.
    let mut epoch = Instant::now();
    let mut epoch_rate = 0;
    let mut sent = 0u64;
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            // How much may go now, and whether that ends in a cut.
            let (take, cut, rate) = shared.with(|s| {
                let room = s.hold_at.saturating_sub(s.down);
                let to_cut = s.cut_at.saturating_sub(s.down);
                let take = (data.len() as u64).min(room).min(to_cut.max(1));
                let cut = s.cut_at != u64::MAX && take >= to_cut;
                (take as usize, cut, s.rate)
            });
            if take == 0 {
                // Held: wait for a release; resume throttling afresh.
                tokio::time::sleep(Duration::from_millis(10)).await;
                epoch = Instant::now();
                sent = 0;
                continue;
            }
            if rate != epoch_rate || epoch.elapsed() > Duration::from_secs(1) + secs(sent, rate) {
                // New rate, or far behind schedule: no catch-up burst.
                epoch = Instant::now();
                epoch_rate = rate;
                sent = 0;
            }
            if rate > 0 {
                sent += take as u64;
                tokio::time::sleep_until((epoch + secs(sent, rate)).into()).await;
            }
            if cw.write_all(&data[..take]).await.is_err() {
                return;
            }
            shared.with(|s| {
                s.down += take as u64;
                if cut {
                    s.cut_at = u64::MAX;
                    s.cuts += 1;
                }
            });
            if cut {
                let _ = cw.shutdown().await;
                return;
            }
            data = &data[take..];
        }
    }
    let _ = cw.shutdown().await;
}

fn secs(bytes: u64, rate: u64) -> Duration {
    if rate == 0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(bytes as f64 / rate as f64)
    }
}
