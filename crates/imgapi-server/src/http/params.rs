//! The query parameters operations declare: each one's name, type and
//! meaning, written once and shared by the operations table and the OpenAPI
//! document. Handlers read them through the typed query structs of the
//! services, filled by the `from_query` functions of `routes/`.

use serde_json::{json, Value};

/// The type of a query parameter, as the OpenAPI document describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Text,
    Uuid,
    /// `true` / `false`.
    Bool,
    /// An integer within the bounds.
    Integer {
        min: i64,
        max: i64,
    },
    OneOf(&'static [&'static str]),
    /// Lower-case hex digest of this many characters.
    Hex(usize),
    Url,
    /// A string matching this pattern.
    Pattern(&'static str),
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Query,
    Header,
}

/// A query parameter (or request header) of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub location: Location,
    pub ty: ParamType,
    pub doc: &'static str,
    pub required: bool,
    /// May be given more than once.
    pub repeated: bool,
}

impl Param {
    pub const fn new(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        Param {
            name,
            location: Location::Query,
            ty,
            doc,
            required: false,
            repeated: false,
        }
    }

    /// A request header.
    pub const fn header(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        Param {
            location: Location::Header,
            ..Param::new(name, ty, doc)
        }
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn repeated(mut self) -> Self {
        self.repeated = true;
        self
    }

    /// The JSON schema of one value.
    pub fn schema(&self) -> Value {
        let one = match self.ty {
            ParamType::Text => json!({"type": "string"}),
            ParamType::Uuid => json!({"type": "string", "format": "uuid"}),
            ParamType::Bool => json!({"type": "string", "enum": ["true", "false"]}),
            ParamType::Integer { min, max } => {
                json!({"type": "integer", "minimum": min, "maximum": max})
            }
            ParamType::OneOf(values) => json!({"type": "string", "enum": values}),
            ParamType::Hex(len) => json!({
                "type": "string",
                "pattern": format!("^[0-9a-f]{{{len}}}$"),
            }),
            ParamType::Url => json!({"type": "string", "format": "uri"}),
            ParamType::Pattern(pattern) => json!({"type": "string", "pattern": pattern}),
        };
        if self.repeated {
            json!({"type": "array", "items": one})
        } else {
            one
        }
    }
}

use ParamType as T;

pub const ACCOUNT: Param = Param::new(
    "account",
    T::Uuid,
    "The account the request acts for: only what it may see exists, and writes need its ownership.",
);
pub const CHANNEL: Param = Param::new(
    "channel",
    T::Text,
    "Channel name (servers with channels); `*` = every channel where allowed.",
);
pub const ADMIN_FIELDS: Param = Param::new(
    "inclAdminFields",
    T::Bool,
    "`true`: include admin-only fields (needs authentication outside dc mode).",
);
pub const SOURCE: Param = Param::new("source", T::Url, "URL of a remote IMGAPI to copy from.");
pub const SKIP_OWNER_CHECK: Param = Param::new(
    "skip_owner_check",
    T::Bool,
    "Imports: do not check that the owner exists.",
);
pub const COMPRESSION: Param = Param::new(
    "compression",
    T::OneOf(&["bzip2", "gzip", "xz", "none"]),
    "The file's compression.",
);
pub const SHA1: Param = Param::new("sha1", T::Hex(40), "Expected SHA-1 of the bytes.");
pub const SHA256: Param = Param::new("sha256", T::Hex(64), "Expected SHA-256 of the bytes.");
pub const SIZE: Param = Param::new(
    "size",
    T::Integer {
        min: 0,
        max: i64::MAX,
    },
    "Expected size in bytes.",
);
pub const DATASET_GUID: Param = Param::new(
    "dataset_guid",
    T::Uuid,
    "The ZFS dataset GUID of a zfs image's file.",
);
pub const STORAGE: Param = Param::new(
    "storage",
    T::Text,
    "Operators: the storage backend to keep the file in.",
);
pub const INDEX: Param = Param::new(
    "index",
    T::Integer { min: 0, max: 0 },
    "Which file of the image (only 0 exists).",
);
pub const FORCE_ALL_CHANNELS: Param = Param::new(
    "force_all_channels",
    T::Bool,
    "Channels: delete the image from every channel at once.",
);

/// The filters ListImages, the catalog and the legacy `/datasets` share.
pub const NAME: Param = Param::new("name", T::Text, "Exact name, or `~substring`.");
pub const VERSION: Param = Param::new("version", T::Text, "Exact version, or `~substring`.");
pub const OS: Param = Param::new("os", T::Text, "Operating system.");
pub const TYPE: Param = Param::new("type", T::Text, "Image type, or `!type` for all others.");
pub const TAG: Param = Param::new(
    "tag.KEY",
    T::Text,
    "Images whose tag KEY has this value (empty: that have the tag). Any number of `tag.*`.",
);
pub const BILLING_TAG: Param =
    Param::new("billing_tag", T::Text, "Images with this billing tag.").repeated();

pub const INCLUDE_DEPRECATED: Param = Param::new(
    "include_deprecated",
    T::Bool,
    "Also list deprecated images (docs/lifecycle.md); by default only their owner and operators see them.",
);
pub const OWNER: Param = Param::new("owner", T::Uuid, "Owner UUID.");
pub const STATE: Param = Param::new(
    "state",
    T::OneOf(&["active", "disabled", "unactivated", "all"]),
    "Image state (default: active).",
);
pub const PUBLIC: Param = Param::new("public", T::Bool, "Only public (`true`) or private images.");
pub const LIMIT: Param = Param::new(
    "limit",
    T::Integer { min: 1, max: 1000 },
    "At most this many images (1000 at most).",
);
pub const MARKER: Param = Param::new(
    "marker",
    T::Text,
    "Image UUID or ISO date: start the page at that `published_at`.",
);
pub const SORT: Param = Param::new(
    "sort",
    T::OneOf(&["published_at", "published_at.asc", "published_at.desc"]),
    "Sort order (`asc`/`desc` in any case; any other order or attribute: 422 InvalidParameter).",
);

/// Conditional requests on an image (its ETag) or a file (its SHA-1).
pub const IF_MATCH: Param = Param::header(
    "If-Match",
    T::Text,
    "Answer 412 PreconditionFailed unless the ETag is one of these.",
);
pub const IF_NONE_MATCH: Param = Param::header(
    "If-None-Match",
    T::Text,
    "Answer 304 (reads) or 412 (writes) when the ETag is one of these.",
);
pub const RANGE: Param = Param::header(
    "Range",
    T::Pattern("^bytes=[0-9]*-[0-9]*$"),
    "One byte range of the file (206).",
);
pub const IF_RANGE: Param = Param::header(
    "If-Range",
    T::Text,
    "The file's ETag: the range applies only while the file is unchanged.",
);
pub const CONTENT_RANGE: Param = Param::header(
    "Content-Range",
    T::Pattern("^bytes [0-9]+-[0-9]+/([0-9]+|\\*)$"),
    "Where the chunk goes: `bytes START-END/TOTAL` (or `/*` while the total is unknown).",
)
.required();
