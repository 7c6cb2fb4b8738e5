//! Parsing the command line so that usage errors do not list settings the
//! environment supplied.
//!
//! clap builds the `Usage:` line of an error from every argument that has a
//! value, environment variables included: with `IMGAPI_URL` set, a missing
//! `-m` printed `Usage: imgadm create --manifest <MANIFEST> --url <URL>`,
//! as if `--url` were needed or had been typed. A value from the profile
//! file is never in clap's view (it is applied after parsing).

use clap::error::ErrorKind;
use clap::{Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Parse `std::env::args_os()`; on a usage error, exit with clap's error
/// as it reads without the environment's values (unless the error is about
/// one of those values).
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let error = match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => match Cli::from_arg_matches(&matches) {
            Ok(cli) => return cli,
            Err(e) => e,
        },
        Err(e) => e,
    };
    if reports_usage(error.kind()) {
        if let Err(without_env) = without_env(Cli::command()).try_get_matches_from(&args) {
            if without_env.kind() == error.kind() {
                without_env.exit()
            }
        }
    }
    error.exit()
}

/// Errors whose message shows a `Usage:` line built from the arguments
/// given (help, version and the like print no such line).
fn reports_usage(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    )
}

/// `command` with no argument read from the environment, in every
/// subcommand.
fn without_env(command: Command) -> Command {
    command
        .mut_args(|arg| arg.env(None))
        .mut_subcommands(without_env)
}
