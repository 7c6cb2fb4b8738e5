//! The OpenAPI 3.1 document, derived from the operations table
//! (`operations.rs`), the query parameters (`params.rs`), the wire types'
//! schemas (`schemas.rs`) and the restCode table. Served at
//! `GET /openapi.json` for the server's configuration (only the operations
//! it serves); `docs/openapi.json` is the document of every operation
//! (written by `cargo run -p xtask -- gen-docs`; a test fails when they
//! drift).

use std::collections::BTreeMap;

use http::Method;
use imgapi_types::RestCode;
use serde_json::{json, Map, Value};

use super::auth::AuthPolicy;
use super::operation::{BodyDoc, OperationDef, Success};
use super::operations::Operation;
use super::params::Location;
use super::schemas;
use crate::app::AppState;

use RestCode as R;

/// restCodes any operation can answer with.
fn common_errors(def: &OperationDef) -> Vec<RestCode> {
    let mut codes = vec![
        R::InvalidVersion,
        R::MethodNotAllowedError,
        R::InternalError,
    ];
    if def.path.contains('{') {
        codes.push(R::ResourceNotFound);
    }
    if def.auth != AuthPolicy::None {
        codes.push(R::UnauthorizedError);
    }
    if def.path.starts_with("/images")
        || def.path.starts_with("/catalog")
        || def.path.starts_with("/datasets")
        || def.path.starts_with("/jobs")
        || def.path == "/state"
        || def.path == "/usage"
    {
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

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// One schema, or any of several (the forms of an operation overlap: an
/// UpdateImage body may also be a valid ImportImage body).
fn any_of(names: &[&str]) -> Value {
    match names {
        [one] => schema_ref(one),
        many => json!({"anyOf": many.iter().map(|n| schema_ref(n)).collect::<Vec<_>>()}),
    }
}

fn path_parameter(name: &str) -> Value {
    let (schema, doc) = match name {
        "uuid" => (
            json!({"type": "string", "format": "uuid"}),
            "The image's (or job's) UUID, lower case.",
        ),
        "upload" => (
            json!({"type": "string", "format": "uuid"}),
            "The upload session's id.",
        ),
        "owner" => (
            json!({"type": "string", "format": "uuid"}),
            "The owner's UUID, lower case.",
        ),
        "arg" => (
            json!({"type": "string", "minLength": 1}),
            "A dataset UUID, `name:version`, a URN or a name.",
        ),
        "file" => (
            json!({"type": "string", "minLength": 1}),
            "The file's name.",
        ),
        _ => (json!({"type": "string"}), ""),
    };
    json!({"name": name, "in": "path", "required": true, "description": doc, "schema": schema})
}

/// The `action` values of an operation's variants (in table order, once).
fn actions(def: &OperationDef) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for a in def.variants.iter().filter_map(|v| v.action) {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

fn parameters(def: &OperationDef) -> Vec<Value> {
    let mut out: Vec<Value> = def.path_params().map(path_parameter).collect();
    let actions = actions(def);
    for p in def.params {
        // `tag.KEY` stands for any number of names: the description says so.
        if p.name.contains("KEY") {
            continue;
        }
        let mut schema = p.schema();
        if p.name == "action" && !actions.is_empty() && schema.get("enum").is_none() {
            schema["enum"] = json!(actions);
        }
        let location = match p.location {
            Location::Query => "query",
            Location::Header => "header",
        };
        let mut param = json!({
            "name": p.name, "in": location, "required": p.required,
            "description": p.doc, "schema": schema,
        });
        if p.repeated {
            param["style"] = json!("form");
            param["explode"] = json!(true);
        }
        out.push(param);
    }
    out
}

fn request_body(def: &OperationDef) -> Option<Value> {
    let mut json_bodies: Vec<&str> = Vec::new();
    let mut bytes = false;
    for body in std::iter::once(def.body).chain(def.variants.iter().filter_map(|v| v.body)) {
        match body {
            BodyDoc::Json(name) if !json_bodies.contains(&name) => json_bodies.push(name),
            BodyDoc::Bytes => bytes = true,
            BodyDoc::Icon => {
                let binary = json!({"schema": {"type": "string", "format": "binary"}});
                return Some(json!({
                    "required": true,
                    "content": {"image/png": binary, "image/gif": binary, "image/jpeg": binary}
                }));
            }
            _ => {}
        }
    }
    if bytes {
        return Some(json!({
            "required": true,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
        }));
    }
    if json_bodies.is_empty() {
        return None;
    }
    Some(json!({
        "required": def.body != BodyDoc::None,
        "content": {"application/json": {"schema": any_of(&json_bodies)}}
    }))
}

fn success_response(success: Success) -> (u16, Value) {
    let json_content = |name: &str| json!({"application/json": {"schema": schema_ref(name)}});
    match success {
        Success::Json(status, name) => (
            status,
            json!({"description": http_status_text(status), "content": json_content(name)}),
        ),
        Success::Empty(status) => (status, json!({"description": http_status_text(status)})),
        Success::File => (
            200,
            json!({
                "description": "The file's bytes (206 for a `Range`).",
                "headers": {
                    "Content-MD5": {"schema": {"type": "string"}, "description": "Base64 MD5 of the whole file."},
                    "ETag": {"schema": {"type": "string"}, "description": "The file's SHA-1."},
                    "Repr-Digest": {"schema": {"type": "string"}, "description": "`sha-256=:…:` of the whole file."}
                },
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            }),
        ),
        Success::Icon => (
            200,
            json!({"description": "The icon's bytes.",
                   "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}}),
        ),
        Success::Redirect => (301, json!({"description": "Moved Permanently"})),
        Success::Html => (
            200,
            json!({"description": "An HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}),
        ),
        Success::Metrics => (
            200,
            json!({"description": "Prometheus text exposition.",
                   "content": {"text/plain": {"schema": {"type": "string"}}}}),
        ),
        Success::Probe(name) => (
            200,
            json!({"description": "OK: every check passes.", "content": json_content(name)}),
        ),
        Success::JsonLines(name) => (
            200,
            json!({"description": "A stream of JSON objects, each followed by `\\r\\n`; a failure after the stream started is its last object, of `type` `error`.",
                   "content": json_content(name)}),
        ),
    }
}

/// Success answers by status; variants with their own answer add theirs.
fn responses(def: &OperationDef) -> Map<String, Value> {
    let mut by_status: BTreeMap<u16, Value> = BTreeMap::new();
    let mut json_schemas: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    let successes =
        std::iter::once(def.success).chain(def.variants.iter().filter_map(|v| v.success));
    for success in successes {
        let (status, resp) = success_response(success);
        if let Success::Json(_, name) = success {
            let names = json_schemas.entry(status).or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        }
        by_status.entry(status).or_insert(resp);
    }
    for (status, names) in &json_schemas {
        if let Some(resp) = by_status.get_mut(status) {
            resp["content"]["application/json"]["schema"] = any_of(names);
        }
    }
    if matches!(def.success, Success::File) {
        let mut partial = by_status.get(&200).cloned().unwrap_or_default();
        partial["description"] = json!("Partial Content (a `Range`).");
        by_status.insert(206, partial);
    }
    if def.name == "GetImage" || matches!(def.success, Success::File | Success::Icon) {
        by_status.insert(304, json!({"description": "Not Modified (If-None-Match)."}));
    }
    if let Success::Probe(name) = def.success {
        by_status.insert(
            503,
            json!({"description": "Service Unavailable: a check failed (named in `checks`).",
                   "content": {"application/json": {"schema": schema_ref(name)}}}),
        );
    }
    if def.path.starts_with("/datasets") {
        by_status.insert(
            301,
            json!({"description": "Moved Permanently (to /images)."}),
        );
    }

    let mut codes: Vec<RestCode> = def.errors.to_vec();
    for c in common_errors(def) {
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    let mut errors: BTreeMap<u16, Vec<RestCode>> = BTreeMap::new();
    for c in codes {
        errors.entry(c.http_status()).or_default().push(c);
    }
    let error_content = if matches!(def.success, Success::Html) {
        json!({"text/html": {"schema": {"type": "string"}}})
    } else {
        json!({"application/json": {"schema": schema_ref("ErrorBody")}})
    };
    for (status, codes) in errors {
        let lines: Vec<String> = codes
            .iter()
            .map(|c| format!("`{}`: {}", c.as_str(), c.description()))
            .collect();
        let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
        by_status.insert(
            status,
            json!({
                "description": format!("{}. restCodes: {}", http_status_text(status), lines.join(" ")),
                "x-imgapi-restCodes": names,
                "content": error_content,
            }),
        );
    }
    by_status
        .into_iter()
        .map(|(status, v)| (status.to_string(), v))
        .collect()
}

fn operation(def: &OperationDef) -> Value {
    let mut description = String::new();
    for v in def.variants {
        let how = match (v.action, v.with_param) {
            (Some(a), Some(p)) => format!("`action={a}` with `{p}`"),
            (Some(a), None) => format!("`action={a}`"),
            (None, Some(p)) => format!("with `{p}`"),
            (None, None) => String::new(),
        };
        description.push_str(&format!("- {how}: **{}**. {}\n", v.name, v.summary));
    }
    let mut out = json!({
        "operationId": def.name,
        "summary": def.summary,
        "parameters": parameters(def),
        "responses": responses(def),
    });
    if !description.is_empty() {
        out["description"] = json!(description);
    }
    if let Some(body) = request_body(def) {
        out["requestBody"] = body;
    }
    out["security"] = match def.auth {
        AuthPolicy::Strict => json!([{"httpSignature": []}]),
        AuthPolicy::Passive => json!([{}, {"httpSignature": []}]),
        AuthPolicy::None => json!([]),
    };
    let named: Map<String, Value> = def
        .variants
        .iter()
        .filter(|v| v.with_param.is_none())
        .filter_map(|v| Some((v.action?.to_string(), json!(v.name))))
        .collect();
    if !named.is_empty() {
        out["x-imgapi-actions"] = Value::Object(named);
    }
    out
}

fn document_of(ops: impl Iterator<Item = Operation>) -> Value {
    let mut paths = Map::new();
    for op in ops {
        let def = op.def();
        let entry = paths
            .entry(def.path.to_string())
            .or_insert_with(|| json!({}));
        entry[def.method.as_str().to_ascii_lowercase()] = operation(def);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "IMGAPI",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Images API of SmartOS / Triton (docs/api.md), wire-compatible with \
    the original sdc-imgapi, with this server's extensions. Generated from the operations table \
    (crates/imgapi-server/src/http/operations.rs)."
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
            "schemas": schemas::all()
        }
    })
}

/// The document of every operation (docs/openapi.json).
pub fn document() -> Value {
    document_of(Operation::ALL.iter().copied())
}

/// The document of the operations this server's configuration serves.
pub fn served_document(app: &AppState) -> Value {
    document_of(Operation::ALL.iter().copied().filter(|op| {
        let def = op.def();
        // A representative path: every `{name}` segment non-empty.
        let args: Vec<&str> = def.path_params().map(|_| "x").collect();
        def.served.by(app, &args)
    }))
}

/// `docs/openapi.json`: the document, pretty-printed.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// The HTTP methods of the document's operations on `path`, for tests.
pub fn methods_of(doc: &Value, path: &str) -> Vec<Method> {
    doc["paths"][path]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(m, _)| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once() {
        let doc = document();
        let mut ids = Vec::new();
        for op in Operation::ALL {
            let def = op.def();
            let entry = &doc["paths"][def.path][def.method.as_str().to_ascii_lowercase()];
            assert_eq!(entry["operationId"], def.name, "{op:?}");
            ids.push(def.name);
        }
        let documented: usize = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, item)| item.as_object().map_or(0, Map::len))
            .sum();
        assert_eq!(documented, Operation::ALL.len());
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "duplicate operation names");
        assert_eq!(
            doc["paths"]["/images/{uuid}"]["post"]["x-imgapi-actions"]["activate"],
            "ActivateImage"
        );
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "missing schema {name}"
            );
        }
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
