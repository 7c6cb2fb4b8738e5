//! The verbs of the node tools and the command line around them: global
//! options and their environment fallbacks, `help`, `--version`, dispatch.
//! Each verb prints what the node tool prints (lib/cli.js of
//! joyent/sdc-imgapi-cli); the transfers underneath are ours.

use std::io::{IsTerminal as _, Read as _};
use std::time::Duration;

use imgapi_client::{Client, ClientOptions, Image, NoProgress};
use md5::{Digest as _, Md5};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::help;
use super::opts::{self, Kind, OptError, Parsed, Spec};
use super::output;
use super::table;
use super::{auth, Auth, CliError, Personality, SDC_CONFIG};
use crate::cli::ResumeArgs;
use crate::commands;
use crate::reporters::Bar;

/// Which tools have a verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Always,
    Export,
    Channels,
}

/// One verb of the node tools.
#[derive(Debug)]
pub struct Verb {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Left out of the overview (`state`).
    pub hidden: bool,
    pub description: &'static str,
    specs: &'static [Spec],
    needs: Needs,
}

impl Verb {
    pub fn available(&self, p: &Personality) -> bool {
        match self.needs {
            Needs::Always => true,
            Needs::Export => p.export,
            Needs::Channels => p.channels,
        }
    }

    /// The verb's options in `p` (delete's `--force-all-channels` exists
    /// only with channels).
    fn specs(&self, p: &Personality) -> &'static [Spec] {
        if self.name == "delete" && p.channels {
            DELETE_CHANNEL_SPECS
        } else {
            self.specs
        }
    }
}

const fn verb(
    name: &'static str,
    description: &'static str,
    specs: &'static [Spec],
    needs: Needs,
) -> Verb {
    Verb {
        name,
        aliases: &[],
        hidden: false,
        description,
        specs,
        needs,
    }
}

use Kind::{Bool, Number, Text};

const JSON: Spec = Spec::new("json", Some('j'), Bool);
const SKIP_HEADER: Spec = Spec::new("skipHeader", Some('H'), Bool);
const OUTPUT: Spec = Spec::new("output", Some('o'), Text);
const QUIET: Spec = Spec::new("quiet", Some('q'), Bool);
const FILE: Spec = Spec::new("file", Some('f'), Text);
const SHA1: Spec = Spec::new("sha1", Some('s'), Text);
const STORAGE: Spec = Spec::new("storage", None, Text);
const ADMIN_FIELDS: Spec = Spec::new("inclAdminFields", Some('A'), Bool);
const MANIFEST: Spec = Spec::new("manifest", Some('m'), Text);
const COMPRESSION: Spec = Spec::new("compression", Some('c'), Text);

const LIST_SPECS: &[Spec] = &[
    JSON,
    SKIP_HEADER,
    OUTPUT,
    Spec::new("sort", Some('s'), Text),
    Spec::new("all", Some('a'), Bool),
    Spec::new("latest", None, Bool),
    Spec::new("marker", Some('m'), Text),
    Spec::new("limit", Some('l'), Number),
    ADMIN_FIELDS,
    Spec::new("tree", None, Bool),
];
const GET_FILE_SPECS: &[Spec] = &[OUTPUT, Spec::new("outputUuidExt", Some('O'), Bool), QUIET];
const CREATE_SPECS: &[Spec] = &[MANIFEST, FILE, COMPRESSION, SHA1, QUIET, STORAGE];
const IMPORT_SPECS: &[Spec] = &[
    MANIFEST,
    FILE,
    COMPRESSION,
    SHA1,
    Spec::new("source-url", Some('S'), Text),
    Spec::new("channel", Some('C'), Text),
    Spec::new("skip-owner-check", None, Bool),
    QUIET,
    STORAGE,
];
const ADD_FILE_SPECS: &[Spec] = &[FILE, COMPRESSION, SHA1, QUIET, STORAGE];
const ADD_ICON_SPECS: &[Spec] = &[
    FILE,
    Spec::new("contentType", Some('c'), Text),
    SHA1,
    QUIET,
    STORAGE,
];
const DELETE_CHANNEL_SPECS: &[Spec] = &[Spec::new("force-all-channels", None, Bool)];

/// Every verb, in the order the node tools list them.
pub static VERBS: &[Verb] = &[
    verb("activate", help::ACTIVATE, &[], Needs::Always),
    verb("add-acl", help::ADD_ACL, &[], Needs::Always),
    verb("add-file", help::ADD_FILE, ADD_FILE_SPECS, Needs::Always),
    verb("add-icon", help::ADD_ICON, ADD_ICON_SPECS, Needs::Always),
    verb("change-stor", help::CHANGE_STOR, &[], Needs::Always),
    verb("channel-add", help::CHANNEL_ADD, &[], Needs::Channels),
    verb(
        "channels",
        help::CHANNELS,
        &[JSON, SKIP_HEADER, OUTPUT],
        Needs::Channels,
    ),
    verb("create", help::CREATE, CREATE_SPECS, Needs::Always),
    verb("delete", help::DELETE, &[], Needs::Always),
    verb("delete-icon", help::DELETE_ICON, &[], Needs::Always),
    verb("disable", help::DISABLE, &[], Needs::Always),
    verb("enable", help::ENABLE, &[], Needs::Always),
    verb(
        "export",
        help::EXPORT,
        &[Spec::new("output-template", Some('o'), Text)],
        Needs::Export,
    ),
    Verb {
        aliases: &["show", "info"],
        ..verb("get", help::GET, &[ADMIN_FIELDS], Needs::Always)
    },
    verb("get-file", help::GET_FILE, GET_FILE_SPECS, Needs::Always),
    verb("get-icon", help::GET_ICON, GET_FILE_SPECS, Needs::Always),
    Verb {
        aliases: &["?"],
        ..verb("help", help::HELP, &[], Needs::Always)
    },
    verb("import", help::IMPORT, IMPORT_SPECS, Needs::Always),
    verb("list", help::LIST, LIST_SPECS, Needs::Always),
    verb("ping", help::PING, &[], Needs::Always),
    verb(
        "reload-auth-keys",
        help::RELOAD_AUTH_KEYS,
        &[],
        Needs::Always,
    ),
    verb("remove-acl", help::REMOVE_ACL, &[], Needs::Always),
    Verb {
        hidden: true,
        ..verb("state", help::STATE, &[], Needs::Always)
    },
    verb("update", help::UPDATE, &[FILE], Needs::Always),
];

/// The options every verb accepts, in `p`.
fn global_specs(p: &Personality) -> Vec<Spec> {
    let mut specs = vec![
        Spec::new("help", Some('h'), Bool),
        Spec::new("version", None, Bool),
        Spec::new("debug", Some('d'), Bool),
        Spec::new("insecure", None, Bool),
    ];
    if p.auth() == Auth::Signature {
        specs.push(Spec::new("user", Some('u'), Text));
        specs.push(Spec::new("identity", Some('i'), Kind::TextList));
    }
    if p.channels {
        specs.push(Spec::new("channel", Some('C'), Text));
    }
    specs
}

fn find_verb(p: &Personality, name: &str) -> Option<&'static Verb> {
    VERBS
        .iter()
        .filter(|v| v.available(p))
        .find(|v| v.name == name || v.aliases.contains(&name))
}

fn opt_error(e: OptError) -> CliError {
    match e {
        OptError::MissingValue(name) => CliError::usage(format!("option \"{name}\" needs a value")),
        OptError::BadNumber(name, value) => {
            CliError::usage(format!("option \"{name}\" needs a number, not \"{value}\""))
        }
    }
}

/// Parse, then run the verb.
pub fn main(p: &'static Personality, argv: Vec<String>) -> Result<(), CliError> {
    let globals = global_specs(p);
    let mut top = opts::parse(&argv, &globals).map_err(opt_error)?;
    for (env, opt) in p.envopts {
        let Some(value) = super::env_text(env) else {
            continue;
        };
        let value = match *opt {
            "identity" => opts::Value::List(vec![value]),
            "insecure" => opts::Value::Bool(true),
            _ => opts::Value::Text(value),
        };
        if *opt == "identity" && !top.list("identity").is_empty() {
            continue;
        }
        top.fallback(opt, value);
    }
    if top.flag("version") {
        return output::line(&format!("{} {}", p.name, env!("CARGO_PKG_VERSION")));
    }
    let Some(first) = top.args.first().cloned() else {
        return output::line(&help::overview(p));
    };
    if top.flag("help") && first != "help" {
        return print_help(p, &[first]);
    }
    let verb = find_verb(p, &first)
        .ok_or_else(|| CliError::new("UnknownCommand", format!("unknown command: \"{first}\"")))?;
    let mut specs = globals.clone();
    specs.extend_from_slice(verb.specs(p));
    let parsed = opts::parse(&argv, &specs).map_err(opt_error)?;
    if !parsed.unknown.is_empty() {
        return Err(CliError::new(
            "UnknownOption",
            format!("unknown option: \"{}\"", parsed.unknown.join(", ")),
        ));
    }
    let args: Vec<String> = parsed.args.iter().skip(1).cloned().collect();
    if verb.name == "help" {
        return print_help(p, &args);
    }
    let ctx = Ctx::new(p, &top, parsed, args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new("InternalError", format!("cannot start runtime: {e}")))?;
    runtime.block_on(dispatch(&ctx, verb.name))
}

fn print_help(p: &Personality, args: &[String]) -> Result<(), CliError> {
    let Some(name) = args.first() else {
        return output::line(&help::overview(p));
    };
    let verb = find_verb(p, name)
        .ok_or_else(|| CliError::new("UnknownCommand", format!("unknown command: \"{name}\"")))?;
    if verb.name == "help" {
        return output::line(&help::overview(p));
    }
    output::line(&help::description(p, verb))
}

/// One invocation: the client and the verb's options and arguments.
struct Ctx {
    p: &'static Personality,
    client: Client,
    opts: Parsed,
    args: Vec<String>,
}

impl Ctx {
    fn new(
        p: &'static Personality,
        top: &Parsed,
        opts: Parsed,
        args: Vec<String>,
    ) -> Result<Ctx, CliError> {
        let (url, url_channel) = split_channel(&base_url(p)?);
        let options = ClientOptions {
            insecure: top.flag("insecure"),
            connect_timeout: Duration::from_millis(p.connect_timeout_ms),
        };
        // `Accept-Version: *` as the node client sends it.
        let mut client = Client::with_options(&url, &options)?
            .with_user_agent(format!(
                "{}/{} (imgapi imgadm)",
                p.name,
                env!("CARGO_PKG_VERSION")
            ))
            .with_accept_version("*");
        if p.auth() == Auth::Signature {
            if let Some(signer) = auth::signer(top.text("user"), top.list("identity"))? {
                client = client.with_signer(signer);
            }
        }
        let channel = if p.channels {
            top.text("channel").map(str::to_string).or(url_channel)
        } else {
            None
        };
        if let Some(channel) = channel {
            client = client.with_channel(channel);
        }
        Ok(Ctx {
            p,
            client,
            opts,
            args,
        })
    }

    /// The only argument, an image UUID.
    fn one_uuid(&self) -> Result<Uuid, CliError> {
        if self.args.len() != 1 {
            return Err(wrong_arg_count(&self.args));
        }
        parse_uuid(&self.args[0])
    }

    /// Print `text` on stdout.
    fn say(&self, text: &str) -> Result<(), CliError> {
        output::line(text)
    }

    /// As the `commands` layer's context, for the shared upload path.
    fn commands_ctx(&self) -> commands::Ctx {
        commands::Ctx {
            client: self.client.clone(),
            json: false,
            key: None,
        }
    }
}

fn wrong_arg_count(args: &[String]) -> CliError {
    CliError::usage(format!(
        "incorrect number of args ({}): {}",
        args.len(),
        args.join(" ")
    ))
}

fn parse_uuid(text: &str) -> Result<Uuid, CliError> {
    // The node tools accept the 8-4-4-4-12 form only.
    match Uuid::parse_str(text) {
        Ok(u) if text.len() == 36 => Ok(u),
        _ => Err(CliError::invalid_uuid(text)),
    }
}

/// The tool's IMGAPI URL: its environment variable, else its default
/// (sdc-imgadm: the datacenter's config).
fn base_url(p: &Personality) -> Result<String, CliError> {
    if let Some(url) = super::env_text(p.url_env) {
        return Ok(url);
    }
    if let Some(url) = p.default_url {
        return Ok(url.to_string());
    }
    let domain = std::fs::read_to_string(SDC_CONFIG)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|c| {
            c.get("imgapi_domain")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    match domain {
        Some(d) => Ok(format!("http://{d}")),
        None => Err(CliError::usage(format!(
            "{} is not set and {SDC_CONFIG} gives no \"imgapi_domain\": set {} to the IMGAPI's URL",
            p.url_env, p.url_env
        ))),
    }
}

/// A `?channel=` in the URL sets the channel, as in the node client.
fn split_channel(url: &str) -> (String, Option<String>) {
    let Ok(mut parsed) = imgapi_client::Url::parse(url) else {
        return (url.to_string(), None);
    };
    let channel = parsed
        .query_pairs()
        .find(|(k, _)| k == "channel")
        .map(|(_, v)| v.into_owned());
    if channel.is_none() {
        return (url.to_string(), None);
    }
    parsed.set_query(None);
    (parsed.to_string(), channel)
}

async fn dispatch(ctx: &Ctx, verb: &str) -> Result<(), CliError> {
    match verb {
        "ping" => ping(ctx).await,
        "state" => state(ctx).await,
        "reload-auth-keys" => reload_auth_keys(ctx).await,
        "list" => list(ctx).await,
        "get" => get(ctx).await,
        "get-file" => get_file(ctx).await,
        "get-icon" => get_icon(ctx).await,
        "delete" => delete(ctx).await,
        "create" => create(ctx).await,
        "update" => update(ctx).await,
        "import" => import(ctx).await,
        "add-file" => add_file(ctx).await,
        "add-icon" => add_icon(ctx).await,
        "delete-icon" => delete_icon(ctx).await,
        "export" => export(ctx).await,
        "activate" => activate(ctx).await,
        "disable" => disable(ctx).await,
        "enable" => enable(ctx).await,
        "add-acl" => acl(ctx, true).await,
        "remove-acl" => acl(ctx, false).await,
        "channels" => channels(ctx).await,
        "channel-add" => channel_add(ctx).await,
        "change-stor" => change_stor(ctx).await,
        other => Err(CliError::new(
            "UnknownCommand",
            format!("unknown command: \"{other}\""),
        )),
    }
}

fn no_args(ctx: &Ctx) -> Result<(), CliError> {
    if ctx.args.is_empty() {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "unexpected args: {}",
            ctx.args.join(" ")
        )))
    }
}

async fn ping(ctx: &Ctx) -> Result<(), CliError> {
    no_args(ctx)?;
    output::json(&ctx.client.ping().await?)
}

async fn state(ctx: &Ctx) -> Result<(), CliError> {
    no_args(ctx)?;
    output::json(&ctx.client.admin_get_state().await?)
}

async fn reload_auth_keys(ctx: &Ctx) -> Result<(), CliError> {
    no_args(ctx)?;
    Ok(ctx.client.admin_reload_auth_keys().await?)
}

// ---- list ----

const LIST_FIELDS: &[&str] = &[
    "uuid",
    "owner",
    "name",
    "version",
    "state",
    "disabled",
    "public",
    "published",
    "published_at",
    "published_date",
    "type",
    "os",
    "urn",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
    "generate_passwords",
    "description",
    "origin",
    "flags",
    "size",
    "stor",
    "homepage",
    "channels",
];

/// Set a query filter, replacing an earlier one of the same name.
fn set_filter(filters: &mut Vec<(String, String)>, key: &str, value: String) {
    match filters.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => filters.push((key.to_string(), value)),
    }
}

/// A number as JavaScript prints it (`5`, not `5.0`).
fn js_number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

async fn list(ctx: &Ctx) -> Result<(), CliError> {
    let o = &ctx.opts;
    let mut filters: Vec<(String, String)> = Vec::new();
    if o.flag("all") {
        set_filter(&mut filters, "state", "all".into());
    }
    if let Some(marker) = o.text("marker") {
        set_filter(&mut filters, "marker", marker.to_string());
    }
    let limit = o.number("limit").filter(|n| *n != 0.0);
    if let Some(limit) = limit {
        set_filter(&mut filters, "limit", js_number_text(limit));
    }
    for arg in &ctx.args {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(CliError::usage(format!(
                "invalid filter: \"{arg}\" (must be of the form \"field=value\")"
            )));
        };
        set_filter(&mut filters, k, v.to_string());
    }
    let has_state = filters.iter().any(|(k, _)| k == "state");
    let mut base: Vec<(String, String)> = Vec::new();
    if o.flag("inclAdminFields") {
        base.push(("inclAdminFields".into(), "true".into()));
    }
    base.extend(filters);
    let images = if limit.is_some() {
        list_page(ctx, &base).await?
    } else {
        list_all(ctx, base).await?
    };
    let mut images: Vec<Map<String, Value>> = images
        .into_iter()
        .filter_map(|i| match serde_json::to_value(&i) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect();
    if o.flag("latest") {
        images = latest_per_owner_name(images);
    }
    // Sorted with the derived fields (size, flags, ...) known, so `-s
    // size` sorts; the node tool sorts before deriving them.
    let sort: Vec<String> = o
        .text("sort")
        .unwrap_or("published_at,name")
        .split(',')
        .map(str::to_string)
        .collect();
    let mut images = sorted_with_derived_fields(images, &sort);
    if o.flag("json") {
        return output::json(&images);
    }
    let columns: Vec<String> = match o.text("output") {
        Some(cols) => cols.split(',').map(str::to_string).collect(),
        None if has_state => "uuid,name,version,flags,os,state,published"
            .split(',')
            .map(str::to_string)
            .collect(),
        None => "uuid,name,version,flags,os,published"
            .split(',')
            .map(str::to_string)
            .collect(),
    };
    if o.flag("tree") {
        images = tree(images, &columns);
    }
    for image in &mut images {
        derive_fields(image);
    }
    let text = table::format(&images, &columns, o.flag("skipHeader"), Some(LIST_FIELDS))
        .map_err(|e| CliError::bare(e.0))?;
    output::out(&text)
}

/// `images` sorted on `fields`, the derived fields included.
fn sorted_with_derived_fields(
    images: Vec<Map<String, Value>>,
    fields: &[String],
) -> Vec<Map<String, Value>> {
    let mut keyed: Vec<(Map<String, Value>, Map<String, Value>)> = images
        .into_iter()
        .map(|image| {
            let mut derived = image.clone();
            derive_fields(&mut derived);
            (derived, image)
        })
        .collect();
    keyed.sort_by(|a, b| table::order(&a.0, &b.0, fields));
    keyed.into_iter().map(|(_, image)| image).collect()
}

async fn list_page(ctx: &Ctx, query: &[(String, String)]) -> Result<Vec<Image>, CliError> {
    let q: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(ctx.client.list_images(&q).await?)
}

/// Every page, as the node client pages: `marker` = the last uuid seen,
/// 1000 per page, the marker image itself dropped from the next page.
async fn list_all(ctx: &Ctx, base: Vec<(String, String)>) -> Result<Vec<Image>, CliError> {
    const PAGE: usize = 1000;
    let mut marker = base
        .iter()
        .find(|(k, _)| k == "marker")
        .map(|(_, v)| v.clone());
    let mut limit: Option<usize> = None;
    let mut all = Vec::new();
    loop {
        let mut query = base.clone();
        if let Some(m) = &marker {
            set_filter(&mut query, "marker", m.clone());
        }
        if let Some(l) = limit {
            set_filter(&mut query, "limit", l.to_string());
        }
        let mut page = list_page(ctx, &query).await?;
        let page_limit = *limit.get_or_insert(PAGE);
        let stop = page.len() < page_limit;
        if let (Some(m), Some(first)) = (&marker, page.first()) {
            if first.uuid.to_string() == *m {
                page.remove(0);
            }
        }
        let Some(last) = page.last().map(|i| i.uuid.to_string()) else {
            break;
        };
        if marker.as_deref() == Some(last.as_str()) {
            break;
        }
        marker = Some(last);
        all.extend(page);
        if stop {
            break;
        }
    }
    Ok(all)
}

/// `--latest`: per (owner, name), the image published last.
fn latest_per_owner_name(images: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let mut order: Vec<String> = Vec::new();
    let mut best: std::collections::HashMap<String, Map<String, Value>> =
        std::collections::HashMap::new();
    let text = |m: &Map<String, Value>, k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .unwrap_or("undefined")
            .to_string()
    };
    for image in images {
        let key = format!("{}:{}", text(&image, "owner"), text(&image, "name"));
        let newer = match best.get(&key) {
            None => {
                order.push(key.clone());
                true
            }
            Some(current) => {
                match (
                    image.get("published_at").and_then(Value::as_str),
                    current.get("published_at").and_then(Value::as_str),
                ) {
                    (Some(a), Some(b)) => a > b,
                    _ => false,
                }
            }
        };
        if newer {
            best.insert(key, image);
        }
    }
    order.into_iter().filter_map(|k| best.remove(&k)).collect()
}

/// The fields the table shows beyond the manifest's: `published_date`,
/// `published` (no milliseconds), `size` and `stor` of the file, `flags`
/// (I incremental, P public, X not active), `channels` comma-joined.
fn derive_fields(image: &mut Map<String, Value>) {
    if let Some(at) = image
        .get("published_at")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
    {
        image.insert(
            "published_date".into(),
            Value::String(at.chars().take(10).collect()),
        );
        image.insert("published".into(), Value::String(strip_millis(&at)));
    }
    let file = image
        .get("files")
        .and_then(|f| f.get(0))
        .filter(|f| !f.is_null())
        .cloned();
    if let Some(file) = file {
        image.insert(
            "size".into(),
            file.get("size").cloned().unwrap_or(Value::Null),
        );
        image.insert(
            "stor".into(),
            file.get("stor").cloned().unwrap_or(Value::Null),
        );
    }
    let truthy = |v: Option<&Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(_) => true,
    };
    let mut flags = String::new();
    if truthy(image.get("origin")) {
        flags.push('I');
    }
    if truthy(image.get("public")) {
        flags.push('P');
    }
    if image.get("state").and_then(Value::as_str) != Some("active") {
        flags.push('X');
    }
    if flags.is_empty() {
        image.remove("flags");
    } else {
        image.insert("flags".into(), Value::String(flags));
    }
    if let Some(Value::Array(channels)) = image.get("channels") {
        let joined: Vec<String> = channels
            .iter()
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        image.insert("channels".into(), Value::String(joined.join(",")));
    }
}

/// `2026-01-02T03:04:05.678Z` → `2026-01-02T03:04:05Z`.
fn strip_millis(at: &str) -> String {
    if let Some(body) = at.strip_suffix('Z') {
        if let Some(dot) = body.rfind('.') {
            let digits = &body[dot + 1..];
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
                return format!("{}Z", &body[..dot]);
            }
        }
    }
    at.to_string()
}

/// `--tree`: images grouped under their origins, the first column
/// prefixed ` |- ` / `` `- `` by depth; an origin not listed gets a
/// placeholder row of `???`.
fn tree(mut images: Vec<Map<String, Value>>, columns: &[String]) -> Vec<Map<String, Value>> {
    let uuid_of = |m: &Map<String, Value>| {
        m.get("uuid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let origin_of = |m: &Map<String, Value>| {
        m.get("origin")
            .and_then(Value::as_str)
            .filter(|o| !o.is_empty())
            .map(str::to_string)
    };
    let mut index: std::collections::HashMap<String, usize> = images
        .iter()
        .enumerate()
        .map(|(i, m)| (uuid_of(m), i))
        .collect();
    let mut stacks: Vec<Vec<String>> = Vec::new();
    let mut remaining: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < images.len() {
        match origin_of(&images[i]) {
            Some(origin) => {
                stacks.push(vec![origin.clone()]);
                remaining.push(i);
                if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(origin) {
                    let mut faux = Map::new();
                    faux.insert("uuid".into(), Value::String(slot.key().clone()));
                    for col in columns {
                        if col != "uuid" {
                            faux.insert(col.clone(), Value::String("???".into()));
                        }
                    }
                    slot.insert(images.len());
                    images.push(faux);
                }
            }
            None => stacks.push(vec![uuid_of(&images[i])]),
        }
        i += 1;
    }
    // Walk up one generation per pass; a cycle of origins stops after as
    // many passes as there are images.
    let mut passes = 0;
    while !remaining.is_empty() && passes <= images.len() {
        passes += 1;
        let mut still = Vec::new();
        for &i in &remaining {
            let top = stacks[i][0].clone();
            let Some(&o) = index.get(&top) else { continue };
            match origin_of(&images[o]) {
                Some(grand) => {
                    stacks[i].insert(0, grand);
                    still.push(i);
                }
                None => {
                    let mut full = stacks[o].clone();
                    full.extend(stacks[i].iter().cloned());
                    stacks[i] = full;
                }
            }
        }
        remaining = still;
    }
    let mut rows: Vec<(String, Vec<String>, Map<String, Value>)> = images
        .into_iter()
        .zip(stacks)
        .map(|(m, s)| (s.join(","), s, m))
        .collect();
    rows.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    let first = columns.first().cloned().unwrap_or_else(|| "uuid".into());
    let keys: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    rows.into_iter()
        .enumerate()
        .map(|(i, (key, stack, mut m))| {
            if stack.len() > 1 {
                let mut prefix = "    ".repeat(stack.len() - 2);
                let last = keys.get(i + 1).is_none_or(|next| *next != key);
                prefix.push_str(if last { " `- " } else { " |- " });
                let cell = match m.get(&first) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) => "null".into(),
                    Some(v) => v.to_string(),
                    None => "undefined".into(),
                };
                m.insert(first.clone(), Value::String(format!("{prefix}{cell}")));
            }
            m
        })
        .collect()
}

// ---- get, files, icons ----

async fn get(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let query: &[(&str, &str)] = if ctx.opts.flag("inclAdminFields") {
        &[("inclAdminFields", "true")]
    } else {
        &[]
    };
    output::json(&ctx.client.get_image_with(&uuid, query).await?)
}

/// `-o FILE`, `-O` (a name from the uuid and `ext`), or stdout.
fn output_path(ctx: &Ctx) -> Result<Option<String>, CliError> {
    if ctx.opts.text("output").is_some() && ctx.opts.flag("outputUuidExt") {
        return Err(CliError::usage(
            "cannot use both \"-o <file>\" and \"-O\" options",
        ));
    }
    Ok(ctx.opts.text("output").map(str::to_string))
}

async fn get_file(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let mut path = output_path(ctx)?;
    if ctx.opts.flag("outputUuidExt") {
        let image = ctx.client.get_image(&uuid).await?;
        let compression = image
            .files
            .first()
            .map(|f| f.compression.as_str())
            .unwrap_or("none");
        path = Some(format!("{uuid}-file{}", compression_ext(compression)));
    }
    match path {
        // Ours: size, SHA-1 and SHA-256 checked against the manifest at
        // the end (the node tool checked nothing on stdout).
        None => {
            let mut stdout = tokio::io::stdout();
            match ctx
                .client
                .get_image_file_to_writer(&uuid, &mut stdout, None)
                .await
            {
                Ok(_) => Ok(()),
                Err(imgapi_client::ClientError::Io(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    Err(CliError::closed_stdout())
                }
                Err(e) => Err(CliError::transfer("DownloadError", e)),
            }
        }
        Some(path) => {
            // Ours: resumes a partial `<path>.part`, checks size, SHA-1 and
            // SHA-256 against the manifest before the file appears.
            let result = if ctx.opts.flag("quiet") {
                ctx.client
                    .get_image_file(&uuid, std::path::Path::new(&path), Some(&NoProgress))
                    .await
            } else {
                let bar = Bar::new(&uuid.to_string());
                ctx.client
                    .get_image_file(&uuid, std::path::Path::new(&path), Some(&bar))
                    .await
            };
            result.map_err(|e| CliError::transfer("DownloadError", e))?;
            eprintln!("Saved \"{path}\".");
            Ok(())
        }
    }
}

fn compression_ext(compression: &str) -> &'static str {
    match compression {
        "bzip2" => ".bz2",
        "gzip" => ".gz",
        "xz" => ".xz",
        _ => "",
    }
}

/// Copy a download to stdout, checking its `Content-MD5` at the end.
async fn stream_to_stdout(mut download: imgapi_client::Download) -> Result<(), CliError> {
    let expected = download.content_md5();
    let mut md5 = Md5::new();
    while let Some(chunk) = download.chunk().await? {
        md5.update(&chunk);
        output::write_bytes(&chunk)?;
    }
    check_md5(expected, md5)
}

fn check_md5(expected: Option<String>, md5: Md5) -> Result<(), CliError> {
    use base64::Engine as _;
    let actual = base64::engine::general_purpose::STANDARD.encode(md5.finalize());
    match expected {
        Some(want) if want != actual => Err(CliError::new(
            "DownloadError",
            format!("Content-MD5 expected to be {want}, but was {actual}"),
        )),
        _ => Ok(()),
    }
}

async fn get_icon(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let path = output_path(ctx)?;
    let mut download = ctx.client.open_image_icon(&uuid).await?;
    let path = match path {
        Some(p) => p,
        None if ctx.opts.flag("outputUuidExt") => {
            let ext = match download.content_type().as_deref() {
                Some("image/jpeg") => ".jpg",
                Some("image/png") => ".png",
                Some("image/gif") => ".gif",
                _ => "",
            };
            format!("{uuid}-icon{ext}")
        }
        None => return stream_to_stdout(download).await,
    };
    let expected = download.content_md5();
    let mut md5 = Md5::new();
    let mut bytes = Vec::new();
    while let Some(chunk) = download.chunk().await? {
        md5.update(&chunk);
        bytes.extend_from_slice(&chunk);
    }
    check_md5(expected, md5)?;
    std::fs::write(&path, &bytes).map_err(|e| CliError::io(&path, &e))?;
    eprintln!("Saved \"{path}\".");
    Ok(())
}

// ---- delete ----

async fn delete(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let force = ctx.p.channels && ctx.opts.flag("force-all-channels");
    let query: &[(&str, &str)] = if force {
        &[("force_all_channels", "true")]
    } else {
        &[]
    };
    ctx.client.delete_image_with(&uuid, query).await?;
    ctx.say(&deleted_message(ctx, &uuid, force))
}

fn deleted_message(ctx: &Ctx, uuid: &Uuid, force: bool) -> String {
    match ctx.client.channel() {
        _ if !ctx.p.channels || force => format!("Deleted image {uuid}"),
        Some(channel) => format!("Deleted image {uuid} from \"{channel}\" channel"),
        None => format!("Deleted image {uuid} from default channel"),
    }
}

// ---- create, import, add-file ----

/// The manifest of create/import: `-m FILE` (`-m -`: stdin), else stdin
/// when it is not a terminal.
fn read_manifest(ctx: &Ctx, verb: &str) -> Result<Value, CliError> {
    let text = match ctx.opts.text("manifest") {
        Some("-") => read_stdin()?,
        Some(path) => std::fs::read_to_string(path).map_err(|e| CliError::io(path, &e))?,
        None if std::io::stdin().is_terminal() => {
            return Err(CliError::usage(format!("image {verb}: no manifest given")))
        }
        None => read_stdin()?,
    };
    serde_json::from_str(&text).map_err(|e| CliError {
        detail: Some(e.to_string()),
        ..CliError::new("InvalidManifestData", "manifest data is not valid JSON")
    })
}

fn read_stdin() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CliError::io("stdin", &e))?;
    Ok(text)
}

/// `files[0].<key>` of a manifest, when a string.
fn manifest_file_field(manifest: &Value, key: &str) -> Option<String> {
    manifest
        .get("files")
        .and_then(|f| f.get(0))
        .and_then(|f| f.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// What add-file uploads: the compression (`-c`, else the manifest's, else
/// the file's extension) and the expected SHA-1.
struct FileToAdd {
    path: String,
    compression: String,
    sha1: Option<String>,
}

const COMPRESSIONS: &[&str] = &["bzip2", "gzip", "none", "xz"];

impl FileToAdd {
    fn from_opts(ctx: &Ctx, manifest: Option<&Value>) -> Result<Option<FileToAdd>, CliError> {
        let Some(path) = ctx.opts.text("file") else {
            return Ok(None);
        };
        let compression = ctx
            .opts
            .text("compression")
            .map(str::to_string)
            .or_else(|| manifest.and_then(|m| manifest_file_field(m, "compression")))
            .or_else(|| {
                let ext = std::path::Path::new(path).extension()?.to_str()?;
                match ext {
                    "bz2" => Some("bzip2".to_string()),
                    "gz" => Some("gzip".to_string()),
                    "xz" => Some("xz".to_string()),
                    _ => None,
                }
            })
            .ok_or_else(|| {
                CliError::usage("could not determine file compression, use \"-c\" option")
            })?;
        if !COMPRESSIONS.contains(&compression.as_str()) {
            return Err(CliError::usage(format!(
                "invalid compression \"{compression}\": must be one of {}",
                COMPRESSIONS.join(", ")
            )));
        }
        let sha1 = ctx
            .opts
            .text("sha1")
            .map(str::to_string)
            .or_else(|| manifest.and_then(|m| manifest_file_field(m, "sha1")));
        Ok(Some(FileToAdd {
            path: path.to_string(),
            compression,
            sha1,
        }))
    }

    /// Ours: a file that cannot be read is refused before anything is
    /// created on the server.
    fn check_readable(&self) -> Result<(), CliError> {
        std::fs::File::open(&self.path)
            .and_then(|f| f.metadata())
            .map(|_| ())
            .map_err(|e| CliError::io(&self.path, &e))
    }

    /// Upload (a resumable session for big files, one PUT otherwise) and
    /// print what the node tool prints.
    async fn upload(&self, ctx: &Ctx, uuid: &Uuid) -> Result<(), CliError> {
        self.check_readable()?;
        let bar = if ctx.opts.flag("quiet") {
            Bar::hidden()
        } else {
            Bar::new(&uuid.to_string())
        };
        commands::send_file(
            &ctx.commands_ctx(),
            uuid,
            std::path::Path::new(&self.path),
            &self.compression,
            self.sha1.as_deref(),
            &ResumeArgs::default(),
            &bar,
        )
        .await
        .map_err(|e| CliError::transfer("UploadError", e))?;
        drop(bar);
        ctx.say(&format!(
            "Added file \"{}\" (compression \"{}\") to image {uuid}",
            self.path, self.compression
        ))
    }
}

/// After the image exists: add the file and activate; on failure delete the
/// image again (printing what delete prints), as the node tool does.
async fn add_file_and_activate(ctx: &Ctx, image: &Image, file: &FileToAdd) -> Result<(), CliError> {
    let uuid = image.uuid;
    let result = async {
        file.upload(ctx, &uuid).await?;
        ctx.client.activate_image(&uuid).await?;
        ctx.say(&format!("Activated image {uuid}"))
    }
    .await;
    if let Err(e) = result {
        match ctx.client.delete_image(&uuid).await {
            Ok(()) => ctx.say(&deleted_message(ctx, &uuid, false))?,
            Err(del) => ctx.say(&format!(
                "Warning: Could not delete partially imported image {uuid}: {}",
                CliError::from(del).message
            ))?,
        }
        return Err(e);
    }
    Ok(())
}

fn imported_line(image: &Image) -> String {
    format!(
        "Imported image {} ({}, {}, state={})",
        image.uuid, image.name, image.version, image.state
    )
}

async fn create(ctx: &Ctx) -> Result<(), CliError> {
    no_args(ctx)?;
    let manifest = read_manifest(ctx, "create")?;
    let file = FileToAdd::from_opts(ctx, Some(&manifest))?;
    if let Some(f) = &file {
        f.check_readable()?;
    }
    let image = ctx.client.create_image(&manifest).await?;
    ctx.say(&imported_line(&image))?;
    match &file {
        Some(f) => add_file_and_activate(ctx, &image, f).await,
        None => Ok(()),
    }
}

async fn import(ctx: &Ctx) -> Result<(), CliError> {
    match ctx.args.len() {
        0 => import_manifest(ctx).await,
        1 => import_remote(ctx).await,
        _ => Err(wrong_arg_count(&ctx.args)),
    }
}

fn skip_owner_check(ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
    if ctx.opts.flag("skip-owner-check") {
        vec![("skip_owner_check", "true")]
    } else {
        Vec::new()
    }
}

async fn import_manifest(ctx: &Ctx) -> Result<(), CliError> {
    let manifest = read_manifest(ctx, "import")?;
    let file = FileToAdd::from_opts(ctx, Some(&manifest))?;
    if let Some(f) = &file {
        f.check_readable()?;
    }
    let image = ctx
        .client
        .import_image_with(&manifest, &skip_owner_check(ctx))
        .await?;
    ctx.say(&imported_line(&image))?;
    match &file {
        Some(f) => add_file_and_activate(ctx, &image, f).await,
        None => Ok(()),
    }
}

/// `import UUID -S SOURCE`: AdminImportRemoteImage, then wait for its job.
async fn import_remote(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = parse_uuid(&ctx.args[0])?;
    let source = ctx
        .opts
        .text("source-url")
        .ok_or_else(|| CliError::usage("no source URL given"))?;
    let mut url = imgapi_client::Url::parse(source)
        .map_err(|_| CliError::usage(format!("invalid URL \"{source}\"")))?;
    // The source's channel: `-C`, or one in the URL (not both); all
    // channels when neither.
    let in_url = url.query_pairs().any(|(k, _)| k == "channel");
    match (ctx.opts.text("channel"), in_url) {
        (Some(_), true) => return Err(CliError::usage("channel specified twice")),
        (Some(channel), false) => {
            url.query_pairs_mut().append_pair("channel", channel);
        }
        (None, false) => {
            url.query_pairs_mut().append_pair("channel", "*");
        }
        (None, true) => {}
    }
    let job = ctx
        .client
        .import_remote_image_with(&uuid, url.as_str(), &skip_owner_check(ctx))
        .await?;
    wait_for_job(ctx, &job.job_uuid).await?;
    let image = ctx.client.get_image(&job.image_uuid).await?;
    ctx.say(&imported_line(&image))
}

/// Poll an import job until it ends (an hour at most, as the node client).
async fn wait_for_job(ctx: &Ctx, job: &Uuid) -> Result<(), CliError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3600);
    let mut failures = 0;
    loop {
        match ctx.client.get_job(job).await {
            Ok(j) if j.execution == "succeeded" => return Ok(()),
            Ok(j) if j.execution == "failed" || j.execution == "canceled" => {
                let why = j
                    .chain_results
                    .last()
                    .map(|s| s.error.clone())
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| format!("import job {job} {}", j.execution));
                return Err(CliError::new("InternalError", why));
            }
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures >= 5 {
                    return Err(e.into());
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(CliError::new(
                "InternalError",
                "polling for import job timed out",
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn add_file(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let Some(path) = ctx.opts.text("file") else {
        return Err(CliError::usage("no image file path or url given"));
    };
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return add_file_from_url(ctx, &uuid, path).await;
    }
    let file = FileToAdd::from_opts(ctx, None)?
        .ok_or_else(|| CliError::usage("no image file path or url given"))?;
    file.upload(ctx, &uuid).await
}

async fn add_file_from_url(ctx: &Ctx, uuid: &Uuid, url: &str) -> Result<(), CliError> {
    let compression = match ctx.opts.text("compression") {
        Some(c) => c.to_string(),
        None => {
            let path = imgapi_client::Url::parse(url)
                .map(|u| u.path().to_string())
                .unwrap_or_default();
            if path.ends_with(".gz") || path.ends_with(".tgz") {
                "gzip".into()
            } else if path.ends_with(".bz2") {
                "bzip2".into()
            } else if path.ends_with(".xz") {
                "xz".into()
            } else {
                "none".into()
            }
        }
    };
    let mut query = vec![("compression", compression.as_str())];
    if let Some(sha1) = ctx.opts.text("sha1") {
        query.push(("sha1", sha1));
    }
    if let Some(storage) = ctx.opts.text("storage") {
        query.push(("storage", storage));
    }
    ctx.client
        .add_image_file_from_url(uuid, url, &query)
        .await?;
    let shown = ctx.opts.text("compression").unwrap_or("auto detected");
    ctx.say(&format!(
        "Added file from url \"{url}\" (compression \"{shown}\") to image {uuid}"
    ))
}

async fn add_icon(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let Some(path) = ctx.opts.text("file") else {
        return Err(CliError::usage("no icon file path given"));
    };
    let ext = match ctx.opts.text("contentType") {
        Some(t) => t.trim_start_matches("image/").to_string(),
        None => std::path::Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_string(),
    };
    let content_type = match ext.as_str() {
        "jpeg" | "jpg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        _ => {
            return Err(CliError::usage(
                "could not determine a valid content type, must be one of jpeg, png, gif",
            ))
        }
    };
    std::fs::metadata(path).map_err(|e| CliError::io(path, &e))?;
    ctx.client
        .add_image_icon(&uuid, std::path::Path::new(path), content_type)
        .await
        .map_err(|e| CliError::transfer("UploadError", e))?;
    ctx.say(&format!("Added icon \"{path}\" to image {uuid}"))
}

async fn delete_icon(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    ctx.client.delete_image_icon(&uuid).await?;
    ctx.say(&format!("Deleted icon from image {uuid}"))
}

async fn export(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let Some(path) = ctx.opts.text("output-template") else {
        return Err(CliError::usage("no output Manta path given"));
    };
    ctx.client
        .export_image(&uuid, &[("manta_path", path)])
        .await?;
    ctx.say(&format!("Image {uuid} exported to Manta path {path}"))
}

async fn activate(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    ctx.client.activate_image(&uuid).await?;
    ctx.say(&format!("Activated image {uuid}"))
}

async fn disable(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    ctx.client.disable_image(&uuid).await?;
    ctx.say(&format!("Disabled image {uuid}"))
}

async fn enable(ctx: &Ctx) -> Result<(), CliError> {
    let uuid = ctx.one_uuid()?;
    let image = ctx.client.enable_image(&uuid).await?;
    ctx.say(&format!(
        "Enabled image {uuid} (state is now \"{}\")",
        image.state
    ))
}

async fn acl(ctx: &Ctx, add: bool) -> Result<(), CliError> {
    let Some((first, accounts)) = ctx.args.split_first() else {
        return Err(CliError::usage("expecting image UUID as first argument"));
    };
    let uuid = parse_uuid(first)?;
    if accounts.is_empty() {
        return Err(CliError::usage("expecting at least one account UUID"));
    }
    let accounts = accounts
        .iter()
        .map(|a| parse_uuid(a))
        .collect::<Result<Vec<_>, _>>()?;
    if add {
        ctx.client.add_acl(&uuid, &accounts).await?;
    } else {
        ctx.client.remove_acl(&uuid, &accounts).await?;
    }
    ctx.say(&format!("Updated ACL for image {uuid}"))
}

// ---- update ----

async fn update(ctx: &Ctx) -> Result<(), CliError> {
    let Some((first, pairs)) = ctx.args.split_first() else {
        return Err(CliError::usage("expecting image UUID as first argument"));
    };
    if !pairs.is_empty() && ctx.opts.text("file").is_some() {
        return Err(CliError::usage(
            "Cannot provide -f|--file and property=value pairs at the same time",
        ));
    }
    let uuid = parse_uuid(first)?;
    let image = ctx.client.get_image(&uuid).await?;
    let mut body = if pairs.is_empty() {
        let text = match ctx.opts.text("file") {
            Some("-") => read_stdin()?,
            Some(path) => std::fs::read_to_string(path).map_err(|e| CliError::io(path, &e))?,
            None if std::io::stdin().is_terminal() => {
                return Err(CliError::usage("image update: no file given"))
            }
            None => read_stdin()?,
        };
        serde_json::from_str::<Value>(&text).map_err(|e| CliError {
            detail: Some(e.to_string()),
            ..CliError::new("InvalidManifestData", "manifest data is not valid JSON")
        })?
    } else {
        Value::Object(object_from_pairs(pairs)?)
    };
    let current = serde_json::to_value(&image).unwrap_or(Value::Null);
    merge_into_current(&mut body, &current);
    let updated = ctx.client.update_image(&uuid, &body).await?;
    ctx.say(&format!(
        "Update image {} ({}, {}, state={})",
        updated.uuid, updated.name, updated.version, updated.state
    ))
}

/// `key=value` arguments as an object: the value is JSON when it parses
/// (`true`, `5`, `[...]`), else a string; empty is `null`; `a.b=v` sets one
/// key of the object `a`.
fn object_from_pairs(pairs: &[String]) -> Result<Map<String, Value>, CliError> {
    let mut obj = Map::new();
    for pair in pairs {
        let Some((key, raw)) = pair.split_once('=') else {
            return Err(CliError::bare(format!(
                "invalid key=value argument: \"{pair}\""
            )));
        };
        let value = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
        };
        match key.split_once('.') {
            Some((outer, inner)) => {
                let entry = obj
                    .entry(outer.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Some(map) = entry.as_object_mut() {
                    map.insert(inner.to_string(), value);
                }
            }
            None => {
                obj.insert(key.to_string(), value);
            }
        }
    }
    Ok(obj)
}

/// An object value (`requirements`, `tags`, ...) is merged into the
/// image's current one: its keys set, a `null` key removed. Arrays and
/// other values replace.
fn merge_into_current(body: &mut Value, current: &Value) {
    let Some(body) = body.as_object_mut() else {
        return;
    };
    for (key, value) in body.iter_mut() {
        let (Some(changes), Some(Value::Object(orig))) = (value.as_object(), current.get(key))
        else {
            continue;
        };
        let mut merged = orig.clone();
        for (k, v) in changes {
            if v.is_null() {
                merged.shift_remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
        *value = Value::Object(merged);
    }
}

// ---- channels, stor ----

async fn channels(ctx: &Ctx) -> Result<(), CliError> {
    if !ctx.args.is_empty() {
        return Err(CliError::usage("too many arguments"));
    }
    let channels = ctx.client.list_channels().await?;
    if ctx.opts.flag("json") {
        return output::json(&channels);
    }
    let rows: Vec<Map<String, Value>> = channels
        .iter()
        .filter_map(|c| match serde_json::to_value(c) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect();
    const ALL: &[&str] = &["name", "default", "description"];
    let columns: Vec<String> = match ctx.opts.text("output") {
        Some(cols) => cols.split(',').map(str::to_string).collect(),
        None => ALL.iter().map(|s| s.to_string()).collect(),
    };
    let text = table::format(&rows, &columns, ctx.opts.flag("skipHeader"), Some(ALL))
        .map_err(|e| CliError::bare(e.0))?;
    output::out(&text)
}

/// Apply `one` to each image uuid after the first argument; report each on
/// stdout (success) or stderr (failure) as the node tools do.
async fn for_each_image<F, Fut>(ctx: &Ctx, one: F) -> Result<(), CliError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    if ctx.args.is_empty() {
        return Err(CliError::usage("not enough arguments"));
    }
    let mut errors = Vec::new();
    for uuid in &ctx.args[1..] {
        if let Err(e) = one(uuid.clone()).await {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            let mut lines = vec![format!("multiple ({n}) errors")];
            for e in &errors {
                lines.push(format!(
                    "    error ({}): {}",
                    e.code.as_deref().unwrap_or("undefined"),
                    e.message
                ));
            }
            Err(CliError::new("MultiError", lines.join("\n")))
        }
    }
}

async fn channel_add(ctx: &Ctx) -> Result<(), CliError> {
    let channel = ctx.args.first().cloned().unwrap_or_default();
    for_each_image(ctx, |uuid| {
        let channel = channel.clone();
        async move {
            let result = match parse_uuid(&uuid) {
                Ok(u) => ctx
                    .client
                    .channel_add_image(&u, &channel)
                    .await
                    .map_err(CliError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(img) => ctx.say(&format!(
                    "Added image {uuid} ({}@{}) to \"{channel}\" channel",
                    img.name, img.version
                )),
                Err(e) => {
                    eprintln!("Error adding image {uuid} to \"{channel}\" channel");
                    Err(e)
                }
            }
        }
    })
    .await
}

async fn change_stor(ctx: &Ctx) -> Result<(), CliError> {
    let stor = ctx.args.first().cloned().unwrap_or_default();
    for_each_image(ctx, |uuid| {
        let stor = stor.clone();
        async move {
            let result = match parse_uuid(&uuid) {
                Ok(u) => ctx
                    .client
                    .change_image_stor(&u, &stor)
                    .await
                    .map_err(CliError::from),
                Err(e) => Err(e),
            };
            match result {
                Ok(img) => ctx.say(&format!(
                    "Changed image {uuid} ({}@{}) stor to \"{stor}\"",
                    img.name, img.version
                )),
                Err(e) => {
                    eprintln!("Error changing image {uuid} stor to \"{stor}\"");
                    Err(e)
                }
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_value_pairs_as_the_node_tool_reads_them() {
        let pairs: Vec<String> = ["nm=foo", "tag.blah=true", "empty=", "nada=null", "n=5"]
            .map(String::from)
            .into();
        assert_eq!(
            Value::Object(object_from_pairs(&pairs).unwrap()),
            json!({"nm": "foo", "tag": {"blah": true}, "empty": null, "nada": null, "n": 5})
        );
        assert!(object_from_pairs(&["novalue".to_string()]).is_err());
    }

    #[test]
    fn objects_merge_into_the_current_value() {
        let mut body = json!({"requirements": {"min_ram": 512, "brand": null}, "acl": ["a"]});
        let current = json!({"requirements": {"brand": "lx", "max_ram": 9}, "acl": ["x", "y"]});
        merge_into_current(&mut body, &current);
        assert_eq!(
            body,
            json!({"requirements": {"max_ram": 9, "min_ram": 512}, "acl": ["a"]})
        );
    }

    #[test]
    fn derived_fields_and_tree() {
        let mut img = json!({"uuid": "b", "origin": "a", "public": true, "state": "active",
            "published_at": "2026-01-02T03:04:05.678Z", "files": [{"size": 9}],
            "channels": ["dev", "stable"]})
        .as_object()
        .unwrap()
        .clone();
        derive_fields(&mut img);
        assert_eq!(img["flags"], "IP");
        assert_eq!(img["published"], "2026-01-02T03:04:05Z");
        assert_eq!(img["published_date"], "2026-01-02");
        assert_eq!(img["size"], 9);
        assert_eq!(img["channels"], "dev,stable");

        let rows: Vec<Map<String, Value>> = [
            json!({"uuid": "c", "origin": "b", "name": "c"}),
            json!({"uuid": "b", "origin": "a", "name": "b"}),
            json!({"uuid": "d", "name": "d"}),
        ]
        .iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect();
        let cols = vec!["uuid".to_string(), "name".to_string()];
        let out = tree(rows, &cols);
        let firsts: Vec<&str> = out.iter().map(|m| m["uuid"].as_str().unwrap()).collect();
        // a is a placeholder for the origin not listed.
        assert_eq!(firsts, ["a", " `- b", "     `- c", "d"]);
        assert_eq!(out[0]["name"], "???");
    }

    #[test]
    fn strips_only_millisecond_fractions() {
        assert_eq!(
            strip_millis("2026-01-02T03:04:05.6Z"),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(strip_millis("2026-01-02T03:04:05Z"), "2026-01-02T03:04:05Z");
        assert_eq!(strip_millis("garbage"), "garbage");
    }
}
