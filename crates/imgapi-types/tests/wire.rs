//! The wire types round-trip the server's JSON text and their schemas
//! accept it; the schemas themselves are snapshotted for review.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use imgapi_types::{schemas, ErrorBody, FieldCode, FieldError, Image, Job, RestCode};
use serde_json::{json, Map, Value};

/// Every key the serialiser can emit, in its order (manifest.md §9), then
/// a key these types do not know.
fn every_field() -> Value {
    json!({
        "v": 2,
        "uuid": "e70502b0-705e-498e-a810-53a03980eabf",
        "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
        "name": "foo",
        "version": "1.0.0",
        "state": "failed",
        "disabled": false,
        "public": false,
        "published_at": "2013-01-08T20:21:17.932Z",
        "type": "zvol",
        "os": "linux",
        "files": [{"sha1": "cd0e0510c4a0799551687901077d7c4c06a4ebd8", "size": 42,
                   "compression": "bzip2", "dataset_guid": "123", "stor": "local",
                   "sha256": "ab"}],
        "acl": ["669a0e24-5e8a-11e2-8c11-7c6d6290281a"],
        "description": "d",
        "homepage": "https://example.com/",
        "eula": "https://example.com/eula",
        "icon": true,
        "urn": "sdc:sdc:foo:1.0.0",
        "requirements": {"ssh_key": 0, "min_platform": {"7.0": "20130308T102805Z"}, "brand": "kvm"},
        "users": [{"name": "root"}],
        "generate_passwords": true,
        "inherited_directories": ["/opt"],
        "origin": "2b683a82-a066-11e3-97ab-2faa44701c5a",
        "nic_driver": "virtio",
        "disk_driver": "virtio",
        "cpu_type": "host",
        "image_size": 10240,
        "tags": {"z": 1, "a": {"b": [true]}},
        "billing_tags": ["small"],
        "traits": {"ssd": true},
        "error": {"message": "boom", "code": "VmHasNoOrigin"},
        "channels": ["dev"],
        "future_field": {"x": 1}
    })
}

fn validator(name: &str) -> jsonschema::Validator {
    let components: Map<String, Value> = schemas()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    let doc = json!({
        "components": {"schemas": components},
        "$ref": format!("#/components/schemas/{name}")
    });
    jsonschema::draft202012::new(&doc).unwrap()
}

fn assert_valid(name: &str, body: &Value) {
    let errors: Vec<String> = validator(name)
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}");
}

#[test]
fn image_round_trips_every_field_in_order() {
    let body = every_field();
    let img: Image = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(img.extra.len(), 1);
    assert_eq!(
        img.requirements.as_ref().and_then(|r| r.brand()),
        Some("kvm")
    );
    assert_eq!(
        serde_json::to_string(&img).unwrap(),
        serde_json::to_string(&body).unwrap()
    );
    assert_valid("Image", &body);
}

#[test]
fn minimal_image_round_trips() {
    let body = json!({
        "v": 2, "uuid": "e70502b0-705e-498e-a810-53a03980eabf",
        "owner": "00000000-0000-0000-0000-000000000000", "name": "n", "version": "1",
        "state": "creating", "disabled": false, "public": true, "files": []
    });
    let img: Image = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(serde_json::to_value(&img).unwrap(), body);
    assert_valid("Image", &body);
}

#[test]
fn schemas_reject_what_the_server_never_sends() {
    let mut body = every_field();
    body["state"] = json!("gone");
    assert!(!validator("Image").is_valid(&body));
    let mut body = every_field();
    body["files"][0]["compression"] = json!("zip");
    assert!(!validator("Image").is_valid(&body));
    assert!(!validator("ErrorBody").is_valid(&json!({"code": "NoSuchCode", "message": "m"})));
}

#[test]
fn error_bodies_validate() {
    let body = ErrorBody::new(
        RestCode::ValidationFailed,
        "invalid image data: name",
        vec![FieldError::with_message("name", FieldCode::Invalid, "bad")],
    );
    assert_valid("ErrorBody", &serde_json::to_value(&body).unwrap());
    // A 416 of an upload session carries the session's offset too.
    assert_valid(
        "ErrorBody",
        &json!({"code": "RequestedRangeNotSatisfiable", "message": "m", "offset": 5}),
    );
}

#[test]
fn running_job_step_has_null_finished_at() {
    let body = json!({
        "uuid": "e70502b0-705e-498e-a810-53a03980eabf", "name": "import-remote-image",
        "execution": "running", "image_uuid": "2b683a82-a066-11e3-97ab-2faa44701c5a",
        "params": {"task": "import-remote-image", "image_uuid": "2b683a82-a066-11e3-97ab-2faa44701c5a",
                   "source": "https://u:***@images.example/", "origins": [], "skip_owner_check": false},
        "chain_results": [{"name": "import_image", "image_uuid": "2b683a82-a066-11e3-97ab-2faa44701c5a",
                           "result": "", "error": "", "started_at": "2024-01-01T00:00:00.000Z",
                           "finished_at": null}],
        "onerror_results": [],
        "created_at": "2024-01-01T00:00:00.000Z",
        "started_at": "2024-01-01T00:00:00.000Z"
    });
    let job: Job = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(job.chain_results[0].finished_at, None);
    assert_eq!(serde_json::to_value(&job).unwrap(), body);
    assert_valid("Job", &body);
}

#[test]
fn schemas_snapshot() {
    let all: Map<String, Value> = schemas()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    insta::assert_json_snapshot!("schemas", all);
}
