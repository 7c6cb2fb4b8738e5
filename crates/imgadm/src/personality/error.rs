//! The error a personality ends with: printed as the node tools print it,
//! `NAME: error (Code): message` (or `NAME: error: message` without a
//! code), exit status 1.

use std::io::ErrorKind;

use imgapi_client::ClientError;

#[derive(Debug)]
pub struct CliError {
    pub code: Option<String>,
    pub message: String,
    /// More detail for `-d`.
    pub detail: Option<String>,
    /// Stdout was closed by its reader: end quietly, status 0.
    pub closed_stdout: bool,
}

impl CliError {
    pub fn new(code: &str, message: impl Into<String>) -> CliError {
        CliError {
            code: Some(code.to_string()),
            message: message.into(),
            detail: None,
            closed_stdout: false,
        }
    }

    /// An error the node tool prints without a code.
    pub fn bare(message: impl Into<String>) -> CliError {
        CliError {
            code: None,
            message: message.into(),
            detail: None,
            closed_stdout: false,
        }
    }

    pub fn closed_stdout() -> CliError {
        CliError {
            closed_stdout: true,
            ..CliError::bare("")
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new("Usage", message)
    }

    pub fn invalid_uuid(text: &str) -> CliError {
        CliError::new("InvalidUUID", format!("invalid uuid: \"{text}\""))
    }

    /// A local file that cannot be read, named by its errno code as node
    /// names it.
    pub fn io(path: &str, e: &std::io::Error) -> CliError {
        let code = match e.kind() {
            ErrorKind::NotFound => "ENOENT",
            ErrorKind::PermissionDenied => "EACCES",
            ErrorKind::IsADirectory => "EISDIR",
            _ => "InternalError",
        };
        CliError::new(code, format!("{path}: {e}"))
    }

    pub fn print(&self, name: &str, debug: bool) {
        match &self.code {
            Some(code) => eprintln!("{name}: error ({code}): {}", self.message),
            None => eprintln!("{name}: error: {}", self.message),
        }
        if debug {
            if let Some(detail) = &self.detail {
                eprintln!("\n{detail}");
            }
        }
    }

    /// The error of a transfer (`DownloadError`, `UploadError`) for a
    /// failed integrity check; other errors as [`From<ClientError>`].
    pub fn transfer(code: &str, e: ClientError) -> CliError {
        match e {
            ClientError::Integrity { expected, actual } => {
                CliError::new(code, format!("expected {expected}, but was {actual}"))
            }
            other => other.into(),
        }
    }
}

impl From<ClientError> for CliError {
    /// As the node tools: a server error body gives its restCode and
    /// message, then one line per field error (`    field: code: message`);
    /// other failures of the client are `ClientError`.
    fn from(e: ClientError) -> CliError {
        let detail = Some(format!("{e:?}"));
        match e {
            ClientError::Api {
                rest_code,
                message,
                errors,
                ..
            } if !rest_code.is_empty() => {
                let mut text = if message.is_empty() {
                    "(no message)".to_string()
                } else {
                    message
                };
                for f in &errors {
                    text.push_str(&format!("\n    {}: {}", f.field, f.code.as_str()));
                    if let Some(m) = f.message.as_deref().filter(|m| !m.is_empty()) {
                        text.push_str(&format!(": {m}"));
                    }
                }
                CliError {
                    code: Some(rest_code),
                    message: text,
                    detail,
                    closed_stdout: false,
                }
            }
            ClientError::Io(io) => CliError {
                detail,
                ..CliError::io("i/o", &io)
            },
            other => {
                let mut message = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(s) = source {
                    let text = s.to_string();
                    if !message.contains(&text) {
                        message = format!("{message}: {text}");
                    }
                    source = s.source();
                }
                CliError {
                    code: Some("ClientError".to_string()),
                    message,
                    detail,
                    closed_stdout: false,
                }
            }
        }
    }
}
