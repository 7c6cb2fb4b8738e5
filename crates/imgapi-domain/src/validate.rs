//! Manifest validation (manifest.md §3, §4).
//!
//! [`validate_raw`] reproduces what the original does when it builds an image
//! object from a stored record: IMGAPI's own pre-checks (icon record, list
//! normalisation) followed by node-imgmanifest's `validateFields` with the rule
//! set of the server mode. The original is JavaScript, so several checks
//! depend on JS coercions (`Number(x)`, `String(x)`, truthiness,
//! `JSON.stringify`); the [`js`] helpers reproduce them so that messages
//! match byte for byte.
//!
//! Where the original crashes (e.g. `null` requirements) or accepts values
//! that our typed [`crate::ImageRecord`] cannot hold (e.g. a numeric `name`),
//! we report an `Invalid` error instead: a record that passes validation must
//! always convert into an `ImageRecord`.

use imgapi_types::{FieldCode, FieldError};
use serde_json::{Map, Value};

use crate::mode::{Mode, RuleContext};
use crate::serialize::is_truthy;

const MAX_NAME_LENGTH: usize = 1024;
const MAX_VERSION_LENGTH: usize = 512;
const MAX_DESCRIPTION_LENGTH: usize = 10 * 1024;
const MAX_URL_LENGTH: usize = 1024;
const MAX_BILLING_TAG_LENGTH: usize = 128;
const MAX_TAGS_LENGTH: usize = 100 * 1024;

const VALID_STATES: [&str; 5] = ["active", "unactivated", "disabled", "failed", "creating"];
/// The image types a manifest may have.
pub const VALID_TYPES: [&str; 6] = [
    "zone-dataset",
    "zvol",
    "lx-dataset",
    "lxd",
    "docker",
    "other",
];
/// The operating systems a manifest may name.
pub const VALID_OSES: [&str; 6] = ["smartos", "linux", "windows", "bsd", "illumos", "other"];
const VALID_COMPRESSIONS: [&str; 4] = ["gzip", "bzip2", "xz", "none"];
const VALID_BOOTROMS: [&str; 2] = ["bios", "uefi"];

/// Required fields of the `minimal` rule set (dc mode, state `creating`).
const MINIMAL_REQUIRED: [&str; 6] = ["v", "uuid", "name", "version", "type", "os"];

/// Required fields of the dc/public/private rule sets, in validation order.
const FULL_REQUIRED: [&str; 17] = [
    "v",
    "uuid",
    "owner",
    "name",
    "version",
    "disabled",
    "activated",
    "published_at",
    "public",
    "state",
    "type",
    "os",
    "files",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
];

/// Canonical field order of the optional pass (manifest.md §4). `icon` is
/// absent because the stored icon record is checked up front (step 0) and
/// the validator then only sees `true`. `urn` is our addition (type check
/// only) so a non-string urn cannot reach the typed record.
const CANONICAL_FIELDS: [&str; 32] = [
    "v",
    "uuid",
    "urn",
    "owner",
    "name",
    "version",
    "description",
    "homepage",
    "eula",
    "disabled",
    "activated",
    "published_at",
    "state",
    "public",
    "type",
    "os",
    "origin",
    "error",
    "files",
    "acl",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "tags",
    "generate_passwords",
    "inherited_directories",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
    "channels",
];

/// `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`.
pub fn is_lower_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

fn value_is_lower_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(is_lower_uuid)
}

/// The original's `boolFromString`: real booleans and the strings
/// `"true"`/`"false"` (legacy LDAP storage). `None` = not a boolean.
pub fn bool_like(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// IMGAPI's in-place normalisation before validation: a single-string `acl`
/// or `billing_tags` becomes a one-element array, a missing `acl` becomes
/// `[]`, and a falsy `billing_tags` is dropped (the original never validates
/// nor shows it).
pub fn normalise_lists(raw: &mut Map<String, Value>) {
    match raw.get_mut("acl") {
        None => {
            raw.insert("acl".into(), Value::Array(Vec::new()));
        }
        Some(v @ Value::String(_)) => *v = Value::Array(vec![v.take()]),
        Some(_) => {}
    }
    match raw.get_mut("billing_tags") {
        Some(v) if !is_truthy(v) => {
            raw.shift_remove("billing_tags");
        }
        Some(v @ Value::String(_)) => *v = Value::Array(vec![v.take()]),
        _ => {}
    }
}

/// Validate a raw (stored-form) record map; returns the errors in
/// manifest.md §4 order (empty = valid).
pub fn validate_raw(raw: &Map<String, Value>, ctx: &RuleContext) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = check_icon_record(raw).into_iter().collect();
    let m = manifest_view(raw);
    let minimal =
        ctx.mode == Mode::Dc && m.get("state").and_then(Value::as_str) == Some("creating");
    let check = Check {
        m: &m,
        mode: ctx.mode,
        // The dc and minimal rule sets never get the channel list, so any
        // `channels` there is "not configured for channels".
        channels_ok: ctx.channels_enabled && ctx.mode != Mode::Dc,
    };
    let mut required: Vec<&str> = if minimal {
        MINIMAL_REQUIRED.to_vec()
    } else {
        FULL_REQUIRED.to_vec()
    };
    if check.channels_ok {
        required.push("channels");
    }
    for field in &required {
        check_field(field, &check, &mut errs);
    }
    for field in CANONICAL_FIELDS {
        if !required.contains(&field) && m.contains_key(field) {
            check_field(field, &check, &mut errs);
        }
    }
    errs
}

/// The object the original hands to node-imgmanifest: only known fields,
/// lists normalised. `activated` defaults to false because our stored form
/// (`ImageRecord`) omits it when false; the original always stores it.
fn manifest_view(raw: &Map<String, Value>) -> Map<String, Value> {
    let mut m: Map<String, Value> = CANONICAL_FIELDS
        .iter()
        .filter_map(|k| raw.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let had_acl = m.contains_key("acl");
    normalise_lists(&mut m);
    if !had_acl {
        // A missing acl is defaulted on the record but not validated.
        m.shift_remove("acl");
    }
    if !m.contains_key("activated") {
        m.insert("activated".into(), Value::Bool(false));
    }
    m
}

/// What every field check needs.
struct Check<'a> {
    m: &'a Map<String, Value>,
    mode: Mode,
    channels_ok: bool,
}

impl Check<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.m.get(key)
    }

    fn str_of(&self, key: &str) -> Option<&str> {
        self.m.get(key).and_then(Value::as_str)
    }

    fn activated(&self) -> bool {
        self.get("activated").and_then(bool_like) == Some(true)
    }

    fn is_placeholder(&self) -> bool {
        matches!(self.str_of("state"), Some("creating" | "failed"))
    }
}

fn invalid(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::invalid_msg(field, message)
}

fn check_field(field: &str, c: &Check, errs: &mut Vec<FieldError>) {
    let value = c.get(field);
    match field {
        "v" => errs.extend(check_v(value)),
        "uuid" | "owner" | "origin" => errs.extend(check_uuid_field(field, value)),
        "urn" => errs.extend(check_urn(value)),
        "name" => errs.extend(check_name(value)),
        "version" => errs.extend(check_version(value)),
        "description" => errs.extend(check_description(value)),
        "homepage" => errs.extend(check_url("homepage", "homepage", value)),
        "eula" => errs.extend(check_url("eula", "EULA", value)),
        "disabled" | "activated" => errs.extend(check_flag(field, value)),
        "published_at" => errs.extend(check_published_at(c)),
        "state" => errs.extend(check_state(value)),
        "public" => errs.extend(check_public(c)),
        "type" => errs.extend(check_enum(c, "type", &VALID_TYPES)),
        "os" => errs.extend(check_enum(c, "os", &VALID_OSES)),
        "error" => errs.extend(check_error(value)),
        "files" => check_files(c, errs),
        "acl" => errs.extend(value.and_then(check_acl)),
        "requirements" => check_requirements(value, errs),
        "users" => check_users(value, errs),
        "billing_tags" => check_billing_tags(value, errs),
        "traits" => check_traits(value, errs),
        "tags" => check_tags(value, errs),
        "generate_passwords" => errs.extend(check_generate_passwords(value)),
        "inherited_directories" => check_inherited_directories(c, errs),
        "nic_driver" | "disk_driver" | "cpu_type" => errs.extend(check_driver(c, field)),
        "image_size" => errs.extend(check_image_size(c)),
        "channels" => check_channels(c, errs),
        _ => {}
    }
}

// ---- scalar fields

fn check_v(value: Option<&Value>) -> Option<FieldError> {
    let Some(v) = value else {
        return Some(FieldError::missing("v"));
    };
    let n = js::to_number(v);
    // Infinity is accepted by the original but cannot be stored as JSON.
    (n.is_nan() || n < 0.0 || n.is_infinite())
        .then(|| invalid("v", "\"v\" must be a positive integer"))
}

fn check_uuid_field(field: &str, value: Option<&Value>) -> Option<FieldError> {
    match value {
        None => Some(FieldError::missing(field)),
        Some(v) if !value_is_lower_uuid(v) => Some(FieldError::invalid(field)),
        Some(_) => None,
    }
}

fn check_urn(value: Option<&Value>) -> Option<FieldError> {
    // node-imgmanifest's urn validator (IMGAPI never calls it): type only.
    value
        .filter(|v| !v.is_string())
        .map(|_| FieldError::invalid("urn"))
}

fn not_a_string(field: &str, v: &Value) -> FieldError {
    invalid(
        field,
        format!("invalid image \"{field}\" (not a string): {}", js::json(v)),
    )
}

/// Shared shape of `name` and `version`: required string, max length, charset.
fn check_label(
    field: &str,
    value: Option<&Value>,
    max: usize,
    allowed: fn(char) -> bool,
    charset_msg: &str,
) -> Option<FieldError> {
    let Some(v) = value else {
        return Some(FieldError::missing(field));
    };
    let Some(s) = v.as_str() else {
        // Original quirk: any type passes; our record needs a string.
        return Some(not_a_string(field, v));
    };
    if js::utf16_len(s) > max {
        Some(invalid(
            field,
            format!("image {field} is too long, max {max} characters"),
        ))
    } else if s.is_empty() || !s.chars().all(allowed) {
        Some(invalid(field, charset_msg))
    } else {
        None
    }
}

fn check_name(value: Option<&Value>) -> Option<FieldError> {
    check_label(
        "name",
        value,
        MAX_NAME_LENGTH,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | ' ' | '-'),
        "image name has invalid characters (only alpha-numeric characters and \" \", \".\", \"-\", \"_\" and \"/\" are allowed)",
    )
}

fn check_version(value: Option<&Value>) -> Option<FieldError> {
    // `+` is allowed although the message does not say so (original text).
    check_label(
        "version",
        value,
        MAX_VERSION_LENGTH,
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '+' | '-'),
        "image version has invalid characters (only alpha-numeric characters and \".\", \"-\", \"_\" and \"/\" are allowed)",
    )
}

fn check_description(value: Option<&Value>) -> Option<FieldError> {
    match value? {
        Value::String(s) if js::utf16_len(s) > MAX_DESCRIPTION_LENGTH => Some(invalid(
            "description",
            format!("image description is too long, max {MAX_DESCRIPTION_LENGTH} characters"),
        )),
        Value::String(_) => None,
        other => Some(not_a_string("description", other)),
    }
}

/// Node's legacy `url.parse(u).protocol`: the lower-cased leading scheme.
fn url_protocol(u: &str) -> Option<String> {
    let trimmed = js::trim(u);
    let scheme_len = trimmed
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
        .count();
    (scheme_len > 0 && trimmed.as_bytes().get(scheme_len) == Some(&b':'))
        .then(|| format!("{}:", trimmed[..scheme_len].to_ascii_lowercase()))
}

fn check_url(field: &str, label: &str, value: Option<&Value>) -> Option<FieldError> {
    let v = value?;
    // A non-string crashes `url.parse` in the original; report it as a bad URL.
    let protocol = v.as_str().and_then(url_protocol);
    if !matches!(protocol.as_deref(), Some("http:" | "https:")) {
        return Some(invalid(
            field,
            format!("invalid image {label} URL protocol"),
        ));
    }
    let len = v.as_str().map(js::utf16_len).unwrap_or(0);
    (len > MAX_URL_LENGTH).then(|| {
        invalid(
            field,
            format!("image {label} URL is too long (max {MAX_URL_LENGTH} characters)"),
        )
    })
}

fn check_flag(field: &str, value: Option<&Value>) -> Option<FieldError> {
    match value {
        None => Some(FieldError::missing(field)),
        // The original throws here (500); recommended fix: Invalid.
        Some(v) if bool_like(v).is_none() => Some(FieldError::invalid(field)),
        Some(_) => None,
    }
}

/// `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$`
fn is_published_at_format(s: &str) -> bool {
    const BASE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    let b = s.as_bytes();
    let pattern_ok = |pat: &[u8], text: &[u8]| {
        pat.len() == text.len()
            && pat.iter().zip(text).all(|(p, t)| match p {
                b'd' => t.is_ascii_digit(),
                other => other == t,
            })
    };
    match b.len() {
        20 => pattern_ok(BASE, &b[..19]) && b[19] == b'Z',
        24 => pattern_ok(BASE, &b[..19]) && pattern_ok(b".ddd", &b[19..23]) && b[23] == b'Z',
        _ => false,
    }
}

fn check_published_at(c: &Check) -> Option<FieldError> {
    match c.get("published_at") {
        None if c.activated() => Some(FieldError::with_message(
            "published_at",
            FieldCode::MissingParameter,
            "if activated is \"true\" published_at must be present",
        )),
        None => None,
        // An empty string is falsy: the original skips the format check.
        Some(Value::String(s)) if s.is_empty() || is_published_at_format(s) => None,
        Some(_) => Some(invalid(
            "published_at",
            "published_at date not in \"YYYY-MM-DDTHH:MM:SS(.SSS)Z\" format",
        )),
    }
}

fn check_state(value: Option<&Value>) -> Option<FieldError> {
    match value {
        None => Some(FieldError::missing("state")),
        Some(Value::String(s)) if VALID_STATES.contains(&s.as_str()) => None,
        Some(_) => Some(FieldError::invalid("state")),
    }
}

fn check_public(c: &Check) -> Option<FieldError> {
    let v = c.get("public");
    let Some(v) = v else {
        return Some(FieldError::missing("public"));
    };
    match (bool_like(v), c.mode) {
        // Original text: the TypeError of boolFromString without a name.
        (None, _) => Some(invalid(
            "public",
            format!(
                "TypeError: invalid value for \"undefined\": {}",
                js::json(v)
            ),
        )),
        (Some(false), Mode::Public) => Some(invalid(
            "public",
            "private images are not allowed on a public Images API",
        )),
        (Some(true), Mode::Private) => Some(invalid(
            "public",
            "public images are not allowed on a private Images API",
        )),
        _ => None,
    }
}

/// `type` and `os`: enum, with the literal `"null"` for placeholders only.
fn check_enum(c: &Check, field: &str, allowed: &[&str]) -> Option<FieldError> {
    let Some(v) = c.get(field) else {
        return Some(FieldError::missing(field));
    };
    match v.as_str() {
        Some("null") if c.is_placeholder() => None,
        Some("null") => Some(invalid(field, format!("invalid image {field}, \"null\""))),
        Some(s) if allowed.contains(&s) => None,
        _ => Some(invalid(
            field,
            format!(
                "invalid image {field}, \"{}\", must be one of: {}",
                js::string(v),
                allowed.join(", ")
            ),
        )),
    }
}

fn check_error(value: Option<&Value>) -> Option<FieldError> {
    // `typeof x === 'object'`: objects, arrays and null pass.
    match value? {
        Value::Object(_) | Value::Array(_) | Value::Null => None,
        other => Some(invalid(
            "error",
            format!(
                "invalid image \"error\" (not an object): {}",
                js::json(other)
            ),
        )),
    }
}

// ---- files and icon

fn files_error(message: impl AsRef<str>) -> FieldError {
    invalid(
        "files",
        format!("invalid image \"files\": {}", message.as_ref()),
    )
}

fn check_files(c: &Check, errs: &mut Vec<FieldError>) {
    let Some(files) = c.get("files") else {
        if c.activated() {
            errs.push(FieldError::with_message(
                "files",
                FieldCode::MissingParameter,
                "if activated is \"true\" files must be present",
            ));
        }
        return;
    };
    let Value::Array(list) = files else {
        errs.push(invalid(
            "files",
            format!(
                "invalid image \"files\" (not an array): {}",
                js::string(files)
            ),
        ));
        return;
    };
    let max = if c.str_of("type") == Some("lxd") {
        2
    } else {
        1
    };
    if list.len() > max {
        errs.push(files_error("too many files"));
        return;
    }
    for entry in list {
        check_file_entry(entry, errs);
    }
}

fn check_file_entry(entry: &Value, errs: &mut Vec<FieldError>) {
    // Non-object entries have no fields: all three "missing" errors (a null
    // entry crashes the original).
    let get = |k: &str| entry.as_object().and_then(|o| o.get(k));
    let truthy = |k: &str| get(k).is_some_and(is_truthy);
    if !truthy("sha1") {
        errs.push(files_error("file missing \"sha1\" field"));
    }
    if !truthy("size") {
        errs.push(files_error("file missing \"size\" field"));
    }
    match get("compression") {
        Some(c) if !is_truthy(c) => errs.push(files_error("file missing \"compression\" field")),
        None => errs.push(files_error("file missing \"compression\" field")),
        Some(c) if !c.as_str().is_some_and(|s| VALID_COMPRESSIONS.contains(&s)) => {
            errs.push(files_error(format!(
                "invalid compression \"{}\" (must be one of {})",
                js::string(c),
                VALID_COMPRESSIONS.join(", ")
            )))
        }
        Some(_) => {}
    }
    // Beyond the original: the shape the typed record needs.
    let bad_sha1 = get("sha1").is_some_and(|v| is_truthy(v) && !v.is_string());
    let bad_size = get("size").is_some_and(|v| is_truthy(v) && v.as_u64().is_none());
    for (key, bad) in [("sha1", bad_sha1), ("size", bad_size)] {
        if bad {
            errs.push(files_error(format!("invalid \"{key}\" field")));
        }
    }
    for key in [
        "dataset_guid",
        "contentMD5",
        "sha256",
        "mtime",
        "stor",
        "digest",
        "uncompressedDigest",
        "blob_key",
    ] {
        if get(key).is_some_and(|v| !v.is_string()) {
            errs.push(files_error(format!("invalid \"{key}\" field")));
        }
    }
}

/// Step 0: the stored icon record (at most one error).
fn check_icon_record(raw: &Map<String, Value>) -> Option<FieldError> {
    let icon = raw.get("icon").filter(|v| is_truthy(v))?;
    let get = |k: &str| icon.as_object().and_then(|o| o.get(k));
    let icon_err = |what: String| invalid("icon", format!("invalid image \"icon\": {what}"));
    let missing = |k: &str| icon_err(format!("icon missing \"{k}\" field"));
    // The original's three checks, in its order.
    for key in ["contentMD5", "size", "contentType"] {
        if !get(key).is_some_and(is_truthy) {
            return Some(missing(key));
        }
    }
    // Beyond the original: the fields the typed IconRecord needs.
    for key in ["sha1", "mtime", "stor"] {
        if get(key).is_none() {
            return Some(missing(key));
        }
    }
    let string_keys = [
        "contentMD5",
        "contentType",
        "sha1",
        "mtime",
        "stor",
        "blob_key",
    ];
    let bad = string_keys
        .into_iter()
        .find(|k| get(k).is_some_and(|v| !v.is_string()))
        .or_else(|| get("size").filter(|v| v.as_u64().is_none()).map(|_| "size"));
    bad.map(|k| icon_err(format!("invalid \"{k}\" field")))
}

// ---- lists and objects

/// Also used for the ACL endpoints' bodies (same messages).
fn check_acl(acl: &Value) -> Option<FieldError> {
    let Value::Array(items) = acl else {
        return Some(invalid(
            "acl",
            format!("invalid image \"acl\" (not an array): {}", js::string(acl)),
        ));
    };
    // Only the first bad item is reported.
    items
        .iter()
        .position(|item| !value_is_lower_uuid(item))
        .map(|i| {
            invalid(
                "acl",
                format!(
                    "invalid image \"acl\" (item {i} is not a UUID): {}",
                    js::string(&items[i])
                ),
            )
        })
}

fn check_users(value: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(users) = value else { return };
    let Value::Array(list) = users else {
        errs.push(invalid(
            "users",
            format!(
                "invalid image \"users\" (not an array): {}",
                js::json(users)
            ),
        ));
        return;
    };
    for u in list {
        let ok = u
            .as_object()
            .is_some_and(|o| o.len() == 1 && o.contains_key("name"));
        if !ok {
            errs.push(invalid(
                "users",
                format!("invalid image \"users\" entry: {}", js::json(u)),
            ));
        }
    }
}

fn check_billing_tags(value: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(bt) = value else { return };
    let Value::Array(list) = bt else {
        errs.push(invalid(
            "billing_tags",
            format!(
                "invalid image \"billing_tags\" (not an array): {}",
                js::string(bt)
            ),
        ));
        return;
    };
    for t in list {
        let ok = t
            .as_str()
            .is_some_and(|s| js::utf16_len(s) <= MAX_BILLING_TAG_LENGTH);
        if !ok {
            // Note the space before `:` (original text).
            errs.push(invalid(
                "billing_tags",
                format!("invalid image \"billing_tags\" entry : {}", js::string(t)),
            ));
        }
    }
}

fn check_traits(value: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(traits) = value else { return };
    // null crashes the original and arrays pass it; both are Invalid here
    // because the record stores traits as an object.
    let Value::Object(map) = traits else {
        errs.push(invalid(
            "traits",
            format!(
                "invalid image \"traits\" (not an object): {}",
                js::json(traits)
            ),
        ));
        return;
    };
    for (key, v) in map {
        if !matches!(v, Value::String(_) | Value::Bool(_) | Value::Array(_)) {
            errs.push(invalid(
                "traits",
                format!("invalid image \"traits\" entry: ({key}, {})", js::json(v)),
            ));
        }
    }
}

fn check_tags(value: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(tags) = value else { return };
    if !tags.is_object() {
        errs.push(invalid(
            "tags",
            format!("invalid image \"tags\" (not an object): {}", js::json(tags)),
        ));
        return;
    }
    let len = js::utf16_len(&js::json(tags));
    if len > MAX_TAGS_LENGTH {
        errs.push(invalid(
            "tags",
            format!("image \"tags\" object is too big: {len} characters (max {MAX_TAGS_LENGTH})"),
        ));
    }
}

fn check_generate_passwords(value: Option<&Value>) -> Option<FieldError> {
    let v = value?;
    bool_like(v).is_none().then(|| {
        invalid(
            "generate_passwords",
            format!(
                "invalid image \"generate_passwords\" (not an accepted boolean value): {}",
                js::json(v)
            ),
        )
    })
}

fn check_inherited_directories(c: &Check, errs: &mut Vec<FieldError>) {
    let Some(dirs) = c.get("inherited_directories") else {
        return;
    };
    let field = "inherited_directories";
    if c.str_of("type") != Some("zone-dataset") {
        errs.push(invalid(
            field,
            format!(
                "invalid image \"inherited_directories\" (only valid for a type:zone-dataset image): {}",
                js::json(dirs)
            ),
        ));
        return;
    }
    let Value::Array(list) = dirs else {
        errs.push(invalid(
            field,
            format!(
                "invalid image \"inherited_directories\" (not an array): {}",
                js::json(dirs)
            ),
        ));
        return;
    };
    for d in list.iter().filter(|d| !d.is_string()) {
        errs.push(invalid(
            field,
            format!(
                "invalid image \"inherited_directories\" entry: {}",
                js::json(d)
            ),
        ));
    }
}

// ---- zvol fields

fn check_driver(c: &Check, field: &str) -> Option<FieldError> {
    let is_zvol = c.str_of("type") == Some("zvol");
    let Some(v) = c.get(field) else {
        return (is_zvol).then(|| FieldError::missing(field));
    };
    // Original wording (inverted: it means "unless type is zvol").
    if is_truthy(v) && !is_zvol {
        Some(invalid(
            field,
            format!(
                "invalid image {field}: \"{}\" (cannot have a value when image type is zvol)",
                js::string(v)
            ),
        ))
    } else if !v.is_string() {
        Some(invalid(
            field,
            format!(
                "invalid image {field}: \"{}\" (must be a string)",
                js::string(v)
            ),
        ))
    } else {
        None
    }
}

fn check_image_size(c: &Check) -> Option<FieldError> {
    let is_zvol = c.str_of("type") == Some("zvol");
    let Some(v) = c.get("image_size") else {
        return is_zvol.then(|| FieldError::missing("image_size"));
    };
    if is_truthy(v) && !is_zvol {
        return Some(invalid(
            "image_size",
            format!(
                "invalid image image_size: \"{}\" (cannot have a value when image type is zvol)",
                js::string(v)
            ),
        ));
    }
    let n = js::to_number(v);
    // isPositiveInteger: NaN and ±Infinity fail `n % 1 === 0`.
    (!n.is_finite() || n.fract() != 0.0).then(|| {
        invalid(
            "image_size",
            format!(
                "invalid image image_size: \"{}\" (must be a positive integer)",
                js::string(v)
            ),
        )
    })
}

fn check_channels(c: &Check, errs: &mut Vec<FieldError>) {
    let Some(channels) = c.get("channels") else {
        errs.push(FieldError::missing("channels"));
        return;
    };
    if !c.channels_ok {
        errs.push(invalid(
            "channels",
            "channels is invalid with an IMGAPI not configured for channels",
        ));
        return;
    }
    let Value::Array(list) = channels else {
        errs.push(invalid(
            "channels",
            format!(
                "invalid image \"channels\" (not an array): {}",
                js::json(channels)
            ),
        ));
        return;
    };
    for ch in list.iter().filter(|ch| !ch.is_string()) {
        errs.push(invalid(
            "channels",
            format!("invalid image \"channels\" entry: {}", js::json(ch)),
        ));
    }
}

// ---- requirements

fn req_invalid(key: &str, message: String) -> FieldError {
    invalid(&format!("requirements.{key}"), message)
}

fn check_requirements(value: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(reqs) = value else { return };
    // Original quirks: null crashes, strings/arrays are split into indexes,
    // numbers pass. Only a JSON object is accepted here.
    let Value::Object(map) = reqs else {
        errs.push(invalid(
            "requirements",
            format!(
                "invalid image \"requirements\" (not an object): {}",
                js::json(reqs)
            ),
        ));
        return;
    };
    let truthy = |k: &str| map.get(k).filter(|v| is_truthy(v));
    errs.extend(truthy("networks").and_then(check_networks_not_array));
    if let Some(Value::Array(nets)) = truthy("networks") {
        errs.extend(nets.iter().filter_map(check_network_entry));
    }
    if let Some(brand) = truthy("brand").filter(|b| !b.is_string()) {
        errs.push(req_invalid(
            "brand",
            format!(
                "invalid image \"requirements.brand\" (not a string): {}",
                js::json(brand)
            ),
        ));
    }
    if let Some(ssh) = truthy("ssh_key").filter(|s| !s.is_boolean()) {
        errs.push(req_invalid(
            "ssh_key",
            format!(
                "invalid image \"requirements.ssh_key\" (not a boolean): {}",
                js::json(ssh)
            ),
        ));
    }
    check_ram(truthy("min_ram"), truthy("max_ram"), errs);
    for key in ["min_platform", "max_platform"] {
        if let Some(p) = truthy(key) {
            check_platform(key, p, errs);
        }
    }
    if let Some(bootrom) = truthy("bootrom") {
        errs.extend(check_bootrom(bootrom, map.get("brand")));
    }
    const KNOWN: [&str; 8] = [
        "networks",
        "brand",
        "ssh_key",
        "min_ram",
        "max_ram",
        "min_platform",
        "max_platform",
        "bootrom",
    ];
    for key in map.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        // Field is the bare key, not prefixed (original).
        errs.push(invalid(key, format!("unsupported requirement \"{key}\"")));
    }
}

fn check_networks_not_array(nets: &Value) -> Option<FieldError> {
    (!nets.is_array()).then(|| {
        req_invalid(
            "networks",
            format!(
                "invalid image \"requirements.networks\" (not an array): {}",
                js::json(nets)
            ),
        )
    })
}

fn check_network_entry(n: &Value) -> Option<FieldError> {
    let ok = n
        .as_object()
        .is_some_and(|o| o.len() == 2 && o.contains_key("name") && o.contains_key("description"));
    (!ok).then(|| {
        req_invalid(
            "networks",
            format!(
                "invalid image \"requirements.networks\" entry: {}",
                js::json(n)
            ),
        )
    })
}

/// `typeof n === 'number' && n % 1 === 0`
fn as_js_integer(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.fract() == 0.0)
}

fn check_ram(min: Option<&Value>, max: Option<&Value>, errs: &mut Vec<FieldError>) {
    let mut valid = |key: &str, v: Option<&Value>| -> Option<f64> {
        let v = v?;
        let n = as_js_integer(v);
        if n.is_none() {
            errs.push(req_invalid(
                key,
                format!(
                    "invalid image \"requirements.{key}\" (not a positive integer): {}",
                    js::json(v)
                ),
            ));
        }
        n
    };
    let min_ram = valid("min_ram", min);
    let max_ram = valid("max_ram", max);
    if let (Some(a), Some(b)) = (min_ram, max_ram) {
        if b - a < 0.0 {
            errs.push(req_invalid(
                "max_ram",
                format!(
                    "min_ram must be <= max_ram, but:min_ram={}, max_ram={}",
                    js::number_to_string(a),
                    js::number_to_string(b)
                ),
            ));
        }
    }
}

fn check_platform(key: &str, p: &Value, errs: &mut Vec<FieldError>) {
    // `typeof === 'object'` with at least one key: arrays count (by index).
    let entries: Vec<(String, &Value)> = match p {
        Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    if entries.is_empty() {
        errs.push(req_invalid(
            key,
            format!(
                "invalid image \"requirements.{key}\" (not an object): {}",
                js::json(p)
            ),
        ));
        return;
    }
    for (k, v) in entries {
        if !v.as_str().is_some_and(is_platform_stamp) {
            errs.push(req_invalid(
                key,
                format!(
                    "invalid image \"requirements.{key}\" entry: \"{k}: {}\" not a valid platform version",
                    js::string(v)
                ),
            ));
        }
    }
}

/// The original's `validPlatformVersion` (`YYYYMMDDTHHMMSSZ`), including its
/// quirk: parts are compared with `Number()`, so non-digits (NaN) slip through.
fn is_platform_stamp(s: &str) -> bool {
    let units: Vec<u16> = s.encode_utf16().collect();
    if units.len() != 16 {
        return false;
    }
    let part = |from: usize, len: usize| {
        js::string_to_number(&String::from_utf16_lossy(&units[from..from + len]))
    };
    let unit_is = |i: usize, c: u8| units[i] == u16::from(c);
    // NaN comparisons are false, so NaN never fails a bound check.
    let year = part(0, 4);
    let month = part(4, 2);
    let day = part(6, 2);
    !(year < 2012.0
        || month > 12.0
        || month == 0.0
        || day > 31.0
        || day == 0.0
        || !unit_is(8, b'T')
        || part(9, 2) > 23.0
        || part(11, 2) > 59.0
        || part(13, 2) > 59.0
        || !unit_is(15, b'Z'))
}

fn check_bootrom(bootrom: &Value, brand: Option<&Value>) -> Option<FieldError> {
    let field = "requirements.bootrom";
    match brand.filter(|b| is_truthy(b)) {
        None => Some(FieldError::with_message(
            field,
            FieldCode::MissingParameter,
            "\"requirements.brand\" not specified. \"requirements.bootrom\" requires \"requirements.brand\" to be set to \"bhyve\"",
        )),
        Some(b) if b.as_str() != Some("bhyve") => Some(invalid(
            field,
            format!(
                "invalid bootrom \"requirements.bootrom\" not supported with \"{}\" brand; \"requirements.brand\" must be \"bhyve\"",
                js::string(b)
            ),
        )),
        Some(_) if !bootrom.as_str().is_some_and(|s| VALID_BOOTROMS.contains(&s)) => Some(invalid(
            field,
            format!(
                "invalid bootrom \"requirements.bootrom\" invalid entry \"{}\"; must be one of: {}",
                js::string(bootrom),
                VALID_BOOTROMS.join(", ")
            ),
        )),
        Some(_) => None,
    }
}

/// ACL check shared with the ACL endpoints (`build::parse_acl_body`).
pub(crate) fn acl_error(acl: &Value) -> Option<FieldError> {
    check_acl(acl)
}

/// JavaScript coercions the original's messages and checks depend on.
pub(crate) mod js {
    use serde_json::Value;

    /// ECMAScript StrWhiteSpaceChar (WhiteSpace + LineTerminator).
    fn is_js_space(c: char) -> bool {
        matches!(
            c,
            '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
                ..='\u{200A}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202F}'
                    | '\u{205F}'
                    | '\u{3000}'
                    | '\u{FEFF}'
        )
    }

    /// `String.prototype.trim`.
    pub fn trim(s: &str) -> &str {
        s.trim_matches(is_js_space)
    }

    /// `s.length`: UTF-16 code units.
    pub fn utf16_len(s: &str) -> usize {
        s.encode_utf16().count()
    }

    /// `Number(s)` for a string.
    pub fn string_to_number(s: &str) -> f64 {
        let t = trim(s);
        if t.is_empty() {
            return 0.0;
        }
        match t {
            "Infinity" | "+Infinity" => return f64::INFINITY,
            "-Infinity" => return f64::NEG_INFINITY,
            _ => {}
        }
        let radix = match t.get(..2) {
            Some("0x" | "0X") => 16,
            Some("0o" | "0O") => 8,
            Some("0b" | "0B") => 2,
            _ => return decimal_to_number(t),
        };
        let digits = &t[2..];
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return f64::NAN;
        }
        // Accumulate in f64: JS does not fail on huge literals.
        digits.chars().fold(0.0, |acc, c| {
            acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
        })
    }

    /// StrDecimalLiteral: `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?`.
    fn decimal_to_number(t: &str) -> f64 {
        let b = t.as_bytes();
        let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - start
        };
        let int_digits = digits(&mut i);
        let mut frac_digits = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            frac_digits = digits(&mut i);
        }
        if int_digits + frac_digits == 0 {
            return f64::NAN;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return f64::NAN;
            }
        }
        if i != b.len() {
            return f64::NAN;
        }
        t.parse::<f64>().unwrap_or(f64::NAN)
    }

    /// `Number(v)` for a JSON value.
    pub fn to_number(v: &Value) -> f64 {
        match v {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s) => string_to_number(s),
            // Arrays go through their string form; objects are NaN.
            Value::Array(_) => string_to_number(&string(v)),
            Value::Object(_) => f64::NAN,
        }
    }

    /// `Number.prototype.toString()` (shortest round-trip digits, JS layout).
    pub fn number_to_string(f: f64) -> String {
        if f.is_nan() {
            return "NaN".into();
        }
        if f.is_infinite() {
            return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
        }
        if f == 0.0 {
            return "0".into();
        }
        if f < 0.0 {
            return format!("-{}", number_to_string(-f));
        }
        // `{:e}` gives the shortest round-trip digits: "d.ddde<exp>".
        let sci = format!("{f:e}");
        let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let k = digits.len() as i64;
        let n = exp.parse::<i64>().unwrap_or(0) + 1;
        if k <= n && n <= 21 {
            format!("{digits}{}", "0".repeat((n - k) as usize))
        } else if 0 < n && n <= 21 {
            let (a, b) = digits.split_at(n as usize);
            format!("{a}.{b}")
        } else if -6 < n && n <= 0 {
            format!("0.{}{digits}", "0".repeat((-n) as usize))
        } else {
            let e = n - 1;
            let sign = if e < 0 { '-' } else { '+' };
            let (first, rest) = digits.split_at(1);
            let dot = if rest.is_empty() { "" } else { "." };
            format!("{first}{dot}{rest}e{sign}{}", e.abs())
        }
    }

    /// `String(v)` (what util.format's `%s` prints).
    pub fn string(v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => number_to_string(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Null => String::new(),
                    other => string(other),
                })
                .collect::<Vec<_>>()
                .join(","),
            Value::Object(_) => "[object Object]".into(),
        }
    }

    /// `JSON.stringify(v)` (what util.format's `%j` prints).
    pub fn json(v: &Value) -> String {
        let mut out = String::new();
        write_json(v, &mut out);
        out
    }

    fn write_str(s: &str, out: &mut String) {
        // serde_json escapes exactly like JSON.stringify for valid UTF-8.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }

    fn write_json(v: &Value, out: &mut String) {
        match v {
            Value::Number(n) => out.push_str(&number_to_string(n.as_f64().unwrap_or(f64::NAN))),
            Value::String(s) => write_str(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    write_json(item, out);
                }
                out.push('}');
            }
            Value::Null | Value::Bool(_) => out.push_str(&v.to_string()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const OWNER: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
    const UUID: &str = "e70502b0-705e-498e-a810-53a03980eabf";

    fn ctx(mode: Mode, channels_enabled: bool) -> RuleContext {
        RuleContext {
            mode,
            channels_enabled,
        }
    }

    fn dc() -> RuleContext {
        ctx(Mode::Dc, false)
    }

    /// A valid unactivated dc record.
    fn base() -> Map<String, Value> {
        match json!({
            "v": 2, "uuid": UUID, "owner": OWNER, "name": "foo", "version": "1.0.0",
            "disabled": false, "activated": false, "state": "unactivated",
            "public": false, "type": "zone-dataset", "os": "smartos", "files": [], "acl": []
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn with(pairs: Value) -> Map<String, Value> {
        let mut m = base();
        if let Value::Object(extra) = pairs {
            for (k, v) in extra {
                m.insert(k, v);
            }
        }
        m
    }

    fn without(keys: &[&str]) -> Map<String, Value> {
        let mut m = base();
        for k in keys {
            m.shift_remove(*k);
        }
        m
    }

    /// `(field, code, message)` triples for compact assertions.
    fn run(raw: &Map<String, Value>, c: &RuleContext) -> Vec<(String, &'static str, String)> {
        validate_raw(raw, c)
            .into_iter()
            .map(|e| (e.field, e.code.as_str(), e.message.unwrap_or_default()))
            .collect()
    }

    fn one(raw: Map<String, Value>) -> (String, &'static str, String) {
        let mut errs = run(&raw, &dc());
        assert_eq!(errs.len(), 1, "{errs:?}");
        errs.remove(0)
    }

    fn msg(raw: Map<String, Value>) -> String {
        one(raw).2
    }

    fn fields(raw: &Map<String, Value>, c: &RuleContext) -> String {
        crate::error::join_fields(&validate_raw(raw, c))
    }

    #[test]
    fn base_record_is_valid_in_dc_mode() {
        assert!(run(&base(), &dc()).is_empty());
    }

    #[test]
    fn original_v2_fixtures_validate_in_dc_mode() {
        for text in [
            include_str!("../tests/fixtures/15963d90-61d7-4664-87a6-f56b16492d5a.manifest"),
            include_str!("../tests/fixtures/7a1b1967-6ecf-1e4c-8f09-f49094cc36ad.manifest"),
            include_str!("../tests/fixtures/c58161c0-2547-11e2-a75e-9fdca1940570.manifest"),
            include_str!("../tests/fixtures/f3078f0c-a53b-4140-b7af-fbb6308a8e35.manifest"),
        ] {
            let raw: Map<String, Value> = serde_json::from_str(text).unwrap();
            assert_eq!(run(&raw, &dc()), vec![], "{text}");
            assert!(crate::ImageRecord::from_raw_map(raw).is_ok());
        }
    }

    #[test]
    fn lower_uuid() {
        assert!(is_lower_uuid(UUID));
        assert!(!is_lower_uuid(&UUID.to_uppercase()));
        assert!(!is_lower_uuid("e70502b0705e498ea81053a03980eabf"));
        assert!(!is_lower_uuid("e70502b0-705e-498e-a810-53a03980eabff"));
        assert!(!is_lower_uuid("g70502b0-705e-498e-a810-53a03980eabf"));
    }

    #[test]
    fn v_rules() {
        assert_eq!(
            one(without(&["v"])),
            ("v".into(), "MissingParameter", String::new())
        );
        assert_eq!(
            msg(with(json!({"v": "abc"}))),
            "\"v\" must be a positive integer"
        );
        assert_eq!(
            msg(with(json!({"v": -1}))),
            "\"v\" must be a positive integer"
        );
        for ok in [json!(0), json!(1.5), json!("2"), json!(null)] {
            assert!(run(&with(json!({ "v": ok })), &dc()).is_empty());
        }
    }

    #[test]
    fn uuid_owner_origin_rules() {
        assert_eq!(one(without(&["uuid"])).1, "MissingParameter");
        assert_eq!(
            one(with(json!({"uuid": "x"}))),
            ("uuid".into(), "Invalid", String::new())
        );
        assert_eq!(
            one(without(&["owner"])),
            ("owner".into(), "MissingParameter", String::new())
        );
        assert_eq!(one(with(json!({"owner": UUID.to_uppercase()}))).0, "owner");
        assert_eq!(
            one(with(json!({"origin": 42}))),
            ("origin".into(), "Invalid", String::new())
        );
        assert!(run(&with(json!({"origin": OWNER})), &dc()).is_empty());
    }

    #[test]
    fn name_rules() {
        assert_eq!(
            one(without(&["name"])),
            ("name".into(), "MissingParameter", String::new())
        );
        assert_eq!(
            msg(with(json!({"name": "a".repeat(1025)}))),
            "image name is too long, max 1024 characters"
        );
        assert!(run(&with(json!({"name": "a".repeat(1024)})), &dc()).is_empty());
        let chars = "image name has invalid characters (only alpha-numeric characters and \" \", \".\", \"-\", \"_\" and \"/\" are allowed)";
        assert_eq!(msg(with(json!({"name": "foo!"}))), chars);
        assert_eq!(msg(with(json!({"name": ""}))), chars);
        assert!(run(&with(json!({"name": "a b/c_d-e.f"})), &dc()).is_empty());
        // Recommended: a string is required (the original accepts 42).
        assert_eq!(
            msg(with(json!({"name": 42}))),
            "invalid image \"name\" (not a string): 42"
        );
        assert_eq!(one(with(json!({"name": null}))).0, "name");
    }

    #[test]
    fn version_rules() {
        assert_eq!(one(without(&["version"])).1, "MissingParameter");
        assert_eq!(
            msg(with(json!({"version": "1".repeat(513)}))),
            "image version is too long, max 512 characters"
        );
        assert_eq!(
            msg(with(json!({"version": "1.0 beta"}))),
            "image version has invalid characters (only alpha-numeric characters and \".\", \"-\", \"_\" and \"/\" are allowed)"
        );
        assert!(run(&with(json!({"version": "1.0.0+build/2_x-y"})), &dc()).is_empty());
    }

    #[test]
    fn description_rules() {
        assert_eq!(
            msg(with(json!({"description": "d".repeat(10241)}))),
            "image description is too long, max 10240 characters"
        );
        assert!(run(&with(json!({"description": "d".repeat(10240)})), &dc()).is_empty());
        assert_eq!(one(with(json!({"description": 5}))).0, "description");
    }

    #[test]
    fn homepage_and_eula_rules() {
        assert_eq!(
            msg(with(json!({"homepage": "ftp://x"}))),
            "invalid image homepage URL protocol"
        );
        assert_eq!(
            msg(with(json!({"eula": "mailto:a@b"}))),
            "invalid image EULA URL protocol"
        );
        assert_eq!(
            msg(with(json!({"homepage": "example.com"}))),
            "invalid image homepage URL protocol"
        );
        let long = format!("https://{}", "x".repeat(1020));
        assert_eq!(
            msg(with(json!({"homepage": long}))),
            "image homepage URL is too long (max 1024 characters)"
        );
        assert_eq!(
            msg(with(json!({"eula": long}))),
            "image EULA URL is too long (max 1024 characters)"
        );
        for ok in ["http://a", "HTTPS://A/b", " https://x "] {
            assert!(run(&with(json!({ "homepage": ok, "eula": ok })), &dc()).is_empty());
        }
        assert_eq!(
            msg(with(json!({"homepage": 7}))),
            "invalid image homepage URL protocol"
        );
    }

    #[test]
    fn boolean_fields_accept_strings() {
        let raw = with(
            json!({"disabled": "true", "activated": "false", "public": "true", "generate_passwords": "false"}),
        );
        assert!(run(&raw, &dc()).is_empty());
        assert_eq!(
            one(with(json!({"disabled": 1}))),
            ("disabled".into(), "Invalid", String::new())
        );
        assert_eq!(
            one(with(json!({"activated": "yes"}))),
            ("activated".into(), "Invalid", String::new())
        );
        assert_eq!(one(without(&["disabled"])).1, "MissingParameter");
        assert_eq!(
            msg(with(json!({"generate_passwords": "no"}))),
            "invalid image \"generate_passwords\" (not an accepted boolean value): \"no\""
        );
        assert_eq!(
            msg(with(json!({"generate_passwords": null}))),
            "invalid image \"generate_passwords\" (not an accepted boolean value): null"
        );
    }

    #[test]
    fn activated_absent_counts_as_false() {
        // ImageRecord omits `activated: false` from its stored form.
        assert!(run(&without(&["activated"]), &dc()).is_empty());
    }

    #[test]
    fn published_at_rules() {
        let activated = with(json!({"activated": true, "state": "active",
            "files": [{"sha1": "a", "size": 1, "compression": "none"}]}));
        assert_eq!(
            one(activated.clone()),
            (
                "published_at".into(),
                "MissingParameter",
                "if activated is \"true\" published_at must be present".into()
            )
        );
        let format_msg = "published_at date not in \"YYYY-MM-DDTHH:MM:SS(.SSS)Z\" format";
        assert_eq!(msg(with(json!({"published_at": "2013-01-08"}))), format_msg);
        assert_eq!(
            msg(with(json!({"published_at": "2013-01-08T20:21:17.93Z"}))),
            format_msg
        );
        assert_eq!(msg(with(json!({"published_at": 42}))), format_msg);
        for ok in ["2013-01-08T20:21:17.932Z", "2013-01-08T20:21:17Z"] {
            assert!(run(&with(json!({ "published_at": ok })), &dc()).is_empty());
        }
    }

    #[test]
    fn public_rules() {
        assert_eq!(one(without(&["public"])).1, "MissingParameter");
        assert_eq!(
            msg(with(json!({"public": "yes"}))),
            "TypeError: invalid value for \"undefined\": \"yes\""
        );
        let public = ctx(Mode::Public, false);
        assert_eq!(
            run(&base(), &public),
            vec![(
                "public".into(),
                "Invalid",
                "private images are not allowed on a public Images API".into()
            )]
        );
        assert_eq!(
            run(&with(json!({"public": true})), &ctx(Mode::Private, false))[0].2,
            "public images are not allowed on a private Images API"
        );
        assert!(run(&with(json!({"public": "true"})), &public).is_empty());
    }

    #[test]
    fn state_rules() {
        assert_eq!(
            one(without(&["state"])),
            ("state".into(), "MissingParameter", String::new())
        );
        assert_eq!(
            one(with(json!({"state": "gone"}))),
            ("state".into(), "Invalid", String::new())
        );
        for s in VALID_STATES {
            let raw = with(json!({ "state": s }));
            let errs = run(&raw, &dc());
            assert!(errs.is_empty(), "{s}: {errs:?}");
        }
    }

    #[test]
    fn type_and_os_rules() {
        assert_eq!(
            msg(with(json!({"type": "bogus"}))),
            "invalid image type, \"bogus\", must be one of: zone-dataset, zvol, lx-dataset, lxd, docker, other"
        );
        assert_eq!(
            msg(with(json!({"os": "plan9"}))),
            "invalid image os, \"plan9\", must be one of: smartos, linux, windows, bsd, illumos, other"
        );
        assert_eq!(
            msg(with(json!({"type": "null"}))),
            "invalid image type, \"null\""
        );
        assert_eq!(
            msg(with(json!({"os": "null"}))),
            "invalid image os, \"null\""
        );
        assert!(run(
            &with(json!({"type": "null", "os": "null", "state": "failed"})),
            &dc()
        )
        .is_empty());
        assert_eq!(one(without(&["type"])).1, "MissingParameter");
        assert_eq!(one(without(&["os"])).1, "MissingParameter");
        assert!(
            msg(with(json!({"type": null}))).starts_with("invalid image type, \"null\", must be")
        );
    }

    #[test]
    fn minimal_rule_set_for_creating_placeholders() {
        let raw = match json!({"v": 2, "uuid": UUID, "name": "n", "version": "1",
            "type": "null", "os": "null", "state": "creating", "expires_at": "x"})
        {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        assert!(run(&raw, &dc()).is_empty());
        // Not minimal in public mode.
        assert_eq!(
            fields(&raw, &ctx(Mode::Public, false)),
            "owner, disabled, public"
        );
    }

    #[test]
    fn zvol_driver_rules() {
        let zvol = with(json!({"type": "zvol"}));
        assert_eq!(
            fields(&zvol, &dc()),
            "nic_driver, disk_driver, cpu_type, image_size"
        );
        assert!(run(&zvol, &dc()).iter().all(|e| e.1 == "MissingParameter"));
        assert_eq!(
            msg(with(json!({"nic_driver": "virtio"}))),
            "invalid image nic_driver: \"virtio\" (cannot have a value when image type is zvol)"
        );
        let ok = with(
            json!({"type": "zvol", "nic_driver": "virtio", "disk_driver": "virtio",
            "cpu_type": "host", "image_size": 10240}),
        );
        assert!(run(&ok, &dc()).is_empty());
        let mut bad = ok.clone();
        bad.insert("cpu_type".into(), json!(5));
        assert_eq!(msg(bad), "invalid image cpu_type: \"5\" (must be a string)");
        assert_eq!(
            msg(with(json!({"disk_driver": false}))),
            "invalid image disk_driver: \"false\" (must be a string)"
        );
    }

    #[test]
    fn image_size_rules() {
        let zvol = |size: Value| {
            with(
                json!({"type": "zvol", "nic_driver": "a", "disk_driver": "b", "cpu_type": "c", "image_size": size}),
            )
        };
        assert_eq!(
            msg(zvol(json!("NaN"))),
            "invalid image image_size: \"NaN\" (must be a positive integer)"
        );
        assert_eq!(
            msg(zvol(json!(1.5))),
            "invalid image image_size: \"1.5\" (must be a positive integer)"
        );
        // Quirks: numeric strings, 0 and negatives pass.
        for ok in [json!("16384"), json!(0), json!(-5)] {
            assert!(run(&zvol(ok), &dc()).is_empty());
        }
        assert_eq!(
            msg(with(json!({"image_size": 10}))),
            "invalid image image_size: \"10\" (cannot have a value when image type is zvol)"
        );
    }

    #[test]
    fn error_rules() {
        assert_eq!(
            msg(with(json!({"error": "boom"}))),
            "invalid image \"error\" (not an object): \"boom\""
        );
        for ok in [json!({"message": "m"}), json!(null), json!([])] {
            assert!(run(&with(json!({ "error": ok })), &dc()).is_empty());
        }
    }

    #[test]
    fn files_rules() {
        let activated = with(json!({"activated": true, "published_at": "2013-01-08T20:21:17Z"}));
        let mut no_files = activated.clone();
        no_files.shift_remove("files");
        assert_eq!(
            one(no_files),
            (
                "files".into(),
                "MissingParameter",
                "if activated is \"true\" files must be present".into()
            )
        );
        assert_eq!(
            msg(with(json!({"files": {"a": 1}}))),
            "invalid image \"files\" (not an array): [object Object]"
        );
        let f = json!({"sha1": "a", "size": 1, "compression": "gzip"});
        assert_eq!(
            msg(with(json!({"files": [f.clone(), f.clone()]}))),
            "invalid image \"files\": too many files"
        );
        assert!(run(
            &with(json!({"type": "lxd", "files": [f.clone(), f.clone()]})),
            &dc()
        )
        .is_empty());
        assert_eq!(
            run(&with(json!({"files": [{"size": 0}]})), &dc())
                .into_iter()
                .map(|e| e.2)
                .collect::<Vec<_>>(),
            [
                "invalid image \"files\": file missing \"sha1\" field",
                "invalid image \"files\": file missing \"size\" field",
                "invalid image \"files\": file missing \"compression\" field"
            ]
        );
        assert_eq!(
            msg(with(json!({"files": [{"sha1": "a", "size": 1, "compression": "zip"}]}))),
            "invalid image \"files\": invalid compression \"zip\" (must be one of gzip, bzip2, xz, none)"
        );
        // Internal keys are fine.
        let stored = json!({"sha1": "a", "size": 1, "compression": "xz", "contentMD5": "m",
            "mtime": "t", "stor": "local", "blob_key": "k", "digest": "sha256:0", "dataset_guid": "1"});
        assert!(run(&with(json!({ "files": [stored] })), &dc()).is_empty());
        assert_eq!(
            fields(&with(json!({"files": [null]})), &dc()),
            "files, files, files"
        );
    }

    #[test]
    fn icon_record_rules_come_first() {
        let icon = |v: Value| with(json!({ "icon": v, "name": 42 }));
        let first = |raw| run(&raw, &dc()).remove(0).2;
        assert_eq!(
            first(icon(json!(true))),
            "invalid image \"icon\": icon missing \"contentMD5\" field"
        );
        assert_eq!(
            first(icon(json!({"contentMD5": "m", "size": 0}))),
            "invalid image \"icon\": icon missing \"size\" field"
        );
        assert_eq!(
            first(icon(json!({"contentMD5": "m", "size": 3}))),
            "invalid image \"icon\": icon missing \"contentType\" field"
        );
        assert_eq!(fields(&icon(json!(true)), &dc()), "icon, name");
        let ok = json!({"sha1": "s", "size": 3, "contentType": "image/png", "contentMD5": "m",
            "mtime": "t", "stor": "local"});
        assert!(run(&with(json!({ "icon": ok })), &dc()).is_empty());
    }

    #[test]
    fn acl_rules() {
        assert_eq!(
            msg(with(json!({"acl": {"a": 1}}))),
            "invalid image \"acl\" (not an array): [object Object]"
        );
        assert_eq!(
            run(&with(json!({"acl": [OWNER, "bad", "worse"]})), &dc()),
            vec![(
                "acl".into(),
                "Invalid",
                "invalid image \"acl\" (item 1 is not a UUID): bad".into()
            )]
        );
        // A single string is read as a one-element array.
        assert!(run(&with(json!({ "acl": OWNER })), &dc()).is_empty());
        assert!(run(&without(&["acl"]), &dc()).is_empty());
    }

    fn req(r: Value) -> Vec<(String, &'static str, String)> {
        run(&with(json!({ "requirements": r })), &dc())
    }

    #[test]
    fn requirements_must_be_an_object() {
        for (bad, shown) in [
            (json!("ab"), "\"ab\""),
            (json!(null), "null"),
            (json!([1]), "[1]"),
        ] {
            assert_eq!(
                req(bad),
                vec![(
                    "requirements".into(),
                    "Invalid",
                    format!("invalid image \"requirements\" (not an object): {shown}")
                )]
            );
        }
        assert!(req(json!({})).is_empty());
    }

    #[test]
    fn requirements_networks_brand_ssh_key() {
        assert_eq!(
            req(json!({"networks": {"a": 1}}))[0].2,
            "invalid image \"requirements.networks\" (not an array): {\"a\":1}"
        );
        assert_eq!(
            req(json!({"networks": [{"name": "net0"}, {"name": "a", "description": "b"}, null]})),
            vec![
                (
                    "requirements.networks".into(),
                    "Invalid",
                    "invalid image \"requirements.networks\" entry: {\"name\":\"net0\"}".into()
                ),
                (
                    "requirements.networks".into(),
                    "Invalid",
                    "invalid image \"requirements.networks\" entry: null".into()
                )
            ]
        );
        assert_eq!(
            req(json!({"brand": 5}))[0],
            (
                "requirements.brand".into(),
                "Invalid",
                "invalid image \"requirements.brand\" (not a string): 5".into()
            )
        );
        assert_eq!(
            req(json!({"ssh_key": "yes"}))[0].2,
            "invalid image \"requirements.ssh_key\" (not a boolean): \"yes\""
        );
        assert!(req(json!({"ssh_key": false, "brand": "lx", "networks": []})).is_empty());
    }

    #[test]
    fn requirements_ram() {
        assert_eq!(
            req(json!({"min_ram": 1.5}))[0],
            (
                "requirements.min_ram".into(),
                "Invalid",
                "invalid image \"requirements.min_ram\" (not a positive integer): 1.5".into()
            )
        );
        assert_eq!(
            req(json!({"max_ram": "512"}))[0].2,
            "invalid image \"requirements.max_ram\" (not a positive integer): \"512\""
        );
        assert_eq!(
            req(json!({"min_ram": 1024, "max_ram": 512})),
            vec![(
                "requirements.max_ram".into(),
                "Invalid",
                "min_ram must be <= max_ram, but:min_ram=1024, max_ram=512".into()
            )]
        );
        // Quirks: 0 is skipped, negatives pass.
        assert!(req(json!({"min_ram": -1, "max_ram": 0})).is_empty());
        assert!(req(json!({"min_ram": 512, "max_ram": 512})).is_empty());
    }

    #[test]
    fn requirements_platforms() {
        assert_eq!(
            req(json!({"min_platform": {}}))[0],
            (
                "requirements.min_platform".into(),
                "Invalid",
                "invalid image \"requirements.min_platform\" (not an object): {}".into()
            )
        );
        assert_eq!(
            req(json!({"max_platform": "20130308T102805Z"}))[0].2,
            "invalid image \"requirements.max_platform\" (not an object): \"20130308T102805Z\""
        );
        assert_eq!(
            req(json!({"min_platform": {"7.0": "20110308T102805Z", "6.5": null}})),
            vec![
                (
                    "requirements.min_platform".into(),
                    "Invalid",
                    "invalid image \"requirements.min_platform\" entry: \"7.0: 20110308T102805Z\" not a valid platform version".into()
                ),
                (
                    "requirements.min_platform".into(),
                    "Invalid",
                    "invalid image \"requirements.min_platform\" entry: \"6.5: null\" not a valid platform version".into()
                )
            ]
        );
        assert!(req(json!({"min_platform": {"7.0": "20130308T102805Z"},
            "max_platform": {"7.0": "20991231T235959Z"}}))
        .is_empty());
    }

    #[test]
    fn platform_stamps() {
        assert!(is_platform_stamp("20130308T102805Z"));
        for bad in [
            "2013030T102805Z",
            "20111308T102805Z",
            "20131308T102805Z",
            "20130300T102805Z",
            "20130332T102805Z",
            "20130308X102805Z",
            "20130308T242805Z",
            "20130308T106005Z",
            "20130308T102860Z",
            "20130308T102805X",
        ] {
            assert!(!is_platform_stamp(bad), "{bad}");
        }
        // Original quirk: non-digits compare as NaN and slip through.
        assert!(is_platform_stamp("2013ab08T1028xxZ"));
    }

    #[test]
    fn requirements_bootrom() {
        assert_eq!(
            req(json!({"bootrom": "uefi"})),
            vec![(
                "requirements.bootrom".into(),
                "MissingParameter",
                "\"requirements.brand\" not specified. \"requirements.bootrom\" requires \"requirements.brand\" to be set to \"bhyve\"".into()
            )]
        );
        assert_eq!(
            req(json!({"bootrom": "uefi", "brand": "kvm"}))[0].2,
            "invalid bootrom \"requirements.bootrom\" not supported with \"kvm\" brand; \"requirements.brand\" must be \"bhyve\""
        );
        assert_eq!(
            req(json!({"bootrom": "coreboot", "brand": "bhyve"}))[0].2,
            "invalid bootrom \"requirements.bootrom\" invalid entry \"coreboot\"; must be one of: bios, uefi"
        );
        assert!(req(json!({"bootrom": "bios", "brand": "bhyve"})).is_empty());
    }

    #[test]
    fn requirements_error_order_and_unknown_keys() {
        let raw = with(json!({"requirements": {"foo": 1, "ssh_key": "x",
            "min_platform": {"7.0": "bad"}}}));
        let errs = run(&raw, &dc());
        assert_eq!(
            fields(&raw, &dc()),
            "requirements.ssh_key, requirements.min_platform, foo"
        );
        assert_eq!(
            errs[2],
            (
                "foo".into(),
                "Invalid",
                "unsupported requirement \"foo\"".into()
            )
        );
        // Unknown keys are reported whatever their value.
        assert_eq!(req(json!({"bar": null}))[0].0, "bar");
    }

    #[test]
    fn users_rules() {
        assert_eq!(
            msg(with(json!({"users": "root"}))),
            "invalid image \"users\" (not an array): \"root\""
        );
        assert_eq!(
            fields(
                &with(json!({"users": [{"name": "root"}, {"name": "a", "x": 1}, "b", null]})),
                &dc()
            ),
            "users, users, users"
        );
        assert_eq!(
            msg(with(json!({"users": [{"nom": "root"}]}))),
            "invalid image \"users\" entry: {\"nom\":\"root\"}"
        );
    }

    #[test]
    fn billing_tags_rules() {
        assert_eq!(
            msg(with(json!({"billing_tags": {"a": 1}}))),
            "invalid image \"billing_tags\" (not an array): [object Object]"
        );
        assert_eq!(
            msg(with(json!({"billing_tags": ["ok", 5]}))),
            "invalid image \"billing_tags\" entry : 5"
        );
        assert_eq!(
            one(with(json!({"billing_tags": ["t".repeat(129)]}))).0,
            "billing_tags"
        );
        assert!(run(&with(json!({"billing_tags": "promo"})), &dc()).is_empty());
        assert!(run(&with(json!({"billing_tags": null})), &dc()).is_empty());
    }

    #[test]
    fn traits_rules() {
        assert_eq!(
            msg(with(json!({"traits": "x"}))),
            "invalid image \"traits\" (not an object): \"x\""
        );
        assert_eq!(
            msg(with(json!({"traits": null}))),
            "invalid image \"traits\" (not an object): null"
        );
        assert_eq!(
            msg(with(json!({"traits": {"ok": true, "n": 42}}))),
            "invalid image \"traits\" entry: (n, 42)"
        );
        assert_eq!(
            msg(with(json!({"traits": {"z": null}}))),
            "invalid image \"traits\" entry: (z, null)"
        );
        assert!(run(
            &with(json!({"traits": {"a": "s", "b": false, "c": [1]}})),
            &dc()
        )
        .is_empty());
    }

    #[test]
    fn tags_rules() {
        assert_eq!(
            msg(with(json!({"tags": ["a"]}))),
            "invalid image \"tags\" (not an object): [\"a\"]"
        );
        assert_eq!(
            msg(with(json!({"tags": null}))),
            "invalid image \"tags\" (not an object): null"
        );
        // {"k":"<v>"} is 8 characters plus the value.
        let at_limit = with(json!({"tags": {"k": "x".repeat(102_400 - 8)}}));
        assert!(run(&at_limit, &dc()).is_empty());
        assert_eq!(
            msg(with(json!({"tags": {"k": "x".repeat(102_400 - 7)}}))),
            "image \"tags\" object is too big: 102401 characters (max 102400)"
        );
        assert!(run(
            &with(json!({"tags": {"a": null, "b": {"c": [1]}, "n": 1.5}})),
            &dc()
        )
        .is_empty());
    }

    #[test]
    fn inherited_directories_rules() {
        assert_eq!(
            msg(with(json!({"inherited_directories": ["/opt"], "type": "other"}))),
            "invalid image \"inherited_directories\" (only valid for a type:zone-dataset image): [\"/opt\"]"
        );
        assert_eq!(
            msg(with(json!({"inherited_directories": "/opt"}))),
            "invalid image \"inherited_directories\" (not an array): \"/opt\""
        );
        assert_eq!(
            msg(with(json!({"inherited_directories": ["/opt", 1]}))),
            "invalid image \"inherited_directories\" entry: 1"
        );
    }

    #[test]
    fn channels_rules() {
        let not_configured = "channels is invalid with an IMGAPI not configured for channels";
        assert_eq!(msg(with(json!({"channels": ["dev"]}))), not_configured);
        // dc mode never validates channels, even when configured.
        assert_eq!(
            run(&with(json!({"channels": ["dev"]})), &ctx(Mode::Dc, true))[0].2,
            not_configured
        );
        let private = ctx(Mode::Private, true);
        assert_eq!(
            run(&base(), &private),
            vec![("channels".into(), "MissingParameter", String::new())]
        );
        assert!(run(&with(json!({"channels": ["dev", "x"]})), &private).is_empty());
        assert_eq!(
            run(&with(json!({"channels": "dev"})), &private)[0].2,
            "invalid image \"channels\" (not an array): \"dev\""
        );
        assert_eq!(
            run(&with(json!({"channels": ["dev", 1]})), &private)[0].2,
            "invalid image \"channels\" entry: 1"
        );
        assert_eq!(
            run(
                &with(json!({"channels": ["dev"]})),
                &ctx(Mode::Public, false)
            ),
            vec![
                (
                    "public".into(),
                    "Invalid",
                    "private images are not allowed on a public Images API".into()
                ),
                ("channels".into(), "Invalid", not_configured.into())
            ]
        );
    }

    #[test]
    fn required_fields_come_before_optional_ones() {
        let raw = with(json!({"description": 1, "name": "!", "version": "?", "state": "x"}));
        assert_eq!(fields(&raw, &dc()), "name, version, state, description");
        let empty = Map::new();
        assert_eq!(
            fields(&empty, &dc()),
            "v, uuid, owner, name, version, disabled, public, state, type, os"
        );
    }

    #[test]
    fn js_number_coercion() {
        use js::{number_to_string as s, string_to_number as n};
        assert_eq!(n(" 12 "), 12.0);
        assert_eq!(n(""), 0.0);
        assert_eq!(n("0x10"), 16.0);
        assert_eq!(n("1e3"), 1000.0);
        assert_eq!(n(".5"), 0.5);
        assert_eq!(n("5."), 5.0);
        assert!(n("abc").is_nan());
        assert!(n("inf").is_nan());
        assert!(n("-0x10").is_nan());
        assert!(n("1e").is_nan());
        assert_eq!(n("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(js::to_number(&json!([" 7 "])), 7.0);
        assert!(js::to_number(&json!([1, 2])).is_nan());
        assert_eq!(js::to_number(&json!(true)), 1.0);
        assert_eq!(s(1.0), "1");
        assert_eq!(s(1.5), "1.5");
        assert_eq!(s(1e21), "1e+21");
        assert_eq!(s(123456789012345680000.0), "123456789012345680000");
        assert_eq!(s(0.000001), "0.000001");
        assert_eq!(s(1e-7), "1e-7");
        assert_eq!(s(-2.5e-8), "-2.5e-8");
        assert_eq!(s(f64::NAN), "NaN");
    }

    #[test]
    fn js_string_and_json() {
        assert_eq!(js::string(&json!([1, null, [2, "a"]])), "1,,2,a");
        assert_eq!(js::string(&json!({"a": 1})), "[object Object]");
        assert_eq!(
            js::json(&json!({"a": [1.0, "é\n"], "b": null})),
            "{\"a\":[1,\"é\\n\"],\"b\":null}"
        );
    }
}
