//! v2 → v1 (DSAPI) downgrade: the inverse of the upgrade of manifest.md §10,
//! for serving SDC 6.5-era clients from `/datasets` (`dsapi = "serve"`).
//!
//! [`downgrade`] is pure: the caller supplies the base URL the dataset file
//! URLs are built on. Mapping (each row the inverse of an upgrade row):
//!
//! | v2 | v1 (DSAPI) |
//! | --- | --- |
//! | `owner` | `creator_uuid` and `vendor_uuid` |
//! | `urn` | kept; when absent `sdc:sdc:<name>:<version>` |
//! | (urn) | `cloud_name`, `creator_name`: the URN's first two parts (`sdc`, `sdc` when it has fewer than three) |
//! | `public: false` | `restricted_to_uuid`: the only ACL entry, else the owner (lossy) |
//! | `disabled: true` | `disabled: true` (omitted when false, the upgrade's default) |
//! | `published_at` | `published_at`, `created_at` and `updated_at` |
//! | (none) | `platform_type: "smartos"` |
//! | `files[i]` | `{path, sha1, size, compression, dataset_guid?, url}`, `path` = [`file_name`], `url` = `<base>/datasets/<uuid>/<path>` |
//! | `image_size` | the number as a string (`16384` → `"16384"`, as DSAPI served it) |
//! | `uuid`, `name`, `version`, `description`, `type`, `os`, `requirements`, `users`, `generate_passwords`, `inherited_directories`, `nic_driver`, `disk_driver`, `cpu_type` | unchanged |
//! | `v`, `state`, `public`, `acl`, `origin`, `icon`, `homepage`, `eula`, `tags`, `billing_tags`, `traits`, `channels`, `error` | not emitted (no v1 equivalent; `v` absent means v1) |
//!
//! `files[].compression` is not a DSAPI field, but it is kept: without it
//! the upgrade guesses from the extension and maps `.xz` to `none`.

use serde_json::{Map, Value};

use crate::image::{ImageFile, ImageRecord};

/// DSAPI's `cloud_name` / `creator_name` when the image has no URN.
const DEFAULT_CLOUD: &str = "sdc";
/// The only platform DSAPI knew.
const PLATFORM_TYPE: &str = "smartos";
/// File names are cut to this many bytes before their extension, so a
/// name stays one path segment on every filesystem (NAME_MAX 255).
const MAX_BASE_LEN: usize = 200;

/// The file extension of a compression (api.md §5.23): `bzip2` → `.bz2`,
/// `gzip` → `.gz`, `xz` → `.xz`, anything else (`none`) → empty.
pub fn compression_ext(compression: &str) -> &'static str {
    match compression {
        "bzip2" => ".bz2",
        "gzip" => ".gz",
        "xz" => ".xz",
        _ => "",
    }
}

/// `<name>-<version>` made safe as one file name: every character outside
/// `[A-Za-z0-9._-]` (names may hold ` ` and `/`, versions `/` and `+`)
/// becomes `_`, and the result is cut to 200 bytes.
pub fn base_name(img: &ImageRecord) -> String {
    let mut base: String = format!("{}-{}", img.name, img.version)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // ASCII only after the mapping above: any byte index is a char boundary.
    base.truncate(MAX_BASE_LEN);
    base
}

/// The v1 file name of `files[index]`: `<base>.zfs<ext>` for the first
/// file, `<base>-<index>.zfs<ext>` for further ones (LXD images).
pub fn file_name(img: &ImageRecord, index: usize, file: &ImageFile) -> String {
    let ext = compression_ext(&file.compression);
    let base = base_name(img);
    if index == 0 {
        format!("{base}.zfs{ext}")
    } else {
        format!("{base}-{index}.zfs{ext}")
    }
}

/// The index of the file called `name` (see [`file_name`]).
pub fn file_index(img: &ImageRecord, name: &str) -> Option<usize> {
    img.files
        .iter()
        .enumerate()
        .position(|(i, f)| file_name(img, i, f) == name)
}

/// The URL of a dataset file: `<base_url>/datasets/<uuid>/<file name>`.
/// `base_url` is `scheme://host[:port]` without a trailing slash, or empty
/// for a server-relative URL.
pub fn file_url(base_url: &str, img: &ImageRecord, index: usize, file: &ImageFile) -> String {
    format!(
        "{}/datasets/{}/{}",
        base_url.trim_end_matches('/'),
        img.uuid,
        file_name(img, index, file)
    )
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `cloud_name` and `creator_name` from a `cloud:creator:name[:version]` URN.
fn urn_parts(urn: &str) -> (String, String) {
    let parts: Vec<&str> = urn.split(':').collect();
    match parts.as_slice() {
        [cloud, creator, _, ..] if !cloud.is_empty() && !creator.is_empty() => {
            ((*cloud).to_string(), (*creator).to_string())
        }
        _ => (DEFAULT_CLOUD.to_string(), DEFAULT_CLOUD.to_string()),
    }
}

/// The DSAPI (v1) dataset manifest of `img`; file URLs are built on
/// `base_url` (see [`file_url`]).
pub fn downgrade(img: &ImageRecord, base_url: &str) -> Map<String, Value> {
    let mut m = Map::new();
    let s = |v: &str| Value::String(v.to_string());
    m.insert("uuid".into(), Value::String(img.uuid.to_string()));
    m.insert("name".into(), s(&img.name));
    m.insert("version".into(), s(&img.version));
    let urn = non_empty(&img.urn).map(str::to_string).unwrap_or_else(|| {
        format!(
            "{DEFAULT_CLOUD}:{DEFAULT_CLOUD}:{}:{}",
            img.name, img.version
        )
    });
    let (cloud, creator) = urn_parts(&urn);
    m.insert("urn".into(), Value::String(urn));
    if img.image_type != "null" {
        m.insert("type".into(), s(&img.image_type));
    }
    if img.os != "null" {
        m.insert("os".into(), s(&img.os));
    }
    if let Some(d) = non_empty(&img.description) {
        m.insert("description".into(), s(d));
    }
    if let Some(p) = non_empty(&img.published_at) {
        for key in ["published_at", "created_at", "updated_at"] {
            m.insert(key.into(), s(p));
        }
    }
    let owner = Value::String(img.owner.to_string());
    m.insert("creator_uuid".into(), owner.clone());
    m.insert("vendor_uuid".into(), owner);
    m.insert("creator_name".into(), Value::String(creator));
    m.insert("cloud_name".into(), Value::String(cloud));
    m.insert("platform_type".into(), s(PLATFORM_TYPE));
    if !img.public {
        let restricted = match img.acl.as_slice() {
            [only] => *only,
            _ => img.owner,
        };
        m.insert(
            "restricted_to_uuid".into(),
            Value::String(restricted.to_string()),
        );
    }
    if img.disabled {
        m.insert("disabled".into(), Value::Bool(true));
    }
    let files = img
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut fm = Map::new();
            fm.insert("path".into(), Value::String(file_name(img, i, f)));
            fm.insert("sha1".into(), s(&f.sha1));
            fm.insert("size".into(), Value::from(f.size));
            fm.insert("compression".into(), s(&f.compression));
            if let Some(g) = &f.dataset_guid {
                fm.insert("dataset_guid".into(), s(g));
            }
            fm.insert("url".into(), Value::String(file_url(base_url, img, i, f)));
            Value::Object(fm)
        })
        .collect();
    m.insert("files".into(), Value::Array(files));
    for (key, val) in [("requirements", &img.requirements), ("users", &img.users)] {
        if let Some(v) = val.as_ref().filter(|v| !v.is_null()) {
            m.insert(key.into(), v.clone());
        }
    }
    if let Some(g) = img.generate_passwords {
        m.insert("generate_passwords".into(), Value::Bool(g));
    }
    if let Some(dirs) = &img.inherited_directories {
        m.insert(
            "inherited_directories".into(),
            Value::Array(dirs.iter().map(|d| s(d)).collect()),
        );
    }
    for (key, val) in [
        ("nic_driver", &img.nic_driver),
        ("disk_driver", &img.disk_driver),
        ("cpu_type", &img.cpu_type),
    ] {
        if let Some(v) = non_empty(val) {
            m.insert(key.into(), s(v));
        }
    }
    if let Some(n) = &img.image_size {
        if crate::serialize::is_truthy(&Value::Number(n.clone())) {
            m.insert("image_size".into(), Value::String(n.to_string()));
        }
    }
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::upgrade::upgrade_legacy;
    use proptest::prelude::*;
    use serde_json::json;
    use uuid::Uuid;

    const DS_NODEJS: &str = include_str!("../tests/fixtures/fauxnodejs-1.4.0.dsmanifest");
    const DS_UBUNTU: &str = include_str!("../tests/fixtures/fauxubuntu.dsmanifest");
    const V2_FIXTURES: [&str; 4] = [
        include_str!("../tests/fixtures/15963d90-61d7-4664-87a6-f56b16492d5a.manifest"),
        include_str!("../tests/fixtures/7a1b1967-6ecf-1e4c-8f09-f49094cc36ad.manifest"),
        include_str!("../tests/fixtures/c58161c0-2547-11e2-a75e-9fdca1940570.manifest"),
        include_str!("../tests/fixtures/f3078f0c-a53b-4140-b7af-fbb6308a8e35.manifest"),
    ];
    const BASE: &str = "https://imgapi.example";

    fn record(text: &str) -> ImageRecord {
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        let up = upgrade_legacy(map);
        ImageRecord::from_raw_map(up).unwrap()
    }

    /// Every v2 image the fixtures give: the stored v2 manifests and the
    /// upgraded DSAPI ones (which carry their files' sha1/size).
    fn fixture_images() -> Vec<ImageRecord> {
        V2_FIXTURES
            .iter()
            .chain([DS_NODEJS, DS_UBUNTU].iter())
            .map(|t| record(t))
            .collect()
    }

    /// The fields upgrade(downgrade(img)) must give back, as the upgraded
    /// map spells them.
    fn assert_round_trip(img: &ImageRecord) {
        let down = downgrade(img, BASE);
        assert!(!down.contains_key("v"), "v1 manifests have no `v`");
        let up = upgrade_legacy(down.clone());
        assert_eq!(up["v"], json!(2), "upgraded: {down:?}");
        let back = ImageRecord::from_raw_map(up.clone()).unwrap();
        assert_eq!(back.uuid, img.uuid);
        assert_eq!(back.owner, img.owner);
        assert_eq!(back.name, img.name);
        assert_eq!(back.version, img.version);
        assert_eq!(back.os, img.os);
        assert_eq!(back.image_type, img.image_type);
        assert_eq!(back.description, img.description);
        assert_eq!(back.disabled, img.disabled);
        assert_eq!(back.published_at, img.published_at);
        assert_eq!(back.requirements, img.requirements);
        assert_eq!(back.users, img.users);
        assert_eq!(back.generate_passwords, img.generate_passwords);
        assert_eq!(back.inherited_directories, img.inherited_directories);
        assert_eq!(back.nic_driver, img.nic_driver);
        assert_eq!(back.disk_driver, img.disk_driver);
        assert_eq!(back.cpu_type, img.cpu_type);
        assert_eq!(
            back.image_size
                .as_ref()
                .and_then(serde_json::Number::as_f64),
            img.image_size.as_ref().and_then(serde_json::Number::as_f64)
        );
        let files = |r: &ImageRecord| -> Vec<(String, u64, String, Option<String>)> {
            r.files
                .iter()
                .map(|f| {
                    (
                        f.sha1.clone(),
                        f.size,
                        f.compression.clone(),
                        f.dataset_guid.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(files(&back), files(img));
        assert_eq!(back.public, img.public);
        // Private with one ACL entry is exactly `restricted_to_uuid`; other
        // ACLs have no v1 form.
        if !img.public && img.acl.len() == 1 {
            assert_eq!(back.acl, img.acl);
        }
        let expected_urn = img
            .urn
            .clone()
            .unwrap_or_else(|| format!("sdc:sdc:{}:{}", img.name, img.version));
        assert_eq!(back.urn, Some(expected_urn));
    }

    #[test]
    fn fixtures_round_trip() {
        for img in fixture_images() {
            assert_round_trip(&img);
        }
    }

    #[test]
    fn fauxnodejs_downgrades_back_to_its_dsapi_manifest() {
        let ds: Map<String, Value> = serde_json::from_str(DS_NODEJS).unwrap();
        let mut img = record(DS_NODEJS);
        img.state = crate::ImageState::Active;
        let down = downgrade(&img, BASE);
        for key in [
            "uuid",
            "name",
            "version",
            "type",
            "os",
            "description",
            "published_at",
            "created_at",
            "updated_at",
            "creator_uuid",
            "vendor_uuid",
            "creator_name",
            "cloud_name",
            "platform_type",
            "urn",
            "requirements",
            "users",
            "generate_passwords",
            "inherited_directories",
        ] {
            assert_eq!(down.get(key), ds.get(key), "key {key}");
        }
        let uuid = "1fc068b0-13b0-11e2-9f4e-2f3f6a96d9bc";
        assert_eq!(
            down["files"],
            json!([{
                "path": "fauxnodejs-1.4.0.zfs.bz2",
                "sha1": "d2c40995ff693994e0343a661fb2279794546748",
                "size": 269634973,
                "compression": "bzip2",
                "url": format!("{BASE}/datasets/{uuid}/fauxnodejs-1.4.0.zfs.bz2"),
            }])
        );
        assert!(!down.contains_key("restricted_to_uuid"));
        assert!(!down.contains_key("disabled"));
        // The keys DSAPI never had are not emitted.
        for key in ["v", "owner", "state", "public", "acl"] {
            assert!(!down.contains_key(key), "{key}");
        }
    }

    #[test]
    fn fauxubuntu_zvol_fields() {
        let ds: Map<String, Value> = serde_json::from_str(DS_UBUNTU).unwrap();
        let down = downgrade(&record(DS_UBUNTU), "");
        for key in [
            "image_size",
            "nic_driver",
            "disk_driver",
            "cpu_type",
            "creator_name",
            "cloud_name",
            "urn",
            "published_at",
        ] {
            assert_eq!(down.get(key), ds.get(key), "key {key}");
        }
        assert_eq!(
            down["files"][0]["url"],
            json!("/datasets/583287ae-366b-11e2-aea4-bf6c552eb39b/ubuntu-12.04-2.2.1.zfs.bz2")
        );
    }

    #[test]
    fn urn_is_synthesised_and_private_images_are_restricted() {
        let mut img = record(V2_FIXTURES[3]); // private, no ACL, no URN
        let down = downgrade(&img, BASE);
        assert_eq!(down["urn"], json!("sdc:sdc:Private vader image:0.0.1"));
        assert_eq!(down["creator_name"], json!("sdc"));
        assert_eq!(down["restricted_to_uuid"], json!(img.owner.to_string()));
        img.acl = vec![Uuid::from_u128(9)];
        img.urn = Some("jpc:joyent:base:1.0".into());
        let down = downgrade(&img, BASE);
        assert_eq!(
            down["restricted_to_uuid"],
            json!(Uuid::from_u128(9).to_string())
        );
        assert_eq!(
            (&down["cloud_name"], &down["creator_name"]),
            (&json!("jpc"), &json!("joyent"))
        );
        // Name characters outside [A-Za-z0-9._-] are replaced in file names.
        assert_eq!(
            down["files"][0]["path"],
            json!("Private_vader_image-0.0.1.zfs.bz2")
        );
    }

    #[test]
    fn file_names_and_extensions() {
        let mut img = record(V2_FIXTURES[1]);
        img.name = "a/b c".into();
        img.version = "1.0+x".into();
        let mut f = img.files[0].clone();
        for (c, ext) in [
            ("bzip2", ".bz2"),
            ("gzip", ".gz"),
            ("xz", ".xz"),
            ("none", ""),
        ] {
            f.compression = c.into();
            assert_eq!(file_name(&img, 0, &f), format!("a_b_c-1.0_x.zfs{ext}"));
        }
        assert_eq!(file_name(&img, 1, &f), "a_b_c-1.0_x-1.zfs");
        img.files.push(f);
        assert_eq!(file_index(&img, "a_b_c-1.0_x.zfs.bz2"), Some(0));
        assert_eq!(file_index(&img, "a_b_c-1.0_x-1.zfs"), Some(1));
        assert_eq!(file_index(&img, "other.zfs"), None);
        img.name = "x".repeat(1024);
        assert_eq!(base_name(&img).len(), 200);
    }

    fn sha1() -> impl Strategy<Value = String> {
        "[0-9a-f]{40}"
    }

    fn file() -> impl Strategy<Value = ImageFile> {
        (
            sha1(),
            1u64..=21_474_836_480,
            prop::sample::select(vec!["bzip2", "gzip", "xz", "none"]),
            prop::option::of("[0-9]{1,19}"),
        )
            .prop_map(|(sha1, size, compression, guid)| ImageFile {
                sha1,
                size,
                compression: compression.into(),
                dataset_guid: guid,
                content_md5: String::new(),
                sha256: None,
                mtime: String::new(),
                stor: "local".into(),
                digest: None,
                uncompressed_digest: None,
                blob_key: None,
            })
    }

    prop_compose! {
        /// A fixture image with its essential fields varied.
        fn image()(
            base in prop::sample::select(fixture_images()),
            name in "[A-Za-z0-9._/ -]{1,40}",
            version in "[A-Za-z0-9._/+-]{1,20}",
            os in prop::sample::select(vec!["smartos", "linux", "windows", "bsd", "illumos", "other"]),
            ty in prop::sample::select(vec!["zone-dataset", "zvol", "lx-dataset", "docker", "lxd", "other"]),
            owner in any::<u128>(),
            public in any::<bool>(),
            acl in prop::collection::vec(any::<u128>(), 0..3),
            disabled in any::<bool>(),
            files in prop::collection::vec(file(), 0..3),
            stamp in 0i64..4_102_444_800_000,
            urn in prop::option::of("[a-z]{1,5}:[a-z]{1,5}:[a-z]{1,8}:[0-9.]{1,6}"),
            image_size in prop::option::of(1u64..1_000_000),
            description in prop::option::of(".{1,30}"),
        ) -> ImageRecord {
            let mut img = base;
            img.name = name;
            img.version = version;
            img.os = os.into();
            img.image_type = ty.into();
            img.owner = Uuid::from_u128(owner);
            img.public = public;
            img.acl = acl.into_iter().map(Uuid::from_u128).collect();
            img.disabled = disabled;
            img.files = files;
            img.published_at = chrono::DateTime::from_timestamp_millis(stamp)
                .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
            img.urn = urn;
            img.image_size = image_size.map(serde_json::Number::from);
            img.description = description;
            img
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// upgrade(downgrade(img)) gives back the essential fields.
        #[test]
        fn upgrade_inverts_downgrade(img in image()) {
            assert_round_trip(&img);
        }
    }
}
