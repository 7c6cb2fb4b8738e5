//! `imgadm man`: one roff page for the whole CLI (global options, then every
//! verb with its options), generated from the clap definitions so it cannot
//! drift from `--help`. The checked-in copy is `docs/man/imgadm.1`.

use std::io::Write;

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

use super::Failure;
use crate::cli::Cli;
use crate::stdout::write_bytes;

pub fn run() -> Result<(), Failure> {
    let mut page = Vec::new();
    render(&mut page).map_err(|e| Failure::other(format!("cannot render the man page: {e}")))?;
    write_bytes(&page)
}

/// The two lines every roff rendering starts with (defines `\*(Aq`).
const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];

/// Render the page (deterministic: no date, so it can be checked in).
pub fn render(w: &mut dyn Write) -> std::io::Result<()> {
    let mut raw = Vec::new();
    render_parts(&mut raw)?;
    // Each part carries the preamble: keep one, first.
    let preamble = format!("{}\n{}\n", PREAMBLE[0], PREAMBLE[1]);
    let text = String::from_utf8_lossy(&raw).replace(&preamble, "");
    w.write_all(preamble.as_bytes())?;
    w.write_all(text.as_bytes())
}

fn render_parts(w: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;

    let mut roff = Roff::default();
    roff.control("SH", ["COMMANDS"]);
    roff.text([roman(
        "Every command accepts the global options above. Commands marked \
         Consumer work on image sources and the local store and need no --url; \
         create-manifest, completions and man need no server at all.",
    )]);
    roff.to_writer(w)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_command(w, sub)?;
    }
    extra_sections().to_writer(w)?;
    man.render_version_section(w)
}

/// One `.SS` subsection: name, synopsis, description, options, and the
/// nested actions of `sources` / `installed`.
fn render_command(w: &mut dyn Write, sub: &clap::Command) -> std::io::Result<()> {
    let name = format!("imgadm {}", sub.get_name());
    let mut roff = Roff::default();
    roff.control("SS", [name.as_str()]);
    roff.to_writer(w)?;
    let sub_man = Man::new(sub.clone().bin_name(&name).disable_help_flag(true));
    let mut body = Vec::new();
    sub_man.render_synopsis_section(&mut body)?;
    sub_man.render_description_section(&mut body)?;
    if sub.get_arguments().next().is_some() {
        sub_man.render_options_section(&mut body)?;
    }
    // The sections of a verb are paragraphs of its subsection.
    for line in String::from_utf8_lossy(&body).lines() {
        if line.starts_with(".SH ") {
            writeln!(w, ".PP")?;
        } else {
            writeln!(w, "{line}")?;
        }
    }
    let nested: Vec<_> = sub.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    if !nested.is_empty() {
        let mut roff = Roff::default();
        roff.control("PP", []);
        roff.text([roman("Actions:")]);
        for action in nested {
            roff.control("TP", []);
            let mut head = vec![bold(format!("{name} {}", action.get_name()))];
            for pos in action.get_positionals() {
                head.push(roman(" "));
                head.push(italic(pos.get_id().as_str().to_uppercase()));
            }
            roff.text(head);
            roff.text([roman(
                action
                    .get_about()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            )]);
        }
        roff.to_writer(w)?;
    }
    Ok(())
}

fn extra_sections() -> Roff {
    let mut roff = Roff::default();
    let item = |roff: &mut Roff, head: &str, text: &str| {
        roff.control("TP", []);
        roff.text([bold(head)]);
        roff.text([roman(text)]);
    };

    roff.control("SH", ["ENVIRONMENT"]);
    for (var, what) in [
        ("IMGAPI_URL", "Default for --url."),
        ("IMGAPI_USER", "Default for --user."),
        ("IMGAPI_KEY", "Default for --key."),
        ("IMGAPI_CHANNEL", "Default for --channel."),
        ("IMGADM_CONFIG_DIR", "Default for --config-dir."),
        ("IMGADM_STORE", "Default for --store."),
        (
            "IMGADM_REGISTRY_USER",
            "Default for --registry-user (docker-import, docker-push).",
        ),
        (
            "IMGADM_REGISTRY_PASSWORD",
            "The registry password of --registry-user, unless --registry-password-stdin.",
        ),
        (
            "DOCKER_CONFIG",
            "Directory of the docker CLI's config.json (default ~/.docker).",
        ),
    ] {
        item(&mut roff, var, what);
    }
    roff.control("PP", []);
    roff.text([roman(
        "Precedence, for each setting: command-line flag, then environment \
         variable, then profile file.",
    )]);

    roff.control("SH", ["FILES"]);
    item(
        &mut roff,
        "<config dir>/profile.json",
        "Optional defaults for the url, user, key and channel settings, e.g. \
         {\"url\": \"https://images.example.org\", \"user\": \"alice\", \
         \"key\": \"~/.ssh/id_ed25519\", \"channel\": \"staging\"}. \
         The config dir is --config-dir, else ~/.imgadm.",
    );
    item(
        &mut roff,
        "<config dir>/sources.json",
        "Image sources of the consumer commands.",
    );
    item(
        &mut roff,
        "<store>/<uuid>/",
        "An installed image: manifest.json and file.",
    );
    item(
        &mut roff,
        "~/.docker/config.json",
        "Registry credentials stored by docker login (auths.<registry>.auth, \
         https://index.docker.io/v1/ for Docker Hub), used by docker-import and \
         docker-push without --registry-user. Credential helpers (credsStore, \
         credHelpers) are not supported: a warning says so and the registry is \
         accessed anonymously.",
    );

    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in [
        ("0", "Success (also when stdout was closed early, e.g. by head)."),
        ("1", "Server or network failure (the server's error code is printed: imgadm: error (RestCode): message)."),
        ("2", "Usage error: bad arguments, unreadable or invalid input files."),
        ("3", "Not found (no such image, icon, source or channel list)."),
        ("130", "Interrupted (Ctrl-C): a rerun of import, get-file -o or add-file resumes; create -f prints the command that resumes its upload; docker-import or docker-push: the server goes on."),
    ] {
        item(&mut roff, code, what);
    }

    roff.control("SH", ["EXAMPLES"]);
    for (title, example) in [
        (
            "Describe and publish a disk image:",
            "imgadm create-manifest -f disk.raw --name mydisk --version 1.0.0 --type zvol --os linux --public -o disk.json",
        ),
        ("", "imgadm create -m disk.json -f disk.raw"),
        (
            "Promote an image from the dev channel to release:",
            "imgadm --channel dev channel-add UUID release",
        ),
        (
            "Import an image from Docker Hub (credentials of docker login, if any):",
            "imgadm docker-import busybox:1.36",
        ),
        (
            "Push it to another registry:",
            "echo \"$PASSWORD\" | imgadm docker-push UUID registry.example.com/team/busybox:1.36 --registry-user alice --registry-password-stdin",
        ),
        (
            "Install bash completions:",
            "imgadm completions bash > /etc/bash_completion.d/imgadm",
        ),
    ] {
        if !title.is_empty() {
            roff.control("PP", []);
            roff.text([roman(title)]);
        }
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        roff.text([roman(example)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
    roff
}
