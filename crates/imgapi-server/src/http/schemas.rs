//! JSON schemas of the request bodies this server reads, for the OpenAPI
//! document. They describe what the validators accept (manifest.md §3) so
//! that a generic client can build a valid body; the validators stay the
//! authority and answer with their own restCodes and messages.

use serde_json::{json, Map, Value};

const TYPES: &[&str] = &[
    "zone-dataset",
    "zvol",
    "lx-dataset",
    "lxd",
    "docker",
    "other",
];
const OSES: &[&str] = &["smartos", "linux", "windows", "bsd", "illumos", "other"];

/// The manifest fields a client may set on CreateImage (manifest.md §2).
fn manifest_properties() -> Map<String, Value> {
    let props = json!({
        "v": {"type": "integer", "minimum": 2, "maximum": 2, "description": "Manifest version."},
        "owner": {"type": "string", "format": "uuid", "description": "The owning account."},
        "name": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[A-Za-z0-9._/ -]+$"},
        "version": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": "^[A-Za-z0-9._/+-]+$"},
        "description": {"type": "string", "maxLength": 10240},
        "homepage": {"type": "string", "format": "uri", "pattern": "^https?://[a-z0-9.-]+(/[A-Za-z0-9._/-]*)?$", "maxLength": 1024},
        "eula": {"type": "string", "format": "uri", "pattern": "^https?://[a-z0-9.-]+(/[A-Za-z0-9._/-]*)?$", "maxLength": 1024},
        "type": {"type": "string", "enum": TYPES},
        "os": {"type": "string", "enum": OSES},
        "public": {"type": "boolean"},
        "disabled": {"type": "boolean"},
        "acl": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        "requirements": {
            "type": "object",
            "properties": {
                "min_ram": {"type": "integer", "minimum": 1},
                "max_ram": {"type": "integer", "minimum": 1},
                "ssh_key": {"type": "boolean"},
                "brand": {"type": "string", "enum": ["joyent", "joyent-minimal", "lx", "bhyve", "kvm"]}
            },
            "additionalProperties": false
        },
        "users": {
            "type": "array",
            "items": {"type": "object", "required": ["name"],
                      "properties": {"name": {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,30}$"}},
                      "additionalProperties": false}
        },
        "tags": {
            "type": "object",
            "description": "Search tags: string, number or boolean values.",
            "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,30}$"},
            "additionalProperties": {"type": ["string", "boolean", "integer"]}
        },
        "generate_passwords": {"type": "boolean"},
        "inherited_directories": {"type": "array", "items": {"type": "string", "pattern": "^/[a-z]+$"}},
        "origin": {"type": "string", "format": "uuid", "description": "The image this one was made from (must exist and be active)."}
    });
    props.as_object().cloned().unwrap_or_default()
}

fn create_image() -> Value {
    json!({
        "type": "object",
        "description": "A new image's manifest. Public servers want `owner` and `public: true`; \
    private ones `public: false`. Unknown fields are refused (InvalidParameter).",
        "required": ["name", "version", "type", "os"],
        "properties": manifest_properties(),
        "additionalProperties": false,
        "examples": [{
            "name": "base-64", "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
            "owner": "86055c40-2547-11e2-8a6b-4bb37edc84ba", "public": true,
            "description": "A SmartOS base image."
        }]
    })
}

fn update_image() -> Value {
    let mut props = manifest_properties();
    for fixed in ["v", "type", "origin", "disabled"] {
        props.remove(fixed);
    }
    json!({
        "type": "object",
        "description": "The fields to change (UpdateImage).",
        "properties": props,
        "additionalProperties": false,
        "examples": [{"description": "Now with more bytes."}]
    })
}

fn import_image() -> Value {
    let mut props = manifest_properties();
    props.insert(
        "uuid".into(),
        json!({"type": "string", "format": "uuid", "description": "Must equal the path's uuid."}),
    );
    props.insert(
        "published_at".into(),
        json!({"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{3})?Z$"}),
    );
    json!({
        "type": "object",
        "description": "A full manifest with its `uuid` (AdminImportImage).",
        "required": ["uuid", "name", "version", "type", "os"],
        "properties": props,
    })
}

/// Every request body schema, by name.
pub fn request_bodies() -> Vec<(&'static str, Value)> {
    vec![
        ("CreateImage", create_image()),
        ("UpdateImage", update_image()),
        ("ImportImage", import_image()),
        (
            "Acl",
            json!({
                "type": "array",
                "description": "Account UUIDs to add to (or remove from) the ACL.",
                "items": {"type": "string", "format": "uuid"},
                "examples": [["a5b6e4c1-2f3d-4e5f-8a9b-0c1d2e3f4a5b"]]
            }),
        ),
        (
            "RetentionRuleBody",
            json!({
                "type": "object",
                "description": "A retention rule (docs/lifecycle.md): at least one of `keep_versions` and `keep_days`.",
                "required": ["name"],
                "additionalProperties": false,
                "properties": {
                    "owner": {"type": ["string", "null"], "format": "uuid", "description": "The owner whose images the rule applies to; absent = every owner."},
                    "name": {"type": "string", "minLength": 1, "description": "Image name, or a pattern with `*` and `?`."},
                    "keep_versions": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Keep the newest N active versions of each (owner, name)."},
                    "keep_days": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Keep the images published within the last D days."}
                }
            }),
        ),
        (
            "WebhookBody",
            json!({
                "type": "object",
                "description": "A webhook endpoint (docs/webhooks.md). The URL must pass the `[remote]` policy.",
                "required": ["url", "secret"],
                "additionalProperties": false,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Unique name; absent = `webhook-<random>`."},
                    "url": {"type": "string", "format": "uri", "maxLength": 2048, "description": "Where each event is POSTed (`https:`, or `http:` with `[remote] allow_http`)."},
                    "secret": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "The HMAC-SHA256 key of `X-Imgapi-Signature`; never shown again."},
                    "events": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/ChangeKind"}, "minItems": 1, "description": "Event types delivered; absent or null = every type."},
                    "since": {"type": "integer", "minimum": 0, "description": "Deliver the events after this sequence number (within what the log keeps); absent = only events from now on."}
                }
            }),
        ),
        (
            "WebhookResumeBody",
            json!({
                "type": "object",
                "description": "ResumeWebhook: optional; `since` moves the cursor (e.g. past events that were purged).",
                "additionalProperties": false,
                "properties": {
                    "since": {"type": "integer", "minimum": 0, "description": "Go on after this sequence number instead of the cursor."}
                }
            }),
        ),
        (
            "ChannelAdd",
            json!({
                "type": "object",
                "required": ["channel"],
                "properties": {"channel": {"type": "string", "description": "A configured channel."}}
            }),
        ),
        (
            "PushDockerImage",
            json!({
                "type": "object",
                "description": "What sdc-docker sends: the manifest to push and the image config it names. Without `manifest_str` (an extension) the server builds a Docker schema 2 manifest and config from the stored layers.",
                "properties": {
                    "image_uuid": {"type": "string"},
                    "manifest_str": {"type": "string", "description": "The Docker manifest, as JSON text."},
                    "config_digest": {"type": "string"},
                    "image": {"type": "object", "description": "The image config; its sha256 must be `config_digest`."}
                }
            }),
        ),
        (
            "ImageLifecycleUpdate",
            json!({
                "type": "object",
                "description": "The lifecycle flags to change (docs/lifecycle.md); fields left out keep their value.",
                "additionalProperties": false,
                "properties": {
                    "deprecated_at": {
                        "description": "When the image is deprecated: an ISO 8601 time, `\"now\"`, or `null` to clear.",
                        "type": ["string", "null"]
                    },
                    "protected": {"type": "boolean", "description": "Whether the image may be deleted (`false`) or not."}
                },
                "examples": [{"deprecated_at": "2027-01-01T00:00:00Z", "protected": true}]
            }),
        ),
        (
            "FileFromUrl",
            json!({
                "type": "object",
                "required": ["file_url"],
                "properties": {
                    "file_url": {"type": "string", "format": "uri", "description": "http(s) URL of the file (the `[remote]` policy applies)."}
                }
            }),
        ),
    ]
}

/// The answers' schemas: the wire types of `imgapi-types` (generated from
/// the types the client decodes), and the lists of them.
pub fn responses() -> Vec<(&'static str, Value)> {
    let list_of = |name: &str| json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}});
    let mut out = imgapi_types::schemas();
    out.extend([
        ("ImageList", list_of("Image")),
        ("ChannelList", list_of("Channel")),
        ("JobList", list_of("Job")),
        ("RetentionRuleList", list_of("RetentionRule")),
        ("WebhookList", list_of("Webhook")),
        ("RecycledImageList", list_of("RecycledImage")),
        ("QuotaList", list_of("Quota")),
        ("DatasetList", list_of("DsapiDataset")),
        (
            "SimplestreamsIndex",
            json!({
                "type": "object",
                "description": "A simplestreams index (`format: index:1.0`): `index.images` names the products file (`path`) and its products.",
                "required": ["format", "index"],
                "properties": {"format": {"const": "index:1.0"}, "index": {"type": "object"}}
            }),
        ),
        (
            "SimplestreamsProducts",
            json!({
                "type": "object",
                "description": "A simplestreams products file (`format: products:1.0`, datatype `image-downloads`): products `os:release:arch:variant` with `aliases`, `os`, `release`, `arch`, and `versions` keyed `YYYYMMDD_HH:MM`, each with `items` (`ftype`, `path`, `size`, `sha256`, and on a split image's metadata item the `combined_*_sha256` fingerprint).",
                "required": ["format", "products"],
                "properties": {
                    "content_id": {"type": "string"},
                    "datatype": {"const": "image-downloads"},
                    "format": {"const": "products:1.0"},
                    "products": {"type": "object"}
                }
            }),
        ),
        (
            "Empty",
            json!({"type": "object", "maxProperties": 0, "description": "`{}`"}),
        ),
        (
            "OpenApi",
            json!({"type": "object", "required": ["openapi", "paths"], "description": "An OpenAPI 3.1 document."}),
        ),
    ]);
    out
}

/// `components.schemas`: the answers' wire types and the request bodies.
pub fn all() -> Value {
    let mut out = Map::new();
    for (name, schema) in responses().into_iter().chain(request_bodies()) {
        out.insert(name.to_string(), schema);
    }
    Value::Object(out)
}
