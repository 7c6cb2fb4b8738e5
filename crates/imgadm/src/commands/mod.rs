//! One module per verb: validate arguments, call the client, print.

mod activate;
mod add_acl;
mod add_file;
mod add_icon;
mod admin_import;
mod bin;
pub mod changes;
mod channel_add;
mod channels;
mod create;
mod delete;
mod delete_icon;
mod disable;
mod docker_import;
mod docker_push;
mod docker_stream;
mod enable;
mod get;
mod get_file;
mod get_icon;
mod lifecycle;
mod list;
pub mod local;
mod ping;
mod quota;
mod remove_acl;
pub mod retention;
mod sign;
mod signatures;
mod update;
mod verify;

mod completions;
mod create_manifest;
mod install_links;
mod lxd_image;
mod man;
pub mod offline;

mod avail;
mod import;
mod installed;
mod sources;
mod vacuum;

pub use create::send_file;
pub use quota::parse_size;

use imgapi_client::{Client, ClientError, Image, Signer};
use serde::Serialize;
use serde_json::Value;

use crate::cli::Command;
use crate::stdout::outln;

/// What a command failed with: printed as `imgadm: error (code): message`.
#[derive(Debug)]
pub struct Failure {
    pub code: Option<String>,
    pub message: String,
    /// 1 server/network failure, 2 usage error, 3 not found, 130
    /// interrupted; 0 only for [`Failure::closed_stdout`].
    pub exit: u8,
    /// Lines printed under the error line, e.g. the server's field-level
    /// `errors[]` entries (`public: private images are not allowed …`).
    pub details: Vec<String>,
}

impl Failure {
    pub fn other(message: impl Into<String>) -> Failure {
        Failure {
            code: None,
            message: message.into(),
            exit: 1,
            details: Vec::new(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            code: Some("ResourceNotFound".to_string()),
            message: message.into(),
            exit: 3,
            details: Vec::new(),
        }
    }

    /// stdout's reader went away: stop here, print nothing, exit 0.
    pub fn closed_stdout() -> Failure {
        Failure {
            code: None,
            message: String::new(),
            exit: 0,
            details: Vec::new(),
        }
    }

    /// True for [`Failure::closed_stdout`]: nothing is wrong to report.
    pub fn is_closed_stdout(&self) -> bool {
        self.exit == 0
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: None,
            message: message.into(),
            exit: 2,
            details: Vec::new(),
        }
    }

    /// Ctrl-C (SIGINT) stopped the command: exit 130, as a shell reports it.
    pub fn interrupted(message: impl Into<String>) -> Failure {
        Failure {
            code: None,
            message: message.into(),
            exit: INTERRUPTED_EXIT,
            details: Vec::new(),
        }
    }

    /// Prefix the message with what was being done.
    pub fn context(mut self, what: impl std::fmt::Display) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// A server's error with its restCode: exit 3 for `ResourceNotFound`, else 1.
    pub fn rest(code: String, message: String) -> Failure {
        let exit = if code == "ResourceNotFound" { 3 } else { 1 };
        Failure {
            code: Some(code),
            message,
            exit,
            details: Vec::new(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let code = e.rest_code().map(str::to_string);
        let exit = if e.is_not_found() || code.as_deref() == Some("ResourceNotFound") {
            3
        } else {
            1
        };
        let (mut message, details) = match &e {
            ClientError::Api {
                message, errors, ..
            } => (
                message.clone(),
                errors.iter().map(field_error_line).collect(),
            ),
            other => (other.to_string(), Vec::new()),
        };
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = s.source();
        }
        Failure {
            code,
            message,
            exit,
            details,
        }
    }
}

/// What an interrupted transfer that a rerun resumes says.
pub const RERUN_RESUMES: &str = "interrupted; run the same command to resume";

/// Run `work`; on Ctrl-C (SIGINT) stop it — dropping it runs its guards:
/// locks are released, `.part` files and upload sessions are kept — and
/// fail with `interrupted()`. Without a signal handler (it could not be
/// installed) `work` just runs.
pub async fn until_interrupted<T>(
    work: impl std::future::Future<Output = Result<T, Failure>>,
    interrupted: impl FnOnce() -> Failure,
) -> Result<T, Failure> {
    tokio::pin!(work);
    let signal = tokio::select! {
        result = &mut work => return result,
        signal = tokio::signal::ctrl_c() => signal,
    };
    match signal {
        Ok(()) => Err(interrupted()),
        Err(_) => work.await,
    }
}

/// Exit status of an interrupted command (128 + SIGINT).
pub const INTERRUPTED_EXIT: u8 = 130;

/// One `errors[]` entry of an error body as `field: message` (its code when
/// the server gave no message).
fn field_error_line(e: &imgapi_client::FieldError) -> String {
    match &e.message {
        Some(m) => format!("{}: {m}", e.field),
        None => format!("{}: {}", e.field, e.code.as_str()),
    }
}

/// Shared state for one invocation.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
    /// `--key`: also the key that signs images (`sign`, `create --sign`).
    pub key: Option<std::path::PathBuf>,
}

impl Ctx {
    /// Print an image: its manifest as JSON with `-j`, else one `line`.
    pub fn print_image(&self, line: &str, image: &Image) -> Result<(), Failure> {
        if self.json {
            print_json(image)
        } else {
            outln!("{line}")
        }
    }
}

/// Print `value` as indented JSON. A wire type from the client prints as
/// the server sent it: its fields are in the server's key order and keys it
/// does not know are kept (after the known ones).
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))?;
    outln!("{text}")
}

/// Image label for messages: `uuid (name@version)`.
pub fn label(image: &Image) -> String {
    format!("{} ({}@{})", image.uuid, image.name, image.version)
}

/// [`label`] of a manifest read from disk, whatever its shape (`?` for a
/// missing part).
pub fn manifest_label(manifest: &Value) -> String {
    let get = |k: &str| manifest.get(k).and_then(Value::as_str).unwrap_or("?");
    format!("{} ({}@{})", get("uuid"), get("name"), get("version"))
}

/// The request signer for `--user`/`--key`: none without a user.
///
/// With `$SSH_AUTH_SOCK` set, ssh-agent signs when it holds the key: the one
/// `--key` names (a private key file or its `.pub`), or without `--key` its
/// first Ed25519, RSA or ECDSA P-256 key. Otherwise the private key file
/// signs: `--key`, default `~/.ssh/id_ed25519`. An encrypted one is
/// decrypted with `$IMGAPI_KEY_PASSPHRASE`, else with a passphrase asked
/// (no echo) when stdin is a terminal. A key that cannot be used is a usage
/// error.
pub fn signer(
    user: Option<&str>,
    key: Option<&std::path::Path>,
) -> Result<Option<Signer>, Failure> {
    use std::io::IsTerminal as _;

    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    // 1. ssh-agent. Any failure (no agent, key not loaded) falls back to the
    // key file; why is told if the file cannot be used either.
    let mut agent_note = String::new();
    if let Some(socket) = imgapi_client::agent::socket_from_env() {
        match Signer::from_agent(user, &socket, key) {
            Ok(signer) => return Ok(Some(signer)),
            Err(e) => agent_note = format!(" (not signing through ssh-agent: {e})"),
        }
    }
    // 2. The private key file.
    let key = match key {
        Some(k) => k.to_path_buf(),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::Path::new(&home).join(".ssh").join("id_ed25519"),
            None => {
                return Err(Failure::usage(format!(
                    "--user given without --key and $HOME is not set (cannot find ~/.ssh/id_ed25519){agent_note}"
                )))
            }
        },
    };
    let fail = |e: ClientError| {
        Failure::usage(format!(
            "cannot use private key for --user {user}: {e}{agent_note}"
        ))
    };
    let passphrase = match std::env::var_os("IMGAPI_KEY_PASSPHRASE") {
        None => None,
        Some(p) => Some(
            p.into_string()
                .map_err(|_| Failure::usage("IMGAPI_KEY_PASSPHRASE is not valid UTF-8"))?,
        ),
    };
    match Signer::from_key_file_with_passphrase(user, &key, passphrase.as_deref()) {
        Ok(signer) => return Ok(Some(signer)),
        Err(ClientError::KeyEncrypted { .. }) if std::io::stdin().is_terminal() => {}
        Err(ClientError::KeyEncrypted { key: name }) => {
            return Err(Failure::usage(format!(
                "{name}: the private key for --user {user} is encrypted (passphrase-protected): \
                 set IMGAPI_KEY_PASSPHRASE, or load the key into ssh-agent (ssh-add) and set \
                 SSH_AUTH_SOCK{agent_note}"
            )))
        }
        Err(e) => return Err(fail(e)),
    }
    // 3. Ask on the terminal, three tries as ssh does.
    let mut attempt = 1;
    loop {
        let pass = rpassword::prompt_password(format!("Enter passphrase for {}: ", key.display()))
            .map_err(|e| Failure::usage(format!("cannot read the passphrase: {e}")))?;
        match Signer::from_key_file_with_passphrase(user, &key, Some(&pass)) {
            Ok(signer) => return Ok(Some(signer)),
            Err(ClientError::KeyPassphrase { .. }) if attempt < 3 => {
                eprintln!("Bad passphrase, try again.");
                attempt += 1;
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

pub async fn run(
    url: &str,
    json: bool,
    channel: Option<&str>,
    signer: Option<Signer>,
    key: Option<&std::path::Path>,
    command: Command,
) -> Result<(), Failure> {
    let mut client =
        Client::new(url)?.with_user_agent(concat!("imgadm/", env!("CARGO_PKG_VERSION")));
    if let Some(signer) = signer {
        client = client.with_signer(signer);
    }
    if let Some(channel) = channel {
        client = client.with_channel(channel);
    }
    let ctx = Ctx {
        client,
        json,
        key: key.map(std::path::Path::to_path_buf),
    };
    match command {
        Command::Ping => ping::run(&ctx).await,
        Command::Get(a) => get::run(&ctx, a).await,
        Command::List(a) => list::run(&ctx, a).await,
        Command::Create(a) => create::run(&ctx, a).await,
        Command::AddFile(a) => add_file::run(&ctx, a).await,
        Command::Activate(a) => activate::run(&ctx, a).await,
        Command::Disable(a) => disable::run(&ctx, a).await,
        Command::Enable(a) => enable::run(&ctx, a).await,
        Command::Update(a) => update::run(&ctx, a).await,
        Command::Delete(a) => delete::run(&ctx, a).await,
        Command::Deprecate(a) => lifecycle::deprecate(&ctx, a).await,
        Command::Protect(a) => lifecycle::protect(&ctx, a, true).await,
        Command::Unprotect(a) => lifecycle::protect(&ctx, a, false).await,
        Command::Lifecycle(a) => lifecycle::show(&ctx, a).await,
        Command::AddAcl(a) => add_acl::run(&ctx, a).await,
        Command::RemoveAcl(a) => remove_acl::run(&ctx, a).await,
        Command::GetFile(a) => get_file::run(&ctx, a).await,
        Command::AddIcon(a) => add_icon::run(&ctx, a).await,
        Command::GetIcon(a) => get_icon::run(&ctx, a).await,
        Command::DeleteIcon(a) => delete_icon::run(&ctx, a).await,
        Command::Channels(a) => channels::run(&ctx, a).await,
        Command::ChannelAdd(a) => channel_add::run(&ctx, a).await,
        Command::Bin(a) => bin::run(&ctx, a).await,
        Command::Quota(a) => quota::run(&ctx, a).await,
        Command::AdminImport(a) => admin_import::run(&ctx, a).await,
        Command::DockerImport(a) => docker_import::run(&ctx, a).await,
        Command::DockerPush(a) => docker_push::run(&ctx, a).await,
        Command::Retention(a) => retention::run(&ctx, a).await,
        Command::Changes(a) => changes::run(&ctx, a).await,
        Command::Sign(a) => sign::run(&ctx, a).await,
        Command::Verify(a) => verify::run(&ctx, a).await,
        Command::Sources(_)
        | Command::Avail(_)
        | Command::Import(_)
        | Command::Installed(_)
        | Command::Vacuum(_) => Err(Failure::other("consumer verb dispatched as publisher verb")),
        Command::CreateManifest(_)
        | Command::Completions(_)
        | Command::Man
        | Command::InstallLinks(_) => {
            Err(Failure::other("offline verb dispatched as publisher verb"))
        }
    }
}
