//! The API object of an image and its ETag (manifest.md §9).

use serde_json::{Map, Value};

use crate::image::ImageRecord;
use crate::mode::Mode;

/// How an image is serialised for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerializeOptions {
    pub mode: Mode,
    /// Accept-Version ≥ 2 (api.md §1.3): include `channels`.
    pub channels: bool,
    /// `inclAdminFields=true`: include `files[].stor` and, when known,
    /// `files[].sha256` (an extension, docs/uploads.md).
    pub admin_fields: bool,
}

fn truthy_str(s: &Option<String>) -> Option<&String> {
    s.as_ref().filter(|s| !s.is_empty())
}

fn truthy_value(v: &Option<Value>) -> Option<&Value> {
    v.as_ref().filter(|v| is_truthy(v))
}

/// JavaScript truthiness of a JSON value.
pub fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Build the API object with keys in the order of manifest.md §9.
pub fn api_object(img: &ImageRecord, opts: SerializeOptions) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("v".into(), Value::Number(img.v.clone()));
    m.insert("uuid".into(), Value::String(img.uuid.to_string()));
    m.insert("owner".into(), Value::String(img.owner.to_string()));
    m.insert("name".into(), Value::String(img.name.clone()));
    m.insert("version".into(), Value::String(img.version.clone()));
    m.insert("state".into(), Value::String(img.state.as_str().into()));
    m.insert("disabled".into(), Value::Bool(img.disabled));
    m.insert("public".into(), Value::Bool(img.public));
    if let Some(p) = &img.published_at {
        m.insert("published_at".into(), Value::String(p.clone()));
    }
    if img.image_type != "null" {
        m.insert("type".into(), Value::String(img.image_type.clone()));
    }
    if img.os != "null" {
        m.insert("os".into(), Value::String(img.os.clone()));
    }
    let files = img
        .files
        .iter()
        .map(|f| {
            let mut fm = Map::new();
            fm.insert("sha1".into(), Value::String(f.sha1.clone()));
            fm.insert("size".into(), Value::from(f.size));
            fm.insert("compression".into(), Value::String(f.compression.clone()));
            if let Some(g) = &f.dataset_guid {
                fm.insert("dataset_guid".into(), Value::String(g.clone()));
            }
            if opts.admin_fields {
                fm.insert("stor".into(), Value::String(f.stor.clone()));
                if let Some(sha256) = &f.sha256 {
                    fm.insert("sha256".into(), Value::String(sha256.clone()));
                }
            }
            Value::Object(fm)
        })
        .collect();
    m.insert("files".into(), Value::Array(files));
    if !img.acl.is_empty() {
        let acl = img
            .acl
            .iter()
            .map(|u| Value::String(u.to_string()))
            .collect();
        m.insert("acl".into(), Value::Array(acl));
    }
    for (key, val) in [
        ("description", &img.description),
        ("homepage", &img.homepage),
        ("eula", &img.eula),
    ] {
        if let Some(s) = truthy_str(val) {
            m.insert(key.into(), Value::String(s.clone()));
        }
    }
    if img.icon.is_some() {
        m.insert("icon".into(), Value::Bool(true));
    }
    if let Some(s) = truthy_str(&img.urn) {
        m.insert("urn".into(), Value::String(s.clone()));
    }
    if let Some(v) = truthy_value(&img.requirements) {
        m.insert("requirements".into(), v.clone());
    }
    if let Some(v) = truthy_value(&img.users) {
        m.insert("users".into(), v.clone());
    }
    if img.generate_passwords == Some(true) {
        m.insert("generate_passwords".into(), Value::Bool(true));
    }
    if let Some(dirs) = &img.inherited_directories {
        m.insert(
            "inherited_directories".into(),
            Value::Array(dirs.iter().cloned().map(Value::String).collect()),
        );
    }
    if let Some(o) = img.origin {
        m.insert("origin".into(), Value::String(o.to_string()));
    }
    for (key, val) in [
        ("nic_driver", &img.nic_driver),
        ("disk_driver", &img.disk_driver),
        ("cpu_type", &img.cpu_type),
    ] {
        if let Some(s) = truthy_str(val) {
            m.insert(key.into(), Value::String(s.clone()));
        }
    }
    if let Some(n) = &img.image_size {
        if is_truthy(&Value::Number(n.clone())) {
            m.insert("image_size".into(), Value::Number(n.clone()));
        }
    }
    if let Some(tags) = &img.tags {
        m.insert("tags".into(), Value::Object(tags.clone()));
    }
    if opts.mode != Mode::Public {
        if let Some(bt) = img.billing_tags.as_ref().filter(|b| !b.is_empty()) {
            m.insert(
                "billing_tags".into(),
                Value::Array(bt.iter().cloned().map(Value::String).collect()),
            );
        }
        if let Some(tr) = img.traits.as_ref().filter(|t| !t.is_empty()) {
            m.insert("traits".into(), Value::Object(tr.clone()));
        }
    }
    if img.state == crate::ImageState::Failed {
        if let Some(e) = &img.error {
            m.insert("error".into(), e.clone());
        }
    }
    if opts.channels {
        if let Some(chs) = &img.channels {
            m.insert(
                "channels".into(),
                Value::Array(chs.iter().cloned().map(Value::String).collect()),
            );
        }
    }
    m
}

/// ETag: lower-case hex SHA-1 of the compact JSON of the returned object.
/// The caller supplies the hash function so this crate stays dependency-light.
pub fn compact_json(obj: &Map<String, Value>) -> String {
    // Serialising a Map of JSON values cannot fail.
    serde_json::to_string(obj).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fixtures::sample;

    fn opts() -> SerializeOptions {
        SerializeOptions {
            mode: Mode::Public,
            channels: false,
            admin_fields: false,
        }
    }

    #[test]
    fn key_order_and_omissions() {
        let mut img = sample();
        img.description = Some(String::new());
        img.billing_tags = Some(vec!["x".into()]);
        img.generate_passwords = Some(false);
        img.channels = Some(vec!["dev".into()]);
        let obj = api_object(&img, opts());
        let keys: Vec<_> = obj.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "v", "uuid", "owner", "name", "version", "state", "disabled", "public", "type",
                "os", "files"
            ]
        );
        let with_channels = api_object(
            &img,
            SerializeOptions {
                channels: true,
                mode: Mode::Dc,
                ..opts()
            },
        );
        assert!(with_channels.contains_key("channels"));
        assert!(with_channels.contains_key("billing_tags"));
    }

    #[test]
    fn compact_form() {
        let img = sample();
        let s = compact_json(&api_object(&img, opts()));
        assert!(s.starts_with("{\"v\":2,\"uuid\":\"00000000-0000-0000-0000-000000001234\""));
        assert!(!s.contains(' '));
    }
}
