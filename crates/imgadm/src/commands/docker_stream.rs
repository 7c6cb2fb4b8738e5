//! Follows the message stream of a docker import or push: shows it (or
//! prints each message with `-j`), stops at an `error` message, and on
//! Ctrl-C says how far the server had got (it goes on without us).

use crate::stdout::outln;
use std::future::Future;

use imgapi_client::docker::{DockerImageCreated, DockerMessage, DockerPushResult};
use imgapi_client::{ClientError, DockerEvents};

use super::{Ctx, Failure};
use crate::docker_progress::DockerProgressView;
use crate::registry_auth::Found;

/// What a stream is about, for the messages around it.
pub struct Operation<'a> {
    /// What the server goes on doing after Ctrl-C: `importing busybox:latest`.
    pub doing: String,
    /// How the status of a layer that is done starts (`Pull complete`…).
    pub layer_done: &'a [&'a str],
    /// What done layers are: `imported`, `pushed`.
    pub done_word: &'a str,
}

/// What the stream ended with.
#[derive(Debug, Default)]
pub struct Outcome {
    /// An import's result.
    pub created: Option<DockerImageCreated>,
    /// A push's result.
    pub pushed: Option<DockerPushResult>,
}

/// Print the warnings of the credentials search (never a secret).
pub fn warn_about(found: &Found) {
    for warning in &found.warnings {
        eprintln!("imgadm: warning: {warning}");
    }
}

/// Start the operation with `start` and follow its messages to the end.
pub async fn follow(
    ctx: &Ctx,
    operation: &Operation<'_>,
    start: impl Future<Output = Result<DockerEvents, ClientError>>,
) -> Result<Outcome, Failure> {
    let mut view = DockerProgressView::new(ctx.json);
    // Installed before the request goes out, so that Ctrl-C is answered
    // from then on.
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    let mut watching = true;
    tokio::pin!(start);
    let mut events = loop {
        tokio::select! {
            started = &mut start => break started?,
            signal = &mut ctrl_c, if watching => match signal {
                Ok(()) => return Err(interrupted(format!(
                    "the server had not answered yet: it may or may not be {}",
                    operation.doing
                ))),
                Err(_) => watching = false,
            },
        }
    };
    let mut outcome = Outcome::default();
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            signal = &mut ctrl_c, if watching => match signal {
                Ok(()) => {
                    let (done, seen) = view.tally(operation.layer_done);
                    return Err(interrupted(format!(
                        "the server goes on {} ({done} of the {seen} layers seen were {} so far); \
                         run the same command again to follow it",
                        operation.doing, operation.done_word
                    )));
                }
                Err(_) => {
                    watching = false;
                    continue;
                }
            },
        };
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::from(e).context(format!(
                    "reading the server's answer (the server may still be {})",
                    operation.doing
                )))
            }
        };
        if ctx.json {
            let line = serde_json::to_string(&event.raw)
                .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))?;
            outln!("{line}")?;
        }
        let Some(message) = event.message else {
            continue;
        };
        view.show(&message)?;
        match message {
            DockerMessage::Progress(m) | DockerMessage::Status(m) => {
                if let Some(aux) = m.payload.aux {
                    outcome.pushed = Some(aux);
                }
            }
            DockerMessage::CreateDockerImage(created) => outcome.created = Some(created),
            DockerMessage::Error(e) => return Err(Failure::rest(e.error.code, e.error.message)),
        }
    }
    view.finish();
    Ok(outcome)
}

fn interrupted(what: String) -> Failure {
    Failure::interrupted(format!("interrupted: {what}"))
}
