//! The configuration keys, each declared once: its type, default (and how
//! the documentation shows it), file type, environment variable and doc
//! line. `docs/config.md` is generated from this table, in this order; the
//! environment is read in this order too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use imgapi_domain::Mode;
use uuid::Uuid;

use super::{
    AuthType, ChangesConfig, ChannelConfig, ConfigError, DatabaseSection, DockerConfig, DsapiMode,
    ExportConfig, KeyDoc, LifecycleConfig, LxdConfig, QuotasConfig, RemoteConfig, RetentionConfig,
    SigningConfig, SimplestreamsConfig, StorageConfig, WebhooksConfig,
};
use crate::accounts::AccountDirectoryConfig;

config_keys! {
    file_only {
        /// `[database] url`, the table form of `database_url`.
        database: Option<DatabaseSection>,
    }
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)), shown "127.0.0.1:8080",
        file String, env "IMGAPI_LISTEN" text,
        "Address and port the HTTP API listens on.";
    mode: Mode = Mode::Public, shown "public",
        file String, env "IMGAPI_MODE" text,
        "`public`, `private` or `dc` (api.md §1.4): decides visibility and validation rules.";
    auth_type: AuthType = AuthType::None, shown "none",
        file String, env "IMGAPI_AUTH_TYPE" text,
        "`none` (nothing is checked: dc mode behind a firewall) or `signature` (HTTP Signature with SSH keys, api.md §1.5).";
    /// username → OpenSSH public key lines (HTTP Signature, keyId = username).
    auth_keys: BTreeMap<String, Vec<String>> = BTreeMap::new(), shown "(none)",
        file BTreeMap<String, Vec<String>>, env "IMGAPI_AUTH_KEYS" json("a JSON object of key lists"),
        "Table username → list of OpenSSH public key lines accepted for HTTP Signature auth (keyId = username). In the environment: a JSON object.";
    /// Where image files and icons are stored.
    storage: StorageConfig = StorageConfig::Local, shown "kind = \"local\"",
        file StorageConfig, env "IMGAPI_STORAGE" json("a JSON storage object"),
        "Where image files and icons live: `kind = \"local\"` (`<data_dir>/files`) or `kind = \"s3\"` with `bucket`, optional `endpoint` (http(s)://host:port of an S3-compatible server, path-style), `region` (us-east-1), `prefix`, `redirect_downloads` (false: when true, GetImageFile answers 302 to a 15-minute presigned URL), `local_secondary` (false: also keep `<data_dir>/files` as a second store for AdminChangeImageStor between s3 and local; single instance only), `credentials` (`\"environment\"`: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the web-identity / container credentials the environment names; without any the server stops at start-up and asks no metadata service; `\"instance\"`: the AWS credential chain including the cloud instance metadata service), `connect_timeout_secs` (3), `first_byte_timeout_secs` (5: the longest wait for the answer to a get, head, list or delete), `stall_timeout_secs` (30: the longest wait for the next byte of an answer, or for the answer to a part upload once sent). A store that stops answering altogether is noticed within about a second whatever these say (docs/operating.md \"Backend outages\"). In the environment: a JSON object.";
    /// Where owner / account existence is checked (dc mode).
    account_directory: AccountDirectoryConfig = AccountDirectoryConfig::default(), shown "kind = \"none\"",
        file AccountDirectoryConfig, env "IMGAPI_ACCOUNT_DIRECTORY" json("a JSON directory object"),
        "dc mode: where owner existence is checked (OwnerDoesNotExist). `kind = \"none\"` accepts any uuid; `\"static\"` with `accounts = [uuids]`; `\"ldap\"` with `url` (ldap://), `base_dn`, optional `bind_dn`, `bind_password`, `timeout_secs` (5), `cache_ttl_secs` (60; 10 for misses). In the environment: a JSON object.";
    /// Outbound fetch policy (`[remote]`).
    remote: RemoteConfig = RemoteConfig::default(), shown "allow_http = false, allow_private_addresses = false, allowed_hosts = [], max_redirects = 5, connect_timeout_secs = 10, read_timeout_secs = 60",
        file RemoteConfig, env "IMGAPI_REMOTE" json("a JSON object of [remote] keys"),
        "`[remote]`: what the server may fetch for AdminImportRemoteImage, AdminImportImageFromSource, AddImageFileFromSource and AddImageFileFromUrl (docs/mirroring.md). `allow_http`: also `http:` URLs; `allow_private_addresses`: also loopback, RFC 1918, link-local, ULA, CGNAT, unspecified, multicast and reserved addresses (every resolved address is checked, at connect time too); `allowed_hosts`: when not empty, only these hosts (a leading `.` also matches subdomains); `max_redirects`: redirects followed, each hop checked again; timeouts for connecting and for a transfer that receives nothing. URLs of `datacenters` are trusted and not checked. In the environment: a JSON object.";
    /// Docker/OCI registries (`[docker]`).
    docker: DockerConfig = DockerConfig::default(), shown "insecure_registries = []",
        file DockerConfig, env "IMGAPI_DOCKER" json("a JSON object of [docker] keys"),
        "`[docker]`: registries of AdminImportDockerImage and AdminPushDockerImage (docs/docker.md). `insecure_registries`: `host:port` (or `host`) of registries reached over plain http, as dockerd's option of that name; every other registry is reached over https only. The `[remote]` address rules (`allow_private_addresses`, `allowed_hosts`, redirects, timeouts) apply to registries and their token servers too. In the environment: a JSON object.";
    /// LXD simplestreams servers (`[lxd]`).
    lxd: LxdConfig = LxdConfig::default(), shown "remotes = {}",
        file LxdConfig, env "IMGAPI_LXD" json("a JSON object of [lxd] keys"),
        "`[lxd]`: simplestreams servers of AdminImportLxdImage (docs/lxd.md). `remotes`: table name → server URL (`[lxd.remotes] images = \"https://images.example.com\"`); `alias=NAME:ALIAS` imports from the server named NAME. None by default. The `[remote]` rules (https only unless `allow_http`, address rules, redirects, timeouts) apply to these servers. In the environment: a JSON object.";
    /// This datacenter's name (ImportFromDatacenter).
    datacenter_name: Option<String> = None, shown "(none)",
        file String, env "IMGAPI_DATACENTER_NAME" text,
        "This datacenter's name, for ImportFromDatacenter (api.md §5.21).";
    /// Datacenter name → that datacenter's IMGAPI URL (`[datacenters]`).
    datacenters: BTreeMap<String, String> = BTreeMap::new(), shown "(none)",
        file BTreeMap<String, String>, env "IMGAPI_DATACENTERS" json("a JSON object of URLs"),
        "Table datacenter name → that datacenter's IMGAPI URL (the original's `imgapiUrlFromDatacenter`): where ImportFromDatacenter copies from. In the environment: a JSON object.";
    /// username → account uuid: signed users that act for one account
    /// (as CloudAPI's `account=` would) instead of as operators.
    user_accounts: BTreeMap<String, Uuid> = BTreeMap::new(), shown "(none)",
        file BTreeMap<String, Uuid>, env "IMGAPI_USER_ACCOUNTS" json("a JSON object of account uuids"),
        "Table username → account uuid. A signed user listed here always acts for that account (as if `account=<uuid>` were passed: sees what the account may see, changes only its images, no operator endpoints); unlisted signed users are operators. In the environment: a JSON object.";
    /// Directory of `<username>.keys` files.
    auth_keys_dir: Option<PathBuf> = None, shown "(none)",
        file PathBuf, env "IMGAPI_AUTH_KEYS_DIR" text,
        "Directory of `<username>.keys` files (one OpenSSH public key per line, `#` comments); re-read by POST /authkeys/reload without a restart.";
    data_dir: PathBuf = PathBuf::from("./data"), shown "./data",
        file PathBuf, env "IMGAPI_DATA_DIR" text,
        "Directory holding the SQLite database and the image files (`files/`).";
    /// `sqlite://PATH`; default `sqlite://<data_dir>/imgapi.sqlite`.
    database_url: Option<String> = None, shown "sqlite://<data_dir>/imgapi.sqlite",
        file String, env "IMGAPI_DATABASE_URL" text,
        "Metadata database: `sqlite://PATH` (embedded default) or `postgres://user:password@host:port/db` (scale-out; several instances may share it). Also accepted as `[database] url`.";
    server_name: String = format!("imgapi/{}", imgapi_types::API_VERSION), shown "imgapi/4.11.0",
        file String, env "IMGAPI_SERVER_NAME" text,
        "Value of the `Server` response header.";
    admin_uuid: Option<Uuid> = None, shown "(none)",
        file String, env "IMGAPI_ADMIN_UUID" text,
        "dc mode: the operator account; imports with the zero owner get this owner.";
    channels: Vec<ChannelConfig> = Vec::new(), shown "(none)",
        file Vec<ChannelConfig>, env "IMGAPI_CHANNELS" json("a JSON array of channel objects"),
        "`[[channels]]` tables with `name`, `description`, `default`. In the environment: a JSON array of the same objects. No channels = a server without channels.";
    /// PEM certificate chain; with `tls_key`, the server speaks HTTPS.
    tls_cert: Option<PathBuf> = None, shown "(none)",
        file PathBuf, env "IMGAPI_TLS_CERT" text,
        "PEM certificate chain. With `tls_key` the server speaks HTTPS on `listen` (rustls); without both, plain HTTP.";
    tls_key: Option<PathBuf> = None, shown "(none)",
        file PathBuf, env "IMGAPI_TLS_KEY" text,
        "PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.";
    max_connections: usize = 1024, shown "1024",
        file usize, env "IMGAPI_MAX_CONNECTIONS" number,
        "Concurrent connections served; one more gets an immediate 503 ServiceUnavailableError and is closed.";
    header_read_timeout_secs: u64 = 10, shown "10",
        file u64, env "IMGAPI_HEADER_READ_TIMEOUT_SECS" number,
        "A client must send a request's whole header section within this time (slowloris protection); also bounds idle keep-alive waits.";
    max_header_bytes: usize = 65536, shown "65536",
        file usize, env "IMGAPI_MAX_HEADER_BYTES" number,
        "Largest request line + headers accepted (URI included); larger requests get 431.";
    body_idle_timeout_secs: u64 = 120, shown "120",
        file u64, env "IMGAPI_BODY_IDLE_TIMEOUT_SECS" number,
        "An upload that sends no byte for this long is aborted (and leaves nothing behind).";
    shutdown_grace_secs: u64 = 30, shown "30",
        file u64, env "IMGAPI_SHUTDOWN_GRACE_SECS" number,
        "On SIGTERM/SIGINT: stop accepting, let in-flight requests finish for at most this long.";
    /// `/datasets`: redirect (default) or serve v1 manifests.
    dsapi: DsapiMode = DsapiMode::Redirect, shown "redirect",
        file String, env "IMGAPI_DSAPI" text,
        "Legacy DSAPI `/datasets` (api.md §6): `redirect` answers 301 to the matching `/images` URL (the original's behaviour); `serve` answers with v1 dataset manifests of the active public images and serves their files at `/datasets/<uuid>/<file>` (docs/dsapi.md).";
    /// ExportImage target; `None` = 503 StorageUnsupported.
    export: Option<ExportConfig> = None, shown "(none)",
        file ExportConfig, env "IMGAPI_EXPORT" json("a JSON export object"),
        "Where ExportImage (`?action=export&manta_path=…`) writes an image's manifest and file: `kind = \"local\"` with `dir` (written under `<dir>/<manta_path>`), or `kind = \"s3\"` with `bucket`, optional `endpoint`, `region` (us-east-1), `prefix`, `credentials` (as for `storage`). Absent = ExportImage answers 503 StorageUnsupported. In the environment: a JSON object.";
    /// Resumable upload sessions untouched for this long are swept
    /// (docs/uploads.md). Seconds.
    upload_session_ttl_secs: u64 = 86_400, shown "86400",
        file u64, env "IMGAPI_UPLOAD_SESSION_TTL_SECS" number,
        "Resumable upload sessions (docs/uploads.md) that receive no chunk for this long expire: their staged bytes (part file or S3 multipart upload) and record are removed by a sweep that runs at start-up and every few minutes (every TTL/4, at most 5 min).";
    /// Finished jobs older than this many days are deleted; 0 = never.
    jobs_retention_days: u64 = 30, shown "30",
        file u64, env "IMGAPI_JOBS_RETENTION_DAYS" number,
        "Finished jobs (succeeded, failed, canceled; e.g. remote imports) whose `finished_at` is older than this many days are deleted by a task that runs at start-up and hourly; queued and running jobs are never deleted. `0` keeps jobs forever. ListImageJobs and GetJob no longer show a pruned job.";
    /// Where `/metrics` (Prometheus text format) is served on a listener
    /// of its own; `None` = nowhere but, with `metrics_on_main`, the API.
    metrics_listen: Option<SocketAddr> = Some(SocketAddr::from(([127, 0, 0, 1], 9108))), shown "127.0.0.1:9108",
        file String, env "IMGAPI_METRICS_LISTEN" text,
        "Address of a listener of its own serving `GET /metrics` (Prometheus text format, no authentication; docs/operating.md#monitoring). Empty = no metrics listener. Bind it to a private interface.";
    /// Also answer `GET /metrics` on the API listener.
    metrics_on_main: bool = false, shown "false",
        file bool, env "IMGAPI_METRICS_ON_MAIN" boolean,
        "Also answer `GET /metrics` on the API listener (`listen`), without authentication, for set-ups that scrape one port only. With neither this nor `metrics_listen`, no metrics are recorded.";
    /// Serve the read-only HTML catalog at `/catalog`.
    catalog: bool = true, shown "true",
        file bool, env "IMGAPI_CATALOG" boolean,
        "Serve the read-only HTML catalog (`GET /catalog`, `GET /catalog/:uuid`): the images the caller may see, as ListImages and GetImage show them, with search and filters, a page per image and download links. No JavaScript; sent with a Content-Security-Policy. `false` = both paths answer 404.";
    /// `/streams/v1/…` for `lxc` / `incus` (`[simplestreams]`).
    simplestreams: SimplestreamsConfig = SimplestreamsConfig::default(), shown "enabled = false",
        file SimplestreamsConfig, env "IMGAPI_SIMPLESTREAMS" json("a JSON object of [simplestreams] keys"),
        "`[simplestreams]`: `enabled = true` serves the active, public images of type `lxd` as a simplestreams image server (`GET /streams/v1/index.json`, the products file it names and the files its items name), so `lxc remote add NAME https://HOST --protocol=simplestreams` lists and exports them (docs/lxd.md). `lxc` accepts https remotes only (`tls_cert`/`tls_key`). Off by default: the paths answer 404. In the environment: a JSON object.";
    /// Retention rules and their schedule (`[retention]`).
    retention: RetentionConfig = RetentionConfig::default(), shown "interval_hours = 0, rules = []",
        file RetentionConfig, env "IMGAPI_RETENTION" json("a JSON object of [retention] keys"),
        "`[retention]` (docs/lifecycle.md \"Retention rules\"): `[[retention.rules]]` tables with `name` (an image name, or a pattern with `*` and `?`), optional `owner` (a uuid; absent = every owner), `keep_versions` (keep the newest N active versions of each owner and name) and/or `keep_days` (keep those published within D days); an image goes only when every rule that matches it lets it go, and never when it is protected, in the origin chain of an image that stays, or the newest active version of its name. `interval_hours`: hours between scheduled runs (a retention job, one at a time across instances); 0 (default) = only when an operator runs it (`POST /retention/runs`). Operators add more rules through `/retention/rules`. In the environment: a JSON object.";
    /// The recycle bin and abandoned uploads (`[lifecycle]`).
    lifecycle: LifecycleConfig = LifecycleConfig::default(), shown "recycle_days = 0, abandoned_upload_hours = 0, sweep_interval_secs = 300",
        file LifecycleConfig, env "IMGAPI_LIFECYCLE" json("a JSON object of [lifecycle] keys"),
        "`[lifecycle]` (docs/lifecycle.md): `recycle_days` > 0 makes DeleteImage move an image and its file to a recycle bin (`/recycle-bin`: list, restore, purge) for that many days instead of deleting it; its uuid cannot be reused meanwhile. `0` deletes at once (the original's behaviour). `abandoned_upload_hours` > 0 removes images never activated (CreateImage without ActivateImage) older than that many hours; `0` keeps them. Both take fractions (`0.5`). A sweep every `sweep_interval_secs` (300) purges expired bin entries and abandoned uploads, on one instance at a time. In the environment: a JSON object.";
    /// The change log (`[changes]`).
    changes: ChangesConfig = ChangesConfig::default(), shown "retention_hours = 168",
        file ChangesConfig, env "IMGAPI_CHANGES" json("a JSON object of [changes] keys"),
        "`[changes]` (docs/events.md): every committed image write leaves an event in the change log (`GET /changes`, webhooks). `retention_hours` (168 = 7 days; fractions allowed) is how long an event is kept: the lifecycle sweep (`[lifecycle] sweep_interval_secs`) purges older ones, and a client whose cursor is older gets 410 ChangesExpired and must resynchronize. In the environment: a JSON object.";
    /// Image signatures (`[signing]`).
    signing: SigningConfig = SigningConfig::default(), shown "require_for_activation = false, allowed_signers = (none)",
        file SigningConfig, env "IMGAPI_SIGNING" json("a JSON object of [signing] keys"),
        "`[signing]` (docs/signing.md): images carry OpenSSH SSHSIG signatures of their statement (`/images/:uuid/signatures`), verified when added. `require_for_activation = true` makes ActivateImage answer 422 SignatureRequired unless the image has a valid signature by a key of its owner (an `auth_keys` user mapped to the owner in `user_accounts`) or of an operator (an `auth_keys` user not mapped to an account, or a key of `allowed_signers`). `allowed_signers`: an OpenSSH allowed_signers file (`ssh-keygen -Y verify -f` format) of keys trusted as operators' (read at start-up). In the environment: a JSON object.";
    /// Per-owner quotas and write-once versions (`[quotas]`).
    quotas: QuotasConfig = QuotasConfig::default(), shown "default_images = 0, default_bytes = 0, owners = {}, write_once_versions = false",
        file QuotasConfig, env "IMGAPI_QUOTAS" json("a JSON object of [quotas] keys"),
        "`[quotas]` (docs/lifecycle.md \"Quotas\"): `default_images` and `default_bytes` limit the image records and the bytes (files and icons) of every owner (0 = no limit); `[quotas.owners.<uuid>]` with `images` and/or `bytes` replaces them for one owner (PutQuota overrides stored in the database take precedence); CreateImage, imports, AddImageFile and AddImageIcon answer 403 QuotaExceeded rather than pass a limit. `write_once_versions = true` refuses a second image with the same owner, name and version (409 ImageVersionExists). In the environment: a JSON object.";
    /// Webhook delivery and configured endpoints (`[webhooks]`).
    webhooks: WebhooksConfig = WebhooksConfig::default(), shown "max_failures = 300, timeout_secs = 10, lease_secs = 30, poll_interval_ms = 250, endpoints = []",
        file WebhooksConfig, env "IMGAPI_WEBHOOKS" json("a JSON object of [webhooks] keys"),
        "`[webhooks]` (docs/webhooks.md): every instance delivers the change log to the webhook endpoints, one signed POST per event, in sequence order per endpoint, one instance per endpoint at a time. `max_failures`: consecutive failed attempts (backoff 1 s doubling to at most 5 min) after which an endpoint is dead until an operator resumes it (300 ≈ 24 h of failing; an endpoint down for an hour fails about 20 times). `timeout_secs`: the longest one POST may take (10). `lease_secs`: how long an instance holds an endpoint while delivering it; another takes over this long after one dies (30, longer than `timeout_secs`). `poll_interval_ms`: how often an instance looks for new events (250). `[[webhooks.endpoints]]` tables with `name` (unique; the cursor is kept under it across restarts), `url`, `secret` (the HMAC-SHA256 key of `X-Imgapi-Signature`) and optional `events` (event types; absent = all) are added or updated at start-up (a new one starts at the latest event); those removed from the file are deleted; the API cannot delete them. The `[remote]` rules (https only unless `allow_http`, address rules) apply to every webhook URL. In the environment: a JSON object.";
    log_level: String = "info".into(), shown "info",
        file String, env "IMGAPI_LOG_LEVEL" text,
        "Log filter (tracing `EnvFilter` syntax). Audit lines are logged at info.";
}
