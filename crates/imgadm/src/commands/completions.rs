use clap::CommandFactory;

use super::Failure;
use crate::cli::{Cli, CompletionsArgs};
use crate::stdout::write_bytes;

/// Print the completion script for `args.shell`, e.g.
/// `imgadm completions bash > /etc/bash_completion.d/imgadm`.
pub fn run(args: CompletionsArgs) -> Result<(), Failure> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "imgadm", &mut out);
    write_bytes(&out)
}
