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
            "ChannelAdd",
            json!({
                "type": "object",
                "required": ["channel"],
                "properties": {"channel": {"type": "string", "description": "A configured channel."}}
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

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// The answers' schemas: what the server writes, in every mode and
/// Accept-Version (fields absent where the server leaves them out).
pub fn responses() -> Vec<(&'static str, Value)> {
    let uuid = json!({"type": "string", "format": "uuid"});
    let uuids = json!({"type": "array", "items": {"type": "string", "format": "uuid"}});
    let image = json!({
        "type": "object",
        "description": "An image (manifest.md §2): fields are left out when unset.",
        "required": ["v", "uuid", "owner", "name", "version", "state", "disabled", "public", "files"],
        "properties": {
            "v": {"type": "integer"},
            "uuid": uuid, "owner": uuid,
            "name": {"type": ["string", "number"]},
            "version": {"type": "string"},
            "description": {"type": "string"},
            "homepage": {"type": "string"}, "eula": {"type": "string"},
            "state": {"type": "string", "enum": ["active", "unactivated", "disabled", "failed", "creating"]},
            "disabled": {"type": "boolean"}, "public": {"type": "boolean"},
            "published_at": {"type": "string"},
            "type": {"type": "string"}, "os": {"type": "string"},
            "files": {"type": "array", "items": {
                "type": "object", "required": ["sha1", "size", "compression"],
                "properties": {
                    "sha1": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
                    "compression": {"type": "string"}, "dataset_guid": {"type": "string"},
                    "stor": {"type": "string"}, "sha256": {"type": "string"},
                    "digest": {"type": "string"}, "uncompressedDigest": {"type": "string"}
                }
            }},
            "acl": uuids,
            "icon": {"type": "boolean"},
            "urn": {"type": "string"},
            "requirements": {"type": "object"},
            "users": {"type": "array"},
            "generate_passwords": {"type": "boolean"},
            "inherited_directories": {"type": "array"},
            "origin": uuid,
            "nic_driver": {"type": "string"}, "disk_driver": {"type": "string"}, "cpu_type": {"type": "string"},
            "image_size": {"type": "number"},
            "tags": {"type": "object"},
            "billing_tags": {"type": "array", "items": {"type": "string"}},
            "traits": {"type": "object"},
            "channels": {"type": "array", "items": {"type": "string"}},
            "error": {"type": "object"}
        }
    });
    let job = json!({
        "type": "object",
        "required": ["uuid", "name", "execution", "image_uuid", "params", "chain_results", "onerror_results", "created_at"],
        "properties": {
            "uuid": uuid, "name": {"type": "string"},
            "execution": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "canceled"]},
            "image_uuid": uuid, "params": {"type": "object"},
            "chain_results": {"type": "array"}, "onerror_results": {"type": "array"},
            "created_at": {"type": "string"}, "started_at": {"type": "string"}, "finished_at": {"type": "string"}
        }
    });
    vec![
        (
            "Error",
            object(
                &["code", "message"],
                json!({
                    "code": {"type": "string", "description": "The restCode (docs/errors.md).",
                             "enum": imgapi_types::RestCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": object(&["field", "code"], json!({
                        "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}
                    }))}
                }),
            ),
        ),
        ("Image", image),
        (
            "ImageList",
            json!({"type": "array", "items": {"$ref": "#/components/schemas/Image"}}),
        ),
        (
            "Ping",
            object(
                &["ping", "version", "imgapi"],
                json!({
                    "ping": {"const": "pong"}, "version": {"type": "string"}, "imgapi": {"const": true},
                    "pid": {"type": "integer"}, "user": {"type": "string"}
                }),
            ),
        ),
        ("Empty", json!({"type": "object", "maxProperties": 0})),
        (
            "State",
            object(
                &["log", "storageTypes", "mode", "uptimeSeconds", "images"],
                json!({
                    "log": {"type": "object"}, "storageTypes": {"type": "array", "items": {"type": "string"}},
                    "mode": {"type": "string", "enum": ["public", "private", "dc"]},
                    "uptimeSeconds": {"type": "integer"}, "images": {"type": "object"}
                }),
            ),
        ),
        (
            "ChannelList",
            json!({"type": "array", "items": object(&["name", "description"], json!({
                "name": {"type": "string"}, "description": {"type": "string"}, "default": {"type": "boolean"}
            }))}),
        ),
        ("Job", job),
        (
            "JobList",
            json!({"type": "array", "items": {"$ref": "#/components/schemas/Job"}}),
        ),
        (
            "StartedJob",
            object(
                &["image_uuid", "job_uuid"],
                json!({"image_uuid": uuid, "job_uuid": uuid}),
            ),
        ),
        (
            "Usage",
            json!({
                "type": "object",
                "description": "Storage per owner and billing tag.",
                "required": ["owners", "billingTags", "totals"],
                "properties": {
                    "owners": {"type": "array", "items": object(
                        &["owner", "images", "activeImages", "files", "fileBytes", "icons",
                          "iconBytes", "bytes", "billingTags"],
                        json!({"owner": uuid, "images": {"type": "integer"},
                               "activeImages": {"type": "integer"}, "files": {"type": "integer"},
                               "fileBytes": {"type": "integer"}, "icons": {"type": "integer"},
                               "iconBytes": {"type": "integer"}, "bytes": {"type": "integer"},
                               "billingTags": {"type": "object"}}))},
                    "billingTags": {"type": "object", "additionalProperties": object(
                        &["images", "bytes"],
                        json!({"images": {"type": "integer"}, "bytes": {"type": "integer"}}))},
                    "totals": object(&["owners", "images", "bytes"], json!({
                        "owners": {"type": "integer"}, "images": {"type": "integer"},
                        "bytes": {"type": "integer"}}))
                }
            }),
        ),
        (
            "UploadSession",
            object(
                &["upload_id", "offset", "chunk_size_min", "expires_at"],
                json!({
                    "upload_id": uuid, "offset": {"type": "integer", "minimum": 0},
                    "size": {"type": ["integer", "null"], "minimum": 0},
                    "chunk_size_min": {"type": "integer"}, "expires_at": {"type": "string"}
                }),
            ),
        ),
        (
            "Export",
            object(
                &["manta_url", "image_path", "manifest_path"],
                json!({
                    "manta_url": {"type": "string"}, "image_path": {"type": "string"},
                    "manifest_path": {"type": "string"}
                }),
            ),
        ),
        (
            "Dataset",
            json!({"type": "object", "required": ["uuid"], "description": "A v1 (DSAPI) manifest."}),
        ),
        (
            "DatasetList",
            json!({"type": "array", "items": {"$ref": "#/components/schemas/Dataset"}}),
        ),
    ]
}

/// `components.schemas`: the answers' wire types and the request bodies.
pub fn all() -> Value {
    let mut out = Map::new();
    for (name, schema) in responses().into_iter().chain(request_bodies()) {
        out.insert(name.to_string(), schema);
    }
    out.insert(
        "OpenApi".into(),
        json!({"type": "object", "required": ["openapi", "paths"], "description": "An OpenAPI 3.1 document."}),
    );
    Value::Object(out)
}
