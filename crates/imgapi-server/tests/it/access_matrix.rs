//! The access matrix: every endpoint × caller {anonymous,
//! owner, another account, an account on the ACL, operator} × mode {public,
//! private, dc} (plus a dc variant with public images and a channel-enabled
//! private server).
//!
//! Expectations are *derived* from the rules of api.md §1.5 (auth policies,
//! strict → 401), §1.6 (account visibility → 404 `image not found`,
//! ownership → 422 NotImageOwner, operator-only → 403), §2 (policy per
//! route) and §5 (per-endpoint checks), and of our `user_accounts`
//! extension (a signed user listed there acts for that account on routes
//! that authenticate; an unlisted signed user is an operator). A handful of
//! hand-written spot checks at the end of each mode pin the derivation to
//! literal expectations.
//!
//! Every error response is scanned for the secret marker of the fixtures'
//! manifests, the files' and icons' byte patterns and their SHA-1s: no
//! error may carry a byte of an image. ListImages results are checked
//! against the independent visibility rule (safety) and against the spec's
//! account algorithm (exact set).
//!
//! Mutating cells run against fresh images (created by the operator per
//! cell), so allowed mutations never leak into later cells; every denied
//! mutation is followed by an operator read proving the image is unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use sha1::Digest;

use crate::support::{TestServer, BOB, CAROL, OWNER};

/// Accounts: the fixtures' owner, an unrelated account, one on the ACL.
const OTHER: &str = BOB;
const ACL: &str = CAROL;
/// An account added to ACLs by AddImageAcl cells.
const NEW_ACL: &str = "f0e1d2c3-b4a5-4697-8899-aabbccddeeff";
const ADMIN_UUID: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
const UNSET_OWNER: &str = "00000000-0000-0000-0000-000000000000";

/// Every fixture manifest carries this (plus a per-image suffix) in its
/// description and in a tag; no error body may contain it.
const SECRET: &str = "S3CR3T-MARKER";

// ---------------------------------------------------------------------------
// Callers, modes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anon,
    Owner,
    Other,
    Acl,
    Operator,
}

const CALLERS: [Caller; 5] = [
    Caller::Anon,
    Caller::Owner,
    Caller::Other,
    Caller::Acl,
    Caller::Operator,
];

impl Caller {
    /// The account this caller acts for (through `user_accounts` in the
    /// signature modes, through `?account=` in dc mode).
    fn account(self) -> Option<&'static str> {
        match self {
            Caller::Owner => Some(OWNER),
            Caller::Other => Some(OTHER),
            Caller::Acl => Some(ACL),
            Caller::Anon | Caller::Operator => None,
        }
    }

    fn username(self) -> Option<&'static str> {
        match self {
            Caller::Anon => None,
            Caller::Owner => Some("owneruser"),
            Caller::Other => Some("otheruser"),
            Caller::Acl => Some("acluser"),
            Caller::Operator => Some("operator"),
        }
    }

    fn seed(self) -> u8 {
        match self {
            Caller::Anon => 0,
            Caller::Owner => 21,
            Caller::Other => 22,
            Caller::Acl => 23,
            Caller::Operator => 24,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ModeCfg {
    name: &'static str,
    /// `mode = "dc"` with `auth_type = "none"`; otherwise public/private
    /// with `auth_type = "signature"`.
    dc: bool,
    /// `mode = "private"` (only meaningful when not dc).
    private: bool,
    /// The `public` flag of every image in this mode.
    public_images: bool,
    /// Channel-enabled (dev = default, staging, release).
    channels: bool,
}

impl ModeCfg {
    fn sig(&self) -> bool {
        !self.dc
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Strict,
    Passive,
    None,
}

/// The account a request acts for (api.md §1.6 + `user_accounts`). On
/// auth-`none` routes the signature header is ignored, so in the signature
/// modes only an explicit `?account=` (never sent by this matrix) counts.
fn eff_account(m: &ModeCfg, c: Caller, p: Policy) -> Option<&'static str> {
    if m.sig() && p == Policy::None {
        return None;
    }
    c.account()
}

/// "Authenticated request" (api.md §1.5): never with auth type none.
fn authenticated(m: &ModeCfg, c: Caller, p: Policy) -> bool {
    m.sig() && c != Caller::Anon && p != Policy::None
}

fn ed_key(c: Caller) -> SigningKey {
    SigningKey::from_bytes(&[c.seed(); 32])
}

/// The users' keys. RSA-2048 (`rsa-sha256`, one of the original's
/// algorithms) made and used through `openssl` / `ssh-keygen` when those
/// tools exist: its verification costs ~2 ms in a debug build against ~12 ms
/// for Ed25519, which keeps the matrix fast. Ed25519 (in process) otherwise.
struct Keys {
    /// username → (private key PEM path, OpenSSH public key line).
    rsa: Option<BTreeMap<&'static str, (std::path::PathBuf, String)>>,
    _dir: tempfile::TempDir,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let make = |user: &'static str| -> Option<(std::path::PathBuf, String)> {
            let pem = dir.path().join(format!("{user}.pem"));
            let ok = std::process::Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(&pem)
                .arg("2048")
                .output()
                .ok()?
                .status
                .success();
            if !ok {
                return None;
            }
            let out = std::process::Command::new("ssh-keygen")
                .arg("-y")
                .arg("-f")
                .arg(&pem)
                .output()
                .ok()?;
            let line = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && line.starts_with("ssh-rsa ")).then_some((pem, line))
        };
        let rsa = CALLERS
            .iter()
            .filter_map(|c| c.username())
            .map(|u| make(u).map(|k| (u, k)))
            .collect::<Option<BTreeMap<_, _>>>();
        Keys { rsa, _dir: dir }
    })
}

fn public_line(c: Caller) -> String {
    if let Some(rsa) = &keys().rsa {
        return rsa[c.username().unwrap()].1.clone();
    }
    let key = ed_key(c);
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), key.verifying_key().as_bytes()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!(
        "ssh-ed25519 {} {}@matrix",
        base64::engine::general_purpose::STANDARD.encode(blob),
        c.username().unwrap_or("anon")
    )
}

/// Sign a request as `c` (signing string `date: <Date>`, api.md §1.5). A
/// signature stays valid while its date is within the server's 300 s clock
/// skew, so one is reused for up to 60 s.
fn sign(c: Caller, rb: RequestBuilder) -> RequestBuilder {
    use std::sync::Mutex;
    use std::time::Duration;
    type Cached = (u8, Instant, String, String);
    static CACHE: Mutex<Vec<Cached>> = Mutex::new(Vec::new());
    let Some(user) = c.username() else {
        return rb;
    };
    let mut cache = CACHE.lock().unwrap();
    cache.retain(|(_, made, _, _)| made.elapsed() < Duration::from_secs(60));
    let (date, header) = match cache.iter().find(|(s, ..)| *s == c.seed()) {
        Some((_, _, d, h)) => (d.clone(), h.clone()),
        None => {
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            let signing = format!("date: {date}");
            let (alg, sig) = match &keys().rsa {
                Some(rsa) => {
                    use std::io::Write;
                    let mut child = std::process::Command::new("openssl")
                        .args(["dgst", "-sha256", "-sign"])
                        .arg(&rsa[user].0)
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .unwrap();
                    child
                        .stdin
                        .take()
                        .unwrap()
                        .write_all(signing.as_bytes())
                        .unwrap();
                    let out = child.wait_with_output().unwrap();
                    assert!(out.status.success(), "openssl dgst -sign failed");
                    ("rsa-sha256", out.stdout)
                }
                None => (
                    "ed25519",
                    ed_key(c).sign(signing.as_bytes()).to_bytes().to_vec(),
                ),
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
            let header =
                format!("Signature keyId=\"{user}\",algorithm=\"{alg}\",signature=\"{b64}\"");
            cache.push((c.seed(), Instant::now(), date.clone(), header.clone()));
            (date, header)
        }
    };
    drop(cache);
    rb.header("date", date).header("authorization", header)
}

fn config_toml(m: &ModeCfg) -> String {
    let mut t = String::new();
    if m.dc {
        t.push_str(&format!(
            "mode = \"dc\"\nauth_type = \"none\"\nadmin_uuid = \"{ADMIN_UUID}\"\n"
        ));
    } else {
        t.push_str(&format!(
            "mode = \"{}\"\nauth_type = \"signature\"\n",
            if m.private { "private" } else { "public" }
        ));
        t.push_str("[auth_keys]\n");
        for c in CALLERS.iter().filter(|c| c.username().is_some()) {
            t.push_str(&format!(
                "{} = [{:?}]\n",
                c.username().unwrap(),
                public_line(*c)
            ));
        }
        t.push_str("[user_accounts]\n");
        for c in [Caller::Owner, Caller::Other, Caller::Acl] {
            t.push_str(&format!(
                "{} = \"{}\"\n",
                c.username().unwrap(),
                c.account().unwrap()
            ));
        }
    }
    if m.channels {
        t.push_str(
            "[[channels]]\nname = \"dev\"\ndescription = \"dev\"\ndefault = true\n\
             [[channels]]\nname = \"staging\"\ndescription = \"staging\"\n\
             [[channels]]\nname = \"release\"\ndescription = \"release\"\n",
        );
    }
    t
}

// ---------------------------------------------------------------------------
// Responses and expectations

struct Resp {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Success with this status.
    Ok(u16),
    /// Error: status, restCode, and optionally the exact message.
    Err(u16, &'static str, Option<String>),
}

fn unauthorized() -> Expect {
    Expect::Err(401, "UnauthorizedError", Some("Unauthorized".into()))
}

fn operator_only() -> Expect {
    Expect::Err(
        403,
        "OperatorOnly",
        Some("this endpoint may only be called by an operator".into()),
    )
}

fn not_visible() -> Expect {
    Expect::Err(404, "ResourceNotFound", Some("image not found".into()))
}

fn not_owner(account: &str, uuid: &str) -> Expect {
    Expect::Err(
        422,
        "NotImageOwner",
        Some(format!(
            "account {account} is not the owner of image {uuid}"
        )),
    )
}

enum Body {
    Empty,
    Json(Value),
    Bytes(Vec<u8>, &'static str),
}

// ---------------------------------------------------------------------------
// The image model the rules are evaluated on

#[derive(Debug, Clone)]
struct Img {
    uuid: String,
    owner: String,
    public: bool,
    activated: bool,
    disabled: bool,
    acl: Vec<String>,
    has_file: bool,
    has_icon: bool,
    name: String,
    tag_secret: Option<String>,
    published_at: Option<String>,
    channels: Vec<String>,
    /// False for the "ghost": a well-formed uuid no image has.
    exists: bool,
}

impl Img {
    fn from_json(v: &Value) -> Img {
        let state = v["state"].as_str().unwrap_or_default();
        Img {
            uuid: v["uuid"].as_str().unwrap().to_string(),
            owner: v["owner"].as_str().unwrap_or_default().to_string(),
            public: v["public"].as_bool().unwrap_or(false),
            activated: state == "active" || state == "disabled",
            disabled: state == "disabled",
            acl: v["acl"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
            has_file: v["files"].as_array().is_some_and(|f| !f.is_empty()),
            has_icon: v["icon"] == json!(true),
            name: v["name"].as_str().unwrap_or_default().to_string(),
            tag_secret: v["tags"]["secret"].as_str().map(str::to_string),
            published_at: v["published_at"].as_str().map(str::to_string),
            channels: v["channels"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
            exists: true,
        }
    }

    fn ghost() -> Img {
        Img {
            uuid: "0badc0de-0000-4000-8000-00000000beef".into(),
            owner: OWNER.into(),
            public: false,
            activated: false,
            disabled: false,
            acl: vec![],
            has_file: false,
            has_icon: false,
            name: "ghost".into(),
            tag_secret: None,
            published_at: None,
            channels: vec![],
            exists: false,
        }
    }
}

/// api.md §1.6 rule 2.
fn visible(img: &Img, account: &str) -> bool {
    img.owner == account || (img.activated && (img.public || img.acl.iter().any(|a| a == account)))
}

// ---------------------------------------------------------------------------
// Endpoints on one image

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ep {
    GetImage,
    GetImageAdmin,
    GetImageStaging,
    GetFile,
    GetIcon,
    AddFile,
    AddIcon,
    DeleteIcon,
    Activate,
    Disable,
    Enable,
    Update,
    Delete,
    AclAdd,
    AclRemove,
    ChannelAdd,
    Clone,
}

const READ_EPS: [Ep; 5] = [
    Ep::GetImage,
    Ep::GetImageAdmin,
    Ep::GetImageStaging,
    Ep::GetFile,
    Ep::GetIcon,
];

const WRITE_EPS: [Ep; 12] = [
    Ep::AddFile,
    Ep::AddIcon,
    Ep::DeleteIcon,
    Ep::Activate,
    Ep::Disable,
    Ep::Enable,
    Ep::Update,
    Ep::Delete,
    Ep::AclAdd,
    Ep::AclRemove,
    Ep::ChannelAdd,
    Ep::Clone,
];

impl Ep {
    fn policy(self) -> Policy {
        match self {
            Ep::GetImage | Ep::GetImageAdmin | Ep::GetImageStaging => Policy::Passive,
            Ep::GetFile | Ep::GetIcon => Policy::None,
            _ => Policy::Strict,
        }
    }

    /// Endpoints that modify the image (ownership rule 3).
    fn needs_owner(self) -> bool {
        !matches!(
            self,
            Ep::GetImage | Ep::GetImageAdmin | Ep::GetImageStaging | Ep::GetFile | Ep::GetIcon
        ) && self != Ep::Clone
    }

    fn request(self, uuid: &str, file: &[u8], icon: &[u8]) -> (Method, String, Body) {
        let p = format!("/images/{uuid}");
        match self {
            Ep::GetImage => (Method::GET, p, Body::Empty),
            Ep::GetImageAdmin => (
                Method::GET,
                format!("{p}?inclAdminFields=true"),
                Body::Empty,
            ),
            Ep::GetImageStaging => (Method::GET, format!("{p}?channel=staging"), Body::Empty),
            Ep::GetFile => (Method::GET, format!("{p}/file"), Body::Empty),
            Ep::GetIcon => (Method::GET, format!("{p}/icon"), Body::Empty),
            Ep::AddFile => (
                Method::PUT,
                format!("{p}/file?compression=gzip"),
                Body::Bytes(file.to_vec(), "application/octet-stream"),
            ),
            Ep::AddIcon => (
                Method::PUT,
                format!("{p}/icon"),
                Body::Bytes(icon.to_vec(), "image/png"),
            ),
            Ep::DeleteIcon => (Method::DELETE, format!("{p}/icon"), Body::Empty),
            Ep::Activate => (
                Method::POST,
                format!("{p}?action=activate"),
                Body::Json(json!({})),
            ),
            Ep::Disable => (
                Method::POST,
                format!("{p}?action=disable"),
                Body::Json(json!({})),
            ),
            Ep::Enable => (
                Method::POST,
                format!("{p}?action=enable"),
                Body::Json(json!({})),
            ),
            Ep::Update => (
                Method::POST,
                format!("{p}?action=update"),
                Body::Json(json!({"description": "changed by a matrix cell"})),
            ),
            Ep::Delete => (Method::DELETE, p, Body::Empty),
            Ep::AclAdd => (
                Method::POST,
                format!("{p}/acl"),
                Body::Json(json!([NEW_ACL])),
            ),
            Ep::AclRemove => (
                Method::POST,
                format!("{p}/acl?action=remove"),
                Body::Json(json!([ACL])),
            ),
            Ep::ChannelAdd => (
                Method::POST,
                format!("{p}?action=channel-add"),
                Body::Json(json!({"channel": "staging"})),
            ),
            Ep::Clone => (Method::POST, format!("{p}/clone"), Body::Json(json!({}))),
        }
    }
}

/// What the spec says `c` gets for `ep` on `t` in mode `m`.
fn expect_image_ep(m: &ModeCfg, c: Caller, ep: Ep, t: &Img) -> Expect {
    let uuid = &t.uuid;
    if ep == Ep::Clone && !m.dc {
        // §2 / §1.10: the route is not mounted outside dc mode.
        return Expect::Err(
            404,
            "ResourceNotFound",
            Some(format!("/images/{uuid}/clone does not exist")),
        );
    }
    let policy = ep.policy();
    if policy == Policy::Strict && m.sig() && c == Caller::Anon {
        return unauthorized();
    }
    let account = eff_account(m, c, policy);
    // Load step (§2.1 step 9): existence, channel membership, visibility.
    if !t.exists {
        return Expect::Err(
            404,
            "ResourceNotFound",
            Some(format!("image {uuid} not found")),
        );
    }
    if ep == Ep::GetImageStaging {
        if !m.channels {
            // Channel logic is skipped entirely on a server without channels.
        } else if !t.channels.iter().any(|ch| ch == "staging") {
            return not_visible();
        }
    }
    if let Some(a) = account {
        if !visible(t, a) {
            return not_visible();
        }
    }
    if ep == Ep::Clone {
        // §5.17 steps 2–4.
        let Some(a) = account else {
            return Expect::Err(
                422,
                "InvalidParameter",
                Some("invalid \"account\": not a UUID: \"undefined\"".into()),
            );
        };
        if !t.activated {
            return Expect::Err(422, "ValidationFailed", Some("image is not active".into()));
        }
        if !t.acl.iter().any(|x| x == a) {
            return Expect::Err(422, "ImageNotShared", None);
        }
        return Expect::Ok(200);
    }
    if ep.needs_owner() {
        if let Some(a) = account {
            if a != t.owner {
                return not_owner(a, uuid);
            }
        }
    }
    let no_icon = || {
        Expect::Err(
            404,
            "ResourceNotFound",
            Some(format!("image \"{uuid}\" has no icon")),
        )
    };
    match ep {
        Ep::GetImage | Ep::GetImageStaging => Expect::Ok(200),
        Ep::GetImageAdmin => {
            if !m.dc && !authenticated(m, c, policy) {
                Expect::Err(
                    401,
                    "UnauthorizedError",
                    Some(
                        "Unauthorized (auth required to use \"inclAdminFields\" parameter)".into(),
                    ),
                )
            } else {
                Expect::Ok(200)
            }
        }
        Ep::GetFile => {
            if t.has_file {
                Expect::Ok(200)
            } else {
                Expect::Err(404, "ResourceNotFound", None)
            }
        }
        Ep::GetIcon | Ep::DeleteIcon => {
            if t.has_icon {
                Expect::Ok(200)
            } else {
                no_icon()
            }
        }
        Ep::AddFile => {
            if t.activated {
                Expect::Err(
                    422,
                    "ImageFilesImmutable",
                    Some(format!("cannot modify files on activated image {uuid}")),
                )
            } else {
                Expect::Ok(200)
            }
        }
        Ep::Activate => {
            if t.activated {
                Expect::Err(
                    422,
                    "ImageAlreadyActivated",
                    Some(format!("image \"{uuid}\" is already activated")),
                )
            } else if !t.has_file {
                Expect::Err(422, "NoActivationNoFile", None)
            } else {
                Expect::Ok(200)
            }
        }
        Ep::Delete => Expect::Ok(204),
        Ep::AddIcon | Ep::Disable | Ep::Enable | Ep::Update | Ep::AclAdd | Ep::AclRemove => {
            Expect::Ok(200)
        }
        // §4.2: without channels the action falls through to §2.1 step 15.
        Ep::ChannelAdd if !m.channels => Expect::Err(
            422,
            "InvalidParameter",
            Some("\"channel-add\" is not a valid action".into()),
        ),
        Ep::ChannelAdd => Expect::Ok(200),
        Ep::Clone => unreachable!(),
    }
}

// ---------------------------------------------------------------------------
// ListImages model

#[derive(Debug, Clone, Default)]
struct ListQ {
    state: Option<&'static str>,
    owner: Option<&'static str>,
    public: Option<bool>,
    name: Option<String>,
    tag_secret: Option<String>,
    limit: Option<usize>,
    /// (query value, published_at threshold if the marker applies)
    marker: Option<(String, Option<String>)>,
    desc: bool,
    channel: Option<&'static str>,
    admin: bool,
    include_deprecated: bool,
}

impl ListQ {
    fn query(&self) -> String {
        let mut q: Vec<String> = Vec::new();
        if let Some(s) = self.state {
            q.push(format!("state={s}"));
        }
        if let Some(o) = self.owner {
            q.push(format!("owner={o}"));
        }
        if let Some(p) = self.public {
            q.push(format!("public={p}"));
        }
        if let Some(n) = &self.name {
            q.push(format!("name={n}"));
        }
        if let Some(t) = &self.tag_secret {
            q.push(format!("tag.secret={t}"));
        }
        if let Some(l) = self.limit {
            q.push(format!("limit={l}"));
        }
        if let Some((mk, _)) = &self.marker {
            q.push(format!("marker={mk}"));
        }
        if self.desc {
            q.push("sort=published_at.desc".into());
        }
        if let Some(ch) = self.channel {
            q.push(format!("channel={ch}"));
        }
        if self.admin {
            q.push("inclAdminFields=true".into());
        }
        if self.include_deprecated {
            q.push("include_deprecated=true".into());
        }
        q.join("&")
    }
}

/// api.md §5.1, transcribed: the expected set, or the expected error.
fn expect_list(
    m: &ModeCfg,
    c: Caller,
    q: &ListQ,
    truth: &[Img],
) -> Result<BTreeSet<String>, Expect> {
    let authed = authenticated(m, c, Policy::Passive);
    if q.admin && !m.dc && !authed {
        return Err(Expect::Err(
            401,
            "UnauthorizedError",
            Some("Unauthorized (auth required to use \"inclAdminFields\" parameter)".into()),
        ));
    }
    let account = eff_account(m, c, Policy::Passive);
    let limit_to_active = !m.dc && !authed;
    let mut state = q.state.unwrap_or("active");
    if limit_to_active {
        match state {
            "disabled" | "unactivated" => return Ok(BTreeSet::new()),
            "all" => state = "active",
            _ => {}
        }
    }
    let own_only = matches!(state, "disabled" | "unactivated");
    let state_ok = |i: &Img| match state {
        "active" => i.activated && !i.disabled,
        "disabled" => i.activated && i.disabled,
        "unactivated" => !i.activated,
        "all" => true,
        other => panic!("state {other} not modelled"),
    };
    let channel = if !m.channels {
        None
    } else {
        match q.channel {
            None => Some("dev"),
            Some("*") => None,
            Some(ch) => Some(ch),
        }
    };
    let common =
        |i: &Img| {
            q.public.is_none_or(|p| i.public == p)
                && q.name.as_ref().is_none_or(|n| match n.strip_prefix('~') {
                    Some(sub) => i.name.contains(sub),
                    None => &i.name == n,
                })
                && q.tag_secret
                    .as_ref()
                    .is_none_or(|t| i.tag_secret.as_ref() == Some(t))
                && channel.is_none_or(|ch| i.channels.iter().any(|x| x == ch))
                && q.marker.as_ref().is_none_or(|(_, thr)| match thr {
                    None => true,
                    Some(thr) => i.published_at.as_ref().is_some_and(|p| {
                        if q.desc {
                            p <= thr
                        } else {
                            p >= thr
                        }
                    }),
                })
        };
    let shared = |i: &Img, a: &str| {
        (q.public != Some(false) && i.public && i.activated)
            || (q.public != Some(true) && !i.public && i.activated && i.acl.iter().any(|x| x == a))
    };
    let account_ok = |i: &Img| match (account, q.owner) {
        (None, o) => o.is_none_or(|o| i.owner == o),
        (Some(a), None) => i.owner == a || (!own_only && shared(i, a)),
        (Some(a), Some(o)) if a == o => i.owner == a,
        (Some(a), Some(o)) => !own_only && i.owner == o && shared(i, a),
    };
    Ok(truth
        .iter()
        .filter(|i| state_ok(i) && common(i) && account_ok(i))
        .map(|i| i.uuid.clone())
        .collect())
}

// ---------------------------------------------------------------------------
// The world of one mode

struct World {
    s: TestServer,
    m: ModeCfg,
    file: Vec<u8>,
    icon: Vec<u8>,
    /// Byte strings no error response may contain.
    forbidden: Vec<Vec<u8>>,
    failures: Vec<String>,
    cells: usize,
    seq: usize,
}

fn file_bytes(mode: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..200u32 {
        v.extend_from_slice(format!("FILEBYTES-{mode}-{i:04}|").as_bytes());
        v.extend_from_slice(&[0xfe, 0xed, (i % 251) as u8]);
    }
    v
}

fn icon_bytes(mode: &str) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    for i in 0..64u32 {
        v.extend_from_slice(format!("ICONBYTES-{mode}-{i:03}|").as_bytes());
    }
    v
}

fn sha1_hex(b: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(b);
    h.finalize().iter().map(|x| format!("{x:02x}")).collect()
}

impl World {
    async fn new(m: ModeCfg) -> World {
        let s = TestServer::spawn_with(&config_toml(&m)).await;
        let file = file_bytes(m.name);
        let icon = icon_bytes(m.name);
        let forbidden = vec![
            SECRET.as_bytes().to_vec(),
            b"FILEBYTES".to_vec(),
            b"ICONBYTES".to_vec(),
            b"\xfe\xed".to_vec(),
            sha1_hex(&file).into_bytes(),
            sha1_hex(&icon).into_bytes(),
        ];
        World {
            s,
            m,
            file,
            icon,
            forbidden,
            failures: Vec::new(),
            cells: 0,
            seq: 0,
        }
    }

    /// Send a request as `c`: signed by the caller's key in the signature
    /// modes, with `?account=` in dc mode.
    async fn call(&self, c: Caller, method: Method, path: &str, body: Body) -> Resp {
        let mut url = path.to_string();
        if self.m.dc {
            if let Some(a) = c.account() {
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{sep}account={a}");
            }
        }
        let mut rb = self.s.req(method, &url);
        if self.m.sig() {
            rb = sign(c, rb);
        }
        rb = match body {
            Body::Empty => rb,
            Body::Json(v) => rb.json(&v),
            Body::Bytes(b, ct) => rb.header("content-type", ct).body(b),
        };
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect::<String>();
        let body = resp.bytes().await.unwrap().to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn op(&self, method: Method, path: &str, body: Body) -> Resp {
        self.call(Caller::Operator, method, path, body).await
    }

    fn fail(&mut self, msg: String) {
        self.failures.push(format!("[{}] {msg}", self.m.name));
    }

    /// Check one cell: status and restCode (and message), and for every
    /// error that no byte of an image leaks. Returns whether it matched.
    fn check(&mut self, label: &str, got: &Resp, want: &Expect) -> bool {
        self.cells += 1;
        let mut ok = true;
        match want {
            Expect::Ok(status) => {
                if got.status != *status {
                    ok = false;
                    self.fail(format!(
                        "{label}: want {status}, got {} {}",
                        got.status,
                        got.text()
                    ));
                }
            }
            Expect::Err(status, code, message) => {
                let body = got.json();
                if got.status != *status || body["code"] != *code {
                    ok = false;
                    self.fail(format!(
                        "{label}: want {status} {code}, got {} {}",
                        got.status,
                        got.text()
                    ));
                } else if let Some(msg) = message {
                    if body["message"] != *msg.as_str() {
                        ok = false;
                        self.fail(format!("{label}: want message {msg:?}, got {}", got.text()));
                    }
                }
            }
        }
        if got.status >= 300 {
            self.scan(label, got);
        }
        ok
    }

    /// No image byte in an error response (body and headers).
    fn scan(&mut self, label: &str, got: &Resp) {
        let hay: Vec<u8> = [got.headers.as_bytes(), got.body.as_slice()].concat();
        for pat in self.forbidden.clone() {
            if hay.windows(pat.len()).any(|w| w == pat.as_slice()) {
                self.fail(format!(
                    "{label}: LEAK of {:?} in {} response: {}{}",
                    String::from_utf8_lossy(&pat),
                    got.status,
                    got.headers,
                    got.text()
                ));
            }
        }
        for h in ["etag:", "content-md5:", "last-modified:"] {
            if got.headers.to_ascii_lowercase().contains(h) && got.status != 304 {
                self.fail(format!(
                    "{label}: error response carries a validator header {h} {}",
                    got.headers
                ));
            }
        }
    }

    /// Create (as the operator) an image owned by `owner`; `kind`:
    /// "unactivated" (with a file), "active" (file, icon, activated),
    /// "disabled" (as active, then disabled), "bare" (no file).
    async fn make(&mut self, kind: &str, owner: &str, acl: &[&str], tag: &str) -> Img {
        self.seq += 1;
        let secret = format!("{SECRET}-{tag}-{}", self.seq);
        let body = json!({
            "name": format!("matrix-{tag}-{}", self.seq),
            "version": "1.0.0",
            "type": "zone-dataset",
            "os": "smartos",
            "owner": owner,
            "public": self.m.public_images,
            "acl": acl,
            "description": format!("private manifest {secret}"),
            "tags": {"secret": secret},
        });
        let r = self.op(Method::POST, "/images", Body::Json(body)).await;
        assert_eq!(r.status, 200, "fixture create: {}", r.text());
        let uuid = r.json()["uuid"].as_str().unwrap().to_string();
        let mut last = r.json();
        let mut steps: Vec<(Method, String, Body)> = Vec::new();
        if kind != "bare" {
            steps.push((
                Method::PUT,
                format!("/images/{uuid}/file?compression=gzip"),
                Body::Bytes(self.file.clone(), "application/octet-stream"),
            ));
        }
        if kind == "active" || kind == "disabled" {
            steps.push((
                Method::PUT,
                format!("/images/{uuid}/icon"),
                Body::Bytes(self.icon.clone(), "image/png"),
            ));
            steps.push((
                Method::POST,
                format!("/images/{uuid}?action=activate"),
                Body::Json(json!({})),
            ));
        }
        if kind == "disabled" {
            steps.push((
                Method::POST,
                format!("/images/{uuid}?action=disable"),
                Body::Json(json!({})),
            ));
        }
        for (method, path, body) in steps {
            let r = self.op(method, &path, body).await;
            assert_eq!(r.status, 200, "fixture {path}: {}", r.text());
            last = r.json();
        }
        // The last response is the image (without `channels` unless
        // Accept-Version ~2; fixtures are re-read with `truth_of`).
        Img::from_json(&last)
    }

    /// The operator's view of one image (the ground truth), None if gone.
    async fn truth_of(&self, uuid: &str) -> Option<Img> {
        let path = if self.m.channels {
            format!("/images/{uuid}?channel=*")
        } else {
            format!("/images/{uuid}")
        };
        let r = self
            .s
            .client
            .request(Method::GET, format!("{}{path}", self.s.url));
        let r = if self.m.sig() {
            sign(Caller::Operator, r)
        } else {
            r
        };
        let r = r.header("accept-version", "~2").send().await.unwrap();
        if r.status() == 404 {
            return None;
        }
        assert_eq!(r.status(), 200);
        Some(Img::from_json(&r.json::<Value>().await.unwrap()))
    }

    /// The raw operator view, for before/after comparisons.
    async fn raw_of(&self, uuid: &str) -> String {
        let path = if self.m.channels {
            format!("/images/{uuid}?channel=*")
        } else {
            format!("/images/{uuid}")
        };
        let r = self.op(Method::GET, &path, Body::Empty).await;
        format!("{} {}", r.status, r.text())
    }

    /// All images (operator, state=all, every channel).
    async fn truth(&self) -> Vec<Img> {
        let path = if self.m.channels {
            "/images?state=all&channel=*"
        } else {
            "/images?state=all"
        };
        let r = self
            .s
            .client
            .request(Method::GET, format!("{}{path}", self.s.url));
        let r = if self.m.sig() {
            sign(Caller::Operator, r)
        } else {
            r
        };
        let r = r.header("accept-version", "~2").send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v.as_array().unwrap().iter().map(Img::from_json).collect()
    }
}

// ---------------------------------------------------------------------------
// The matrix

struct Fixtures {
    a: Img,
    u: Img,
    d: Img,
    x: Img,
}

async fn run_mode(m: ModeCfg) {
    let started = Instant::now();
    let mut w = World::new(m).await;
    // Fixtures (by the operator): A active (file, icon, ACL), U unactivated
    // (file, ACL), D disabled (file, icon, ACL), X active, owned by the
    // other account, no ACL.
    let mut made = Vec::new();
    for (kind, owner, acl, tag) in [
        ("active", OWNER, &[ACL][..], "A"),
        ("unactivated", OWNER, &[ACL][..], "U"),
        ("disabled", OWNER, &[ACL][..], "D"),
        ("active", OTHER, &[][..], "X"),
    ] {
        let img = w.make(kind, owner, acl, tag).await;
        made.push(w.truth_of(&img.uuid).await.expect("fixture readable"));
    }
    let [a, u, d, x]: [Img; 4] = made.try_into().unwrap();
    let fx = Fixtures { a, u, d, x };
    let fixtures = [&fx.a, &fx.u, &fx.d, &fx.x];
    let before: Vec<String> = {
        let mut v = Vec::new();
        for f in fixtures {
            v.push(w.raw_of(&f.uuid).await);
        }
        v
    };

    let mut per_section: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut mark = |w: &World, section: &'static str, from: usize| {
        *per_section.entry(section).or_default() += w.cells - from;
    };

    // --- Reads on the fixtures ------------------------------------------
    let from = w.cells;
    let ghost = Img::ghost();
    for ep in READ_EPS {
        for t in fixtures.into_iter().chain([&ghost]) {
            for c in CALLERS {
                let (method, path, body) = ep.request(&t.uuid, &w.file, &w.icon);
                let want = expect_image_ep(&m, c, ep, t);
                let got = w.call(c, method, &path, body).await;
                let label = format!("{ep:?} {c:?} on {}", t.name);
                if w.check(&label, &got, &want) && got.status == 200 {
                    // The success is the right object.
                    let ok = match ep {
                        Ep::GetFile => got.body == w.file,
                        Ep::GetIcon => got.body == w.icon,
                        _ => got.json()["uuid"] == *t.uuid.as_str(),
                    };
                    if !ok {
                        w.fail(format!("{label}: 200 with the wrong body"));
                    }
                    if ep == Ep::GetImageAdmin && got.json()["files"][0]["stor"].is_null() {
                        w.fail(format!("{label}: inclAdminFields=true without stor"));
                    }
                    if ep == Ep::GetImage && !got.json()["files"][0]["stor"].is_null() {
                        w.fail(format!("{label}: admin field without inclAdminFields"));
                    }
                }
            }
        }
    }
    mark(
        &w,
        "reads (GetImage/inclAdminFields/channel, GetImageFile, GetImageIcon)",
        from,
    );

    // --- ListImages -----------------------------------------------------
    let from = w.cells;
    let truth = w.truth().await;
    for f in fixtures {
        assert!(truth.iter().any(|t| t.uuid == f.uuid), "fixture in truth");
    }
    let mut combos: Vec<ListQ> = vec![
        ListQ::default(),
        ListQ {
            state: Some("active"),
            ..Default::default()
        },
        ListQ {
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            state: Some("unactivated"),
            ..Default::default()
        },
        ListQ {
            state: Some("disabled"),
            ..Default::default()
        },
        ListQ {
            owner: Some(OWNER),
            ..Default::default()
        },
        ListQ {
            owner: Some(OWNER),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            owner: Some(OWNER),
            state: Some("unactivated"),
            ..Default::default()
        },
        ListQ {
            owner: Some(OWNER),
            state: Some("disabled"),
            ..Default::default()
        },
        ListQ {
            owner: Some(OTHER),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            owner: Some(ACL),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            public: Some(true),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            public: Some(false),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            public: Some(false),
            owner: Some(OWNER),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            name: Some("~matrix".into()),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            name: Some(fx.u.name.clone()),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            name: Some(fx.a.name.clone()),
            ..Default::default()
        },
        ListQ {
            tag_secret: fx.a.tag_secret.clone(),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            tag_secret: fx.u.tag_secret.clone(),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            tag_secret: fx.x.tag_secret.clone(),
            ..Default::default()
        },
        ListQ {
            limit: Some(1),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            limit: Some(2),
            state: Some("all"),
            desc: true,
            ..Default::default()
        },
        ListQ {
            limit: Some(1),
            ..Default::default()
        },
        ListQ {
            state: Some("all"),
            marker: Some((fx.a.uuid.clone(), fx.a.published_at.clone())),
            ..Default::default()
        },
        ListQ {
            state: Some("all"),
            desc: true,
            marker: Some((fx.x.uuid.clone(), fx.x.published_at.clone())),
            ..Default::default()
        },
        ListQ {
            // An unactivated marker image is ignored.
            state: Some("all"),
            limit: Some(3),
            marker: Some((fx.u.uuid.clone(), None)),
            ..Default::default()
        },
        ListQ {
            state: Some("all"),
            marker: Some(("2000-01-01".into(), Some("2000-01-01".into()))),
            ..Default::default()
        },
        ListQ {
            admin: true,
            ..Default::default()
        },
        ListQ {
            admin: true,
            state: Some("all"),
            ..Default::default()
        },
    ];
    if m.channels {
        combos.push(ListQ {
            channel: Some("*"),
            state: Some("all"),
            ..Default::default()
        });
        combos.push(ListQ {
            channel: Some("dev"),
            state: Some("all"),
            ..Default::default()
        });
        combos.push(ListQ {
            channel: Some("staging"),
            state: Some("all"),
            ..Default::default()
        });
        combos.push(ListQ {
            channel: Some("*"),
            owner: Some(OWNER),
            state: Some("all"),
            ..Default::default()
        });
    }
    for q in &combos {
        for c in CALLERS {
            let qs = q.query();
            let path = if qs.is_empty() {
                "/images".to_string()
            } else {
                format!("/images?{qs}")
            };
            let label = format!("ListImages {c:?} {path}");
            let got = w.call(c, Method::GET, &path, Body::Empty).await;
            match expect_list(&m, c, q, &truth) {
                Err(want) => {
                    w.check(&label, &got, &want);
                }
                Ok(expected) => {
                    if !w.check(&label, &got, &Expect::Ok(200)) {
                        continue;
                    }
                    let list = got.json();
                    let Some(items) = list.as_array() else {
                        w.fail(format!("{label}: not an array"));
                        continue;
                    };
                    let returned: Vec<String> = items
                        .iter()
                        .map(|i| i["uuid"].as_str().unwrap_or_default().to_string())
                        .collect();
                    // Safety, from the visibility rule alone.
                    let account = eff_account(&m, c, Policy::Passive);
                    let limit_to_active = !m.dc && !authenticated(&m, c, Policy::Passive);
                    for u in &returned {
                        let Some(img) = truth.iter().find(|t| &t.uuid == u) else {
                            w.fail(format!("{label}: unknown image {u}"));
                            continue;
                        };
                        if let Some(a) = account {
                            if !visible(img, a) {
                                w.fail(format!(
                                    "{label}: LEAK: returned {} ({}) not visible to {a}",
                                    img.name, img.uuid
                                ));
                            }
                        }
                        if limit_to_active && (!img.activated || img.disabled) {
                            w.fail(format!(
                                "{label}: LEAK: unauthenticated list shows non-active {}",
                                img.name
                            ));
                        }
                    }
                    // Exactness against the spec's algorithm.
                    let got_set: BTreeSet<String> = returned.iter().cloned().collect();
                    if got_set.len() != returned.len() {
                        w.fail(format!("{label}: duplicates in {returned:?}"));
                    }
                    match q.limit {
                        None => {
                            if got_set != expected {
                                let name = |u: &String| {
                                    truth
                                        .iter()
                                        .find(|t| &t.uuid == u)
                                        .map_or(u.clone(), |t| t.name.clone())
                                };
                                w.fail(format!(
                                    "{label}: got {:?}, want {:?}",
                                    got_set.iter().map(name).collect::<Vec<_>>(),
                                    expected.iter().map(name).collect::<Vec<_>>()
                                ));
                            }
                        }
                        Some(n) => {
                            if !got_set.is_subset(&expected)
                                || returned.len() != n.min(expected.len())
                            {
                                w.fail(format!(
                                    "{label}: limit {n}: got {returned:?}, allowed {expected:?}"
                                ));
                            }
                        }
                    }
                    // The visible fixtures are present when the filters match.
                    if q.limit.is_none() {
                        for f in fixtures {
                            if expected.contains(&f.uuid) && !got_set.contains(&f.uuid) {
                                w.fail(format!("{label}: visible fixture {} missing", f.name));
                            }
                        }
                    }
                    if q.admin
                        && items.iter().any(|i| {
                            i["files"].as_array().is_some_and(|f| !f.is_empty())
                                && i["files"][0]["stor"].is_null()
                        })
                    {
                        w.fail(format!("{label}: inclAdminFields=true without stor"));
                    }
                    if !q.admin && items.iter().any(|i| !i["files"][0]["stor"].is_null()) {
                        w.fail(format!("{label}: admin field without inclAdminFields"));
                    }
                }
            }
        }
    }
    mark(&w, "ListImages", from);

    // The reads left the fixtures unchanged.
    for (f, b) in fixtures.iter().zip(&before) {
        let now = w.raw_of(&f.uuid).await;
        if &now != b {
            w.fail(format!("fixture {} changed by reads: {b} → {now}", f.name));
        }
    }

    // --- Writes on one image ------------------------------------------------
    // A cell whose expected outcome is a success runs on a fresh image; a
    // cell expected to be refused runs on a shared "victim" image of the same
    // shape, which is re-read after every refusal and must be unchanged (a
    // changed victim is reported and replaced).
    let from = w.cells;
    let mut victims: BTreeMap<(&'static str, &'static str), (Img, String)> = BTreeMap::new();
    let mut cases: Vec<(Ep, &'static str, &'static str)> = Vec::new();
    for ep in WRITE_EPS {
        for kind in ["active", "unactivated"] {
            cases.push((ep, kind, OWNER));
        }
    }
    // Writes on another account's image: the fixtures' owner is "another
    // account" there.
    for ep in [Ep::Update, Ep::Delete, Ep::AddIcon, Ep::AclAdd, Ep::Disable] {
        cases.push((ep, "active", OTHER));
    }
    for (ep, kind, owner) in cases {
        let acl: &[&str] = if owner == OWNER { &[ACL] } else { &[] };
        for c in CALLERS {
            let key = (kind, owner);
            if let std::collections::btree_map::Entry::Vacant(slot) = victims.entry(key) {
                let v = w.make(kind, owner, acl, "V").await;
                let raw = w.raw_of(&v.uuid).await;
                slot.insert((v, raw));
            }
            let shape = victims[&key].0.clone();
            let refused = !matches!(expect_image_ep(&m, c, ep, &shape), Expect::Ok(_));
            let (t, before) = if refused {
                victims[&key].clone()
            } else {
                (w.make(kind, owner, acl, "W").await, String::new())
            };
            let want = expect_image_ep(&m, c, ep, &t);
            let (method, path, body) = ep.request(&t.uuid, &w.file, &w.icon);
            let got = w.call(c, method, &path, body).await;
            let whose = if owner == OWNER {
                "the owner's"
            } else {
                "the other account's"
            };
            let label = format!("{ep:?} {c:?} on {whose} {kind} image");
            let ok = w.check(&label, &got, &want);
            if refused {
                let after = w.raw_of(&t.uuid).await;
                if after != before {
                    w.fail(format!(
                        "{label}: refusal expected, but the image changed: {before} → {after}"
                    ));
                    victims.remove(&key);
                }
            } else if ok {
                check_effect(&mut w, &label, ep, c, &t, &got).await;
            }
        }
    }
    // Every write on a uuid no image has: 401 before anything (strict), then
    // the same 404 for every caller.
    for ep in WRITE_EPS {
        for c in CALLERS {
            let want = expect_image_ep(&m, c, ep, &ghost);
            let (method, path, body) = ep.request(&ghost.uuid, &w.file, &w.icon);
            let got = w.call(c, method, &path, body).await;
            w.check(&format!("{ep:?} {c:?} on a missing image"), &got, &want);
        }
    }
    mark(
        &w,
        "image writes (file, icon, actions, update, delete, acl, channel-add, clone)",
        from,
    );

    // --- CreateImage ----------------------------------------------------
    let from = w.cells;
    for c in CALLERS {
        // With an explicit owner (the fixtures' owner).
        let body = json!({"name": "matrix-create", "version": "1.0.0", "type": "zone-dataset",
            "os": "smartos", "owner": OWNER, "public": m.public_images});
        let got = w.call(c, Method::POST, "/images", Body::Json(body)).await;
        let account = eff_account(&m, c, Policy::Strict);
        let want = if m.sig() && c == Caller::Anon {
            unauthorized()
        } else {
            match account {
                Some(a) if a != OWNER => Expect::Err(
                    422,
                    "InvalidParameter",
                    Some(format!(
                        "invalid owner: given owner, \"{OWNER}\", does not match account, \"{a}\""
                    )),
                ),
                _ => Expect::Ok(200),
            }
        };
        let label = format!("CreateImage {c:?} owner=fixture owner");
        if w.check(&label, &got, &want) && got.status == 200 && got.json()["owner"] != OWNER {
            w.fail(format!("{label}: wrong owner {}", got.text()));
        }
        // Without an owner: the account's, or 422 for operators.
        let body = json!({"name": "matrix-create", "version": "1.0.0", "type": "zone-dataset",
            "os": "smartos", "public": m.public_images});
        let got = w.call(c, Method::POST, "/images", Body::Json(body)).await;
        let want = if m.sig() && c == Caller::Anon {
            unauthorized()
        } else if account.is_some() {
            Expect::Ok(200)
        } else {
            Expect::Err(422, "ValidationFailed", None)
        };
        let label = format!("CreateImage {c:?} no owner");
        if w.check(&label, &got, &want)
            && got.status == 200
            && got.json()["owner"] != account.unwrap_or("?")
        {
            w.fail(format!(
                "{label}: owner is not the caller's account: {}",
                got.text()
            ));
        }
    }
    mark(&w, "CreateImage", from);

    // --- AdminImportImage (operator only; does not load the image) --------
    let from = w.cells;
    for c in CALLERS {
        for existing in [false, true] {
            let uuid = if existing {
                fx.a.uuid.clone()
            } else {
                format!(
                    "{:08x}-aaaa-4bbb-8ccc-{:012x}",
                    0x1234_5678u32,
                    w.seq * 10 + c.seed() as usize
                )
            };
            w.seq += 1;
            let body = json!({"v": 2, "uuid": uuid, "owner": OWNER, "name": "matrix-import",
                "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
                "public": m.public_images, "published_at": "2015-07-27T17:30:39Z"});
            let got = w
                .call(
                    c,
                    Method::POST,
                    &format!("/images/{uuid}?action=import"),
                    Body::Json(body),
                )
                .await;
            let want = if m.sig() && c == Caller::Anon {
                unauthorized()
            } else if eff_account(&m, c, Policy::Strict).is_some() {
                operator_only()
            } else if existing {
                Expect::Err(
                    409,
                    "ImageUuidAlreadyExists",
                    Some(format!("image uuid \"{uuid}\" already exists")),
                )
            } else {
                Expect::Ok(200)
            };
            let label = format!("AdminImportImage {c:?} existing={existing}");
            if w.check(&label, &got, &want) && got.status == 200 {
                let img = got.json();
                let owner = if m.dc { OWNER } else { UNSET_OWNER };
                if img["owner"] != owner || img["state"] != "unactivated" {
                    w.fail(format!("{label}: imported {img}"));
                }
            }
        }
    }
    mark(&w, "AdminImportImage", from);

    // --- Admin endpoints, Ping --------------------------------------------
    let from = w.cells;
    for c in CALLERS {
        for (method, path, name) in [
            (Method::GET, "/state", "AdminGetState"),
            (Method::POST, "/authkeys/reload", "AdminReloadAuthKeys"),
        ] {
            let got = w.call(c, method, path, Body::Empty).await;
            // Under auth type none every caller is an operator (the original
            // has no operator check on these two routes, §3.2/§3.4); with
            // signatures a user mapped to an account is refused.
            let want = if m.sig() && c == Caller::Anon {
                unauthorized()
            } else if m.sig() && c.account().is_some() {
                operator_only()
            } else {
                Expect::Ok(200)
            };
            let label = format!("{name} {c:?}");
            w.check(&label, &got, &want);
            if c != Caller::Operator && got.status == 200 {
                // dc mode: the snapshot must not carry image data either.
                w.scan(&format!("{label} (200 body)"), &got);
            }
            if name == "AdminReloadAuthKeys" && got.status == 200 && got.json() != json!({}) {
                w.fail(format!("{label}: body {}", got.text()));
            }
        }
        let got = w.call(c, Method::GET, "/ping", Body::Empty).await;
        let label = format!("Ping {c:?}");
        if w.check(&label, &got, &Expect::Ok(200)) {
            let p = got.json();
            let authed = authenticated(&m, c, Policy::Passive);
            let mut want = json!({"ping": "pong", "version": "4.11.0", "imgapi": true});
            if m.dc || authed {
                want["pid"] = p["pid"].clone();
                if !p["pid"].is_number() {
                    w.fail(format!("{label}: pid missing: {p}"));
                }
            }
            if authed {
                want["user"] = json!(c.username().unwrap());
            }
            if p != want {
                w.fail(format!("{label}: got {p}, want {want}"));
            }
        }
    }
    mark(&w, "AdminGetState, AdminReloadAuthKeys, Ping", from);

    // The fixtures are untouched by everything above.
    for (f, b) in fixtures.iter().zip(&before) {
        let now = w.raw_of(&f.uuid).await;
        if &now != b {
            w.fail(format!("fixture {} changed: {b} → {now}", f.name));
        }
    }

    // --- Hand-written spot checks -----------------------------------------
    let from = w.cells;
    spot_checks(&mut w, &fx).await;
    mark(&w, "hand-written spot checks", from);

    // --- The change feed (docs/events.md) --------------------------------
    let from = w.cells;
    change_feed_cells(&mut w).await;
    mark(&w, "change feed (ListChanges)", from);

    // --- Image signatures (docs/signing.md) ------------------------------
    let from = w.cells;
    signature_cells(&mut w, &fx).await;
    mark(&w, "image signatures", from);

    // --- Deprecation (docs/lifecycle.md), last: it changes listings -------
    let from = w.cells;
    deprecation_cells(&mut w, &fx).await;
    mark(&w, "deprecation (lifecycle flags, ListImages)", from);

    let elapsed = started.elapsed();
    // The per-mode report (visible with `--nocapture`).
    #[allow(clippy::print_stdout)]
    let () = println!(
        "access matrix [{}]: {} cells in {:.2?}: {per_section:?}",
        m.name, w.cells, elapsed
    );
    assert!(
        w.failures.is_empty(),
        "{} of {} cells failed in mode {}:\n{}",
        w.failures.len(),
        w.cells,
        m.name,
        w.failures.join("\n")
    );
}

/// The change feed as every caller sees it. After a position the operator
/// takes, fresh images of each visibility class are created and updated;
/// each caller's ListChanges from there answers as GetImage on those images
/// does (401 where it is 401) and names exactly the images GetImage shows
/// the caller: an event about any other image, its uuid included, never
/// appears. Visibility only grows while a fixture is built, so an image
/// GetImage hides now had no event the caller could see.
async fn change_feed_cells(w: &mut World) {
    let m = w.m;
    let head = w.op(Method::GET, "/changes?limit=0", Body::Empty).await;
    if !w.check(
        "operator takes the feed's position",
        &head,
        &Expect::Ok(200),
    ) {
        return;
    }
    let Some(since) = head.json()["next"].as_i64() else {
        w.fail(format!("ListChanges limit=0: no `next`: {}", head.text()));
        return;
    };
    let made = [
        w.make("active", OWNER, &[], "feed").await,
        w.make("active", OTHER, &[ACL], "feed").await,
        w.make("unactivated", OWNER, &[ACL], "feed").await,
        w.make("disabled", OTHER, &[], "feed").await,
        w.make("bare", OTHER, &[], "feed").await,
    ];
    let mut targets = Vec::new();
    for img in &made {
        let path = format!("/images/{}?action=update", img.uuid);
        let body = Body::Json(json!({"description": "changed for the feed"}));
        let got = w.op(Method::POST, &path, body).await;
        w.check(
            &format!("operator updates {}", img.name),
            &got,
            &Expect::Ok(200),
        );
        if let Some(t) = w.truth_of(&img.uuid).await {
            targets.push(t);
        }
    }
    let ours: BTreeSet<String> = targets.iter().map(|t| t.uuid.clone()).collect();
    for c in CALLERS {
        let label = format!("ListChanges {c:?} since {since}");
        let per_image: Vec<Expect> = targets
            .iter()
            .map(|t| expect_image_ep(&m, c, Ep::GetImage, t))
            .collect();
        let want = if per_image.contains(&unauthorized()) {
            unauthorized()
        } else {
            Expect::Ok(200)
        };
        let path = format!("/changes?since={since}&limit=1000");
        let got = w.call(c, Method::GET, &path, Body::Empty).await;
        if !w.check(&label, &got, &want) || got.status != 200 {
            continue;
        }
        let expected: BTreeSet<String> = targets
            .iter()
            .zip(&per_image)
            .filter(|(_, e)| **e == Expect::Ok(200))
            .map(|(t, _)| t.uuid.clone())
            .collect();
        let page = got.json();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let seen: BTreeSet<String> = events
            .iter()
            .map(|e| e["uuid"].as_str().unwrap_or_default().to_string())
            .collect();
        if seen != expected {
            w.fail(format!("{label}: events about {seen:?}, want {expected:?}"));
        }
        if let Some(stray) = seen.iter().find(|u| !ours.contains(*u)) {
            w.fail(format!("{label}: an event about {stray}, not made here"));
        }
        let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
        if seqs.windows(2).any(|p| p[0] >= p[1]) || seqs.first().is_some_and(|s| *s <= since) {
            w.fail(format!("{label}: sequence numbers out of order: {seqs:?}"));
        }
    }
}

/// Image signatures as every caller sees them: ListImageSignatures answers
/// exactly as GetImage does; AddImageSignature and RemoveImageSignature as
/// UpdateImage does, up to the point where they would change something (a
/// signature that does not verify: 422 InvalidSignature; an unknown id: 404),
/// so no cell changes the fixtures.
async fn signature_cells(w: &mut World, fx: &Fixtures) {
    let m = w.m;
    let mut targets = Vec::new();
    for f in [&fx.a, &fx.u, &fx.x] {
        if let Some(img) = w.truth_of(&f.uuid).await {
            targets.push(img);
        }
    }
    targets.push(Img::ghost());
    for t in &targets {
        for c in CALLERS {
            let path = format!("/images/{}/signatures", t.uuid);
            let got = w.call(c, Method::GET, &path, Body::Empty).await;
            let want = expect_image_ep(&m, c, Ep::GetImage, t);
            let label = format!("ListImageSignatures {c:?} on {}", t.name);
            if w.check(&label, &got, &want) && got.status == 200 {
                let body = got.json();
                if body["uuid"] != t.uuid.as_str() || body["signatures"] != json!([]) {
                    w.fail(format!("{label}: {body}"));
                }
            }

            let allowed = |e: Expect, then: Expect| match e {
                Expect::Ok(_) => then,
                err => err,
            };
            let body = Body::Json(json!({"signature": "not a signature"}));
            let got = w.call(c, Method::POST, &path, body).await;
            let want = allowed(
                expect_image_ep(&m, c, Ep::Update, t),
                Expect::Err(422, "InvalidSignature", None),
            );
            w.check(
                &format!("AddImageSignature {c:?} on {}", t.name),
                &got,
                &want,
            );

            let one = format!("{path}/{}", "0".repeat(64));
            let got = w.call(c, Method::DELETE, &one, Body::Empty).await;
            let want = allowed(
                expect_image_ep(&m, c, Ep::Update, t),
                Expect::Err(404, "ResourceNotFound", None),
            );
            w.check(
                &format!("RemoveImageSignature {c:?} on {}", t.name),
                &got,
                &want,
            );
        }
    }
}

/// Deprecation as every caller sees it: UpdateImageLifecycle answers as
/// UpdateImage does and GetImageLifecycle as GetImage; once A (ours) and X
/// (the other account's) are deprecated, ListImages leaves them out for
/// everyone but their owner and the operator, unless asked to include them;
/// GetImage answers as before.
async fn deprecation_cells(w: &mut World, fx: &Fixtures) {
    let m = w.m;
    let ghost = Img::ghost();
    let targets: Vec<Img> = {
        let mut v = Vec::new();
        for f in [&fx.a, &fx.u, &fx.x] {
            if let Some(img) = w.truth_of(&f.uuid).await {
                v.push(img);
            }
        }
        v.push(ghost);
        v
    };
    // Writes: a clear of nothing, so allowed cells change no listing.
    for t in &targets {
        for c in CALLERS {
            let path = format!("/images/{}/lifecycle", t.uuid);
            let body = Body::Json(json!({"deprecated_at": null}));
            let got = w.call(c, Method::PUT, &path, body).await;
            let want = expect_image_ep(&m, c, Ep::Update, t);
            w.check(
                &format!("UpdateImageLifecycle {c:?} on {}", t.name),
                &got,
                &want,
            );
        }
    }
    let deprecated: Vec<String> = [&fx.a, &fx.x].iter().map(|f| f.uuid.clone()).collect();
    for uuid in &deprecated {
        let path = format!("/images/{uuid}/lifecycle");
        let got = w
            .op(
                Method::PUT,
                &path,
                Body::Json(json!({"deprecated_at": "now"})),
            )
            .await;
        w.check(
            &format!("operator deprecates {uuid}"),
            &got,
            &Expect::Ok(200),
        );
    }
    for t in &targets {
        for c in CALLERS {
            let path = format!("/images/{}/lifecycle", t.uuid);
            let got = w.call(c, Method::GET, &path, Body::Empty).await;
            let want = expect_image_ep(&m, c, Ep::GetImage, t);
            let label = format!("GetImageLifecycle {c:?} on {}", t.name);
            if w.check(&label, &got, &want) && got.status == 200 {
                let flag = got.json()["deprecated"].as_bool();
                if flag != Some(deprecated.contains(&t.uuid)) {
                    w.fail(format!("{label}: {}", got.text()));
                }
            }
            let (method, path, body) = Ep::GetImage.request(&t.uuid, &w.file, &w.icon);
            let got = w.call(c, method, &path, body).await;
            let want = expect_image_ep(&m, c, Ep::GetImage, t);
            w.check(
                &format!("GetImage of deprecated {c:?} on {}", t.name),
                &got,
                &want,
            );
        }
    }
    let truth = w.truth().await;
    let combos = [
        ListQ::default(),
        ListQ {
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            owner: Some(OWNER),
            state: Some("all"),
            ..Default::default()
        },
        ListQ {
            owner: Some(OTHER),
            ..Default::default()
        },
        ListQ {
            include_deprecated: true,
            ..Default::default()
        },
        ListQ {
            state: Some("all"),
            include_deprecated: true,
            ..Default::default()
        },
    ];
    for q in &combos {
        for c in CALLERS {
            let path = format!("/images?{}", q.query());
            let label = format!("ListImages (deprecation) {c:?} {path}");
            let Ok(mut expected) = expect_list(&m, c, q, &truth) else {
                continue;
            };
            let account = eff_account(&m, c, Policy::Passive);
            let anonymous = !m.dc && !authenticated(&m, c, Policy::Passive);
            if !q.include_deprecated {
                expected.retain(|u| {
                    let owner = truth
                        .iter()
                        .find(|t| &t.uuid == u)
                        .map(|t| t.owner.as_str());
                    let hidden = match account {
                        Some(a) => owner != Some(a),
                        None => anonymous,
                    };
                    !(hidden && deprecated.contains(u))
                });
            }
            let got = w.call(c, Method::GET, &path, Body::Empty).await;
            if !w.check(&label, &got, &Expect::Ok(200)) {
                continue;
            }
            let returned: BTreeSet<String> = got
                .json()
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| i["uuid"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            if returned != expected {
                w.fail(format!("{label}: got {returned:?}, want {expected:?}"));
            }
        }
    }
}

/// What an allowed write did.
async fn check_effect(w: &mut World, label: &str, ep: Ep, c: Caller, t: &Img, got: &Resp) {
    let after = w.truth_of(&t.uuid).await;
    let ok = match ep {
        Ep::Delete => after.is_none() && got.body.is_empty(),
        Ep::Clone => {
            let clone = got.json();
            clone["owner"] == *c.account().unwrap_or("?")
                && clone["uuid"] != *t.uuid.as_str()
                && clone.get("acl").is_none()
                && after.is_some_and(|a| a.owner == t.owner)
        }
        _ => {
            let Some(a) = after else {
                w.fail(format!("{label}: image vanished"));
                return;
            };
            match ep {
                Ep::AddFile => a.has_file,
                Ep::AddIcon => a.has_icon,
                Ep::DeleteIcon => !a.has_icon,
                Ep::Activate => a.activated && a.published_at.is_some(),
                Ep::Disable => a.disabled || !a.activated,
                Ep::Enable => !a.disabled,
                Ep::Update => got.json()["description"] == "changed by a matrix cell",
                Ep::AclAdd => a.acl.iter().any(|x| x == NEW_ACL),
                Ep::AclRemove => !a.acl.iter().any(|x| x == ACL),
                Ep::ChannelAdd => a.channels.iter().any(|x| x == "staging"),
                _ => true,
            }
        }
    };
    if !ok {
        w.fail(format!("{label}: allowed, but no effect: {}", got.text()));
    }
}

/// Literal expectations, independent of the rule functions above.
async fn spot_checks(w: &mut World, fx: &Fixtures) {
    let m = w.m;
    let a = fx.a.uuid.clone();
    let u = fx.u.uuid.clone();
    if m.sig() {
        // Unsigned write: 401 with exactly this body.
        let got = w
            .call(
                Caller::Anon,
                Method::POST,
                &format!("/images/{a}?action=update"),
                Body::Json(json!({"description": "x"})),
            )
            .await;
        w.check("spot: unsigned update", &got, &unauthorized());
        assert_eq!(
            got.json(),
            json!({"code": "UnauthorizedError", "message": "Unauthorized"})
        );
        // A mapped user may not act for another account.
        let got = w
            .call(
                Caller::Other,
                Method::GET,
                &format!("/images/{a}?account={OWNER}"),
                Body::Empty,
            )
            .await;
        w.check(
            "spot: mapped user passing another account",
            &got,
            &operator_only(),
        );
        // The ACL account never sees the unactivated image, nor lists it.
        let got = w
            .call(
                Caller::Acl,
                Method::GET,
                &format!("/images/{u}"),
                Body::Empty,
            )
            .await;
        w.check("spot: acl user GetImage U", &got, &not_visible());
        let got = w
            .call(
                Caller::Acl,
                Method::GET,
                "/images?state=unactivated",
                Body::Empty,
            )
            .await;
        assert_eq!(got.status, 200);
        for i in got.json().as_array().unwrap() {
            assert_eq!(
                i["owner"], ACL,
                "acl user lists only its own unactivated images: {i}"
            );
        }
        // Anonymous: only active images are listed, whatever the state.
        let got = w
            .call(Caller::Anon, Method::GET, "/images?state=all", Body::Empty)
            .await;
        assert_eq!(got.status, 200);
        for i in got.json().as_array().unwrap() {
            assert_eq!(i["state"], "active", "anonymous list: {i}");
        }
    }
    if !m.dc && !m.private {
        // Public mode: the other account sees A (public) but may not change it.
        let got = w
            .call(
                Caller::Other,
                Method::POST,
                &format!("/images/{a}?action=update"),
                Body::Json(json!({"description": "x"})),
            )
            .await;
        w.check("spot: other updates public A", &got, &not_owner(OTHER, &a));
        assert_eq!(
            got.json(),
            json!({"code": "NotImageOwner", "message": format!("account {OTHER} is not the owner of image {a}")})
        );
    }
    if m.private || (m.dc && !m.public_images) {
        // Private images: the other account gets the same 404 as for a
        // missing image (modulo the message of api.md §1.6 rule 2).
        for (method, path) in [
            (Method::GET, format!("/images/{a}")),
            (Method::POST, format!("/images/{a}?action=update")),
            (Method::DELETE, format!("/images/{a}")),
            (Method::PUT, format!("/images/{a}/icon")),
        ] {
            let got = w
                .call(Caller::Other, method, &path, Body::Json(json!({})))
                .await;
            w.check(&format!("spot: other {path}"), &got, &not_visible());
            assert_eq!(
                got.json(),
                json!({"code": "ResourceNotFound", "message": "image not found"})
            );
        }
        // The ACL account sees A but may not change it.
        let got = w
            .call(
                Caller::Acl,
                Method::GET,
                &format!("/images/{a}"),
                Body::Empty,
            )
            .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["uuid"], a.as_str());
        let got = w
            .call(
                Caller::Acl,
                Method::DELETE,
                &format!("/images/{a}"),
                Body::Empty,
            )
            .await;
        w.check("spot: acl deletes A", &got, &not_owner(ACL, &a));
    }
    if m.dc {
        // dc: anonymous == operator; account-less requests see everything.
        let got = w
            .call(
                Caller::Anon,
                Method::GET,
                "/images?state=unactivated",
                Body::Empty,
            )
            .await;
        assert_eq!(got.status, 200);
        assert!(got
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["uuid"] == u.as_str()));
        let got = w
            .call(Caller::Owner, Method::GET, "/state", Body::Empty)
            .await;
        assert_eq!(
            got.status,
            200,
            "dc: /state ignores account: {}",
            got.text()
        );
        let got = w
            .call(
                Caller::Other,
                Method::POST,
                &format!("/images/{a}?action=import"),
                Body::Json(json!({"uuid": a})),
            )
            .await;
        w.check("spot: dc import with account", &got, &operator_only());
        // Malformed account.
        let got = w
            .call(
                Caller::Anon,
                Method::GET,
                &format!("/images/{a}?account=NOT-A-UUID"),
                Body::Empty,
            )
            .await;
        w.check(
            "spot: malformed account",
            &got,
            &Expect::Err(
                422,
                "InvalidParameter",
                Some("invalid \"account\": not a UUID: \"NOT-A-UUID\"".into()),
            ),
        );
        // Clone by the ACL account works (icon stripped); by the owner: not shared.
        let got = w
            .call(
                Caller::Owner,
                Method::POST,
                &format!("/images/{a}/clone"),
                Body::Empty,
            )
            .await;
        w.check(
            "spot: owner clones own image",
            &got,
            &Expect::Err(422, "ImageNotShared", None),
        );
    }
    if m.channels {
        let got = w
            .call(
                Caller::Owner,
                Method::GET,
                &format!("/images/{a}?channel=staging"),
                Body::Empty,
            )
            .await;
        w.check("spot: owner A via staging", &got, &not_visible());
        let got = w
            .call(
                Caller::Operator,
                Method::GET,
                "/images?channel=bogus",
                Body::Empty,
            )
            .await;
        w.check(
            "spot: unknown channel",
            &got,
            &Expect::Err(
                422,
                "ValidationFailed",
                Some("unknown channel: bogus".into()),
            ),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_public() {
    run_mode(ModeCfg {
        name: "public",
        dc: false,
        private: false,
        public_images: true,
        channels: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_private() {
    run_mode(ModeCfg {
        name: "private",
        dc: false,
        private: true,
        public_images: false,
        channels: false,
    })
    .await;
}

/// dc mode, auth type none: the "anonymous" caller and the operator are the
/// same caller (no signature exists, no `account` parameter); both are run
/// and expected to behave identically.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_dc() {
    run_mode(ModeCfg {
        name: "dc",
        dc: true,
        private: false,
        public_images: false,
        channels: false,
    })
    .await;
}

/// dc mode with public images (other accounts see them, cannot change them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_dc_public_images() {
    run_mode(ModeCfg {
        name: "dc-public-images",
        dc: true,
        private: false,
        public_images: true,
        channels: false,
    })
    .await;
}

/// A channel-enabled private server (channel / channel-or-star rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_matrix_private_channels() {
    run_mode(ModeCfg {
        name: "private-channels",
        dc: false,
        private: true,
        public_images: false,
        channels: true,
    })
    .await;
}
