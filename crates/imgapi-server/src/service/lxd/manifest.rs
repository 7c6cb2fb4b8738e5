//! The IMGAPI manifest of an LXD image, as the original's
//! `imgManifestFromImg` builds it: type `lxd`, uuid from the fingerprint,
//! `requirements.brand: lx`, `lxd:*` tags, published at the version's date.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::streams::ChosenImage;
use crate::service::ServiceError;

/// The uuid of an image with this fingerprint: its first 32 hex digits,
/// grouped 8-4-4-4-12 (so one fingerprint is always one image).
pub fn uuid_from_fingerprint(fingerprint: &str) -> Result<Uuid, ServiceError> {
    fingerprint
        .get(..32)
        .and_then(|hex| Uuid::try_parse(hex).ok())
        .ok_or_else(|| ServiceError::Internal(format!("invalid LXD fingerprint {fingerprint:?}")))
}

/// Characters the original keeps in a name; the others become `_`.
fn sanitize(text: &str, also: &[char]) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') || also.contains(&c)
            {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `published_at`: the date the version key starts with, at midnight UTC.
fn version_date(version: &str) -> Option<String> {
    let date = chrono::NaiveDate::parse_from_str(version.get(..8)?, "%Y%m%d").ok()?;
    Some(format!("{}T00:00:00.000Z", date.format("%Y-%m-%d")))
}

/// The manifest of `img`, imported from the remote named `repo`.
pub fn manifest(
    img: &ChosenImage,
    repo: &str,
    public: bool,
) -> Result<Map<String, Value>, ServiceError> {
    let published_at = version_date(&img.version).ok_or_else(|| {
        ServiceError::Internal(format!(
            "could not convert lxd image into an imgapi manifest: version {:?} does not start with a date",
            img.version
        ))
    })?;
    let field = |k: &str| img.product.get(k).filter(|v| !v.is_null()).cloned();
    let pubname = img
        .product
        .get("pubname")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(&img.fullname)
        .to_string();
    let file = &img.manifest_file;
    let mut tags = Map::new();
    let mut tag = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            tags.insert(format!("lxd:{k}"), v);
        }
    };
    tag("arch", field("arch"));
    tag("aliases", field("aliases"));
    tag("fingerprint", Some(json!(file.fingerprint)));
    tag("ftype", Some(json!(img.best_ftype)));
    tag("name", Some(json!(pubname)));
    tag("os", field("os"));
    tag("path", Some(json!(file.item.path)));
    tag("release", field("release"));
    tag("release_title", field("release_title"));
    tag("repo", Some(json!(repo)));
    tag("sha256", Some(json!(file.item.sha256)));
    let mut m = Map::new();
    m.insert("v".into(), json!(2));
    m.insert("description".into(), json!(img.fullname));
    m.insert("disabled".into(), json!(false));
    m.insert("name".into(), json!(sanitize(&pubname, &[' '])));
    m.insert("os".into(), json!("linux"));
    m.insert("owner".into(), json!(imgapi_types::UNSET_OWNER_UUID));
    m.insert("public".into(), json!(public));
    m.insert("published_at".into(), json!(published_at));
    m.insert("requirements".into(), json!({"brand": "lx"}));
    m.insert("tags".into(), Value::Object(tags));
    m.insert("type".into(), json!("lxd"));
    m.insert(
        "uuid".into(),
        json!(uuid_from_fingerprint(&file.fingerprint)?.to_string()),
    );
    m.insert("version".into(), json!(sanitize(&img.version, &['+'])));
    Ok(m)
}

/// The `files[].compression` of an item, from its path. The original
/// stores `""` for an uncompressed file; ours must be one of the four
/// values every client knows, so that is `none`.
pub fn compression_of(path: &str) -> &'static str {
    if path.ends_with(".xz") {
        "xz"
    } else if path.ends_with(".gz") {
        "gzip"
    } else if path.ends_with(".bz2") {
        "bzip2"
    } else {
        "none"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uuid_and_names_as_the_original() {
        let fp = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            uuid_from_fingerprint(fp).unwrap().to_string(),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(sanitize("alpine:3.19 x+y", &[' ']), "alpine_3.19 x_y");
        assert_eq!(sanitize("20240101_13:00", &['+']), "20240101_13_00");
        assert_eq!(
            version_date("20240229_13:00").unwrap(),
            "2024-02-29T00:00:00.000Z"
        );
        assert!(version_date("2024").is_none());
        assert_eq!(compression_of("x/root.squashfs"), "none");
    }
}
