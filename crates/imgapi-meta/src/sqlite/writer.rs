//! Group commit: one task performs every write.
//!
//! With `synchronous=FULL` each COMMIT costs an fsync, so one transaction
//! per write caps throughput at one write per fsync. Instead callers queue
//! their [`Write`] and wait; the task takes whatever is queued (up to
//! [`MAX_BATCH`]) and runs it as one `BEGIN IMMEDIATE … COMMIT`, i.e. one
//! fsync for the whole batch. Each op runs inside its own SAVEPOINT, so an
//! op that fails (Conflict, NotFound, AlreadyExists, …) is undone alone and
//! the batch behaves exactly like the ops committed one after another in
//! queue order. Callers get their result only after the COMMIT succeeded,
//! so an acknowledged write is still durable.
//!
//! If the task is gone (panicked, runtime shut down) a write fails with
//! `Unavailable` instead of waiting forever. A caller that stops waiting
//! does not withdraw its op: once queued it may still be committed.

#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(test)]
use std::sync::Arc;

use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::{apply, map_err};
use crate::sql::Write;
use crate::MetaError;

/// Most ops in one transaction: bounds how long a batch holds the write
/// lock and how long its first caller waits for the others.
const MAX_BATCH: usize = 64;
/// Queued ops before callers wait to enqueue (back-pressure).
const QUEUE_LEN: usize = 1024;

/// What an op yields: a revision, or for a delete the rows deleted.
pub(super) type Outcome = Result<i64, MetaError>;

struct Job {
    op: Write,
    reply: oneshot::Sender<Outcome>,
}

/// Handle to the writer task; cheap to clone. The task stops once every
/// handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Transactions committed so far (tests look at how writes were batched).
    #[cfg(test)]
    pub(super) commits: Arc<AtomicU64>,
}

impl Writer {
    /// Start the writer task on the current tokio runtime. `pool` is the
    /// single-connection writer pool; the task takes its connection for the
    /// duration of each batch.
    pub(super) fn spawn(pool: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_LEN);
        let writer = Writer {
            jobs,
            #[cfg(test)]
            commits: Arc::default(),
        };
        tokio::spawn(serve(
            pool,
            queue,
            #[cfg(test)]
            Arc::clone(&writer.commits),
        ));
        writer
    }

    /// Queue `op` and wait until its batch is committed (or failed).
    pub(super) async fn run(&self, op: Write) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { op, reply })
            .await
            .map_err(|_| gone())?;
        // The reply is dropped unsent only if the task dies.
        answer.await.map_err(|_| gone())?
    }
}

fn gone() -> MetaError {
    MetaError::Unavailable("the metadata writer task has stopped".into())
}

async fn serve(
    pool: SqlitePool,
    mut queue: mpsc::Receiver<Job>,
    #[cfg(test)] commits: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Waits for the first op, then takes what else is already queued.
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match run_batch(&pool, &batch).await {
            Ok(outcomes) => {
                #[cfg(test)]
                commits.fetch_add(1, Ordering::Relaxed);
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    // The caller may have given up; nothing to do then.
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Run `batch` in one transaction: `Ok` with every op's outcome once
/// committed, or `Err` if the transaction as a whole failed (nothing of it
/// is kept: dropping the open transaction rolls it back).
async fn run_batch(pool: &SqlitePool, batch: &[Job]) -> Result<Vec<Outcome>, MetaError> {
    // IMMEDIATE takes the write lock up front, so the transaction never
    // fails half-way while upgrading a read lock.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        exec(&mut tx, "SAVEPOINT op").await?;
        let outcome = apply(&mut tx, &job.op).await;
        if outcome.is_err() {
            // Undo this op only. If this fails, SQLite has already rolled
            // back the whole transaction (e.g. after an I/O error).
            exec(&mut tx, "ROLLBACK TO op").await?;
        }
        exec(&mut tx, "RELEASE op").await?;
        outcomes.push(outcome);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(outcomes)
}

async fn exec(conn: &mut sqlx::SqliteConnection, sql: &'static str) -> Result<(), MetaError> {
    sqlx::query(sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(map_err)
}
