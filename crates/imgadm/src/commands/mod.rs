//! One module per verb: validate arguments, call the client, print.

mod activate;
mod add_acl;
mod add_file;
mod create;
mod delete;
mod disable;
mod enable;
mod get;
mod get_file;
mod list;
pub mod local;
mod ping;
mod remove_acl;
mod update;

mod avail;
mod import;
mod installed;
mod sources;
mod vacuum;

use imgapi_client::{Client, ClientError, Signer};
use serde_json::Value;

use crate::cli::Command;

/// What a command failed with: printed as `imgadm: error (code): message`.
#[derive(Debug)]
pub struct Failure {
    pub code: Option<String>,
    pub message: String,
    /// 1 server/network failure, 2 usage error, 3 not found.
    pub exit: u8,
}

impl Failure {
    pub fn other(message: impl Into<String>) -> Failure {
        Failure {
            code: None,
            message: message.into(),
            exit: 1,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            code: Some("ResourceNotFound".to_string()),
            message: message.into(),
            exit: 3,
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: None,
            message: message.into(),
            exit: 2,
        }
    }

    /// Prefix the message with what was being done.
    pub fn context(mut self, what: impl std::fmt::Display) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
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
        let mut message = match &e {
            ClientError::Api { message, .. } => message.clone(),
            other => other.to_string(),
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
        }
    }
}

/// Shared state for one invocation.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
}

impl Ctx {
    /// Print an image: its manifest as JSON with `-j`, else one `line`.
    pub fn print_image(&self, line: &str, image: &Value) -> Result<(), Failure> {
        if self.json {
            print_json(image)
        } else {
            println!("{line}");
            Ok(())
        }
    }
}

pub fn print_json(value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Image label for messages: `uuid (name@version)`.
pub fn label(image: &Value) -> String {
    let get = |k: &str| image.get(k).and_then(Value::as_str).unwrap_or("?");
    format!("{} ({}@{})", get("uuid"), get("name"), get("version"))
}

/// The request signer for `--user`/`--key`: none without a user; the key
/// defaults to `~/.ssh/id_ed25519`. An unreadable key is a usage error.
pub fn signer(
    user: Option<&str>,
    key: Option<&std::path::Path>,
) -> Result<Option<Signer>, Failure> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let key = match key {
        Some(k) => k.to_path_buf(),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::Path::new(&home).join(".ssh").join("id_ed25519"),
            None => return Err(Failure::usage(
                "--user given without --key and $HOME is not set (cannot find ~/.ssh/id_ed25519)",
            )),
        },
    };
    Signer::from_key_file(user, &key)
        .map(Some)
        .map_err(|e| Failure::usage(format!("cannot use private key for --user {user}: {e}")))
}

pub async fn run(
    url: &str,
    json: bool,
    signer: Option<Signer>,
    command: Command,
) -> Result<(), Failure> {
    let mut client =
        Client::new(url)?.with_user_agent(concat!("imgadm/", env!("CARGO_PKG_VERSION")));
    if let Some(signer) = signer {
        client = client.with_signer(signer);
    }
    let ctx = Ctx { client, json };
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
        Command::AddAcl(a) => add_acl::run(&ctx, a).await,
        Command::RemoveAcl(a) => remove_acl::run(&ctx, a).await,
        Command::GetFile(a) => get_file::run(&ctx, a).await,
        Command::Sources(_)
        | Command::Avail(_)
        | Command::Import(_)
        | Command::Installed(_)
        | Command::Vacuum(_) => Err(Failure::other("consumer verb dispatched as publisher verb")),
    }
}
