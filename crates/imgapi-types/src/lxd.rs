//! The progress stream of AdminImportLxdImage: JSON objects, each followed
//! by `\r\n`, as the original writes them. Every message ends with the
//! `alias` the request named (`REMOTE:ALIAS`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{DockerProgressDetail, DockerStreamError};

/// One message of an LXD import stream, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LxdMessage {
    /// Where the import is (`Downloading image`, `Already exists`,
    /// `Activating image`, `Pull complete`…).
    Progress(LxdProgressMessage),
    /// The last message of a failed import (the HTTP status stays 200).
    Error(LxdErrorMessage),
}

/// A `progress` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LxdProgressMessage {
    pub payload: LxdProgress,
    /// The `alias` parameter of the request.
    pub alias: String,
}

/// The `payload` of a progress message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LxdProgress {
    /// The `alias` parameter of the request.
    pub id: String,
    /// What is happening.
    pub status: String,
    /// Bytes done so far (while downloading).
    #[serde(
        rename = "progressDetail",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_detail: Option<DockerProgressDetail>,
}

/// The `error` message that ends a failed import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LxdErrorMessage {
    /// The `alias` parameter of the request.
    pub id: String,
    /// What failed.
    pub error: DockerStreamError,
    /// The `alias` parameter of the request.
    pub alias: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_wire_order() {
        for line in [
            r#"{"type":"progress","payload":{"id":"t:alpine/3.19","status":"Downloading image"},"alias":"t:alpine/3.19"}"#,
            r#"{"type":"error","id":"t:x","error":{"code":"ResourceNotFound","message":"Image x was not found"},"alias":"t:x"}"#,
        ] {
            let parsed: LxdMessage =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(serde_json::to_string(&parsed).ok().as_deref(), Some(line));
        }
    }
}
