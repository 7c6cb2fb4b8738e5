//! In-process servers on a thread and runtime of their own, so they keep
//! answering while the test's runtime blocks (a `current_thread` test
//! waiting on a child process, say).

use std::future::Future;

use tokio::sync::oneshot;

use crate::Error;

/// A server task running on its own thread; stopped when dropped.
pub(crate) struct Background {
    shutdown: Option<oneshot::Sender<()>>,
}

impl Background {
    /// Runs `serve(listener, shutdown)` on a new thread; the future must end
    /// when `shutdown` resolves.
    pub(crate) fn spawn<F, Fut>(
        listener: std::net::TcpListener,
        serve: F,
    ) -> Result<Background, Error>
    where
        F: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        listener
            .set_nonblocking(true)
            .map_err(Error::io("make a listener non-blocking"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("build a runtime"))?;
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("test-registry".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, rx).await,
                        Err(e) => eprintln!("test-registry: listener: {e}"),
                    }
                });
            })
            .map_err(Error::io("spawn a thread"))?;
        Ok(Background { shutdown: Some(tx) })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
