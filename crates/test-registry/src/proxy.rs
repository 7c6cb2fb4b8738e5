//! A TCP proxy in front of a registry: counts the requests it forwards and,
//! when armed, cuts or slows the response to the next matching request
//! after a given number of bytes (a deterministic "registry cut
//! mid-layer"). HTTP/1.1 without pipelining is assumed, so the bytes that
//! follow a request on its connection are its response.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::background::Background;
use crate::Error;

/// What happens to the response once `after_bytes` of it were forwarded.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// The connection is closed.
    Cut,
    /// The rest trickles: `chunk` bytes every `delay`.
    Throttle { chunk: usize, delay: Duration },
}

/// A fault for the next `times` requests whose path contains
/// `path_contains` (once unless [`Fault::times`] says otherwise).
#[derive(Clone, Debug)]
pub struct Fault {
    pub path_contains: String,
    pub after_bytes: u64,
    pub action: FaultAction,
    pub times: usize,
}

impl Fault {
    pub fn cut(path_contains: &str, after_bytes: u64) -> Fault {
        Fault {
            path_contains: path_contains.to_string(),
            after_bytes,
            action: FaultAction::Cut,
            times: 1,
        }
    }

    pub fn throttle(path_contains: &str, after_bytes: u64, chunk: usize, delay: Duration) -> Fault {
        Fault {
            path_contains: path_contains.to_string(),
            after_bytes,
            action: FaultAction::Throttle { chunk, delay },
            times: 1,
        }
    }

    /// Hits the next `times` matching requests (a client that retries).
    pub fn times(mut self, times: usize) -> Fault {
        self.times = times;
        self
    }
}

/// The fault applying to the response in flight on one connection.
struct ActiveFault {
    fault: Fault,
    /// Response bytes forwarded since the request.
    sent: u64,
}

#[derive(Default)]
struct ProxyState {
    /// `"METHOD PATH"` of every request forwarded, in arrival order.
    requests: Mutex<Vec<String>>,
    armed: Mutex<Option<Fault>>,
    fired: AtomicUsize,
}

impl ProxyState {
    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    port: u16,
    state: Arc<ProxyState>,
    _server: Background,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Result<FaultProxy, Error> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(Error::io("bind the fault proxy"))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("fault proxy address"))?
            .port();
        let state = Arc::new(ProxyState::default());
        let (upstream, shared) = (upstream.to_string(), state.clone());
        let server = Background::spawn(listener, move |listener, mut shutdown| async move {
            loop {
                tokio::select! {
                    _ = &mut shutdown => return,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { return };
                        tokio::spawn(relay(client, upstream.clone(), shared.clone()));
                    }
                }
            }
        })?;
        Ok(FaultProxy {
            port,
            state,
            _server: server,
        })
    }

    /// `127.0.0.1:PORT`: use it as the registry host in repository names.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Applies `fault` to the next matching requests (replacing any armed one).
    pub fn arm(&self, fault: Fault) {
        *ProxyState::lock(&self.state.armed) = Some(fault);
    }

    pub fn disarm(&self) {
        *ProxyState::lock(&self.state.armed) = None;
    }

    /// How many armed faults hit a request.
    pub fn fired(&self) -> usize {
        self.state.fired.load(Ordering::SeqCst)
    }

    /// `"METHOD PATH"` of every request forwarded so far.
    pub fn requests(&self) -> Vec<String> {
        ProxyState::lock(&self.state.requests).clone()
    }

    /// Requests with this method whose path contains `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        ProxyState::lock(&self.state.requests)
            .iter()
            .filter(|r| {
                r.split_once(' ')
                    .is_some_and(|(m, p)| m == method && p.contains(path_contains))
            })
            .count()
    }
}

/// One client connection: both directions until either side ends or a cut.
async fn relay(client: TcpStream, upstream: String, state: Arc<ProxyState>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let active = Arc::new(Mutex::new(None::<ActiveFault>));
    tokio::select! {
        _ = requests(client_read, server_write, state, active.clone()) => {}
        _ = responses(server_read, client_write, active) => {}
    }
}

/// Client → registry: forwards bytes unchanged, noting each request head.
async fn requests(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    state: Arc<ProxyState>,
    active: Arc<Mutex<Option<ActiveFault>>>,
) {
    let mut parser = RequestParser::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for (method, path) in parser.feed(&buf[..n]) {
            ProxyState::lock(&state.requests).push(format!("{method} {path}"));
            let mut armed = ProxyState::lock(&state.armed);
            let hit = armed
                .as_mut()
                .filter(|f| f.times > 0 && path.contains(&f.path_contains))
                .map(|f| {
                    f.times -= 1;
                    f.clone()
                });
            if hit.is_some() {
                state.fired.fetch_add(1, Ordering::SeqCst);
            }
            // A later request on a kept-alive connection starts clean.
            *ProxyState::lock(&active) = hit.map(|fault| ActiveFault { fault, sent: 0 });
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Registry → client: forwards bytes, applying the active fault.
async fn responses(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    active: Arc<Mutex<Option<ActiveFault>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (free, action) = split_by_fault(&active, n);
        if to.write_all(&buf[..free]).await.is_err() {
            return;
        }
        let rest = &buf[free..n];
        if rest.is_empty() {
            continue;
        }
        match action {
            None => {}
            Some(FaultAction::Cut) => {
                let _ = to.flush().await;
                return;
            }
            Some(FaultAction::Throttle { chunk, delay }) => {
                for piece in rest.chunks(chunk.max(1)) {
                    tokio::time::sleep(delay).await;
                    if to.write_all(piece).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Of `n` response bytes just read: how many pass untouched, and what
/// happens to the rest.
fn split_by_fault(active: &Mutex<Option<ActiveFault>>, n: usize) -> (usize, Option<FaultAction>) {
    let mut active = ProxyState::lock(active);
    let Some(current) = active.as_mut() else {
        return (n, None);
    };
    let allowed = current.fault.after_bytes.saturating_sub(current.sent);
    current.sent += n as u64;
    let free = usize::try_from(allowed).unwrap_or(usize::MAX).min(n);
    (free, Some(current.fault.action.clone()))
}

/// Finds request heads in a client's byte stream, skipping bodies announced
/// by `Content-Length`. A chunked request body stops the parsing for the
/// connection (registry clients send none to a pull).
#[derive(Default)]
struct RequestParser {
    pending: Vec<u8>,
    body_left: u64,
    lost: bool,
}

impl RequestParser {
    /// `(method, path)` of every request head completed by `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        let mut heads = Vec::new();
        let mut input = bytes.to_vec();
        while !self.lost {
            if self.body_left > 0 {
                let skip = usize::try_from(self.body_left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                self.body_left -= skip as u64;
                input.drain(..skip);
                if self.body_left > 0 {
                    break;
                }
            }
            self.pending.append(&mut input);
            let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            input = self.pending.split_off(end + 4);
            let head = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            heads.extend(self.parse_head(&head));
        }
        heads
    }

    fn parse_head(&mut self, head: &str) -> Option<(String, String)> {
        let mut lines = head.lines();
        for line in lines.clone().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                self.body_left = value.trim().parse().unwrap_or(0);
            } else if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
            {
                self.lost = true;
            }
        }
        let mut words = lines.next()?.split_whitespace();
        Some((words.next()?.to_string(), words.next()?.to_string()))
    }
}
