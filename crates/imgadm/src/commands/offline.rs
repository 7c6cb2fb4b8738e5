//! Verbs that need no server and no configuration: `create-manifest`,
//! `completions`, `man`, `install-links`.

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
