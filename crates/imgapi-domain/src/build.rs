//! Building records from create/import bodies and applying updates (manifest.md §5).

use imgapi_types::{FieldCode, FieldError};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{join_fields, DomainError};
use crate::image::ImageRecord;
use crate::mode::RuleContext;
use crate::serialize::is_truthy;
use crate::upgrade::{json_number, number_or_nan_marker, upgrade_legacy};
use crate::validate::{acl_error, bool_like, js, normalise_lists, validate_raw};

/// Which endpoint a body comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    /// CreateImage: server-generated uuid, `v` defaults to 2.
    Create,
    /// AdminImportImage: uuid, `published_at` and `urn` come from the body.
    Import,
}

/// Copied when present (even `null`): manifest.md §5.1 step 2.
const COPIED_WHEN_PRESENT: [&str; 11] = [
    "error",
    "requirements",
    "users",
    "traits",
    "tags",
    "billing_tags",
    "generate_passwords",
    "inherited_directories",
    "origin",
    "channels",
    // Copied as-is; absent stays absent.
    "acl",
];

/// Copied only when truthy (the original's `if (data.x)`).
const COPIED_WHEN_TRUTHY: [&str; 4] = ["description", "homepage", "eula", "icon"];

/// Always consumed from the body (copied when present).
const BASE_FIELDS: [&str; 6] = ["v", "owner", "name", "version", "type", "os"];

const ZVOL_FIELDS: [&str; 3] = ["nic_driver", "disk_driver", "cpu_type"];

/// Build a new record from a CreateImage / AdminImportImage body
/// (manifest.md §5.1). Endpoint-specific steps are the caller's.
pub fn build_record(
    body: Map<String, Value>,
    kind: BuildKind,
    new_uuid: Uuid,
    ctx: &RuleContext,
) -> Result<ImageRecord, DomainError> {
    let mut data = body;
    if kind == BuildKind::Create && !data.contains_key("v") {
        data.insert("v".into(), Value::from(2));
    }
    let mut data = upgrade_legacy(data);
    let mut raw = copy_fields(&mut data);
    take_identity(&mut data, &mut raw, kind, new_uuid)?;
    // Allow posting a manifest fetched from an IMGAPI as-is.
    data.shift_remove("files");
    data.shift_remove("state");
    reject_extra_fields(&data)?;
    normalise_lists(&mut raw);
    let errors = validate_raw(&raw, ctx);
    if !errors.is_empty() {
        return Err(DomainError::invalid_image_data(errors));
    }
    into_record(raw)
}

/// Step 2–3: move the manifest fields from the body into a new raw record.
/// Everything consumed is removed from `data`, so what remains is "extra".
fn copy_fields(data: &mut Map<String, Value>) -> Map<String, Value> {
    let mut raw = Map::new();
    for key in BASE_FIELDS {
        if let Some(v) = data.shift_remove(key) {
            raw.insert(key.into(), v);
        }
    }
    // `data.public || false`, `data.disabled || false`.
    for key in ["public", "disabled"] {
        let v = data.shift_remove(key).filter(is_truthy);
        raw.insert(key.into(), v.unwrap_or(Value::Bool(false)));
    }
    raw.insert("activated".into(), Value::Bool(false));
    raw.insert("state".into(), Value::from("unactivated"));
    for key in COPIED_WHEN_TRUTHY {
        if let Some(v) = data.shift_remove(key).filter(is_truthy) {
            raw.insert(key.into(), v);
        }
    }
    for key in COPIED_WHEN_PRESENT {
        if let Some(v) = data.shift_remove(key) {
            raw.insert(key.into(), v);
        }
    }
    // For other types these keys stay in `data` and are "extra parameters".
    if raw.get("type").and_then(Value::as_str) == Some("zvol") {
        for key in ZVOL_FIELDS {
            if let Some(v) = data.shift_remove(key) {
                raw.insert(key.into(), v);
            }
        }
        // `Number(data.image_size)`: missing → NaN → Invalid "NaN" (original).
        let size = data.shift_remove("image_size");
        let n = size.as_ref().map_or(f64::NAN, js::to_number);
        raw.insert("image_size".into(), number_or_nan_marker(n));
    }
    raw
}

/// Step 4: uuid (and for imports `published_at`, `urn`).
fn take_identity(
    data: &mut Map<String, Value>,
    raw: &mut Map<String, Value>,
    kind: BuildKind,
    new_uuid: Uuid,
) -> Result<(), DomainError> {
    if kind == BuildKind::Create {
        raw.insert("uuid".into(), Value::String(new_uuid.to_string()));
        return Ok(());
    }
    let Some(uuid) = data.shift_remove("uuid").filter(is_truthy) else {
        return Err(DomainError::invalid_parameter(
            "missing \"uuid\"",
            vec![FieldError::missing("uuid")],
        ));
    };
    raw.insert("uuid".into(), uuid);
    // A falsy published_at/urn is not consumed: it ends up an extra
    // parameter (original behaviour), except that any non-string
    // published_at is rejected here (spec: "must be a string").
    match data.get("published_at") {
        Some(Value::String(s)) if !s.is_empty() => move_key(data, raw, "published_at"),
        Some(Value::String(_)) | None => {}
        Some(_) => {
            return Err(DomainError::invalid_parameter(
                "invalid \"published_at\"",
                vec![FieldError::invalid("published_at")],
            ))
        }
    }
    if data.get("urn").is_some_and(is_truthy) {
        move_key(data, raw, "urn");
    }
    Ok(())
}

fn move_key(from: &mut Map<String, Value>, to: &mut Map<String, Value>, key: &str) {
    if let Some(v) = from.shift_remove(key) {
        to.insert(key.into(), v);
    }
}

/// Step 5: `invalid extra parameters: "a", "b"` in body key order.
fn reject_extra_fields(data: &Map<String, Value>) -> Result<(), DomainError> {
    if data.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = data.keys().map(|k| format!("\"{k}\"")).collect();
    Err(DomainError::invalid_parameter(
        format!("invalid extra parameters: {}", quoted.join(", ")),
        data.keys().map(FieldError::invalid).collect(),
    ))
}

/// Turn a validated raw map into the typed record: coerce the values the
/// original stores loosely (`"true"` booleans, `Number(v)`, numeric strings
/// for `image_size`) and drop values the original treats as absent.
pub(crate) fn into_record(mut raw: Map<String, Value>) -> Result<ImageRecord, DomainError> {
    normalise_lists(&mut raw);
    for key in ["disabled", "activated", "public", "generate_passwords"] {
        if let Some(b) = raw.get(key).and_then(bool_like) {
            raw.insert(key.into(), Value::Bool(b));
        }
    }
    for key in ["v", "image_size"] {
        if let Some(v) = raw.get_mut(key) {
            coerce_number(v);
        }
    }
    // Falsy icons are ignored by the original; null errors mean "none".
    if raw.get("icon").is_some_and(|v| !is_truthy(v)) {
        raw.shift_remove("icon");
    }
    ImageRecord::from_raw_map(raw).map_err(|e| {
        // Unreachable when validation is complete; never panic on it.
        DomainError::invalid_image_data(vec![FieldError::invalid_msg(
            "manifest",
            format!("image data cannot be stored: {e}"),
        )])
    })
}

/// `Number(x)` in place; integers already stored as integers stay untouched.
fn coerce_number(v: &mut Value) {
    if v.is_i64() || v.is_u64() {
        return;
    }
    if let Some(n) = json_number(js::to_number(v)) {
        *v = Value::Number(n);
    }
}

// ---- UpdateImage (api.md §5.13)

/// Fields anyone (owner or operator) may update.
const MUTABLE_FIELDS: [&str; 21] = [
    "owner",
    "name",
    "version",
    "description",
    "homepage",
    "eula",
    "public",
    "os",
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

/// Operator-only fields, in the fixed order their errors are reported.
const OPERATOR_FIELDS: [&str; 7] = [
    "state",
    "error",
    "billing_tags",
    "traits",
    "files",
    "origin",
    "uuid",
];

/// Only changeable while the image is unactivated (docker build).
const UNACTIVATED_ONLY_FIELDS: [&str; 3] = ["files", "origin", "uuid"];

/// UpdateImage (api.md §5.13): check the body, merge it into the current
/// record, re-validate and return the new record.
pub fn apply_update(
    current: &ImageRecord,
    body: Option<&Value>,
    operator: bool,
    ctx: &RuleContext,
) -> Result<ImageRecord, DomainError> {
    // Arrays are answered like a missing body (clients send objects).
    let Some(Value::Object(data)) = body else {
        return Err(DomainError::validation(
            "missing request body",
            vec![FieldError::missing("body")],
        ));
    };
    if data.is_empty() {
        return Err(DomainError::validation(
            "invalid image update data: no parameters provided",
            Vec::new(),
        ));
    }
    let errors = update_key_errors(current, data, operator);
    if !errors.is_empty() {
        return Err(DomainError::validation(
            format!("invalid image update data: {}", join_fields(&errors)),
            errors,
        ));
    }
    let mut raw = current.to_raw_map();
    merge_update(&mut raw, data);
    normalise_lists(&mut raw);
    let errors = validate_raw(&raw, ctx);
    if !errors.is_empty() {
        return Err(DomainError::invalid_image_data(errors));
    }
    into_record(raw)
}

fn not_allowed(field: &str, message: &str) -> FieldError {
    FieldError::with_message(field, FieldCode::NotAllowed, message)
}

/// Steps 3–6: not-updatable keys in body order, then the operator /
/// unactivated / files errors in the fixed `OPERATOR_FIELDS` order.
fn update_key_errors(
    current: &ImageRecord,
    data: &Map<String, Value>,
    operator: bool,
) -> Vec<FieldError> {
    let mut errs: Vec<FieldError> = data
        .keys()
        .filter(|k| !MUTABLE_FIELDS.contains(&k.as_str()) && !OPERATOR_FIELDS.contains(&k.as_str()))
        .map(|k| not_allowed(k, "Parameter cannot be updated"))
        .collect();
    for key in OPERATOR_FIELDS
        .into_iter()
        .filter(|k| data.contains_key(*k))
    {
        if !operator {
            errs.push(not_allowed(key, "Can only be updated by operators"));
        } else if UNACTIVATED_ONLY_FIELDS.contains(&key) && current.activated {
            errs.push(not_allowed(
                key,
                "Can only be updated on unactivated images",
            ));
        } else if key == "files" {
            errs.extend(files_update_errors(current, &data[key]));
        }
    }
    errs
}

/// Only `digest` / `uncompressedDigest` of `files[0]` may differ. A body
/// without a usable `files[0]`, or an image without a file, cannot be
/// merged (the original crashes there).
fn files_update_errors(current: &ImageRecord, files: &Value) -> Vec<FieldError> {
    let error = || {
        not_allowed(
            "files",
            "Can only update \"digest\" or \"uncompressedDigest\" fields on files",
        )
    };
    let body_file = files
        .as_array()
        .and_then(|l| l.first())
        .and_then(Value::as_object);
    let current_file = current
        .to_raw_map()
        .get("files")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .and_then(Value::as_object)
        .cloned();
    let (Some(body_file), Some(current_file)) = (body_file, current_file) else {
        return vec![error()];
    };
    body_file
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "digest" | "uncompressedDigest"))
        .filter(|(k, v)| !js_strict_equal(v, current_file.get(k.as_str())))
        // One error per differing key, as the original.
        .map(|_| error())
        .collect()
}

/// `a === b` for a JSON value against a possibly-undefined one.
fn js_strict_equal(a: &Value, b: Option<&Value>) -> bool {
    match (a, b) {
        (Value::Null, Some(Value::Null)) => true,
        (Value::Bool(x), Some(Value::Bool(y))) => x == y,
        (Value::Number(x), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Value::String(x), Some(Value::String(y))) => x == y,
        // Objects and arrays are compared by identity in JS: never equal.
        _ => false,
    }
}

/// Merge: null deletes, other values replace wholesale; `files` only
/// contributes truthy `digest` / `uncompressedDigest` to `files[0]`.
fn merge_update(raw: &mut Map<String, Value>, data: &Map<String, Value>) {
    for (key, value) in data {
        if key == "files" {
            merge_file_digests(raw, value);
        } else if value.is_null() {
            raw.shift_remove(key);
        } else {
            raw.insert(key.clone(), value.clone());
        }
    }
}

fn merge_file_digests(raw: &mut Map<String, Value>, files: &Value) {
    let Some(body_file) = files
        .as_array()
        .and_then(|l| l.first())
        .and_then(Value::as_object)
    else {
        return;
    };
    let Some(file0) = raw
        .get_mut("files")
        .and_then(Value::as_array_mut)
        .and_then(|l| l.first_mut())
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for key in ["digest", "uncompressedDigest"] {
        if let Some(v) = body_file.get(key).filter(|v| is_truthy(v)) {
            file0.insert(key.into(), v.clone());
        }
    }
}

// ---- ACL endpoints (api.md §5.15, §5.16)

/// AddImageAcl / RemoveImageAcl body: an array of lower-case UUID strings.
/// Returns the UUIDs de-duplicated, in order.
pub fn parse_acl_body(body: Option<&Value>) -> Result<Vec<Uuid>, DomainError> {
    let Some(list @ Value::Array(items)) = body else {
        return Err(DomainError::invalid_parameter(
            "invalid image \"acl\" (not an array)",
            vec![FieldError::invalid("acl")],
        ));
    };
    if let Some(err) = acl_error(list) {
        let message = err.message.unwrap_or_default();
        return Err(DomainError::invalid_parameter(
            message,
            vec![FieldError::invalid("acl")],
        ));
    }
    let mut out: Vec<Uuid> = Vec::with_capacity(items.len());
    for uuid in items
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|s| Uuid::parse_str(s).ok())
    {
        if !out.contains(&uuid) {
            out.push(uuid);
        }
    }
    Ok(out)
}
