//! Everything imgadm prints on stdout goes through here.
//!
//! Rust ignores SIGPIPE, so a reader that went away (`imgadm list -j | head
//! -1`, `| true`) shows up as an EPIPE write error; `println!` would panic
//! on it (exit 101). Resetting SIGPIPE to its default instead would kill the
//! process mid-way (exit 141 in the shell, no destructors: a held import
//! lock, a `.part` file). So each write returns a [`Failure`] that ends the
//! command through the normal error path — locks released, nothing printed,
//! exit 0, as other CLIs do for a closed pipe.

use std::fmt;
use std::io::Write;

use crate::commands::Failure;

/// Write formatted text to stdout and flush it (see [`outln!`]).
pub fn write_fmt(args: fmt::Arguments<'_>) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(failure)
}

/// Write raw bytes to stdout and flush them.
pub fn write_bytes(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(failure)
}

/// The failure a stdout write error ends the command with.
pub fn failure(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::closed_stdout()
    } else {
        Failure::other(format!("cannot write to stdout: {e}"))
    }
}

/// `println!` that returns `Result<(), Failure>` instead of panicking.
macro_rules! outln {
    () => {
        $crate::stdout::write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns `Result<(), Failure>` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write_fmt(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};
