use std::fmt;

/// What went wrong starting or driving a component.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// An external program exited with failure; `stderr` says why.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// For `map_err`: an I/O error with what was being done.
    pub(crate) fn io(context: impl fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn other(message: impl fmt::Display) -> Error {
        Error::Other(message.to_string())
    }
}
