//! The image object as the API returns it (manifest.md §9), and its
//! legacy DSAPI (v1) form served under `/datasets`.
//!
//! Fields are declared in the order the server emits them, so a decoded
//! image serialises back to the same JSON text; keys this crate does not
//! know are kept in `extra` (after the known ones). Values the manifest
//! validator passes through without fixing their shape (requirements,
//! tags, traits, error) stay JSON so their key order survives too.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

use crate::requirements::Requirements;

/// An image (manifest.md §9): what GetImage, ListImages, CreateImage, the
/// image actions, the file, icon and ACL endpoints answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(example = image_example())]
pub struct Image {
    /// Manifest format version: 2 (a v1 manifest accepted as-is keeps its number).
    pub v: Number,
    /// The image's UUID.
    pub uuid: Uuid,
    /// UUID of the owning account (`00000000-0000-0000-0000-000000000000` for
    /// images imported without an owner).
    pub owner: Uuid,
    /// Name (1–1024 characters of `A-Za-z0-9._/ -`).
    pub name: String,
    /// Version (1–512 characters of `A-Za-z0-9._/+-`).
    pub version: String,
    /// Lifecycle state, derived from the activated and disabled flags
    /// (`creating` and `failed` only for placeholders).
    #[schemars(extend("enum" = ["active", "unactivated", "disabled", "failed", "creating"]))]
    pub state: String,
    /// Whether the image is disabled (hidden from non-owners).
    pub disabled: bool,
    /// Whether every account may see the image.
    pub public: bool,
    /// When the image was first activated (ISO 8601, e.g. `2013-01-08T20:21:17.932Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    /// Image type; absent on placeholders.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["zone-dataset", "zvol", "lx-dataset", "lxd", "docker", "other"]))]
    pub image_type: Option<String>,
    /// Operating system; absent on placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["smartos", "linux", "windows", "bsd", "illumos", "other"]))]
    pub os: Option<String>,
    /// The image's files: none before AddImageFile, one (two for `lxd`) after.
    pub files: Vec<ImageFile>,
    /// Accounts (UUIDs) a private image is shared with; absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<Uuid>>,
    /// Free-form description (up to 10240 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Homepage URL (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    /// End-user licence agreement URL (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    /// `true` when the image has an icon (GetImageIcon serves it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<bool>,
    /// Deprecated DSAPI identifier (`cloud:creator:name:version`) kept from imports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urn: Option<String>,
    /// What a VM needs to run the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Requirements>,
    /// Users the image's OS defines (`[{"name": "root"}]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<ImageUser>>,
    /// Whether provisioning generates passwords for `users` (only `true` is shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_passwords: Option<bool>,
    /// Directories a zone-dataset image's zones inherit from the global zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_directories: Option<Vec<String>>,
    /// UUID of the image this one is an incremental on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    /// zvol images: the NIC model (e.g. `virtio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_driver: Option<String>,
    /// zvol images: the disk model (e.g. `virtio`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_driver: Option<String>,
    /// zvol images: the CPU type (e.g. `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    /// zvol images: the disk size in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i64>")]
    pub image_size: Option<Number>,
    /// Free-form tags (searchable with `tag.KEY=VALUE`); values of any JSON type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    /// Billing tags (not shown by a public-mode server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_tags: Option<Vec<String>>,
    /// Traits matched against servers when provisioning (not shown by a
    /// public-mode server); values are strings, booleans or arrays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Map<String, Value>>,
    /// Why a `failed` placeholder failed: `{message, code?, stack?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Map<String, Value>>,
    /// Channels the image is in (channel-enabled servers, Accept-Version ≥ 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// Keys this version of the types does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One file of an image (manifest.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageFile {
    /// Hex SHA-1 of the file, computed by the server.
    pub sha1: String,
    /// Size in bytes (1 … 21474836480).
    pub size: u64,
    /// Compression, as declared by the uploader.
    #[schemars(extend("enum" = ["gzip", "bzip2", "xz", "none"]))]
    pub compression: String,
    /// ZFS snapshot GUID of the dataset in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    /// Storage backend holding the file (`local`, `s3`); only with `inclAdminFields=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stor: Option<String>,
    /// Hex SHA-256 of the file, when known; only with `inclAdminFields=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Keys this version of the types does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of an image's `users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageUser {
    /// The user's login name (normally a string; any JSON value passes validation).
    #[schemars(with = "Value")]
    pub name: Value,
}

/// A legacy DSAPI (v1) dataset manifest, as `GET /datasets[/:arg]` serve it
/// in `dsapi = "serve"` mode (docs/dsapi.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DsapiDataset {
    /// The image's UUID.
    pub uuid: Uuid,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The image's URN, or `sdc:sdc:<name>:<version>`.
    pub urn: String,
    /// Image type; absent on placeholders.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    /// Operating system; absent on placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The image's `published_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    /// The image's `published_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The image's `published_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// The image's owner.
    pub creator_uuid: Uuid,
    /// The image's owner.
    pub vendor_uuid: Uuid,
    /// Second part of the URN.
    pub creator_name: String,
    /// First part of the URN.
    pub cloud_name: String,
    /// Always `smartos`.
    pub platform_type: String,
    /// Private images: the only ACL entry, else the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_to_uuid: Option<Uuid>,
    /// `true` when the image is disabled (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// The dataset's files, with their download URLs.
    pub files: Vec<DsapiFile>,
    /// As the image's `requirements`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Requirements>,
    /// As the image's `users` (any JSON value the image holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Value")]
    pub users: Option<Value>,
    /// As the image's `generate_passwords` (shown when set, `true` or `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_passwords: Option<bool>,
    /// As the image's `inherited_directories`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_directories: Option<Vec<String>>,
    /// As the image's `nic_driver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_driver: Option<String>,
    /// As the image's `disk_driver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_driver: Option<String>,
    /// As the image's `cpu_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    /// The image's `image_size` as a string (`"16384"`), as DSAPI served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<String>,
    /// Keys this version of the types does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One file of a DSAPI dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DsapiFile {
    /// File name (`<name>-<version>.zfs<ext>`).
    pub path: String,
    /// Hex SHA-1 of the file.
    pub sha1: String,
    /// Size in bytes.
    pub size: u64,
    /// Compression (not a DSAPI field; kept so the upgrade need not guess).
    pub compression: String,
    /// ZFS snapshot GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    /// Download URL (`<base>/datasets/<uuid>/<path>`).
    pub url: String,
}

fn image_example() -> Value {
    serde_json::json!({
        "v": 2,
        "uuid": "e70502b0-705e-498e-a810-53a03980eabf",
        "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
        "name": "foo",
        "version": "1.0.0",
        "state": "active",
        "disabled": false,
        "public": true,
        "published_at": "2013-01-08T20:21:17.932Z",
        "type": "zone-dataset",
        "os": "smartos",
        "files": [
            {"sha1": "cd0e0510c4a0799551687901077d7c4c06a4ebd8", "size": 42, "compression": "bzip2"}
        ],
        "description": "A test image",
        "requirements": {"min_platform": {"7.0": "20130308T102805Z"}},
        "tags": {"role": "db"}
    })
}
