//! clap definitions only: no behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

/// Publish and manage images in an IMGAPI registry.
///
/// Publisher commands talk to one IMGAPI server (--url, IMGAPI_URL or the
/// profile file); consumer commands install images from configured sources
/// into a local store. Errors print as `imgadm: error (RestCode): message`;
/// exit status 1 is a server or network failure, 2 a usage error, 3 not found,
/// 4 events gone from the change feed (`changes`: resync)
/// (130: interrupted by Ctrl-C; a rerun of import, get-file or add-file
/// resumes). A closed stdout ends a command quietly with exit 0.
#[derive(Debug, Parser)]
#[command(name = "imgadm", version)]
pub struct Cli {
    /// Base URL of the IMGAPI server (required: flag, env or profile).
    #[arg(short = 'u', long, env = "IMGAPI_URL", global = true)]
    pub url: Option<String>,
    /// Print JSON instead of human-readable output.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// Sign requests (HTTP Signature) as this user, through ssh-agent
    /// ($SSH_AUTH_SOCK) when it holds the key, else with the --key file.
    #[arg(long, env = "IMGAPI_USER", global = true)]
    pub user: Option<String>,
    /// Key to sign with: a private key (OpenSSH or PEM; an encrypted one
    /// is decrypted with $IMGAPI_KEY_PASSPHRASE or a passphrase prompt), or
    /// a public key whose private key ssh-agent holds. With --user,
    /// defaults to ssh-agent's first key, then ~/.ssh/id_ed25519.
    #[arg(long, env = "IMGAPI_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// Channel of every image request (`?channel=`; `*` = any channel when
    /// reading); the server's default channel when unset.
    #[arg(long, env = "IMGAPI_CHANNEL", global = true)]
    pub channel: Option<String>,
    /// Directory holding configuration: `profile.json` (defaults for --url,
    /// --user, --key, --channel) and `sources.json`; default ~/.imgadm.
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
    #[command(visible_aliases = ["show", "info"])]
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
    /// Update mutable manifest fields: FIELD=VALUE (VALUE is JSON if it parses,
    /// else a string) and/or -f FILE (a JSON object of fields; `-` = stdin).
    Update(UpdateArgs),
    /// Delete an image and its file.
    Delete(UuidArg),
    /// Deprecate an image (now, or at --at TIME): other accounts' listings
    /// leave it out, it stays usable by uuid; --clear undoes it.
    Deprecate(DeprecateArgs),
    /// Protect an image from deletion.
    Protect(UuidArg),
    /// Let a protected image be deleted again.
    Unprotect(UuidArg),
    /// Show an image's lifecycle flags (deprecation, protection).
    Lifecycle(UuidArg),
    /// Add accounts to an image's ACL.
    AddAcl(AclArgs),
    /// Remove accounts from an image's ACL.
    RemoveAcl(AclArgs),
    /// Download an image's file to stdout, -o FILE or -O (resumes a partial
    /// download to a file; verifies size and SHA-1).
    GetFile(GetFileArgs),
    /// Add or replace an image's icon (PNG, GIF or JPEG, at most 128 KiB).
    AddIcon(AddIconArgs),
    /// Download an image's icon (verifies size and SHA-1).
    GetIcon(GetIconArgs),
    /// Delete an image's icon.
    DeleteIcon(UuidArg),
    /// List the server's channels.
    Channels(ChannelsArgs),
    /// Add an image to one more channel (look it up with --channel).
    ChannelAdd(ChannelAddArgs),
    /// The recycle bin of deleted images (servers with `[lifecycle] recycle_days`):
    /// `bin list`, `bin get|restore|purge UUID`.
    Bin(BinArgs),
    /// Show an owner's quota (limits and use), or without OWNER every owner with
    /// one; operators: `quota set OWNER --images N --bytes SIZE` (0 = no limit;
    /// SIZE takes K, M, G, T suffixes: 10G) and `quota clear OWNER`.
    Quota(QuotaArgs),
    /// Operator: import a manifest keeping its uuid; with -f, also upload its file and activate it.
    AdminImport(AdminImportArgs),
    /// Operator: import a Docker/OCI image (each layer an image) from its registry.
    DockerImport(DockerImportArgs),
    /// Push a docker image (the chain of layers ending at UUID) to a registry.
    DockerPush(DockerPushArgs),
    /// Operator: retention rules (`rules`, `add`, `delete`) and runs (`run [--dry-run]`).
    Retention(crate::commands::retention::RetentionArgs),
    /// The server's change feed (an extension): the events after --since SEQ
    /// (SEQ TIME TYPE UUID NAME@VERSION FIELDS, or -j one JSON event per
    /// line); --follow keeps watching until Ctrl-C. Exit 4: the server no
    /// longer has the events after SEQ (resync); 3: it has no change feed.
    Changes(crate::commands::changes::ChangesArgs),
    /// Sign an image (docs/signing.md): its statement, checked against its
    /// manifest, signed as `ssh-keygen -Y sign -n imgapi` would with the
    /// --key file or ssh-agent's key (as request signing), then added to
    /// the image. Prints the key's fingerprint.
    Sign(SignArgs),
    /// Verify an image's signatures here, against the statement rebuilt
    /// from its manifest; with --trust, also whether an allowed_signers
    /// file trusts their keys. Exit 1 when none is valid (or trusted).
    Verify(VerifyArgs),
    /// Write a v2 manifest for an image file (sha1, size, compression; image_size for zvol;
    /// a uuid only with --uuid, for admin-import).
    CreateManifest(CreateManifestArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
    /// Link the node tools' names (joyent-imgadm, sdc-imgadm, updates-imgadm,
    /// imgapi-cli) to this binary in DIR: run by those names, it behaves as
    /// those tools.
    InstallLinks(InstallLinksArgs),
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
    /// Verbs that talk to no server and read no configuration.
    pub fn is_offline(&self) -> bool {
        matches!(
            self,
            Command::CreateManifest(_)
                | Command::Completions(_)
                | Command::Man
                | Command::InstallLinks(_)
        )
    }

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
    Add(SourcesAddArgs),
    /// Delete a source URL.
    Delete(UrlArg),
}

#[derive(Debug, Args)]
pub struct UrlArg {
    /// Source URL.
    // Its own id: `url` is the global --url (and IMGAPI_URL), which would
    // otherwise share this value.
    #[arg(id = "source_url", value_name = "URL")]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct SourcesAddArgs {
    #[command(flatten)]
    pub source: UrlArg,
    /// Import from this source only images whose whole origin chain is
    /// signed by a key of this OpenSSH allowed_signers file (the format of
    /// `ssh-keygen -Y verify -f`); given for a configured source, replaces
    /// its trust file.
    #[arg(long, value_name = "ALLOWED_SIGNERS")]
    pub trust: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Image UUID.
    pub uuid: Uuid,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// An OpenSSH allowed_signers file: also require a valid signature by
    /// one of its keys.
    #[arg(long, value_name = "ALLOWED_SIGNERS")]
    pub trust: Option<PathBuf>,
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
#[command(args_conflicts_with_subcommands = true)]
pub struct QuotaArgs {
    #[command(subcommand)]
    pub action: Option<QuotaAction>,
    /// Owner UUID; none = every owner with a quota (operators).
    pub owner: Option<Uuid>,
}

#[derive(Debug, Subcommand)]
pub enum QuotaAction {
    /// Operator: store an owner's limits, replacing the configured ones.
    Set(QuotaSetArgs),
    /// Operator: drop an owner's stored limits (the configured ones apply again).
    Clear(OwnerArg),
}

#[derive(Debug, Args)]
pub struct QuotaSetArgs {
    /// Owner UUID.
    pub owner: Uuid,
    /// Most images the owner may have (0 = no limit).
    #[arg(long)]
    pub images: Option<u64>,
    /// Most bytes of files and icons (0 = no limit): 1000, 512M, 10G, 1T (powers of 1024).
    #[arg(long, value_parser = crate::commands::parse_size)]
    pub bytes: Option<u64>,
}

#[derive(Debug, Args)]
pub struct OwnerArg {
    /// Owner UUID.
    pub owner: Uuid,
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
    /// Manifest JSON file (`-` reads stdin).
    #[arg(short = 'm', long)]
    pub manifest: PathBuf,
    /// Image file to upload, then activate the image.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Compression of the file (none, gzip, bzip2, xz; default: the
    /// manifest's files[0].compression, else none).
    #[arg(short = 'c', long)]
    pub compression: Option<String>,
    /// Sign the image (as `imgadm sign`) once its file is added, before it
    /// is activated.
    #[arg(long, requires = "file")]
    pub sign: bool,
    #[command(flatten)]
    pub resume: ResumeArgs,
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
    #[command(flatten)]
    pub resume: ResumeArgs,
}

/// How big files are uploaded: in chunks through a resumable upload
/// session (an IMGAPI extension), resumed after a failure or a rerun.
#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    /// Always upload with one plain PUT (no resumable upload session, even
    /// for files above the threshold).
    #[arg(long)]
    pub no_resume: bool,
    /// Files of at least this many bytes use a resumable upload session.
    #[arg(long, env = "IMGADM_RESUME_THRESHOLD", default_value_t = 64 << 20, hide = true)]
    pub resume_threshold: u64,
    /// Bytes per chunk of a resumable upload (raised to the server's minimum).
    #[arg(long, env = "IMGADM_UPLOAD_CHUNK_SIZE", default_value_t = 64 << 20, hide = true)]
    pub chunk_size: u64,
    /// Where unfinished resumable uploads are remembered between runs
    /// (default `<config dir>/uploads`: `--config-dir`, `$IMGADM_CONFIG_DIR`, else `~/.imgadm`).
    #[arg(long, env = "IMGADM_UPLOAD_STATE_DIR", hide = true)]
    pub upload_state_dir: Option<PathBuf>,
}

impl Default for ResumeArgs {
    fn default() -> Self {
        ResumeArgs {
            no_resume: false,
            resume_threshold: 64 << 20,
            chunk_size: 64 << 20,
            upload_state_dir: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// A JSON object of the fields to change (`-` reads stdin); FIELD=VALUE
    /// pairs given too are applied over it.
    #[arg(short = 'f', long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// FIELD=VALUE pairs.
    #[arg(required_unless_present = "file")]
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
    /// Where to write the file (default: stdout; the bytes are checked
    /// after they are written, a mismatch exits 1).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Save as `UUID-file` plus the extension of its compression (`.gz`,
    /// `.bz2`, `.xz`) in the current directory.
    #[arg(short = 'O', long = "output-by-uuid", conflicts_with = "output")]
    pub output_by_uuid: bool,
}

#[derive(Debug, Args)]
pub struct AddIconArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// Icon file; its type comes from the extension (.png, .gif, .jpg, .jpeg).
    #[arg(short = 'f', long)]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct GetIconArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// Where to write the icon.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct BinArgs {
    #[command(subcommand)]
    pub action: Option<BinAction>,
    /// Omit the header row (`bin list`).
    #[arg(short = 'H')]
    pub no_header: bool,
    /// Operator: only this owner's entries (`bin list`).
    #[arg(long)]
    pub owner: Option<Uuid>,
}

#[derive(Debug, Subcommand)]
pub enum BinAction {
    /// List deleted images in the recycle bin (the default).
    List,
    /// Show one recycle-bin entry.
    Get(UuidArg),
    /// Put a deleted image back (its origin must exist).
    Restore(UuidArg),
    /// Delete a recycle-bin entry and its file for good.
    Purge(UuidArg),
}

#[derive(Debug, Args)]
pub struct ChannelsArgs {
    /// Omit the header row.
    #[arg(short = 'H')]
    pub no_header: bool,
}

#[derive(Debug, Args)]
pub struct DeprecateArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// When the image is deprecated: an ISO 8601 time (default: now).
    #[arg(long, value_name = "TIME", conflicts_with = "clear")]
    pub at: Option<String>,
    /// Clear the deprecation instead.
    #[arg(long)]
    pub clear: bool,
}

#[derive(Debug, Args)]
pub struct ChannelAddArgs {
    /// Image UUID.
    pub uuid: Uuid,
    /// Channel to add the image to.
    // Its own id: `channel` is the global --channel, which would take this value.
    #[arg(id = "to_channel", value_name = "CHANNEL")]
    pub channel: String,
}

#[derive(Debug, Args)]
pub struct AdminImportArgs {
    /// Manifest JSON file (`-` reads stdin); it must have a `uuid` (and
    /// `v`), which are kept.
    #[arg(short = 'm', long)]
    pub manifest: PathBuf,
    /// Image file to upload, then activate the image.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Compression of the file (none, gzip, bzip2, xz; default: the
    /// manifest's files[0].compression, else none).
    #[arg(short = 'c', long)]
    pub compression: Option<String>,
    /// Sign the image (as `imgadm sign`) once its file is added, before it
    /// is activated.
    #[arg(long, requires = "file")]
    pub sign: bool,
}

/// Credentials for a Docker registry. Without --registry-user, those
/// `docker login` stored in `$DOCKER_CONFIG/config.json` (default
/// `~/.docker/config.json`) are used, if any.
#[derive(Debug, Args)]
pub struct RegistryLoginArgs {
    /// User name at the registry; the password comes from
    /// --registry-password-stdin, $IMGADM_REGISTRY_PASSWORD, or a prompt.
    #[arg(long, env = "IMGADM_REGISTRY_USER", value_name = "USER")]
    pub registry_user: Option<String>,
    /// Read the registry password from stdin (trailing newline removed).
    #[arg(long, requires = "registry_user")]
    pub registry_password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct DockerImportArgs {
    /// The image, as `docker pull` names it: REPO[:TAG|@DIGEST] (tag
    /// `latest` by default; REPO on Docker Hub unless its first component
    /// is a host: `registry.example.com:5000/team/app:1.0`).
    #[arg(value_name = "REPO[:TAG|@DIGEST]")]
    pub image: String,
    /// Make the images public (the server's default).
    #[arg(long, overrides_with = "no_public")]
    pub public: bool,
    /// Make the images private.
    #[arg(long, overrides_with = "public")]
    pub no_public: bool,
    #[command(flatten)]
    pub login: RegistryLoginArgs,
}

#[derive(Debug, Args)]
pub struct DockerPushArgs {
    /// The docker image (top layer) to push.
    pub uuid: Uuid,
    /// Where to push it: REPO:TAG (tag `latest` by default).
    #[arg(value_name = "REPO:TAG")]
    pub target: String,
    #[command(flatten)]
    pub login: RegistryLoginArgs,
}

#[derive(Debug, Args)]
pub struct CreateManifestArgs {
    /// Image file to describe (hashed, not modified).
    #[arg(short = 'f', long)]
    pub file: PathBuf,
    /// Image name.
    #[arg(long)]
    pub name: String,
    /// Image version.
    #[arg(long)]
    pub version: String,
    /// Image type [default: lxd for an LXD image (a tarball with
    /// metadata.yaml, or --lxd-metadata), else other].
    #[arg(long = "type", value_parser = [
        "zvol", "zone-dataset", "lx-dataset", "lxd", "docker", "other",
    ])]
    pub type_: Option<String>,
    /// Operating system [default: linux for an LXD image, else other].
    #[arg(long, value_parser = [
        "smartos", "linux", "windows", "bsd", "illumos", "other",
    ])]
    pub os: Option<String>,
    /// LXD split image: its metadata tarball (lxd.tar.xz); FILE is then the
    /// root filesystem (squashfs or root.tar.xz). The manifest lists both
    /// files, metadata first, as AdminImportLxdImage stores them.
    #[arg(long, value_name = "METADATA")]
    pub lxd_metadata: Option<PathBuf>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Owner account UUID [default: 00000000-0000-0000-0000-000000000000, "unset"].
    #[arg(long)]
    pub owner: Option<Uuid>,
    /// Mark the image public (required by a public-mode server, refused by a private one).
    #[arg(long)]
    pub public: bool,
    /// Compression of FILE [default: guessed from its first bytes].
    #[arg(short = 'c', long, value_parser = ["none", "gzip", "bzip2", "xz"])]
    pub compression: Option<String>,
    /// zvol only: virtual disk size in MiB [default: measured with
    /// `qemu-img info`; required for a compressed file].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub image_size: Option<u64>,
    /// zvol only: NIC driver [default: virtio].
    #[arg(long)]
    pub nic_driver: Option<String>,
    /// zvol only: disk driver [default: virtio].
    #[arg(long)]
    pub disk_driver: Option<String>,
    /// zvol only: CPU type [default: host].
    #[arg(long)]
    pub cpu_type: Option<String>,
    /// Write the manifest to this file instead of printing it.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Put a `uuid` in the manifest, as admin-import needs (a new one
    /// unless UUID is given). Without it there is none: `create` (and the
    /// original server's CreateImage) assigns one and refuses one given.
    #[arg(long, value_name = "UUID", num_args = 0..=1)]
    pub uuid: Option<Option<Uuid>>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct InstallLinksArgs {
    /// Directory to create the links in (e.g. /usr/local/bin).
    pub dir: PathBuf,
    /// Replace files of those names that are not links to this binary.
    #[arg(long)]
    pub force: bool,
}
