//! Reading a blob as a stream, with memory bounded across all readers.
//!
//! One download alone reads 1 MiB chunks and keeps a few ready ahead of the
//! client, which is what makes a single fast client go at disk or loopback
//! speed. Hundreds of downloads at once cannot each hold megabytes: 200
//! clients of a 64 MiB image once took the server from 30 to 310 MiB RSS.
//! So each reader's allowance of bytes in flight (read and not yet written
//! to the socket by hyper) is [`READ_BUDGET`] shared by the readers active
//! now, between [`MIN_ALLOWANCE`] and [`MAX_ALLOWANCE`], and its chunk is half
//! its allowance. With many clients the aggregate rate does not need
//! read-ahead: while one connection waits for its next chunk, the others
//! fill the sockets.
//!
//! The budget is also an account, of the read buffers of all readers
//! together. A reader whose next chunk would overdraw it waits for its own
//! chunks to be written, and a reader with nothing in flight reads a
//! smallest chunk whatever the account says. So when 200 downloads start at
//! the same instant (when each still sees few others), the total stays near
//! the budget plus one small chunk per reader. Every reader can always have
//! one chunk in flight, so a client that stops reading holds its own
//! allowance only and never slows the others.
//!
//! A chunk is in flight until hyper drops it, after writing it: the chunk's
//! `Bytes` owns its buffer, which then goes back to its reader to be read
//! into again. Buffers stay charged to the account while a reader keeps
//! them. Reusing them matters: a fresh 1 MiB buffer per chunk costs 256
//! page faults (20x more faults, one download 2.6 -> 2.0 GB/s).
//!
//! When many download at once, data already in the page cache is read right
//! on the async task with
//! `preadv2(RWF_NOWAIT)`, which never blocks: it returns what is cached, or
//! EAGAIN. Only what must come from the disk goes to the blocking pool. With
//! 200 clients, handing every chunk to a pool thread and back cost more CPU
//! in context switches than the copies themselves (perf: 56% in the
//! scheduler), and that CPU is what the clients and the kernel needed.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::ByteStream;

/// Bytes in flight that all readers together aim to stay under.
pub(super) const READ_BUDGET: usize = 5 << 20;
/// A reader's allowance never goes below this, whatever the number of readers.
pub(super) const MIN_ALLOWANCE: usize = 32 << 10;
/// ... nor above this (one reader alone: four 1 MiB chunks ahead plus the one
/// being written, as before the budget existed).
pub(super) const MAX_ALLOWANCE: usize = 5 << 20;
/// Largest chunk a read yields.
pub(super) const MAX_CHUNK: usize = 1 << 20;

/// With more readers than this active, page-cached data is read on the
/// async task itself. With fewer, every read goes to the blocking pool: on
/// another core it overlaps with the socket writes, which one download alone
/// needs to reach loopback speed (inline reads cost one client 19%: 2.6 ->
/// 2.1 GB/s).
pub(super) const INLINE_READS_FROM: usize = 8;

/// Blocking reads in progress at once, for all readers of a store. Each
/// blocking read runs on a thread of the blocking pool; without a cap, 200
/// clients kept ~120 threads busy (stacks and allocator arenas: RSS), while
/// page-cache reads take microseconds and a disk is saturated by far fewer.
pub(super) const READ_IO_SLOTS: usize = 16;

/// The readers in progress of one store; shared by its clones.
#[derive(Debug)]
pub(crate) struct Readers {
    active: AtomicUsize,
    /// Bytes in flight, all readers together.
    in_flight: AtomicUsize,
    io_slots: Semaphore,
}

impl Default for Readers {
    fn default() -> Self {
        Readers {
            active: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            io_slots: Semaphore::new(READ_IO_SLOTS),
        }
    }
}

impl Readers {
    /// Bytes one reader may have in flight while `active` readers run.
    fn allowance(active: usize) -> usize {
        (READ_BUDGET / active.max(1)).clamp(MIN_ALLOWANCE, MAX_ALLOWANCE)
    }

    /// The chunk size for an allowance: half of it, so that one chunk can be
    /// read while the previous one is being written.
    fn chunk_for(allowance: usize) -> usize {
        (allowance / 2).min(MAX_CHUNK)
    }

    fn enter(self: &Arc<Self>) -> ActiveReader {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveReader(Arc::clone(self))
    }

    fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Take `n` bytes from the account if they fit in the budget.
    fn try_take(&self, n: usize) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now + n <= READ_BUDGET).then_some(now + n)
            })
            .is_ok()
    }

    /// Take `n` bytes whatever the account says (a reader's one small chunk).
    fn take(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::AcqRel);
    }

    #[cfg(test)]
    pub(crate) fn charged(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn give_back(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One reader in progress; leaving (dropping) it is counted.
struct ActiveReader(Arc<Readers>);

impl Drop for ActiveReader {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One reader's buffers: the bytes in flight, the bytes charged to the
/// account (in flight, being read, or kept to read into again), a wake-up
/// when a chunk is written, and the written buffers.
struct InFlight {
    readers: Arc<Readers>,
    bytes: AtomicUsize,
    charged: AtomicUsize,
    freed: Notify,
    spare: Mutex<Vec<Vec<u8>>>,
}

impl InFlight {
    fn new(readers: Arc<Readers>) -> Self {
        InFlight {
            readers,
            bytes: AtomicUsize::new(0),
            charged: AtomicUsize::new(0),
            freed: Notify::new(),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Wait until this reader may put more bytes in flight; a buffer of at
    /// most `want` bytes (which fit in `allowance`) to read into.
    async fn buffer(&self, want: usize, allowance: usize) -> Vec<u8> {
        loop {
            let freed = self.freed.notified();
            let own = self.bytes.load(Ordering::Acquire);
            if own == 0 || own + want <= allowance {
                if let Some(mut buf) = self.spare_for(want) {
                    buf.resize(want, 0);
                    self.bytes.fetch_add(want, Ordering::AcqRel);
                    return buf;
                }
                let n = if self.readers.try_take(want) {
                    want
                } else if own == 0 {
                    let n = want.min(MIN_ALLOWANCE / 2);
                    self.readers.take(n);
                    n
                } else {
                    freed.await;
                    continue;
                };
                self.charged.fetch_add(n, Ordering::AcqRel);
                self.bytes.fetch_add(n, Ordering::AcqRel);
                return vec![0u8; n];
            }
            freed.await;
        }
    }

    /// A kept buffer that holds `want` bytes; one too small, or too big for
    /// what the reader may hold now, is freed and its charge given back.
    fn spare_for(&self, want: usize) -> Option<Vec<u8>> {
        let buf = self.spare.lock().ok()?.pop()?;
        if (want..=2 * want).contains(&buf.capacity()) {
            return Some(buf);
        }
        self.discharge(buf.capacity());
        None
    }

    fn discharge(&self, n: usize) {
        self.charged.fetch_sub(n, Ordering::AcqRel);
        self.readers.give_back(n);
    }

    /// A read failed and its buffer of `n` bytes went with it.
    fn lost(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
        self.discharge(n);
        self.freed.notify_one();
    }

    /// A chunk was written (or never sent): keep its buffer.
    fn written(&self, buf: Vec<u8>) {
        self.bytes.fetch_sub(buf.len(), Ordering::AcqRel);
        match self.spare.lock() {
            Ok(mut spare) => spare.push(buf),
            Err(_) => self.discharge(buf.capacity()),
        }
        self.freed.notify_one();
    }
}

impl Drop for InFlight {
    /// The reader and all its chunks are gone: every buffer is freed.
    fn drop(&mut self) {
        self.readers.give_back(self.charged.load(Ordering::Acquire));
    }
}

/// A chunk's buffer; goes back to its reader when dropped.
struct Chunk {
    buf: Vec<u8>,
    in_flight: Arc<InFlight>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.in_flight.written(std::mem::take(&mut self.buf));
    }
}

/// Stream the bytes of `range` of `file`.
pub(super) fn read_stream(readers: &Arc<Readers>, file: File, range: Range<u64>) -> ByteStream {
    // The channel only hands chunks over; the in-flight count bounds them.
    let (tx, rx) = mpsc::unbounded_channel::<io::Result<Bytes>>();
    let active = readers.enter();
    tokio::spawn(async move {
        let active = active;
        let in_flight = Arc::new(InFlight::new(Arc::clone(&active.0)));
        let file = Arc::new(file);
        let mut at = range.start;
        let mut nowait = true;
        while at < range.end {
            let allowance = Readers::allowance(active.0.active());
            let want = Readers::chunk_for(allowance);
            let want = usize::try_from((range.end - at).min(want as u64)).unwrap_or(want);
            let mut buf = in_flight.buffer(want, allowance).await;
            if tx.is_closed() {
                in_flight.written(buf);
                return;
            }
            let n = buf.len();
            let cached = if nowait && active.0.active() > INLINE_READS_FROM {
                read_cached(&file, &mut buf, at)
            } else {
                Cached::Some(0)
            };
            let got = match cached {
                Cached::Some(got) => got,
                Cached::Unsupported => {
                    nowait = false;
                    0
                }
            };
            let read = if got == n {
                Ok(buf)
            } else {
                read_on_the_pool(&active.0.io_slots, &file, buf, at, got).await
            };
            match read {
                Ok(buf) => {
                    at += n as u64;
                    let chunk = Chunk {
                        buf,
                        in_flight: Arc::clone(&in_flight),
                    };
                    if tx.send(Ok(Bytes::from_owner(chunk))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    in_flight.lost(n);
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Read `buf[from..]` at `at + from` on the blocking pool (from the disk).
async fn read_on_the_pool(
    io_slots: &Semaphore,
    file: &Arc<File>,
    mut buf: Vec<u8>,
    at: u64,
    from: usize,
) -> io::Result<Vec<u8>> {
    let _slot = io_slots
        .acquire()
        .await
        .map_err(|_| io::Error::other("blob read slots closed"))?;
    let f = Arc::clone(file);
    tokio::task::spawn_blocking(move || {
        f.read_exact_at(&mut buf[from..], at + from as u64)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file shorter than expected (truncated while reading?)",
                ),
                _ => e,
            })?;
        Ok(buf)
    })
    .await
    .map_err(|e| io::Error::other(format!("blob read task failed: {e}")))?
}

/// What a read from the page cache alone got.
enum Cached {
    /// This many bytes from the start of the buffer (0: none cached).
    Some(usize),
    /// The filesystem cannot read without waiting: always use the pool.
    Unsupported,
}

/// Fill `buf` from the page cache only, without ever waiting for the disk.
#[cfg(target_os = "linux")]
fn read_cached(file: &File, buf: &mut [u8], at: u64) -> Cached {
    use rustix::io::{preadv2, Errno, ReadWriteFlags};
    let mut got = 0;
    while got < buf.len() {
        let mut slices = [io::IoSliceMut::new(&mut buf[got..])];
        match preadv2(file, &mut slices, at + got as u64, ReadWriteFlags::NOWAIT) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) if got == 0 => {
                return Cached::Unsupported
            }
            // EAGAIN: the rest is not cached; any other error is met again,
            // and reported, by the blocking read.
            Err(_) => break,
        }
    }
    Cached::Some(got)
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_file: &File, _buf: &mut [u8], _at: u64) -> Cached {
    Cached::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reader_keeps_the_old_read_ahead_and_many_share_the_budget() {
        assert_eq!(Readers::allowance(1), MAX_ALLOWANCE);
        assert_eq!(Readers::chunk_for(Readers::allowance(1)), MAX_CHUNK);
        assert_eq!(Readers::allowance(0), MAX_ALLOWANCE);
        assert_eq!(Readers::allowance(16), READ_BUDGET / 16);
        assert_eq!(Readers::allowance(100), READ_BUDGET / 100);
        assert_eq!(Readers::allowance(1000), MIN_ALLOWANCE);
        assert_eq!(
            Readers::chunk_for(Readers::allowance(1000)),
            MIN_ALLOWANCE / 2
        );
    }

    #[tokio::test]
    async fn readers_starting_together_stay_within_the_budget() {
        let readers = Arc::new(Readers::default());
        // 200 readers admitted while each still sees few others (the
        // worst case: nobody's chunk has been written yet)
        let mut held = Vec::new();
        for i in 1..=200 {
            let reader = InFlight::new(Arc::clone(&readers));
            let allowance = Readers::allowance(i);
            let buf = reader
                .buffer(Readers::chunk_for(allowance), allowance)
                .await;
            assert!(!buf.is_empty());
            held.push((reader, buf));
        }
        let total = readers.in_flight.load(Ordering::Acquire);
        assert!(
            total <= READ_BUDGET + 200 * MIN_ALLOWANCE / 2,
            "{total} bytes charged"
        );
        for (reader, buf) in held {
            reader.written(buf);
            // kept to read into again, so still charged
            assert!(reader.charged.load(Ordering::Acquire) > 0);
        }
        // each reader was dropped at the end of its iteration
        assert_eq!(readers.in_flight.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_reader_reuses_its_buffers_and_gives_them_back_at_the_end() {
        let readers = Arc::new(Readers::default());
        let reader = InFlight::new(Arc::clone(&readers));
        let first = reader.buffer(MAX_CHUNK, MAX_ALLOWANCE).await;
        let first_at = first.as_ptr();
        reader.written(first);
        let again = reader.buffer(MAX_CHUNK, MAX_ALLOWANCE).await;
        assert_eq!(
            again.as_ptr(),
            first_at,
            "the written buffer is read into again"
        );
        assert_eq!(readers.in_flight.load(Ordering::Acquire), MAX_CHUNK);
        // many readers now: the 1 MiB buffer is too big to keep
        reader.written(again);
        let small = reader.buffer(16 << 10, 32 << 10).await;
        assert_eq!(small.len(), 16 << 10);
        assert_eq!(readers.in_flight.load(Ordering::Acquire), 16 << 10);
        reader.lost(small.len());
        drop(small);
        assert_eq!(readers.in_flight.load(Ordering::Acquire), 0);
        let last = reader.buffer(16 << 10, 32 << 10).await;
        reader.written(last);
        drop(reader);
        assert_eq!(readers.in_flight.load(Ordering::Acquire), 0);
    }
}
