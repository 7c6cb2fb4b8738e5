//! Personalities: the same binary, installed (symlinked) as
//! `joyent-imgadm`, `sdc-imgadm`, `updates-imgadm` or `imgapi-cli`, behaves
//! as that tool of joyent/sdc-imgapi-cli: its options, environment
//! variables, verbs, output, error lines (`NAME: error (Code): message`) and
//! exit status (0 or 1), so scripts written for the node tools keep working.
//! What we add underneath: progress bars on a terminal, resumable uploads,
//! downloads verified against the manifest (size, SHA-1, SHA-256), https.

mod auth;
mod error;
mod help;
mod opts;
mod output;
mod table;
mod verbs;

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;

pub use error::CliError;

/// How a node tool talks to its IMGAPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No authentication (`sdc-imgadm`: the datacenter's admin network).
    None,
    /// HTTP Signature with `-u USER -i IDENTITY`.
    Signature,
}

/// One node tool.
#[derive(Debug)]
pub struct Personality {
    pub name: &'static str,
    /// The environment variable naming the IMGAPI URL.
    pub url_env: &'static str,
    /// The URL when the variable is unset (`None`: sdc-imgadm reads the
    /// datacenter's config).
    pub default_url: Option<&'static str>,
    /// The environment variable choosing the auth (`imgapi-cli` only).
    pub auth_env: Option<&'static str>,
    pub auth: Auth,
    /// Environment fallbacks for global options: (variable, option).
    pub envopts: &'static [(&'static str, &'static str)],
    /// `export` verb (ExportImage).
    pub export: bool,
    /// Channel support: `-C`, `channels`, `channel-add`, delete's
    /// `--force-all-channels`.
    pub channels: bool,
    pub description: &'static str,
    pub connect_timeout_ms: u64,
}

impl Personality {
    /// Whether requests are signed (`-u`, `-i` exist).
    pub fn signs(&self) -> bool {
        self.auth() == Auth::Signature
    }

    pub fn auth(&self) -> Auth {
        match self.auth_env.and_then(env_text).as_deref() {
            Some("none") => Auth::None,
            Some(_) => Auth::Signature,
            None => self.auth,
        }
    }
}

pub const JOYENT_IMGADM: Personality = Personality {
    name: "joyent-imgadm",
    url_env: "JOYENT_IMGADM_URL",
    default_url: Some("https://images.joyent.com"),
    auth_env: None,
    auth: Auth::Signature,
    envopts: &[
        ("JOYENT_IMGADM_IDENTITY", "identity"),
        ("JOYENT_IMGADM_USER", "user"),
        ("JOYENT_IMGADM_INSECURE", "insecure"),
    ],
    export: false,
    channels: false,
    description: "Manage images on the central Joyent Images API (https://images.joyent.com).

Authentication is required for any modifying endpoints (adding images,
etc.). To get access, you must have your username and key added
by the Images API administrator. Then set the following in your
environment (presuming \"~/.ssh/id_rsa.pub\" is the key you provided):

    export JOYENT_IMGADM_USER=<given username>
    export JOYENT_IMGADM_IDENTITY=`ssh-keygen -l -f ~/.ssh/id_rsa.pub \\
        | awk '{print $2}' | tr -d '\\n'`

If setup correctly, `joyent-imgadm ping` should work (prints \"pong\").
",
    connect_timeout_ms: 10_000,
};

pub const UPDATES_IMGADM: Personality = Personality {
    name: "updates-imgadm",
    url_env: "UPDATES_IMGADM_URL",
    default_url: Some("https://updates.joyent.com"),
    auth_env: None,
    auth: Auth::Signature,
    envopts: &[
        ("UPDATES_IMGADM_IDENTITY", "identity"),
        ("UPDATES_IMGADM_USER", "user"),
        ("UPDATES_IMGADM_CHANNEL", "channel"),
        ("UPDATES_IMGADM_INSECURE", "insecure"),
    ],
    export: false,
    channels: true,
    description:
        "Manage images on the central Joyent SDC Updates repo (https://updates.joyent.com).

Authentication is required for any modifying endpoints (adding images,
etc.). To get access, you must have your username and key added
by the administrator. Then set the following in your
environment (presuming \"~/.ssh/id_rsa.pub\" is the key you provided):

    export UPDATES_IMGADM_USER=<given username>
    export UPDATES_IMGADM_IDENTITY=`ssh-keygen -l -f ~/.ssh/id_rsa.pub \\
        | awk '{print $2}' | tr -d '\\n'`

If setup correctly, `updates-imgadm ping` should work (prints \"pong\").
",
    connect_timeout_ms: 10_000,
};

pub const SDC_IMGADM: Personality = Personality {
    name: "sdc-imgadm",
    url_env: "SDC_IMGADM_URL",
    default_url: None,
    auth_env: None,
    auth: Auth::None,
    envopts: &[],
    export: true,
    channels: false,
    description: "Manage images in this SmartDataCenter's Images API (IMGAPI).\n",
    connect_timeout_ms: 4_000,
};

pub const IMGAPI_CLI: Personality = Personality {
    name: "imgapi-cli",
    url_env: "IMGAPI_CLI_URL",
    default_url: Some("http://localhost:8080"),
    auth_env: Some("IMGAPI_CLI_AUTH"),
    auth: Auth::Signature,
    envopts: &[
        ("IMGAPI_CLI_IDENTITY", "identity"),
        ("IMGAPI_CLI_USER", "user"),
        ("IMGAPI_CLI_CHANNEL", "channel"),
        ("IMGAPI_CLI_INSECURE", "insecure"),
    ],
    export: true,
    channels: true,
    description: "A demo imgapi-cli instance for talking to an IMGAPI.\n",
    connect_timeout_ms: 10_000,
};

/// Every personality, by the name it is installed under.
pub const ALL: [&Personality; 4] = [&JOYENT_IMGADM, &SDC_IMGADM, &UPDATES_IMGADM, &IMGAPI_CLI];

/// Where sdc-imgadm finds the datacenter's IMGAPI when `SDC_IMGADM_URL` is
/// unset (the headnode's `sdc` zone config: `imgapi_domain`).
pub const SDC_CONFIG: &str = "/opt/smartdc/sdc/etc/config.json";

/// The personality the program was invoked as (its file name), if any.
pub fn from_program_name(argv0: &OsStr) -> Option<&'static Personality> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    ALL.into_iter().find(|p| p.name == name)
}

/// A set, non-empty, UTF-8 environment variable.
pub fn env_text(name: &str) -> Option<String> {
    std::env::var_os(name)
        .and_then(|v| v.into_string().ok())
        .filter(|v| !v.is_empty())
}

/// Run as `p` with the arguments after the program name.
pub fn main(p: &'static Personality, args: Vec<String>) -> ExitCode {
    let debug = args.iter().any(|a| a == "-d" || a == "--debug");
    match verbs::main(p, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.closed_stdout => ExitCode::SUCCESS,
        Err(e) => {
            e.print(p.name, debug);
            ExitCode::FAILURE
        }
    }
}
