//! Legacy v1 (DSAPI) manifest upgrade (manifest.md §10).
//!
//! Mirrors node-imgmanifest's `upgradeManifest` + `upgradeTo2`. Every
//! situation in which the original throws (and IMGAPI swallows the error)
//! makes [`upgrade_legacy`] return the body unchanged, so that validation
//! reports what is wrong with it.

use serde_json::{Map, Value};

use crate::serialize::is_truthy;
use crate::validate::{is_lower_uuid, js};

/// Current manifest version.
const V: f64 = 2.0;

/// DSAPI-only keys the upgrade drops.
const DROPPED_KEYS: [&str; 11] = [
    "creator_uuid",
    "vendor_uuid",
    "creator_name",
    "cloud_name",
    "creator_admin",
    "restricted_to_uuid",
    "owner_uuid",
    "platform_type",
    "created_at",
    "updated_at",
    "_url",
];

/// v1 (DSAPI) → v2 upgrade of manifest.md §10. Returns the body unchanged
/// when the upgrade does not apply or fails (as the original swallows
/// failures).
pub fn upgrade_legacy(body: Map<String, Value>) -> Map<String, Value> {
    if !needs_upgrade(&body) {
        return body;
    }
    upgrade_to_2(&body).unwrap_or(body)
}

/// `upgradeManifest`: a falsy `v` with a `creator_uuid` means v1; otherwise
/// `Number(v) < 2` runs the upgrader (which then needs `creator_uuid`).
fn needs_upgrade(body: &Map<String, Value>) -> bool {
    let has_creator = body.get("creator_uuid").is_some_and(is_truthy);
    match body.get("v").filter(|v| is_truthy(v)) {
        None => has_creator,
        // NaN fails `< 2` and finds no upgrader in the original: unchanged.
        Some(v) => js::to_number(v) < V && has_creator,
    }
}

/// `upgradeTo2` on a copy; `None` wherever the original throws.
fn upgrade_to_2(old: &Map<String, Value>) -> Option<Map<String, Value>> {
    if !old
        .get("uuid")
        .and_then(Value::as_str)
        .is_some_and(is_lower_uuid)
    {
        return None;
    }
    // `assert.ok(manifest.owner === undefined)`: JSON null counts as set.
    if old.contains_key("owner") {
        return None;
    }
    let mut m = old.clone();
    let creator = m.get("creator_uuid").cloned().filter(is_truthy)?;
    m.insert("owner".into(), creator);
    apply_visibility(&mut m)?;
    apply_disabled(&mut m);
    apply_published_at(&mut m)?;
    upgrade_files(&mut m)?;
    if let Some(size) = m.get_mut("image_size").filter(|v| is_truthy(v)) {
        // IMGAPI-104: image_size should be a number.
        *size = number_or_nan_marker(js::to_number(size));
    }
    for key in DROPPED_KEYS {
        // shift_remove keeps the other keys in body order.
        m.shift_remove(key);
    }
    m.insert("v".into(), Value::from(2));
    Some(m)
}

/// `restricted_to_uuid` → private with that ACL; otherwise public.
fn apply_visibility(m: &mut Map<String, Value>) -> Option<()> {
    match m
        .get("restricted_to_uuid")
        .filter(|v| is_truthy(v))
        .cloned()
    {
        Some(account) => {
            if m.contains_key("public") {
                return None;
            }
            m.insert("public".into(), Value::Bool(false));
            m.insert("acl".into(), Value::Array(vec![account]));
        }
        None => {
            m.insert("public".into(), Value::Bool(true));
        }
    }
    Some(())
}

/// `disabled` as a JS-truthiness boolean (default false) and the derived state.
fn apply_disabled(m: &mut Map<String, Value>) {
    let disabled = m.get("disabled").is_some_and(is_truthy);
    m.insert("disabled".into(), Value::Bool(disabled));
    let state = if disabled { "disabled" } else { "active" };
    m.insert("state".into(), Value::from(state));
}

/// `created_at` fills a missing `published_at`; `…THH:MMZ` gets `:00`.
fn apply_published_at(m: &mut Map<String, Value>) -> Option<()> {
    let has_published = m.get("published_at").is_some_and(is_truthy);
    if let Some(created) = m.get("created_at").filter(|v| is_truthy(v)).cloned() {
        if !has_published {
            m.insert("published_at".into(), created);
        }
    }
    let Some(published) = m.get_mut("published_at").filter(|v| is_truthy(v)) else {
        return Some(());
    };
    if contains_minute_stamp(&js::string(published)) {
        // `.slice(0, -1)` only exists on strings here; anything else throws.
        let s = published.as_str()?;
        let mut fixed: String = s
            .chars()
            .take(s.chars().count().saturating_sub(1))
            .collect();
        fixed.push_str(":00Z");
        *published = Value::String(fixed);
    }
    Some(())
}

/// Unanchored `/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z/`.
fn contains_minute_stamp(s: &str) -> bool {
    const PATTERN: &[u8] = b"dddd-dd-ddTdd:ddZ";
    s.as_bytes().windows(PATTERN.len()).any(|w| {
        w.iter().zip(PATTERN).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        })
    })
}

/// Files: derive a missing `compression` from the path/url extension, drop
/// `path` and `url`.
fn upgrade_files(m: &mut Map<String, Value>) -> Option<()> {
    let Some(files) = m.get_mut("files").filter(|v| is_truthy(v)) else {
        return Some(());
    };
    // `files.forEach` throws for anything but an array.
    let Value::Array(list) = files else {
        return None;
    };
    for file in list.iter_mut() {
        // Non-object entries throw (null) or reach `path.extname(undefined)`.
        let obj = file.as_object_mut()?;
        if !obj.get("compression").is_some_and(is_truthy) {
            let source = obj
                .get("path")
                .filter(|v| is_truthy(v))
                .or_else(|| obj.get("url"));
            // `path.extname` throws on non-strings (including undefined).
            let compression = match extname(source?.as_str()?) {
                ".gz" => "gzip",
                ".bz2" => "bzip2",
                _ => "none",
            };
            obj.insert("compression".into(), Value::from(compression));
        }
        obj.shift_remove("path");
        obj.shift_remove("url");
    }
    Some(())
}

/// Node's posix `path.extname` (enough for `.gz` / `.bz2` detection).
fn extname(p: &str) -> &str {
    let trimmed = p.trim_end_matches('/');
    let base = trimmed.rsplit('/').next().unwrap_or(trimmed);
    match base.rfind('.') {
        Some(i) if i > 0 && base != ".." => &base[i..],
        _ => "",
    }
}

/// `Number(x)` as JSON: NaN/Infinity cannot be stored, so they are kept as
/// their JS string form, which coerces back to the same number later.
pub(crate) fn number_or_nan_marker(n: f64) -> Value {
    json_number(n).map_or_else(|| Value::String(js::number_to_string(n)), Value::Number)
}

/// A finite f64 as a JSON number, integral values as integers.
pub(crate) fn json_number(n: f64) -> Option<serde_json::Number> {
    const MAX_SAFE: f64 = 9_007_199_254_740_992.0;
    if !n.is_finite() {
        return None;
    }
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        // Exact: |n| ≤ 2^53 fits i64 without rounding.
        #[allow(clippy::cast_possible_truncation)]
        return Some(serde_json::Number::from(n as i64));
    }
    serde_json::Number::from_f64(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const DS_MANIFEST: &str = include_str!("../tests/fixtures/fauxnodejs-1.4.0.dsmanifest");
    const IMG_MANIFEST: &str = include_str!("../tests/fixtures/fauxnodejs-1.4.0.imgmanifest");

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn ds() -> Map<String, Value> {
        serde_json::from_str(DS_MANIFEST).unwrap()
    }

    #[test]
    fn fauxnodejs_upgrade_matches_expected_manifest() {
        let up = upgrade_legacy(ds());
        let expected: Map<String, Value> = serde_json::from_str(IMG_MANIFEST).unwrap();
        // billing_tags in the expected manifest come from the original's
        // test setup, not from the upgrade.
        for (k, v) in expected.iter().filter(|(k, _)| *k != "billing_tags") {
            assert_eq!(up.get(k), Some(v), "key {k}");
        }
        assert_eq!(up["disabled"], json!(false));
        assert_eq!(up["state"], json!("active"));
        assert_eq!(up["urn"], json!("sdc:sdc:nodejs:1.4.0"));
        assert_eq!(
            up["files"],
            json!([{"sha1": "d2c40995ff693994e0343a661fb2279794546748",
                    "size": 269634973, "compression": "bzip2"}])
        );
        for k in DROPPED_KEYS {
            assert!(!up.contains_key(k), "{k} dropped");
        }
    }

    #[test]
    fn upgrade_keeps_body_order_then_added_keys() {
        let up = upgrade_legacy(ds());
        let keys: Vec<&str> = up.keys().map(String::as_str).collect();
        assert_eq!(keys[..3], ["name", "version", "type"]);
        assert_eq!(
            keys[keys.len() - 5..],
            ["owner", "public", "disabled", "state", "v"]
        );
    }

    #[test]
    fn no_upgrade_without_creator_uuid_or_with_v2() {
        let body = obj(json!({"uuid": "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc", "name": "x"}));
        assert_eq!(upgrade_legacy(body.clone()), body);
        let mut v2 = ds();
        v2.insert("v".into(), json!(2));
        assert_eq!(upgrade_legacy(v2.clone()), v2);
        let mut nan = ds();
        nan.insert("v".into(), json!("abc"));
        assert_eq!(upgrade_legacy(nan.clone()), nan);
    }

    #[test]
    fn v1_with_creator_uuid_is_upgraded() {
        let mut body = ds();
        body.insert("v".into(), json!(1));
        let up = upgrade_legacy(body);
        assert_eq!(up["v"], json!(2));
        assert!(up.contains_key("owner"));
    }

    #[test]
    fn aborts_on_owner_bad_uuid_or_public_with_restriction() {
        let mut with_owner = ds();
        with_owner.insert(
            "owner".into(),
            json!("00000000-0000-0000-0000-000000000000"),
        );
        assert_eq!(upgrade_legacy(with_owner.clone()), with_owner);

        let mut upper = ds();
        upper.insert("uuid".into(), json!("1FC068B0-13B0-11E2-9F4E-2F3F6A96D9BC"));
        assert_eq!(upgrade_legacy(upper.clone()), upper);

        let mut restricted = ds();
        restricted.insert(
            "restricted_to_uuid".into(),
            json!("91ba0e64-2547-11e2-a972-df579e5fddb3"),
        );
        let up = upgrade_legacy(restricted.clone());
        assert_eq!(up["public"], json!(false));
        assert_eq!(up["acl"], json!(["91ba0e64-2547-11e2-a972-df579e5fddb3"]));
        restricted.insert("public".into(), json!(true));
        assert_eq!(upgrade_legacy(restricted.clone()), restricted);
    }

    #[test]
    fn published_at_and_created_at_rules() {
        let mut body = ds();
        body.shift_remove("published_at");
        body.insert("created_at".into(), json!("2012-10-11T14:40Z"));
        let up = upgrade_legacy(body);
        assert_eq!(up["published_at"], json!("2012-10-11T14:40:00Z"));
        assert!(!up.contains_key("created_at"));
    }

    #[test]
    fn disabled_state_and_image_size() {
        let mut body = ds();
        body.insert("disabled".into(), json!("false"));
        body.insert("image_size".into(), json!("16384"));
        let up = upgrade_legacy(body);
        // JS truthiness: the string "false" is truthy (original behaviour).
        assert_eq!(up["disabled"], json!(true));
        assert_eq!(up["state"], json!("disabled"));
        assert_eq!(up["image_size"], json!(16384));
    }

    #[test]
    fn file_compression_from_extension() {
        let mut body = ds();
        body.insert(
            "files".into(),
            json!([{"url": "http://x/a.zfs.gz", "sha1": "a", "size": 1}]),
        );
        assert_eq!(
            upgrade_legacy(body)["files"][0]["compression"],
            json!("gzip")
        );
        let mut plain = ds();
        plain.insert(
            "files".into(),
            json!([{"path": "a.zfs", "sha1": "a", "size": 1}]),
        );
        assert_eq!(
            upgrade_legacy(plain)["files"][0]["compression"],
            json!("none")
        );
        // No path nor url: path.extname(undefined) throws → unchanged.
        let mut broken = ds();
        broken.insert("files".into(), json!([{"sha1": "a", "size": 1}]));
        assert_eq!(upgrade_legacy(broken.clone()), broken);
        let mut null_entry = ds();
        null_entry.insert("files".into(), json!([null]));
        assert_eq!(upgrade_legacy(null_entry.clone()), null_entry);
    }

    #[test]
    fn extname_like_node() {
        assert_eq!(extname("nodejs-1.4.0.zfs.bz2"), ".bz2");
        assert_eq!(extname("https://h/d/x.zfs.gz"), ".gz");
        assert_eq!(extname(".bz2"), "");
        assert_eq!(extname("noext"), "");
        assert_eq!(extname("dir.d/file"), "");
    }

    #[test]
    fn json_numbers() {
        assert_eq!(json_number(2.0), Some(serde_json::Number::from(2)));
        assert_eq!(json_number(-0.0), Some(serde_json::Number::from(0)));
        assert_eq!(number_or_nan_marker(f64::NAN), json!("NaN"));
        assert_eq!(number_or_nan_marker(1.5), json!(1.5));
    }
}
