//! How one stored `lxd` image reads as a simplestreams product version.
//!
//! The manifest fields come from AdminImportLxdImage (the original's
//! `lib/lxd.js`): `tags["lxd:*"]` carry os, release, arch, aliases, the
//! LXD fingerprint and the ftype of the rootfs; `files[0]` is the metadata
//! tarball (or the combined tarball) and, for a split image, `files[1]` the
//! rootfs. An image published without those tags is described from what the
//! record says; one that cannot be described correctly (a split image
//! without its fingerprint, a file without sha256, a fingerprint tag that
//! contradicts the bytes) is left out rather than listed wrong, since `lxc`
//! verifies every hash it is given.

use crate::service::lxd::streams::is_sha256_hex;
use chrono::{DateTime, Utc};
use imgapi_domain::image::parse_iso_ms;
use imgapi_domain::{ImageFile, ImageRecord};
use serde_json::{Map, Value};

/// The ftype of a combined (metadata + rootfs in one) tarball.
pub const COMBINED_FTYPE: &str = "lxd_combined.tar.gz";
/// The ftype of a split image's metadata tarball.
const META_FTYPE: &str = "lxd.tar.xz";
/// Used when the record names no architecture: the LXD name of x86-64,
/// the architecture every Triton `lx` host runs.
const DEFAULT_ARCH: &str = "amd64";
const DEFAULT_VARIANT: &str = "default";

/// One downloadable file of a product version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's key, also the last segment of its download path.
    pub name: &'static str,
    pub ftype: &'static str,
    /// Which of the image's files holds the bytes.
    pub file_index: usize,
    pub size: u64,
    pub sha256: String,
    /// `combined_*_sha256` keys (the LXD fingerprint), on a split image's
    /// metadata item.
    pub combined: Vec<(&'static str, String)>,
}

/// One image as a simplestreams product version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxdImage {
    /// `os:release:arch:variant`, LXD's product naming.
    pub product: String,
    pub os: String,
    pub release: String,
    pub release_title: String,
    pub arch: String,
    pub variant: String,
    /// Comma-separated, as simplestreams spells them.
    pub aliases: String,
    /// `YYYYMMDD_HH:MM` of `published_at`.
    pub version: String,
    pub fingerprint: String,
    pub items: Vec<Item>,
}

fn tag<'a>(tags: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    tags?
        .get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `lxd:aliases` is a comma-separated string in the original; a list is
/// accepted too.
fn aliases_tag(tags: Option<&Map<String, Value>>) -> Option<String> {
    match tags?.get("lxd:aliases")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Array(list) => {
            let names: Vec<&str> = list
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            (!names.is_empty()).then(|| names.join(","))
        }
        _ => None,
    }
}

/// The version key LXD's own server uses: the UTC date and minute.
pub fn version_key(published_at: &str) -> Option<String> {
    let ms = parse_iso_ms(published_at)?;
    let at: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
    Some(at.format("%Y%m%d_%H:%M").to_string())
}

fn sha256_of(file: &ImageFile) -> Option<String> {
    file.sha256
        .as_deref()
        .filter(|s| is_sha256_hex(s))
        .map(str::to_ascii_lowercase)
}

/// The rootfs item of a split image, by the `lxd:ftype` tag.
fn root_item(ftype: &str) -> Option<(&'static str, &'static str, &'static [&'static str])> {
    match ftype {
        "squashfs" => Some(("root.squashfs", "squashfs", &["combined_squashfs_sha256"])),
        "root.tar.xz" => Some((
            "root.tar.xz",
            "root.tar.xz",
            &["combined_rootxz_sha256", "combined_sha256"],
        )),
        _ => None,
    }
}

/// The items and fingerprint of `img`'s files, or `None` if they cannot be
/// described correctly.
fn items_of(img: &ImageRecord) -> Option<(String, Vec<Item>)> {
    let tags = img.tags.as_ref();
    let fingerprint_tag = tag(tags, "lxd:fingerprint").map(str::to_ascii_lowercase);
    let ftype = tag(tags, "lxd:ftype").unwrap_or(COMBINED_FTYPE);
    let first = img.files.first()?;
    let first_sha256 = sha256_of(first)?;
    if tag(tags, "lxd:sha256").is_some_and(|s| !s.eq_ignore_ascii_case(&first_sha256)) {
        return None;
    }
    match (ftype, img.files.as_slice()) {
        (COMBINED_FTYPE, [_]) => {
            // A combined tarball's fingerprint is its own sha256.
            if fingerprint_tag.as_ref().is_some_and(|f| *f != first_sha256) {
                return None;
            }
            let item = Item {
                name: COMBINED_FTYPE,
                ftype: COMBINED_FTYPE,
                file_index: 0,
                size: first.size,
                sha256: first_sha256.clone(),
                combined: Vec::new(),
            };
            Some((first_sha256, vec![item]))
        }
        (rootfs, [_, second]) => {
            let (name, ftype, combined_keys) = root_item(rootfs)?;
            let fingerprint = fingerprint_tag.filter(|f| is_sha256_hex(f))?;
            let meta = Item {
                name: META_FTYPE,
                ftype: META_FTYPE,
                file_index: 0,
                size: first.size,
                sha256: first_sha256,
                combined: combined_keys
                    .iter()
                    .map(|k| (*k, fingerprint.clone()))
                    .collect(),
            };
            let root = Item {
                name,
                ftype,
                file_index: 1,
                size: second.size,
                sha256: sha256_of(second)?,
                combined: Vec::new(),
            };
            Some((fingerprint, vec![meta, root]))
        }
        _ => None,
    }
}

/// `img` as a product version, if it is an `lxd` image that can be
/// described (see the module comment).
pub fn describe(img: &ImageRecord) -> Option<LxdImage> {
    if img.image_type != "lxd" {
        return None;
    }
    let (fingerprint, items) = items_of(img)?;
    let version = version_key(img.published_at.as_deref()?)?;
    let tags = img.tags.as_ref();
    let os = tag(tags, "lxd:os").unwrap_or(&img.name).to_string();
    let release = tag(tags, "lxd:release").unwrap_or(&img.version).to_string();
    let release_title = tag(tags, "lxd:release_title")
        .unwrap_or(&release)
        .to_string();
    let arch = tag(tags, "lxd:arch").unwrap_or(DEFAULT_ARCH).to_string();
    let variant = tag(tags, "lxd:variant")
        .unwrap_or(DEFAULT_VARIANT)
        .to_string();
    let aliases =
        aliases_tag(tags).unwrap_or_else(|| format!("{}/{},{}", img.name, img.version, img.name));
    Some(LxdImage {
        product: format!("{os}:{release}:{arch}:{variant}"),
        os,
        release,
        release_title,
        arch,
        variant,
        aliases,
        version,
        fingerprint,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const SHA_F: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn record(extra: Value) -> ImageRecord {
        let mut base = json!({
            "v": 2, "uuid": "11111111-2222-3333-4444-555555555555",
            "owner": "86055c40-2547-11e2-8a6b-4bb37edc84ba",
            "name": "alpine", "version": "3.18", "disabled": false, "activated": true,
            "published_at": "2026-12-07T14:28:09.123Z", "state": "active", "public": true,
            "type": "lxd", "os": "linux",
            "files": [{"sha1": "x", "size": 10, "compression": "gzip", "sha256": SHA_A}],
        });
        if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
            b.extend(e);
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_combined_image_without_tags_is_described_from_the_record() {
        let d = describe(&record(json!({}))).unwrap();
        assert_eq!(d.product, "alpine:3.18:amd64:default");
        assert_eq!(d.version, "20261207_14:28");
        assert_eq!(d.fingerprint, SHA_A);
        assert_eq!(d.aliases, "alpine/3.18,alpine");
        assert_eq!(d.items.len(), 1);
        assert_eq!(d.items[0].ftype, COMBINED_FTYPE);
        assert_eq!(d.items[0].sha256, SHA_A);
    }

    #[test]
    fn a_split_image_carries_its_fingerprint_on_the_metadata_item() {
        let d = describe(&record(json!({
            "files": [
                {"sha1": "x", "size": 10, "compression": "xz", "sha256": SHA_A},
                {"sha1": "y", "size": 20, "compression": "none", "sha256": SHA_B},
            ],
            "tags": {"lxd:ftype": "squashfs", "lxd:fingerprint": SHA_F, "lxd:os": "Alpine",
                     "lxd:release": "3.18", "lxd:arch": "arm64", "lxd:aliases": "alpine/3.18"},
        })))
        .unwrap();
        assert_eq!(d.product, "Alpine:3.18:arm64:default");
        assert_eq!(d.fingerprint, SHA_F);
        assert_eq!(d.items[0].ftype, "lxd.tar.xz");
        assert_eq!(
            d.items[0].combined,
            vec![("combined_squashfs_sha256", SHA_F.to_string())]
        );
        assert_eq!(
            (d.items[1].name, d.items[1].file_index),
            ("root.squashfs", 1)
        );
        assert_eq!(d.items[1].sha256, SHA_B);
    }

    #[test]
    fn what_cannot_be_described_correctly_is_left_out() {
        // Not lxd.
        assert!(describe(&record(json!({"type": "zone-dataset"}))).is_none());
        // No file, or a file without sha256.
        assert!(describe(&record(json!({"files": []}))).is_none());
        assert!(describe(&record(
            json!({"files": [{"sha1": "x", "size": 1, "compression": "gzip"}]})
        ))
        .is_none());
        // A fingerprint tag the combined bytes contradict.
        assert!(describe(&record(json!({"tags": {"lxd:fingerprint": SHA_F}}))).is_none());
        // A split image without its fingerprint, or with one file only.
        let two = json!([
            {"sha1": "x", "size": 10, "compression": "xz", "sha256": SHA_A},
            {"sha1": "y", "size": 20, "compression": "none", "sha256": SHA_B},
        ]);
        assert!(describe(&record(
            json!({"files": two, "tags": {"lxd:ftype": "squashfs"}})
        ))
        .is_none());
        assert!(describe(&record(
            json!({"tags": {"lxd:ftype": "squashfs", "lxd:fingerprint": SHA_F}})
        ))
        .is_none());
        // No publication date.
        assert!(describe(&record(json!({"published_at": null}))).is_none());
    }
}
