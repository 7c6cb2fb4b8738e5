//! Simplestreams documents as an LXD client reads them (the original's
//! `lib/lxdclient.js`): the index names the `image-downloads` products
//! file; a product is found by one of its comma-separated aliases; its
//! newest version is taken, and in it the item the original prefers.
//! Pure: no I/O.

use serde_json::{Map, Value};

use crate::service::ServiceError;

/// One downloadable item of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub ftype: String,
    /// Relative to the server's URL (or absolute).
    pub path: String,
    pub sha256: String,
    pub size: Option<u64>,
}

/// The file that is stored as `files[0]`: the combined tarball, or the
/// metadata tarball of a split image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestItem {
    pub item: Item,
    /// The LXD fingerprint of the whole image.
    pub fingerprint: String,
}

/// What an import fetches: one product at one version.
#[derive(Debug, Clone, PartialEq)]
pub struct ChosenImage {
    /// The product's key (`alpine:3.19:amd64:default`).
    pub fullname: String,
    pub product: Map<String, Value>,
    /// The version key (`20240101_13:00`).
    pub version: String,
    pub manifest_file: ManifestItem,
    /// The root filesystem item; `None` for a combined image.
    pub rootfs: Option<Item>,
    /// `lxd:ftype`: the combined item's or the rootfs item's ftype.
    pub best_ftype: String,
}

impl ChosenImage {
    /// The fingerprint is sha256(metadata ‖ rootfs) for a split image.
    pub fn is_combined(&self) -> bool {
        self.rootfs.is_none()
    }
}

const COMBINED: &str = "lxd_combined.tar.gz";
const METADATA: &str = "lxd.tar.xz";
/// The root filesystem ftypes in the original's order of preference, each
/// with the metadata item's field holding the fingerprint. (The original
/// picks `root.tar.xz`'s by a quirk; see [`rootfs_fingerprint_key`].)
const ROOTFS_PREFERENCE: [(&str, &str); 5] = [
    ("squashfs", "combined_squashfs_sha256"),
    ("root.tar.xz", "combined_sha256"),
    ("disk-kvm.img", "combined_disk-kvm-img_sha256"),
    ("uefi1.img", "combined_uefi1-img_sha256"),
    ("disk1.img", "combined_disk1-img_sha256"),
];

fn invalid_content(message: String) -> ServiceError {
    ServiceError::Remote {
        code: imgapi_types::RestCode::InvalidContent,
        message,
        errors: Vec::new(),
    }
}

/// The path of the products file of `datatype: image-downloads`.
pub fn products_path(index: &Value) -> Result<String, ServiceError> {
    let Some(entries) = index.get("index").and_then(Value::as_object) else {
        return Err(invalid_content(
            "Invalid server response - no index found".into(),
        ));
    };
    let downloads = entries
        .values()
        .find(|e| e.get("datatype").and_then(Value::as_str) == Some("image-downloads"))
        .ok_or_else(|| {
            invalid_content("Invalid server response - no image downloads found".into())
        })?;
    downloads
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            invalid_content("Invalid server response - no image path found in the index".into())
        })
}

/// The products of a products document, by key.
pub fn products(doc: &Value) -> Result<&Map<String, Value>, ServiceError> {
    doc.get("products")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid_content("Invalid server response - no products found".into()))
}

/// Whether `alias` is one of the product's comma-separated aliases.
pub fn has_alias(product: &Value, alias: &str) -> bool {
    product
        .get("aliases")
        .and_then(Value::as_str)
        .is_some_and(|all| all.split(',').any(|a| a == alias))
}

/// The product with `alias`, at its newest version, with the items an
/// import fetches.
pub fn choose(doc: &Value, alias: &str) -> Result<ChosenImage, ServiceError> {
    let (fullname, product) = products(doc)?
        .iter()
        .find(|(_, p)| has_alias(p, alias))
        .ok_or_else(|| ServiceError::not_found(format!("Image {alias} was not found")))?;
    choose_version(fullname, product)
}

/// The newest version of a product (version keys start `YYYYMMDD`, so
/// the largest string is the newest) and its items.
pub fn choose_version(fullname: &str, product: &Value) -> Result<ChosenImage, ServiceError> {
    let no_version =
        || ServiceError::not_found(format!("Version (newest) not found in image {fullname}"));
    let versions = product
        .get("versions")
        .and_then(Value::as_object)
        .ok_or_else(no_version)?;
    let (version, entry) = versions
        .iter()
        .max_by(|a, b| a.0.cmp(b.0))
        .ok_or_else(no_version)?;
    let items = entry
        .get("items")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ServiceError::not_found(format!("Version {version} not found in image {fullname}"))
        })?;
    let (manifest_file, rootfs, best_ftype) = choose_items(fullname, items)?;
    Ok(ChosenImage {
        fullname: fullname.to_string(),
        product: product.as_object().cloned().unwrap_or_default(),
        version: version.clone(),
        manifest_file,
        rootfs,
        best_ftype,
    })
}

/// An item by its `ftype` (servers key items by file name, e.g.
/// `root.squashfs`, or by ftype; the ftype is what identifies it).
fn by_ftype<'a>(items: &'a Map<String, Value>, ftype: &str) -> Option<&'a Value> {
    items
        .get(ftype)
        .filter(|i| {
            i.get("ftype")
                .and_then(Value::as_str)
                .is_none_or(|f| f == ftype)
        })
        .or_else(|| {
            items
                .values()
                .find(|i| i.get("ftype").and_then(Value::as_str) == Some(ftype))
        })
}

fn item(fullname: &str, ftype: &str, v: &Value) -> Result<Item, ServiceError> {
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                invalid_content(format!(
                    "item \"{ftype}\" of image {fullname} has no \"{k}\""
                ))
            })
    };
    let sha256 = text("sha256")?.to_ascii_lowercase();
    if !is_sha256_hex(&sha256) {
        return Err(invalid_content(format!(
            "item \"{ftype}\" of image {fullname} has an invalid sha256"
        )));
    }
    Ok(Item {
        ftype: ftype.to_string(),
        path: text("path")?,
        sha256,
        size: v.get("size").and_then(Value::as_u64),
    })
}

/// 64 hex digits: a sha256 as simplestreams and LXD write it.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The original reads `combined_rootxz_sha256` only when the metadata item
/// has `lxdhashsha256rootxz`, else `combined_sha256`.
fn rootfs_fingerprint_key(ftype: &str, meta: &Value) -> Option<&'static str> {
    if ftype == "root.tar.xz" && meta.get("lxdhashsha256rootxz").is_some() {
        return Some("combined_rootxz_sha256");
    }
    ROOTFS_PREFERENCE
        .iter()
        .find(|(f, _)| *f == ftype)
        .map(|(_, key)| *key)
}

type Choice = (ManifestItem, Option<Item>, String);

fn choose_items(fullname: &str, items: &Map<String, Value>) -> Result<Choice, ServiceError> {
    if let Some(combined) = by_ftype(items, COMBINED) {
        let item = item(fullname, COMBINED, combined)?;
        let fingerprint = item.sha256.clone();
        return Ok((ManifestItem { item, fingerprint }, None, COMBINED.into()));
    }
    let meta = by_ftype(items, METADATA).ok_or_else(|| {
        invalid_content(format!("No \"lxd.tar.gz\" item found for image {fullname}"))
    })?;
    let (ftype, rootfs) = ROOTFS_PREFERENCE
        .iter()
        .find_map(|(f, _)| by_ftype(items, f).map(|v| (*f, v)))
        .ok_or_else(|| invalid_content(format!("No filesystem found for image {fullname}")))?;
    let key = rootfs_fingerprint_key(ftype, meta).unwrap_or("combined_sha256");
    let fingerprint = meta
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .filter(|f| is_sha256_hex(f))
        .ok_or_else(|| {
            ServiceError::Internal(format!(
                "No fingerprint for image \"{fullname}\" with ftype \"{ftype}\""
            ))
        })?;
    let meta = item(fullname, METADATA, meta)?;
    let rootfs = item(fullname, ftype, rootfs)?;
    Ok((
        ManifestItem {
            item: meta,
            fingerprint,
        },
        Some(rootfs),
        ftype.to_string(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sha(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn doc() -> Value {
        json!({"format": "products:1.0", "datatype": "image-downloads", "products": {
            "alpine:3.19:amd64:default": {"aliases": "alpine/3.19,alpine/3.19/default", "arch": "amd64",
                "versions": {
                    "20240101_13:00": {"items": {"lxd_combined.tar.gz": {"ftype": "lxd_combined.tar.gz", "path": "old", "sha256": sha('a'), "size": 1}}},
                    "20240202_13:00": {"items": {"lxd_combined.tar.gz": {"ftype": "lxd_combined.tar.gz", "path": "new", "sha256": sha('b'), "size": 1}}}
                }},
            "debian:12:amd64:default": {"aliases": "debian/12",
                "versions": {"20240101": {"items": {
                    "lxd.tar.xz": {"ftype": "lxd.tar.xz", "path": "meta", "sha256": sha('c'),
                                   "combined_squashfs_sha256": sha('d'), "combined_sha256": sha('e')},
                    "root.tar.xz": {"ftype": "root.tar.xz", "path": "rootxz", "sha256": sha('f')},
                    "root.squashfs": {"ftype": "squashfs", "path": "sq", "sha256": sha('1')}
                }}}}
        }})
    }

    #[test]
    fn newest_version_of_the_aliased_product() {
        let img = choose(&doc(), "alpine/3.19/default").unwrap();
        assert_eq!(img.version, "20240202_13:00");
        assert_eq!(img.manifest_file.item.path, "new");
        assert_eq!(img.manifest_file.fingerprint, sha('b'));
        assert!(img.is_combined());
    }

    #[test]
    fn split_prefers_squashfs_with_its_combined_fingerprint() {
        let img = choose(&doc(), "debian/12").unwrap();
        assert_eq!(img.manifest_file.item.path, "meta");
        assert_eq!(img.manifest_file.fingerprint, sha('d'));
        assert_eq!(img.rootfs.unwrap().path, "sq");
        assert_eq!(img.best_ftype, "squashfs");
    }

    #[test]
    fn unknown_alias_and_partial_alias() {
        for alias in ["nope", "alpine", "alpine/3.1"] {
            let err = choose(&doc(), alias).unwrap_err();
            assert_eq!(err.to_string(), format!("Image {alias} was not found"));
        }
    }

    #[test]
    fn index_names_the_downloads_file() {
        let index = json!({"index": {"images": {"datatype": "image-downloads", "path": "streams/v1/images.json"}}});
        assert_eq!(products_path(&index).unwrap(), "streams/v1/images.json");
        assert!(products_path(&json!({"index": {}})).is_err());
    }
}
