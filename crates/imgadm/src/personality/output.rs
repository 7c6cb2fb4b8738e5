//! Writing to stdout, through the crate's one stdout path: a reader that
//! went away (`| head`, `| true`) ends the program quietly with status 0.

use super::CliError;
use crate::commands::Failure;

/// Write `text` to stdout.
pub fn out(text: &str) -> Result<(), CliError> {
    write_bytes(text.as_bytes())
}

/// Write `text` and a newline to stdout.
pub fn line(text: &str) -> Result<(), CliError> {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    out(&s)
}

/// `value` as JSON indented by two spaces, as `JSON.stringify(v, null, 2)`.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new("InternalError", format!("cannot encode JSON: {e}")))?;
    line(&text)
}

/// Write raw bytes to stdout (a downloaded file).
pub fn write_bytes(bytes: &[u8]) -> Result<(), CliError> {
    crate::stdout::write_bytes(bytes).map_err(from_failure)
}

fn from_failure(f: Failure) -> CliError {
    if f.is_closed_stdout() {
        CliError::closed_stdout()
    } else {
        CliError::new("InternalError", f.message)
    }
}
