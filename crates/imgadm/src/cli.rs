//! clap definitions only: no behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

/// Publish and manage images in an IMGAPI registry.
#[derive(Debug, Parser)]
#[command(name = "imgadm", version)]
pub struct Cli {
    /// Base URL of the IMGAPI server (required).
    #[arg(short = 'u', long, env = "IMGAPI_URL", global = true)]
    pub url: Option<String>,
    /// Print JSON instead of human-readable output.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// Sign requests (HTTP Signature) as this user.
    #[arg(long, env = "IMGAPI_USER", global = true)]
    pub user: Option<String>,
    /// Unencrypted private key to sign with (OpenSSH or PEM); with --user,
    /// defaults to ~/.ssh/id_ed25519.
    #[arg(long, env = "IMGAPI_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// Directory holding consumer configuration (`sources.json`).
    #[arg(long, env = "IMGADM_CONFIG_DIR", global = true)]
    pub config_dir: Option<PathBuf>,
    /// Local image store for `import`, `installed`, `vacuum`
    /// (default `<config dir>/images`).
    #[arg(long, env = "IMGADM_STORE", global = true)]
    pub store: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the server answers.
    Ping,
    /// Show an image's manifest (pretty JSON).
    Get(UuidArg),
    /// List images.
    List(ListArgs),
    /// Create an image from a manifest; with -f, also upload its file and activate it.
    Create(CreateArgs),
    /// Upload the file of an unactivated image.
    AddFile(AddFileArgs),
    /// Activate an image (it must have a file).
    Activate(UuidArg),
    /// Disable an image.
    Disable(UuidArg),
    /// Enable a disabled image.
    Enable(UuidArg),
    /// Update mutable manifest fields: FIELD=VALUE (VALUE is JSON if it parses, else a string).
    Update(UpdateArgs),
    /// Delete an image and its file.
    Delete(UuidArg),
    /// Add accounts to an image's ACL.
    AddAcl(AclArgs),
    /// Remove accounts from an image's ACL.
    RemoveAcl(AclArgs),
    /// Download an image's file (resumes a partial download, verifies size and SHA-1).
    GetFile(GetFileArgs),
    /// Consumer: list, add or delete image sources (kept in `<config dir>/sources.json`).
    Sources(SourcesArgs),
    /// Consumer: list active images available from all sources.
    Avail(AvailArgs),
    /// Consumer: import an image (and its origin chain) into the local store.
    Import(ImportArgs),
    /// Consumer: list installed images; `installed get|delete UUID`.
    Installed(InstalledArgs),
    /// Consumer: remove leftover temporary directories and stale locks from the store.
    Vacuum(VacuumArgs),
}

impl Command {
    /// Consumer verbs work on sources and the local store; they need no `--url`.
    pub fn is_consumer(&self) -> bool {
        matches!(
            self,
            Command::Sources(_)
                | Command::Avail(_)
                | Command::Import(_)
                | Command::Installed(_)
                | Command::Vacuum(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct SourcesArgs {
    #[command(subcommand)]
    pub action: Option<SourcesAction>,
}

#[derive(Debug, Subcommand)]
pub enum SourcesAction {
    /// List sources (the default).
    List,
    /// Add a source URL (http or https).
    Add(UrlArg),
    /// Delete a source URL.
    Delete(UrlArg),
}

#[derive(Debug, Args)]
pub struct UrlArg {
    /// Source URL.
    pub url: String,
}

#[derive(Debug, Args)]
pub struct AvailArgs {
    /// Omit the header row.
    #[arg(short = 'H')]
    pub no_header: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Image UUID.
    pub uuid: Uuid,
}

#[derive(Debug, Args)]
pub struct InstalledArgs {
    #[command(subcommand)]
    pub action: Option<InstalledAction>,
    /// Omit the header row.
    #[arg(short = 'H')]
    pub no_header: bool,
}

#[derive(Debug, Subcommand)]
pub enum InstalledAction {
    /// List installed images (the default).
    List,
    /// Show an installed image's manifest (JSON).
    Get(UuidArg),
    /// Delete an installed image.
    Delete(UuidArg),
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Dry run: print what would be removed.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UuidArg {
    /// Image UUID.
    pub uuid: Uuid,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Omit the header row.
    #[arg(short = 'H')]
    pub no_header: bool,
    /// Columns to show, comma separated (e.g. uuid,name,version,state).
    #[arg(short = 'o', value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Sort by this field.
    #[arg(short = 's')]
    pub sort: Option<String>,
    /// Filter on name.
    #[arg(long)]
    pub name: Option<String>,
    /// Filter on version.
    #[arg(long)]
    pub version: Option<String>,
    /// Filter on os.
    #[arg(long)]
    pub os: Option<String>,
    /// Filter on type.
    #[arg(long = "type")]
    pub type_: Option<String>,
    /// Filter on state (active, unactivated, disabled, all).
    #[arg(long)]
    pub state: Option<String>,
    /// Filter on owner UUID.
    #[arg(long)]
    pub owner: Option<String>,
    /// More filters as FIELD=VALUE, passed as query parameters.
    pub filters: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Manifest JSON file.
    #[arg(short = 'm', long)]
    pub manifest: PathBuf,
    /// Image file to upload, then activate the image.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Compression of the file (none, gzip, bzip2, xz).
    #[arg(short = 'c', long, default_value = "none")]
    pub compression: String,
}

#[derive(Debug, Args)]
pub struct AddFileArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// Image file to upload.
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Compression of the file (none, gzip, bzip2, xz).
    #[arg(short = 'c', long)]
    pub compression: String,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// FIELD=VALUE pairs.
    #[arg(required = true)]
    pub fields: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AclArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// Account UUIDs.
    #[arg(required = true)]
    pub accounts: Vec<Uuid>,
}

#[derive(Debug, Args)]
pub struct GetFileArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// Where to write the file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}
