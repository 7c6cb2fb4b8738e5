//! `imgadm`: the IMGAPI command-line client.

mod cli;
mod commands;
mod docker_progress;
mod docker_ref;
mod output;
mod personality;
mod profile;
mod registry_auth;
mod reporters;
mod stdout;
mod usage;

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::commands::Failure;

fn main() -> ExitCode {
    // Installed (symlinked) as joyent-imgadm, sdc-imgadm, updates-imgadm or
    // imgapi-cli: behave as that tool.
    let mut argv = std::env::args_os();
    if let Some(p) = argv
        .next()
        .as_deref()
        .and_then(personality::from_program_name)
    {
        let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
        return personality::main(p, args);
    }
    let mut cli = usage::parse();
    if cli.command.is_offline() {
        return finish(commands::offline::run(cli.json, cli.command));
    }
    // Flags and environment first; the profile fills what they left unset.
    if let Err(f) = profile::apply(&mut cli) {
        return finish(Err(f));
    }
    if cli.command.is_consumer() {
        return finish(commands::local::run(cli));
    }
    // `--config-dir` also holds the state of unfinished resumable uploads.
    if let Some(dir) = cli.config_dir.clone() {
        if let Command::Create(cli::CreateArgs { resume, .. })
        | Command::AddFile(cli::AddFileArgs { resume, .. }) = &mut cli.command
        {
            resume
                .upload_state_dir
                .get_or_insert_with(|| dir.join("uploads"));
        }
    }
    let Some(url) = cli.url.clone() else {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "the following required argument was not provided: --url <URL> \
                 (or IMGAPI_URL, or \"url\" in <config dir>/profile.json)",
            )
            .exit()
    };
    let result = commands::signer(cli.user.as_deref(), cli.key.as_deref()).and_then(|signer| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::other(format!("cannot start runtime: {e}")))
            .and_then(|rt| {
                rt.block_on(commands::run(
                    &url,
                    cli.json,
                    cli.channel.as_deref(),
                    signer,
                    cli.key.as_deref(),
                    cli.command,
                ))
            })
    });
    finish(result)
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if f.is_closed_stdout() => ExitCode::SUCCESS,
        Err(f) => {
            match &f.code {
                Some(code) => eprintln!("imgadm: error ({code}): {}", f.message),
                None => eprintln!("imgadm: error: {}", f.message),
            }
            for line in &f.details {
                eprintln!("    {line}");
            }
            ExitCode::from(f.exit)
        }
    }
}
