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
    // `blob_key` is internal (where the bytes live): a client-supplied icon
    // must never point at another blob.
    if let Some(Value::Object(icon)) = raw.get_mut("icon") {
        icon.shift_remove("blob_key");
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
pub const MUTABLE_FIELDS: [&str; 21] = [
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::image::fixtures::sample;
    use crate::mode::Mode;
    use crate::state::ImageState;
    use serde_json::json;

    const OWNER: &str = "930896af-bf8c-48d4-885c-6573a94b1853";
    const UUID: &str = "e70502b0-705e-498e-a810-53a03980eabf";
    const NEW: Uuid = Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888);

    fn ctx(mode: Mode) -> RuleContext {
        RuleContext {
            mode,
            channels_enabled: false,
        }
    }

    fn dc() -> RuleContext {
        ctx(Mode::Dc)
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn body(extra: Value) -> Map<String, Value> {
        let mut m = obj(
            json!({"name": "foo", "version": "1.0.0", "type": "zone-dataset",
            "os": "smartos", "owner": OWNER}),
        );
        m.extend(obj(extra));
        m
    }

    fn create(b: Map<String, Value>, c: &RuleContext) -> Result<ImageRecord, DomainError> {
        build_record(b, BuildKind::Create, NEW, c)
    }

    fn import(b: Map<String, Value>, c: &RuleContext) -> Result<ImageRecord, DomainError> {
        build_record(b, BuildKind::Import, NEW, c)
    }

    /// `(message, [(field, code, message)])` of an error.
    fn parts(err: DomainError) -> (String, Vec<(String, &'static str, String)>) {
        let (message, errors) = match err {
            DomainError::ValidationFailed { message, errors } => (format!("VF {message}"), errors),
            DomainError::InvalidParameter { message, errors } => (format!("IP {message}"), errors),
            other => (other.to_string(), Vec::new()),
        };
        let errors = errors
            .into_iter()
            .map(|e| (e.field, e.code.as_str(), e.message.unwrap_or_default()))
            .collect();
        (message, errors)
    }

    fn err_message(r: Result<ImageRecord, DomainError>) -> String {
        parts(r.unwrap_err()).0
    }

    #[test]
    fn create_defaults() {
        let rec = create(body(json!({})), &dc()).unwrap();
        assert_eq!(rec.v, serde_json::Number::from(2));
        assert_eq!(rec.uuid, NEW);
        assert_eq!(rec.owner.to_string(), OWNER);
        assert_eq!(rec.state, ImageState::Unactivated);
        assert!(!rec.activated && !rec.disabled && !rec.public);
        assert!(rec.acl.is_empty() && rec.files.is_empty());
        assert_eq!(rec.published_at, None);
    }

    #[test]
    fn create_normalises_values() {
        let rec = create(
            body(json!({"v": "2", "public": "true", "disabled": "false", "generate_passwords": "true",
                "acl": OWNER, "billing_tags": "promo", "description": "", "tags": {"a": 1}})),
            &dc(),
        )
        .unwrap();
        assert_eq!(rec.v, serde_json::Number::from(2));
        assert!(rec.public && !rec.disabled);
        assert_eq!(rec.generate_passwords, Some(true));
        assert_eq!(rec.acl, vec![Uuid::parse_str(OWNER).unwrap()]);
        assert_eq!(rec.billing_tags, Some(vec!["promo".to_string()]));
        assert_eq!(rec.description, None);
        assert_eq!(rec.tags, Some(obj(json!({"a": 1}))));
        // v: 1 is accepted as-is (original quirk).
        assert_eq!(
            create(body(json!({"v": 1})), &dc()).unwrap().v,
            serde_json::Number::from(1)
        );
    }

    #[test]
    fn create_drops_files_and_state() {
        let rec = create(
            body(json!({"files": [{"sha1": "x"}], "state": "active"})),
            &dc(),
        )
        .unwrap();
        assert!(rec.files.is_empty());
        assert_eq!(rec.state, ImageState::Unactivated);
    }

    #[test]
    fn create_rejects_extra_parameters_in_body_order() {
        let (message, errors) = parts(
            create(
                body(json!({"zeta": 1, "uuid": UUID, "published_at": "x", "nic_driver": "virtio", "urn": "u"})),
                &dc(),
            )
            .unwrap_err(),
        );
        assert_eq!(
            message,
            "IP invalid extra parameters: \"zeta\", \"uuid\", \"published_at\", \"nic_driver\", \"urn\""
        );
        assert_eq!(errors[0], ("zeta".into(), "Invalid", String::new()));
        assert_eq!(errors.len(), 5);
    }

    #[test]
    fn create_validation_failures() {
        assert_eq!(
            err_message(create(body(json!({"name": 42})), &dc())),
            "VF invalid image data: name"
        );
        assert_eq!(
            err_message(create(body(json!({"name": "!", "version": ""})), &dc())),
            "VF invalid image data: name, version"
        );
        let (message, errors) = parts(create(body(json!({})), &ctx(Mode::Public)).unwrap_err());
        assert_eq!(message, "VF invalid image data: public");
        assert_eq!(
            errors[0].2,
            "private images are not allowed on a public Images API"
        );
        let (message, errors) = parts(create(body(json!({"icon": true})), &dc()).unwrap_err());
        assert_eq!(message, "VF invalid image data: icon");
        assert_eq!(
            errors[0].2,
            "invalid image \"icon\": icon missing \"contentMD5\" field"
        );
        assert_eq!(
            err_message(create(body(json!({"v": "abc"})), &dc())),
            "VF invalid image data: v"
        );
        let no_owner = {
            let mut b = body(json!({}));
            b.shift_remove("owner");
            b
        };
        assert_eq!(
            parts(create(no_owner, &dc()).unwrap_err()).1,
            vec![("owner".into(), "MissingParameter", String::new())]
        );
    }

    #[test]
    fn create_never_takes_a_client_blob_key() {
        let icon = json!({"contentMD5": "m", "size": 1, "contentType": "image/png", "sha1": "s",
            "mtime": "t", "stor": "local", "blob_key": "other/file0"});
        let rec = create(body(json!({ "icon": icon })), &dc()).unwrap();
        assert_eq!(rec.icon.and_then(|i| i.blob_key), None);
    }

    #[test]
    fn create_spec_ordering_example() {
        let b =
            body(json!({"requirements": {"foo": 1, "ssh_key": "x", "min_platform": {"7.0": "x"}}}));
        assert_eq!(
            err_message(create(b, &dc())),
            "VF invalid image data: requirements.ssh_key, requirements.min_platform, foo"
        );
    }

    #[test]
    fn create_zvol() {
        let zvol = json!({"type": "zvol", "nic_driver": "virtio", "disk_driver": "virtio", "cpu_type": "host"});
        let (message, errors) = parts(create(body(zvol.clone()), &dc()).unwrap_err());
        assert_eq!(message, "VF invalid image data: image_size");
        assert_eq!(errors[0].1, "Invalid");
        assert_eq!(
            errors[0].2,
            "invalid image image_size: \"NaN\" (must be a positive integer)"
        );
        let mut ok = body(zvol);
        ok.insert("image_size".into(), json!("16384"));
        let rec = create(ok, &dc()).unwrap();
        assert_eq!(rec.image_size, Some(serde_json::Number::from(16384)));
        assert_eq!(rec.nic_driver.as_deref(), Some("virtio"));
    }

    #[test]
    fn import_identity_rules() {
        let b = body(
            json!({"v": 2, "uuid": UUID, "published_at": "2013-01-08T20:21:17.932Z",
            "urn": "sdc:sdc:foo:1.0.0", "state": "active", "files": []}),
        );
        let rec = import(b, &dc()).unwrap();
        assert_eq!(rec.uuid.to_string(), UUID);
        assert_eq!(
            rec.published_at.as_deref(),
            Some("2013-01-08T20:21:17.932Z")
        );
        assert_eq!(rec.urn.as_deref(), Some("sdc:sdc:foo:1.0.0"));
        assert_eq!(rec.state, ImageState::Unactivated);

        let (message, errors) = parts(import(body(json!({"v": 2})), &dc()).unwrap_err());
        assert_eq!(message, "IP missing \"uuid\"");
        assert_eq!(
            errors,
            vec![("uuid".into(), "MissingParameter", String::new())]
        );

        let (message, errors) = parts(
            import(
                body(json!({"v": 2, "uuid": UUID, "published_at": 42})),
                &dc(),
            )
            .unwrap_err(),
        );
        assert_eq!(message, "IP invalid \"published_at\"");
        assert_eq!(
            errors,
            vec![("published_at".into(), "Invalid", String::new())]
        );

        let (message, errors) = parts(import(body(json!({"uuid": UUID})), &dc()).unwrap_err());
        assert_eq!(message, "VF invalid image data: v");
        assert_eq!(
            errors,
            vec![("v".into(), "MissingParameter", String::new())]
        );

        assert_eq!(
            err_message(import(
                body(json!({"v": 2, "uuid": UUID, "published_at": "2013"})),
                &dc()
            )),
            "VF invalid image data: published_at"
        );
    }

    const DS_NODEJS: &str = include_str!("../tests/fixtures/fauxnodejs-1.4.0.dsmanifest");
    const DS_UBUNTU: &str = include_str!("../tests/fixtures/fauxubuntu.dsmanifest");

    #[test]
    fn import_legacy_manifest_in_dc_mode() {
        let rec = import(serde_json::from_str(DS_NODEJS).unwrap(), &dc()).unwrap();
        assert_eq!(rec.uuid.to_string(), "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc");
        assert_eq!(
            rec.owner.to_string(),
            "91ba0e64-2547-11e2-a972-df579e5fddb3"
        );
        assert!(rec.public && !rec.disabled && !rec.activated);
        assert_eq!(rec.state, ImageState::Unactivated);
        assert_eq!(rec.urn.as_deref(), Some("sdc:sdc:nodejs:1.4.0"));
        assert_eq!(
            rec.published_at.as_deref(),
            Some("2012-10-11T14:40:57.936Z")
        );
        assert_eq!(rec.generate_passwords, Some(true));
        assert_eq!(
            rec.inherited_directories,
            Some(vec!["/opt/node_service".to_string()])
        );
        assert!(rec.files.is_empty());

        let zvol = import(serde_json::from_str(DS_UBUNTU).unwrap(), &dc()).unwrap();
        assert_eq!(zvol.image_size, Some(serde_json::Number::from(16384)));
        assert_eq!(zvol.cpu_type.as_deref(), Some("qemu64"));
    }

    #[test]
    fn legacy_manifest_with_forced_owner_is_not_upgraded() {
        let mut b: Map<String, Value> = serde_json::from_str(DS_NODEJS).unwrap();
        b.insert(
            "owner".into(),
            json!("00000000-0000-0000-0000-000000000000"),
        );
        assert_eq!(
            err_message(import(b, &ctx(Mode::Public))),
            "IP invalid extra parameters: \"creator_uuid\", \"vendor_uuid\", \"creator_name\", \"platform_type\", \"cloud_name\", \"created_at\", \"updated_at\""
        );
    }

    fn update(cur: &ImageRecord, b: Value, operator: bool) -> Result<ImageRecord, DomainError> {
        apply_update(cur, Some(&b), operator, &dc())
    }

    fn with_file(activated: bool) -> ImageRecord {
        let mut rec = sample();
        rec.activated = activated;
        rec.state = ImageState::derive(activated, false);
        rec.published_at = activated.then(|| "2013-01-08T20:21:17.932Z".to_string());
        rec.files = vec![crate::ImageFile {
            sha1: "abc".into(),
            size: 42,
            compression: "gzip".into(),
            dataset_guid: None,
            content_md5: "md5".into(),
            sha256: None,
            mtime: "2013-01-08T20:21:17.932Z".into(),
            stor: "local".into(),
            digest: None,
            uncompressed_digest: None,
            blob_key: None,
        }];
        rec
    }

    #[test]
    fn update_body_shape() {
        let cur = sample();
        for b in [
            None,
            Some(json!(null)),
            Some(json!("str")),
            Some(json!([1, 2])),
        ] {
            let (message, errors) = parts(apply_update(&cur, b.as_ref(), true, &dc()).unwrap_err());
            assert_eq!(message, "VF missing request body");
            assert_eq!(
                errors,
                vec![("body".into(), "MissingParameter", String::new())]
            );
        }
        let (message, errors) = parts(update(&cur, json!({}), true).unwrap_err());
        assert_eq!(
            message,
            "VF invalid image update data: no parameters provided"
        );
        assert!(errors.is_empty());
    }

    #[test]
    fn update_key_error_order() {
        let cur = sample();
        let (message, errors) = parts(
            update(
                &cur,
                json!({"billing_tags": ["a"], "state": "failed"}),
                false,
            )
            .unwrap_err(),
        );
        assert_eq!(message, "VF invalid image update data: state, billing_tags");
        assert_eq!(errors[0].2, "Can only be updated by operators");
        let (message, errors) = parts(
            update(
                &cur,
                json!({"v": 3, "name": "ok", "type": "zvol", "uuid": UUID}),
                false,
            )
            .unwrap_err(),
        );
        assert_eq!(message, "VF invalid image update data: v, type, uuid");
        assert_eq!(
            errors[0],
            (
                "v".into(),
                "NotAllowed",
                "Parameter cannot be updated".into()
            )
        );
        let active = with_file(true);
        let (message, errors) =
            parts(update(&active, json!({"uuid": UUID, "origin": OWNER}), true).unwrap_err());
        assert_eq!(message, "VF invalid image update data: origin, uuid");
        assert_eq!(errors[0].2, "Can only be updated on unactivated images");
    }

    #[test]
    fn update_replaces_and_deletes() {
        let mut cur = sample();
        cur.homepage = Some("http://a".into());
        cur.tags = Some(obj(json!({"a": 1, "b": 2})));
        let rec = update(
            &cur,
            json!({"homepage": null, "tags": {"c": 3}, "acl": OWNER,
            "requirements": {"min_ram": 512}}),
            false,
        )
        .unwrap();
        assert_eq!(rec.homepage, None);
        assert_eq!(rec.tags, Some(obj(json!({"c": 3}))));
        assert_eq!(rec.acl, vec![Uuid::parse_str(OWNER).unwrap()]);
        assert_eq!(rec.requirements, Some(json!({"min_ram": 512})));
        let rec = update(&cur, json!({"acl": null}), false).unwrap();
        assert!(rec.acl.is_empty());
    }

    #[test]
    fn update_revalidates_merged_record() {
        let cur = sample();
        let public = ctx(Mode::Public);
        let (message, errors) =
            parts(apply_update(&cur, Some(&json!({"public": false})), false, &public).unwrap_err());
        assert_eq!(message, "VF invalid image data: public");
        assert_eq!(
            errors[0].2,
            "private images are not allowed on a public Images API"
        );
        assert_eq!(
            err_message(update(&cur, json!({"name": null}), false)),
            "VF invalid image data: name"
        );
    }

    #[test]
    fn operator_updates() {
        let cur = with_file(false);
        let rec = update(
            &cur,
            json!({"state": "failed", "error": {"message": "m"}}),
            true,
        )
        .unwrap();
        assert_eq!(rec.state, ImageState::Failed);
        assert!(!rec.activated);
        let rec = update(&cur, json!({"uuid": UUID}), true).unwrap();
        assert_eq!(rec.uuid.to_string(), UUID);
        let rec = update(
            &cur,
            json!({"files": [{"sha1": "abc", "digest": "sha256:1", "uncompressedDigest": "sha256:2"}]}),
            true,
        )
        .unwrap();
        assert_eq!(rec.files[0].digest.as_deref(), Some("sha256:1"));
        assert_eq!(
            rec.files[0].uncompressed_digest.as_deref(),
            Some("sha256:2")
        );
        assert_eq!(rec.files[0].sha1, "abc");
        assert_eq!(
            err_message(update(&cur, json!({"state": "bogus"}), true)),
            "VF invalid image data: state"
        );
    }

    #[test]
    fn file_updates_limited_to_digests() {
        let files_msg = "Can only update \"digest\" or \"uncompressedDigest\" fields on files";
        let cur = with_file(false);
        let (message, errors) = parts(
            update(
                &cur,
                json!({"files": [{"sha1": "other", "size": 42}]}),
                true,
            )
            .unwrap_err(),
        );
        assert_eq!(message, "VF invalid image update data: files");
        assert_eq!(errors[0], ("files".into(), "NotAllowed", files_msg.into()));
        for bad in [json!([]), json!(null), json!("x"), json!([1])] {
            assert_eq!(
                err_message(update(&cur, json!({ "files": bad }), true)),
                "VF invalid image update data: files"
            );
        }
        // Image without a file: never panic, NotAllowed.
        assert_eq!(
            err_message(update(&sample(), json!({"files": [{"digest": "d"}]}), true)),
            "VF invalid image update data: files"
        );
        assert_eq!(
            err_message(update(&cur, json!({"files": [{"digest": 5}]}), true)),
            "VF invalid image data: files"
        );
    }

    #[test]
    fn acl_bodies() {
        let (message, errors) = parts(parse_acl_body(None).map(|_| sample()).unwrap_err());
        assert_eq!(message, "IP invalid image \"acl\" (not an array)");
        assert_eq!(errors, vec![("acl".into(), "Invalid", String::new())]);
        assert_eq!(
            parts(
                parse_acl_body(Some(&json!({"a": 1})))
                    .map(|_| sample())
                    .unwrap_err()
            )
            .0,
            "IP invalid image \"acl\" (not an array)"
        );
        let (message, errors) = parts(
            parse_acl_body(Some(&json!([OWNER, "nope", 5])))
                .map(|_| sample())
                .unwrap_err(),
        );
        assert_eq!(
            message,
            "IP invalid image \"acl\" (item 1 is not a UUID): nope"
        );
        assert_eq!(errors, vec![("acl".into(), "Invalid", String::new())]);
        assert_eq!(
            parse_acl_body(Some(&json!([OWNER, UUID, OWNER]))).unwrap(),
            vec![
                Uuid::parse_str(OWNER).unwrap(),
                Uuid::parse_str(UUID).unwrap()
            ]
        );
        assert!(parse_acl_body(Some(&json!([]))).unwrap().is_empty());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod proptests {
    use super::*;
    use crate::mode::Mode;
    use proptest::prelude::*;

    const KEYS: [&str; 40] = [
        "v",
        "uuid",
        "owner",
        "name",
        "version",
        "description",
        "homepage",
        "eula",
        "icon",
        "state",
        "error",
        "disabled",
        "activated",
        "public",
        "published_at",
        "type",
        "os",
        "origin",
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
        "urn",
        "creator_uuid",
        "min_platform",
        "networks",
        "bootrom",
        "brand",
        "sha1",
        "digest",
    ];

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(KEYS.to_vec()).prop_map(String::from),
            1 => "[a-z_]{1,6}",
        ]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            prop::sample::select(vec![
                "true",
                "false",
                "zvol",
                "zone-dataset",
                "lxd",
                "smartos",
                "null",
                "creating",
                "2013-01-08T20:21:17Z",
                "20130308T102805Z",
                "bhyve",
                "bios",
                "gzip",
                "16384",
                "e70502b0-705e-498e-a810-53a03980eabf",
                "NaN",
                "",
                "0x1f",
                "Infinity",
            ])
            .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::vec((key(), value()), 0..14).prop_map(|kv| kv.into_iter().collect())
    }

    fn rule_context() -> impl Strategy<Value = RuleContext> {
        (
            prop::sample::select(vec![Mode::Dc, Mode::Public, Mode::Private]),
            any::<bool>(),
        )
            .prop_map(|(mode, channels_enabled)| RuleContext {
                mode,
                channels_enabled,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// (a) Arbitrary input never panics, and whatever is accepted
        /// re-validates cleanly from its stored form.
        #[test]
        fn arbitrary_bodies_never_panic(b in body(), ctx in rule_context(), import in any::<bool>()) {
            let _ = validate_raw(&b, &ctx);
            let kind = if import { BuildKind::Import } else { BuildKind::Create };
            if let Ok(rec) = build_record(b.clone(), kind, Uuid::from_u128(7), &ctx) {
                prop_assert_eq!(validate_raw(&rec.to_raw_map(), &ctx), vec![]);
            }
            let mut current = crate::image::fixtures::sample();
            current.files.clear();
            let as_value = Value::Object(b);
            for operator in [true, false] {
                if let Ok(rec) = apply_update(&current, Some(&as_value), operator, &ctx) {
                    prop_assert_eq!(validate_raw(&rec.to_raw_map(), &ctx), vec![]);
                }
            }
        }

        #[test]
        fn arbitrary_values_never_panic(v in value(), ctx in rule_context()) {
            let current = crate::image::fixtures::sample();
            let _ = apply_update(&current, Some(&v), true, &ctx);
            let _ = parse_acl_body(Some(&v));
            if let Value::Object(m) = v {
                let _ = validate_raw(&m, &ctx);
                let _ = crate::upgrade::upgrade_legacy(m);
            }
        }

        /// (b) Valid manifests: build → raw → record is the identity and the
        /// raw form validates.
        #[test]
        fn valid_manifests_round_trip(
            name in "[A-Za-z0-9._/ -]{1,40}",
            version in "[A-Za-z0-9._/+-]{1,20}",
            ty in prop::sample::select(vec!["zone-dataset", "zvol", "lx-dataset", "lxd", "docker", "other"]),
            os in prop::sample::select(vec!["smartos", "linux", "windows", "bsd", "illumos", "other"]),
            owner in any::<u128>(),
            acl in prop::collection::vec(any::<u128>(), 0..3),
            description in prop::option::of("[ -~]{0,60}"),
            tags in prop::collection::btree_map("[a-z:]{1,8}", leaf(), 0..4),
            min_ram in prop::option::of(1u32..65536),
            platform in prop::option::of((2012u32..2100, 1u32..13, 1u32..32)),
            generate_passwords in prop::option::of(any::<bool>()),
            image_size in 1u32..1_000_000,
            mode in prop::sample::select(vec![Mode::Dc, Mode::Public, Mode::Private]),
            channels_enabled in any::<bool>(),
        ) {
            let mut b = Map::new();
            b.insert("name".into(), Value::from(name.clone()));
            b.insert("version".into(), Value::from(version));
            b.insert("type".into(), Value::from(ty));
            b.insert("os".into(), Value::from(os));
            b.insert("owner".into(), Value::from(Uuid::from_u128(owner).to_string()));
            b.insert("public".into(), Value::Bool(mode == Mode::Public));
            b.insert(
                "acl".into(),
                Value::Array(acl.iter().map(|u| Value::from(Uuid::from_u128(*u).to_string())).collect()),
            );
            if let Some(d) = description {
                b.insert("description".into(), Value::from(d));
            }
            b.insert("tags".into(), Value::Object(tags.into_iter().collect()));
            let mut reqs = Map::new();
            if let Some(r) = min_ram {
                reqs.insert("min_ram".into(), Value::from(r));
            }
            if let Some((y, m, d)) = platform {
                reqs.insert(
                    "min_platform".into(),
                    serde_json::json!({"7.0": format!("{y:04}{m:02}{d:02}T102805Z")}),
                );
            }
            b.insert("requirements".into(), Value::Object(reqs));
            if let Some(g) = generate_passwords {
                b.insert("generate_passwords".into(), Value::Bool(g));
            }
            if ty == "zvol" {
                for k in ["nic_driver", "disk_driver", "cpu_type"] {
                    b.insert(k.into(), Value::from("virtio"));
                }
                b.insert("image_size".into(), Value::from(image_size));
            }
            let ctx = RuleContext { mode, channels_enabled };
            if channels_enabled && mode != Mode::Dc {
                b.insert("channels".into(), serde_json::json!(["dev"]));
            }
            let rec = build_record(b, BuildKind::Create, Uuid::from_u128(9), &ctx);
            prop_assert!(rec.is_ok(), "{:?}", rec);
            let rec = rec.unwrap();
            prop_assert_eq!(&rec.name, &name);
            let raw = rec.to_raw_map();
            prop_assert_eq!(validate_raw(&raw, &ctx), vec![]);
            prop_assert_eq!(ImageRecord::from_raw_map(raw).ok(), Some(rec));
        }
    }
}
