//! The messages of AdminImportDockerImage and AdminPushDockerImage: a 200
//! answer streaming one JSON object per message, each followed by `\r\n`,
//! as `docker pull` / `docker push` show them (status lines, per-layer
//! progress), then the result or an error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The `type` values of [`DockerMessage`], as sent.
pub const DOCKER_MESSAGE_TYPES: [&str; 4] = ["status", "progress", "create-docker-image", "error"];

/// One message of a docker import or push stream, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DockerMessage {
    /// A line about the whole operation (`latest: Pulling from busybox`,
    /// `Digest: sha256:…`, `Status: …`), or the first word on a layer.
    Status(DockerProgressMessage),
    /// Where one layer is (`Downloading`, `Pull complete`, `Pushed`…), or
    /// the push's result (`aux`).
    Progress(DockerProgressMessage),
    /// An import's result: the manifest and the image of the top layer.
    CreateDockerImage(DockerImageCreated),
    /// The last message of a failed operation (the HTTP status stays 200).
    Error(DockerErrorMessage),
}

/// A `status` or `progress` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DockerProgressMessage {
    /// What `docker pull` / `docker push` would show.
    pub payload: DockerProgress,
    /// The repository's canonical name (import) or the request id (push).
    pub id: String,
}

/// The `payload` of a status or progress message, as docker's JSON
/// messages carry it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DockerProgress {
    /// The layer: the first 12 hex digits of its blob digest. Absent on
    /// lines about the whole operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Bytes done so far (`{}` when there is nothing to count).
    #[serde(
        rename = "progressDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<DockerProgressDetail>,
    /// The text shown (`Pulling fs layer`, `Downloading`, `Pushed`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A push's result: `{"Tag", "Digest", "Size"}` of the manifest pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aux: Option<DockerPushResult>,
}

/// `progressDetail`: how far a layer's transfer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DockerProgressDetail {
    /// Bytes transferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// The layer's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// When the transfer started (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

/// The `aux` of a push's last progress message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DockerPushResult {
    /// The tag pushed.
    #[serde(rename = "Tag")]
    pub tag: String,
    /// The digest of the manifest pushed (`sha256:…`).
    #[serde(rename = "Digest")]
    pub digest: String,
    /// The manifest's size in bytes.
    #[serde(rename = "Size")]
    pub size: u64,
}

/// The `create-docker-image` message: what the import made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DockerImageCreated {
    /// The digest of the image config blob (`sha256:…`).
    pub config_digest: String,
    /// Always `true`: the message is about the top (head) layer.
    pub head: bool,
    /// The image config JSON as the registry serves it.
    pub image: Map<String, Value>,
    /// The UUID of the image of the top layer.
    pub image_uuid: Uuid,
    /// The digest of the manifest (`sha256:…`).
    pub manifest_digest: String,
    /// The manifest, exactly as the registry served it.
    pub manifest_str: String,
    /// The sum of the layer sizes, in bytes.
    pub size: u64,
    /// The version of the docker image format (`2.2`).
    #[serde(rename = "dockerImageVersion")]
    pub docker_image_version: String,
    /// The repository's canonical name.
    pub id: String,
}

/// The `error` message that ends a failed stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DockerErrorMessage {
    /// The repository's canonical name (import) or the request id (push).
    pub id: String,
    /// What failed.
    pub error: DockerStreamError,
}

/// The `error` of a [`DockerErrorMessage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DockerStreamError {
    /// The restCode (`ResourceNotFound`, `Unauthorized`, `Download`…).
    pub code: String,
    /// What happened, for a person.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip_in_wire_order() {
        for line in [
            r#"{"type":"status","payload":{"status":"latest: Pulling from busybox (req 1)"},"id":"docker.io/busybox"}"#,
            r#"{"type":"status","payload":{"id":"0123456789ab","progressDetail":{},"status":"Pulling fs layer"},"id":"docker.io/busybox"}"#,
            r#"{"type":"progress","payload":{"id":"0123456789ab","progressDetail":{"current":5,"total":9,"start":1700000000},"status":"Downloading"},"id":"docker.io/busybox"}"#,
            r#"{"type":"progress","payload":{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:ab","Size":528}},"id":"req"}"#,
            r#"{"type":"error","id":"docker.io/busybox","error":{"code":"ResourceNotFound","message":"no such manifest"}}"#,
            r#"{"type":"create-docker-image","config_digest":"sha256:c","head":true,"image":{"os":"linux"},"image_uuid":"6e6d3b9b-8d2b-7b25-1b1c-1c1d1e1f2021","manifest_digest":"sha256:m","manifest_str":"{}","size":3,"dockerImageVersion":"2.2","id":"docker.io/busybox"}"#,
        ] {
            let message: DockerMessage = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&message).unwrap(), line);
        }
    }

    #[test]
    fn types_are_the_tags() {
        let names: Vec<Value> = [
            json!({"type":"status","payload":{},"id":"i"}),
            json!({"type":"progress","payload":{},"id":"i"}),
            json!({"type":"create-docker-image","config_digest":"","head":true,"image":{},
                   "image_uuid":"6e6d3b9b-8d2b-7b25-1b1c-1c1d1e1f2021","manifest_digest":"",
                   "manifest_str":"","size":0,"dockerImageVersion":"2.2","id":"i"}),
            json!({"type":"error","id":"i","error":{"code":"c","message":"m"}}),
        ]
        .into_iter()
        .map(|v| {
            let message: DockerMessage = serde_json::from_value(v).unwrap();
            serde_json::to_value(message).unwrap()["type"].clone()
        })
        .collect();
        assert_eq!(names, DOCKER_MESSAGE_TYPES.map(Value::from));
    }
}
