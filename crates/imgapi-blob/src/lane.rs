//! A "lane": one stage of a put pipeline (file writer, SHA-1, MD5, flusher)
//! that consumes shared `Bytes` buffers in order, off the async runtime.
//!
//! Each lane is a small tokio task fed by a bounded channel; every buffer is
//! processed by one `spawn_blocking` job that owns the lane's state for the
//! duration of that job. So lanes run in parallel with each other (and with
//! the task reading the request body), memory stays bounded by the channel
//! depth, and no blocking thread is held while a slow client trickles data.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The lane stopped (its state hit an error or its task died); the cause is
/// returned by [`Lane::finish`].
#[derive(Debug)]
pub(crate) struct LaneStopped;

pub(crate) struct Lane<S> {
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<io::Result<S>>>,
}

impl<S: Send + 'static> Lane<S> {
    /// Start a lane owning `state`; `work` is applied to every buffer, in
    /// order, on the blocking pool. At most `depth` buffers wait in the queue.
    pub(crate) fn spawn<F>(state: S, depth: usize, work: F) -> Self
    where
        F: Fn(&mut S, &[u8]) -> io::Result<()> + Send + Sync + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Bytes>(depth.max(1));
        let work = Arc::new(work);
        let task = tokio::spawn(async move {
            let mut state = state;
            while let Some(buf) = rx.recv().await {
                let work = Arc::clone(&work);
                state = tokio::task::spawn_blocking(move || {
                    work(&mut state, &buf)?;
                    Ok::<S, io::Error>(state)
                })
                .await
                .map_err(join_error)??;
            }
            Ok(state)
        });
        Lane {
            tx: Some(tx),
            task: Some(task),
        }
    }

    /// Queue `buf`, waiting while the queue is full.
    pub(crate) async fn send(&self, buf: Bytes) -> Result<(), LaneStopped> {
        match &self.tx {
            Some(tx) => tx.send(buf).await.map_err(|_| LaneStopped),
            None => Err(LaneStopped),
        }
    }

    /// Queue `buf` only if there is room; a full queue is not an error
    /// (used for "flush now" nudges, where one pending nudge is enough).
    pub(crate) fn nudge(&self, buf: Bytes) -> Result<(), LaneStopped> {
        match &self.tx {
            Some(tx) => match tx.try_send(buf) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(LaneStopped),
            },
            None => Err(LaneStopped),
        }
    }

    /// Close the queue, wait until every queued buffer is processed, and
    /// return the final state or the first error. Later calls fail.
    pub(crate) async fn finish(&mut self) -> io::Result<S> {
        self.tx = None;
        match self.task.take() {
            Some(task) => task.await.map_err(join_error)?,
            None => Err(io::Error::other("pipeline lane already finished")),
        }
    }
}

impl<S> Drop for Lane<S> {
    /// An abandoned lane (failed or cancelled put) stops after its current
    /// job instead of draining its queue.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("blob pipeline task failed: {e}"))
}
