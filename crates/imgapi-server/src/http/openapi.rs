//! The OpenAPI 3.0 description of the HTTP API (issue 8 item 2), served at
//! `GET /openapi.json` and kept as `docs/openapi.json` (written by
//! `cargo run -p xtask -- gen-docs`; a test fails when they drift).
//!
//! Only what the code cannot tell is written here, one [`OpDoc`] per
//! (path, method): the path template, a summary, the query parameters and
//! the restCodes an operation answers with. Derived from the code: the
//! operationIds (and the names of the `action` variants) from
//! [`endpoint_name`], the authentication from [`Route::auth_policy`], each
//! error's HTTP status and meaning from the restCode table, and the errors
//! every route can answer with.

use http::Method;
use imgapi_types::RestCode;
use serde_json::{json, Map, Value};

use super::auth::AuthPolicy;
use super::endpoint::endpoint_name;
use super::router::Route;

/// A query parameter of an operation.
pub struct Param {
    pub name: &'static str,
    pub doc: &'static str,
}

/// One operation: a method on a path template.
pub struct OpDoc {
    pub method: Method,
    /// OpenAPI path template (`{uuid}` for `:uuid`).
    pub path: &'static str,
    /// The route the path parses to (with a placeholder for each segment).
    pub route: fn() -> Route,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// Values of `?action=`; each is listed with its endpoint name.
    pub actions: &'static [&'static str],
    /// restCodes beyond the ones every operation can answer with.
    pub errors: &'static [RestCode],
}

const P_ACCOUNT: Param = Param {
    name: "account",
    doc: "The account the request acts for (visibility and ownership checks).",
};
const P_CHANNEL: Param = Param {
    name: "channel",
    doc: "Channel name (channel-enabled servers); `*` = all channels where allowed.",
};
const P_ACTION: Param = Param {
    name: "action",
    doc: "Which operation to run; see `x-imgapi-actions`.",
};
const P_ADMIN: Param = Param {
    name: "inclAdminFields",
    doc: "`true`: include admin-only fields.",
};
const P_SOURCE: Param = Param {
    name: "source",
    doc: "URL of a remote IMGAPI to import from.",
};

fn s() -> String {
    "{}".into()
}

use RestCode as R;

const NOT_IMAGE: &[RestCode] = &[R::InvalidParameter, R::ValidationFailed];
const MODIFY: &[RestCode] = &[
    R::InvalidParameter,
    R::ValidationFailed,
    R::NotImageOwner,
    R::PreconditionFailed,
    R::InvalidContent,
    R::RequestEntityTooLarge,
];

/// Every documented operation, in the order of api.md §2.
pub static OPS: &[OpDoc] = &[
    OpDoc { method: Method::GET, path: "/ping", route: || Route::Ping, summary: "Health check; `?error=<restCode>` answers with that error.", params: &[Param { name: "error", doc: "A restCode to answer with (testing)." }], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/state", route: || Route::State, summary: "Admin: the server's internal state.", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::POST, path: "/state", route: || Route::State, summary: "Admin: `?action=dropcaches`.", params: &[P_ACTION], actions: &["dropcaches"], errors: &[R::InvalidArgument, R::MissingParameter] },
    OpDoc { method: Method::POST, path: "/authkeys/reload", route: || Route::AuthKeysReload, summary: "Admin: reload the HTTP Signature keys.", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/channels", route: || Route::Channels, summary: "The configured channels (channel-enabled servers only).", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/images", route: || Route::Images, summary: "ListImages: filter, sort and page the visible images.", params: &[P_ACCOUNT, P_CHANNEL, P_ADMIN, Param { name: "owner", doc: "Owner UUID." }, Param { name: "state", doc: "active (default), disabled, unactivated, all." }, Param { name: "name", doc: "Exact name, or `~substring`." }, Param { name: "version", doc: "Exact version, or `~substring`." }, Param { name: "public", doc: "`true` / `false`." }, Param { name: "os", doc: "OS." }, Param { name: "type", doc: "Type, or `!type`." }, Param { name: "tag.KEY", doc: "Tag value (empty: tag present)." }, Param { name: "billing_tag", doc: "Billing tag (repeatable)." }, Param { name: "limit", doc: "At most this many (max 1000)." }, Param { name: "marker", doc: "Image UUID or date: start at that `published_at`." }, Param { name: "sort", doc: "`published_at[.asc|.desc]`." }], actions: &[], errors: &[R::InvalidParameter, R::ValidationFailed] },
    OpDoc { method: Method::POST, path: "/images", route: || Route::Images, summary: "CreateImage (no `action`), or an import action.", params: &[P_ACCOUNT, P_CHANNEL, P_ACTION], actions: &["create-from-vm", "import-docker-image", "import-lxd-image"], errors: &[R::ValidationFailed, R::InvalidParameter, R::InvalidContent, R::RequestEntityTooLarge, R::OwnerDoesNotExist, R::AccountDoesNotExist, R::OriginDoesNotExist, R::OperatorOnly, R::NotAvailable] },
    OpDoc { method: Method::GET, path: "/images/{uuid}", route: || Route::Image(s()), summary: "GetImage.", params: &[P_ACCOUNT, P_CHANNEL, P_ADMIN], actions: &[], errors: &[R::InvalidParameter, R::ValidationFailed, R::PreconditionFailed, R::BadRequestError] },
    OpDoc { method: Method::POST, path: "/images/{uuid}", route: || Route::Image(s()), summary: "An image action (activate, disable, enable, update, channel-add, import, import-remote, import-from-datacenter, change-stor, export).", params: &[P_ACCOUNT, P_CHANNEL, P_ACTION, P_SOURCE, Param { name: "skip_owner_check", doc: "Imports: do not check the owner." }, Param { name: "datacenter", doc: "import-from-datacenter: the source DC." }, Param { name: "stor", doc: "change-stor: the target storage." }, Param { name: "manta_path", doc: "export: the target path." }], actions: &["activate", "disable", "enable", "update", "channel-add", "import", "import-remote", "import-from-datacenter", "change-stor", "export"], errors: &[R::InvalidParameter, R::ValidationFailed, R::NotImageOwner, R::PreconditionFailed, R::InvalidContent, R::RequestEntityTooLarge, R::ImageAlreadyActivated, R::NoActivationNoFile, R::ImageUuidAlreadyExists, R::OriginDoesNotExist, R::OriginIsNotActive, R::OperatorOnly, R::RemoteSourceError, R::StorageUnsupported, R::NotMantaPathOwner, R::NotAvailable] },
    OpDoc { method: Method::DELETE, path: "/images/{uuid}", route: || Route::Image(s()), summary: "DeleteImage.", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageHasDependentImages, R::PreconditionFailed] },
    OpDoc { method: Method::GET, path: "/images/{uuid}/file", route: || Route::ImageFile(s()), summary: "GetImageFile: the file's bytes (`Range` supported).", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter, R::RequestedRangeNotSatisfiable, R::PreconditionFailed, R::StorageIsDown] },
    OpDoc { method: Method::PUT, path: "/images/{uuid}/file", route: || Route::ImageFile(s()), summary: "AddImageFile: upload the file (body = bytes), or `?source=` to copy it from a remote IMGAPI.", params: &[P_ACCOUNT, P_CHANNEL, P_SOURCE, Param { name: "compression", doc: "gzip, bzip2, xz or none." }, Param { name: "sha1", doc: "Expected SHA-1." }, Param { name: "size", doc: "Expected size." }, Param { name: "storage", doc: "Storage backend." }], actions: &[], errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageFilesImmutable, R::Upload, R::Download, R::StorageIsDown, R::StorageUnsupported, R::NotImplemented] },
    OpDoc { method: Method::POST, path: "/images/{uuid}/file/from-url", route: || Route::ImageFileFromUrl(s()), summary: "AddImageFileFromUrl: the server downloads the file.", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageFilesImmutable, R::Download, R::InvalidContent] },
    OpDoc { method: Method::POST, path: "/images/{uuid}/file/uploads", route: || Route::ImageFileUploads(s()), summary: "Start a resumable upload session (extension, docs/uploads.md).", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter, R::NotImageOwner, R::ImageFilesImmutable, R::Upload] },
    OpDoc { method: Method::GET, path: "/images/{uuid}/file/uploads/{upload}", route: || Route::ImageFileUpload(s(), s()), summary: "An upload session's state and offset (also HEAD).", params: &[P_ACCOUNT], actions: &[], errors: &[R::InvalidParameter] },
    OpDoc { method: Method::PUT, path: "/images/{uuid}/file/uploads/{upload}", route: || Route::ImageFileUpload(s(), s()), summary: "Append a chunk at `Upload-Offset`.", params: &[P_ACCOUNT], actions: &[], errors: &[R::InvalidParameter, R::Upload, R::RequestedRangeNotSatisfiable, R::UploadSessionBusy] },
    OpDoc { method: Method::POST, path: "/images/{uuid}/file/uploads/{upload}", route: || Route::ImageFileUpload(s(), s()), summary: "Finish the upload session (`?action=finish`).", params: &[P_ACCOUNT, P_ACTION], actions: &["finish"], errors: &[R::InvalidParameter, R::Upload, R::Download, R::UploadSessionBusy, R::ImageAlreadyActivated] },
    OpDoc { method: Method::DELETE, path: "/images/{uuid}/file/uploads/{upload}", route: || Route::ImageFileUpload(s(), s()), summary: "Abort the upload session.", params: &[P_ACCOUNT], actions: &[], errors: &[R::InvalidParameter, R::UploadSessionBusy] },
    OpDoc { method: Method::GET, path: "/images/{uuid}/icon", route: || Route::ImageIcon(s()), summary: "GetImageIcon.", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter, R::PreconditionFailed] },
    OpDoc { method: Method::PUT, path: "/images/{uuid}/icon", route: || Route::ImageIcon(s()), summary: "AddImageIcon (body = image bytes).", params: &[P_ACCOUNT, P_CHANNEL, Param { name: "sha1", doc: "Expected SHA-1." }], actions: &[], errors: &[R::InvalidParameter, R::NotImageOwner, R::Upload, R::NotImplemented] },
    OpDoc { method: Method::DELETE, path: "/images/{uuid}/icon", route: || Route::ImageIcon(s()), summary: "DeleteImageIcon.", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter, R::NotImageOwner] },
    OpDoc { method: Method::POST, path: "/images/{uuid}/acl", route: || Route::ImageAcl(s()), summary: "AddImageAcl (default) or RemoveImageAcl (`?action=remove`); body = account UUIDs.", params: &[P_ACCOUNT, P_CHANNEL, P_ACTION], actions: &["add", "remove"], errors: MODIFY },
    OpDoc { method: Method::POST, path: "/images/{uuid}/clone", route: || Route::ImageClone(s()), summary: "CloneImage (dc mode only).", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter, R::ImageNotShared, R::NotAvailable] },
    OpDoc { method: Method::GET, path: "/images/{uuid}/jobs", route: || Route::ImageJobs(s()), summary: "ListImageJobs.", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: NOT_IMAGE },
    OpDoc { method: Method::GET, path: "/jobs/{uuid}", route: || Route::Job(s()), summary: "One job, as the workflow API shows it.", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/usage", route: || Route::Usage, summary: "Admin: storage per owner and billing tag (extension).", params: &[Param { name: "owner", doc: "Only this owner." }], actions: &[], errors: &[R::InvalidParameter] },
    OpDoc { method: Method::GET, path: "/metrics", route: || Route::Metrics, summary: "Prometheus metrics (only with `metrics_on_main`).", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/datasets", route: || Route::Datasets, summary: "Legacy DSAPI: 301 to /images, or the dataset list with `dsapi = \"serve\"`.", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/datasets/{arg}", route: || Route::Dataset(s()), summary: "Legacy DSAPI: one dataset (or a 301).", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/datasets/{arg}/{file}", route: || Route::DatasetFile(s(), s()), summary: "Legacy DSAPI: a dataset's file (`dsapi = \"serve\"` only).", params: &[], actions: &[], errors: &[] },
    OpDoc { method: Method::GET, path: "/catalog", route: || Route::Catalog, summary: "HTML catalog of the visible images (`catalog = true`).", params: &[P_ACCOUNT, P_CHANNEL, Param { name: "name", doc: "Name substring (or prefix with `match=prefix`)." }, Param { name: "match", doc: "`substring` (default) or `prefix`." }, Param { name: "os", doc: "OS." }, Param { name: "type", doc: "Type." }, Param { name: "limit", doc: "Rows per page (default 50)." }, Param { name: "marker", doc: "ListImages marker of the page's first row." }], actions: &[], errors: &[R::InvalidParameter] },
    OpDoc { method: Method::GET, path: "/catalog/{uuid}", route: || Route::CatalogImage(s()), summary: "HTML page of one visible image.", params: &[P_ACCOUNT, P_CHANNEL], actions: &[], errors: &[R::InvalidParameter] },
    OpDoc { method: Method::GET, path: "/openapi.json", route: || Route::OpenApi, summary: "This document.", params: &[], actions: &[], errors: &[] },
];

/// restCodes any operation can answer with.
fn common_errors(op: &OpDoc, route: &Route) -> Vec<RestCode> {
    let mut codes = vec![
        R::InvalidVersion,
        R::MethodNotAllowedError,
        R::InternalError,
    ];
    if op.path.contains('{') {
        codes.push(R::ResourceNotFound);
    }
    if route.auth_policy(&op.method) != AuthPolicy::None {
        codes.push(R::UnauthorizedError);
    }
    if op.path.starts_with("/images") || op.path.starts_with("/catalog") {
        codes.push(R::ServiceUnavailableError);
    }
    codes
}

fn http_status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// The operationId: the endpoint name (as metrics and logs use it); for
/// routes whose methods share one name, prefixed with the method.
fn operation_id(op: &OpDoc) -> String {
    let name = |op: &OpDoc| endpoint_name(Some(&(op.route)()), &op.method, None).into_owned();
    let own = name(op);
    let shared = OPS
        .iter()
        .filter(|other| other.method != op.method && name(other) == own)
        .count()
        > 0;
    if shared {
        let m = op.method.as_str();
        let mut chars = m.chars();
        let head: String = chars.next().into_iter().collect();
        format!("{head}{}{own}", chars.as_str().to_ascii_lowercase())
    } else {
        own
    }
}

fn operation(op: &OpDoc) -> Value {
    let route = (op.route)();
    let operation_id = operation_id(op);
    let mut params: Vec<Value> = path_params(op.path)
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect();
    params.extend(op.params.iter().map(|p| {
        json!({"name": p.name, "in": "query", "required": false,
               "description": p.doc, "schema": {"type": "string"}})
    }));
    if !op.actions.is_empty() {
        if let Some(action) = params
            .iter_mut()
            .find(|p| p["name"] == "action" && p["in"] == "query")
        {
            action["schema"]["enum"] = json!(op.actions);
        }
    }

    // Errors grouped by HTTP status; each description names its restCodes.
    let mut codes: Vec<RestCode> = op.errors.to_vec();
    for c in common_errors(op, &route) {
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    let mut by_status: std::collections::BTreeMap<u16, Vec<RestCode>> = Default::default();
    for c in codes {
        by_status.entry(c.http_status()).or_default().push(c);
    }
    let mut responses = Map::new();
    responses.insert(
        "2XX".into(),
        json!({"description": "Success (see api.md for the body)."}),
    );
    for (status, codes) in by_status {
        let lines: Vec<String> = codes
            .iter()
            .map(|c| format!("`{}`: {}", c.as_str(), c.description()))
            .collect();
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        responses.insert(
            status.to_string(),
            json!({
                "description": format!("{}. restCodes: {}", http_status_text(status), lines.join(" ")),
                "x-imgapi-restCodes": names,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            }),
        );
    }
    let mut out = json!({
        "operationId": operation_id,
        "summary": op.summary,
        "parameters": params,
        "responses": responses,
    });
    match route.auth_policy(&op.method) {
        AuthPolicy::Strict => out["security"] = json!([{"httpSignature": []}]),
        AuthPolicy::Passive => out["security"] = json!([{}, {"httpSignature": []}]),
        AuthPolicy::None => out["security"] = json!([]),
    }
    if !op.actions.is_empty() {
        let actions: Map<String, Value> = op
            .actions
            .iter()
            .map(|a| {
                let query = format!("action={a}");
                let name = endpoint_name(Some(&route), &op.method, Some(&query));
                (a.to_string(), Value::String(name.into_owned()))
            })
            .collect();
        out["x-imgapi-actions"] = Value::Object(actions);
    }
    out
}

/// `{name}` segments of a path template.
fn path_params(path: &'static str) -> impl Iterator<Item = &'static str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPS {
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method.as_str().to_ascii_lowercase()] = operation(op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "IMGAPI",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Images API (docs/api.md). Generated from the route table \
    (crates/imgapi-server/src/http/openapi.rs) and the restCode table; \
    `cargo run -p xtask -- gen-docs` writes docs/openapi.json."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "httpSignature": {
                    "type": "http",
                    "scheme": "signature",
                    "description": "HTTP Signature authentication (`Authorization: Signature keyId=…`)."
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "description": "The restCode (docs/errors.md).",
                                 "enum": RestCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
                        "message": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "code"],
                                "properties": {
                                    "field": {"type": "string"},
                                    "code": {"type": "string"},
                                    "message": {"type": "string"}
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// `docs/openapi.json`: the document, pretty-printed.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Route variant, once. The `match` has no wildcard: a new
    /// variant does not compile until it is added here (and then the test
    /// below wants an [`OpDoc`] for each of its methods).
    fn all_routes() -> Vec<Route> {
        let routes = vec![
            Route::Ping,
            Route::Channels,
            Route::Images,
            Route::Image(s()),
            Route::ImageFile(s()),
            Route::ImageFileFromUrl(s()),
            Route::ImageFileUploads(s()),
            Route::ImageFileUpload(s(), s()),
            Route::ImageIcon(s()),
            Route::ImageAcl(s()),
            Route::ImageClone(s()),
            Route::ImageJobs(s()),
            Route::Job(s()),
            Route::State,
            Route::AuthKeysReload,
            Route::Usage,
            Route::Metrics,
            Route::Datasets,
            Route::Dataset(s()),
            Route::DatasetFile(s(), s()),
            Route::Catalog,
            Route::CatalogImage(s()),
            Route::OpenApi,
        ];
        for r in &routes {
            match r {
                Route::Ping
                | Route::Channels
                | Route::Images
                | Route::Image(_)
                | Route::ImageFile(_)
                | Route::ImageFileFromUrl(_)
                | Route::ImageFileUploads(_)
                | Route::ImageFileUpload(..)
                | Route::ImageIcon(_)
                | Route::ImageAcl(_)
                | Route::ImageClone(_)
                | Route::ImageJobs(_)
                | Route::Job(_)
                | Route::State
                | Route::AuthKeysReload
                | Route::Usage
                | Route::Metrics
                | Route::Datasets
                | Route::Dataset(_)
                | Route::DatasetFile(..)
                | Route::Catalog
                | Route::CatalogImage(_)
                | Route::OpenApi => {}
            }
        }
        routes
    }

    #[test]
    fn every_route_and_method_is_documented_once() {
        for route in all_routes() {
            for method in route.methods().iter().filter(|m| **m != Method::HEAD) {
                let n = OPS
                    .iter()
                    .filter(|op| (op.route)() == route && op.method == *method)
                    .count();
                assert_eq!(n, 1, "{route:?} {method}: {n} OpDoc entries");
            }
        }
        for op in OPS {
            let route = (op.route)();
            assert!(
                route.methods().contains(&op.method),
                "{} {}: not a method of {route:?}",
                op.method,
                op.path
            );
        }
    }

    #[test]
    fn operation_ids_are_unique_and_named() {
        let doc = document();
        let mut ids = Vec::new();
        for (_, item) in doc["paths"].as_object().into_iter().flatten() {
            for (_, op) in item.as_object().into_iter().flatten() {
                let id = op["operationId"].as_str().unwrap_or_default().to_string();
                assert!(!id.is_empty());
                assert!(!ids.contains(&id), "duplicate operationId {id}");
                ids.push(id);
            }
        }
        assert!(ids.contains(&"ListImages".to_string()));
        assert_eq!(
            doc["paths"]["/images/{uuid}"]["post"]["x-imgapi-actions"]["activate"],
            "ActivateImage"
        );
    }

    #[test]
    fn committed_file_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == document_json(),
            "docs/openapi.json is stale: run `cargo run -p xtask -- gen-docs`"
        );
    }
}
