//! The wire types of `imgapi-types` against the server's real answers, in
//! every mode: each answer validates against its JSON Schema (as the
//! OpenAPI document carries them, `$ref`s into `#/components/schemas`),
//! decodes into its type, and that type serialises back to the same JSON
//! (same keys, same order). Snapshots of representative error bodies and
//! images, with UUIDs and times redacted.

use imgapi_types::{
    Channel, DsapiDataset, ErrorBody, Exported, Image, Job, Ping, ServerState, StartedJob,
    UploadSessionBody, Usage,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::remote_import::{import_remote, wait_job, OPEN};
use crate::support::*;

const DC: &str = "mode = \"dc\"\nadmin_uuid = \"930896af-bf8c-48d4-885c-6573a94b1853\"";

const CHANNELS: &str = r#"
[[channels]]
name = "dev"
description = "all development builds"
default = true
[[channels]]
name = "release"
description = "release gold bits"
"#;

/// A UUID no test creates.
const ABSENT: &str = "5a8e8a1c-6f33-4b4e-9a9c-0e3c4d2b1a00";

/// The validator of schema `name`, or of an array of it (`[name]`).
fn validator(name: &str) -> jsonschema::Validator {
    let components: Map<String, Value> = imgapi_types::schemas()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
    let target = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(item) => {
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}})
        }
        None => json!({"$ref": format!("#/components/schemas/{name}")}),
    };
    let mut doc = json!({"components": {"schemas": components}});
    if let (Some(d), Value::Object(t)) = (doc.as_object_mut(), target) {
        d.extend(t);
    }
    jsonschema::draft202012::new(&doc).unwrap()
}

/// `body` is valid against schema `name` and decodes into `T`, which
/// serialises back to `body`, key order included.
fn check<T: DeserializeOwned + Serialize>(name: &str, body: &Value) -> T {
    let errors: Vec<String> = validator(name)
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\nbody: {body:#}");
    let typed: T = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("{name} does not decode: {e}\nbody: {body:#}"));
    assert_eq!(
        serde_json::to_string(&typed).unwrap(),
        serde_json::to_string(body).unwrap(),
        "{name} does not serialise back to the same JSON"
    );
    typed
}

fn ok(got: (u16, Value)) -> Value {
    assert!((200..300).contains(&got.0), "status {}: {}", got.0, got.1);
    got.1
}

fn error_body(got: &(u16, Value), status: u16, code: &str) -> ErrorBody {
    assert_eq!(got.0, status, "{}", got.1);
    let body: ErrorBody = check("ErrorBody", &got.1);
    assert_eq!(body.code, code);
    body
}

/// An image with most optional fields set.
fn rich_fields() -> Value {
    json!({
        "description": "a rich image",
        "homepage": "https://example.com/",
        "eula": "https://example.com/eula",
        "requirements": {"min_ram": 512, "max_ram": 0, "brand": "", "networks": [{"name": "net0", "description": "public"}],
                         "min_platform": {"7.0": "20130308T102805Z"}, "ssh_key": true},
        "users": [{"name": "root"}, {"name": "admin"}],
        "generate_passwords": true,
        "inherited_directories": ["/opt"],
        "tags": {"role": "db", "n": 42, "cfg": {"a": [1, 2]}}
    })
}

async fn get_with(s: &TestServer, path: &str, accept_version: &str) -> (u16, Value) {
    status_json(
        s.get(path)
            .header("accept-version", accept_version)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn add_icon(s: &TestServer, uuid: &str, query: &str) -> Value {
    ok(status_json(
        s.put(&format!("/images/{uuid}/icon{query}"))
            .header("content-type", "image/png")
            .body(vec![0x89u8; 100])
            .send()
            .await
            .unwrap(),
    )
    .await)
}

fn redacted_image(name: &str, img: &Value) {
    insta::assert_json_snapshot!(name, img, {
        ".uuid" => "[uuid]",
        ".published_at" => "[timestamp]",
        ".origin" => "[uuid]",
        // `local` or `s3`, by the backend the suite runs on.
        ".files[].stor" => "[stor]",
    });
}

#[tokio::test]
async fn public_mode_answers() {
    let s = TestServer::spawn().await;
    let ping: Ping = check("Ping", &ok(s.get_json("/ping").await));
    assert_eq!(ping.ping, "pong");

    let created = s.create(rich_fields()).await;
    let img: Image = check("Image", &created);
    let uuid = img.uuid.to_string();
    check::<Image>("Image", &ok(s.upload(&uuid, b"image bytes".to_vec()).await));
    let active = ok(s.activate(&uuid).await);
    check::<Image>("Image", &active);
    let with_icon = add_icon(&s, &uuid, "").await;
    check::<Image>("Image", &with_icon);
    redacted_image("public_image_v2", &with_icon);

    let child = s.publish(json!({"origin": uuid, "name": "child"})).await;
    check::<Image>("Image", &child);
    let list = ok(s.get_json("/images?state=all").await);
    let images: Vec<Image> = check("[Image]", &list);
    assert_eq!(images.len(), 2);
    check::<Image>("Image", &ok(s.get_json(&format!("/images/{uuid}")).await));
    let v1 = ok(get_with(&s, &format!("/images/{uuid}"), "~1").await);
    check::<Image>("Image", &v1);

    // The error bodies of the usual failures.
    let not_found = s.get_json(&format!("/images/{ABSENT}")).await;
    let body = error_body(&not_found, 404, "ResourceNotFound");
    insta::assert_json_snapshot!("error_resource_not_found", body);
    let invalid = s
        .post_json(
            "/images",
            &json!({"name": "bad name!", "version": "1", "type": "nope", "os": "smartos",
                    "owner": OWNER, "public": true}),
        )
        .await;
    let body = error_body(&invalid, 422, "ValidationFailed");
    insta::assert_json_snapshot!("error_validation_failed", body);
    let bad_param = s.get_json("/images?limit=lots").await;
    let body = error_body(&bad_param, 422, "InvalidParameter");
    insta::assert_json_snapshot!("error_invalid_parameter", body);
    let extra = s
        .post_json("/images", &{
            let mut m = manifest();
            merge(&mut m, json!({"bogus": 1, "files": []}));
            m
        })
        .await;
    let body = error_body(&extra, 422, "InvalidParameter");
    insta::assert_json_snapshot!("error_invalid_parameter_extra_fields", body);
    let admin = s
        .get_json(&format!("/images/{uuid}?inclAdminFields=true"))
        .await;
    let body = error_body(&admin, 401, "UnauthorizedError");
    insta::assert_json_snapshot!("error_unauthorized", body);
    let activated = s.activate(&uuid).await;
    let body = error_body(&activated, 422, "ImageAlreadyActivated");
    insta::assert_json_snapshot!("error_image_already_activated", body, {
        ".message" => "[message with uuid]",
    });
    let method = status_json(s.post("/ping").send().await.unwrap()).await;
    let body = error_body(&method, 405, "MethodNotAllowedError");
    insta::assert_json_snapshot!("error_method_not_allowed", body);
    let bad_json = status_json(
        s.post("/images")
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    error_body(&bad_json, 400, "InvalidContent");
    let ping_error = s.get_json("/ping?error=ValidationFailed").await;
    error_body(&ping_error, 422, "ValidationFailed");
}

#[tokio::test]
async fn dc_mode_answers() {
    let s = TestServer::spawn_with(&format!("{DC}\ndsapi = \"serve\"\n")).await;
    let ping: Ping = check("Ping", &ok(s.get_json("/ping").await));
    assert!(ping.pid.is_some());
    let mut fields = rich_fields();
    merge(
        &mut fields,
        json!({"public": false, "acl": [BOB], "billing_tags": ["small"],
               "traits": {"ssd": true, "group": ["a"]}}),
    );
    let img = s.publish(fields).await;
    let uuid = uuid_of(&img);
    check::<Image>("Image", &img);
    add_icon(&s, &uuid, "").await;
    let admin = ok(s
        .get_json(&format!("/images/{uuid}?inclAdminFields=true"))
        .await);
    let typed: Image = check("Image", &admin);
    assert!(typed.files[0].stor.is_some());
    redacted_image("dc_image_admin_fields", &admin);
    check::<Vec<Image>>(
        "[Image]",
        &ok(s.get_json("/images?inclAdminFields=true").await),
    );

    let zvol = s
        .post_json(
            "/images",
            &json!({"name": "vm", "version": "1", "type": "zvol", "os": "linux", "owner": OWNER,
                    "nic_driver": "virtio", "disk_driver": "virtio", "cpu_type": "host",
                    "image_size": 10240}),
        )
        .await;
    check::<Image>("Image", &ok(zvol));

    let state: ServerState = check("ServerState", &ok(s.get_json("/state").await));
    assert_eq!(state.mode, "dc");
    let usage: Usage = check("Usage", &ok(s.get_json("/usage").await));
    assert_eq!(usage.owners[0].billing_tags["small"].images, 1);

    // DSAPI datasets (public images only).
    let public = uuid_of(&s.publish(rich_fields()).await);
    let datasets: Vec<DsapiDataset> = check("[DsapiDataset]", &ok(s.get_json("/datasets").await));
    assert_eq!(datasets.len(), 1);
    check::<DsapiDataset>(
        "DsapiDataset",
        &ok(s.get_json(&format!("/datasets/{public}")).await),
    );

    // An upload session from start to finish, and a chunk out of order.
    let created = s
        .post_json(
            "/images",
            &json!({"name": "up", "version": "1", "type": "other", "os": "other", "owner": OWNER}),
        )
        .await;
    let up = uuid_of(&ok(created));
    let started = status_json(
        s.post(&format!(
            "/images/{up}/file/uploads?compression=none&size=5"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    let session: UploadSessionBody = check("UploadSessionBody", &ok(started));
    let session_path = format!("/images/{up}/file/uploads/{}", session.upload_id);
    let unknown_size = status_json(
        s.post(&format!("/images/{up}/file/uploads?compression=none"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let other: UploadSessionBody = check("UploadSessionBody", &ok(unknown_size));
    assert_eq!(other.size, None);
    check::<UploadSessionBody>("UploadSessionBody", &ok(s.get_json(&session_path).await));
    let gap = status_json(
        s.put(&session_path)
            .header("content-range", "bytes 2-4/5")
            .body(vec![1u8; 3])
            .send()
            .await
            .unwrap(),
    )
    .await;
    error_body(&gap, 416, "RequestedRangeNotSatisfiable");
    let chunk = status_json(
        s.put(&session_path)
            .header("content-range", "bytes 0-4/5")
            .body(vec![1u8; 5])
            .send()
            .await
            .unwrap(),
    )
    .await;
    check::<UploadSessionBody>("UploadSessionBody", &ok(chunk));
    let finished = status_json(
        s.post(&format!("{session_path}?action=finish"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    check::<Image>("Image", &ok(finished));

    let operator_only = s.get_json(&format!("/usage?account={OWNER}")).await;
    let body = error_body(&operator_only, 403, "OperatorOnly");
    insta::assert_json_snapshot!("error_operator_only", body);
}

#[tokio::test]
async fn channel_answers() {
    let s = TestServer::spawn_with(&format!("mode = \"private\"\n{CHANNELS}")).await;
    let channels: Vec<Channel> = check("[Channel]", &ok(s.get_json("/channels").await));
    assert_eq!(channels.len(), 2);
    let mut fields = rich_fields();
    merge(
        &mut fields,
        json!({"billing_tags": ["small"], "public": false}),
    );
    let img = s.publish(fields).await;
    let uuid = uuid_of(&img);
    let v2 = ok(get_with(&s, &format!("/images/{uuid}"), "~2").await);
    let typed: Image = check("Image", &v2);
    assert_eq!(typed.channels, Some(vec!["dev".to_string()]));
    redacted_image("private_image_channels_v2", &v2);
    check::<Image>(
        "Image",
        &ok(get_with(&s, &format!("/images/{uuid}"), "~1").await),
    );
    let added = s
        .post_json(
            &format!("/images/{uuid}?action=channel-add"),
            &json!({"channel": "release"}),
        )
        .await;
    check::<Image>("Image", &ok(added));
    check::<Vec<Image>>(
        "[Image]",
        &ok(get_with(&s, "/images?channel=*", "~2").await),
    );
    let unknown = s.get_json("/images?channel=nope").await;
    let body = error_body(&unknown, 422, "ValidationFailed");
    insta::assert_json_snapshot!("error_unknown_channel", body);
}

#[tokio::test]
async fn job_and_export_answers() {
    let root = tempfile::tempdir().unwrap();
    let source = TestServer::spawn().await;
    let target = TestServer::spawn_with(&format!(
        "{OPEN}\n[export]\nkind = \"local\"\ndir = {:?}\n",
        root.path().display().to_string()
    ))
    .await;
    let img = source.publish(json!({})).await;
    let uuid = uuid_of(&img);
    let started = ok(import_remote(&target, &uuid, &source.url).await);
    let job: StartedJob = check("StartedJob", &started);
    let finished = wait_job(&target, &uuid, &job.job_uuid.to_string()).await;
    let typed: Job = check("Job", &finished);
    assert_eq!(typed.execution, "succeeded");
    check::<Job>(
        "Job",
        &ok(target.get_json(&format!("/jobs/{}", job.job_uuid)).await),
    );
    check::<Vec<Job>>(
        "[Job]",
        &ok(target.get_json(&format!("/images/{uuid}/jobs")).await),
    );
    let again = ok(import_remote(&target, &uuid, &source.url).await);
    check::<StartedJob>("StartedJob", &again);

    let exported = target
        .post_json(
            &format!("/images/{uuid}?action=export&manta_path=/alice/stor/x"),
            &json!({}),
        )
        .await;
    check::<Exported>("Exported", &ok(exported));
}
