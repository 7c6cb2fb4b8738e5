//! Verbs that need no server and no configuration: `create-manifest`,
//! `completions`, `man`, `install-links`.

use std::io::Write;

use super::Failure;
use crate::cli::Command;

pub fn run(json: bool, command: Command) -> Result<(), Failure> {
    match command {
        Command::CreateManifest(a) => super::create_manifest::run(json, a),
        Command::Completions(a) => super::completions::run(a),
        Command::Man => super::man::run(),
        Command::InstallLinks(a) => super::install_links::run(a),
        _ => Err(Failure::other("server verb dispatched as offline verb")),
    }
}

/// Write `bytes` to stdout (a closed pipe, e.g. `| head`, is not an error).
pub fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::other(format!("cannot write to stdout: {e}"))),
    }
}
