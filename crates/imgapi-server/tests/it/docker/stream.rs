//! Talking to the server: requests and the `\r\n`-separated JSON streams.

use base64::Engine;
use reqwest::Response;
use serde_json::{json, Value};

use crate::support::*;

use super::expect::rfd57_uuid;
use super::setup::*;

pub(super) fn registry_auth(user: &str, password: &str) -> String {
    base64_json(&json!({"username": user, "password": password}))
}

/// `x-registry-config` as sdc-docker sends it: registry host → credentials.
pub(super) fn registry_config(host: &str, user: &str, password: &str) -> String {
    let entry = json!({"username": user, "password": password, "serveraddress": host});
    base64_json(&json!({ host: entry }))
}

fn base64_json(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

/// An import's or push's answer: the stream's messages, or the one error
/// body when the status is not 200.
pub(super) struct Stream {
    pub(super) status: u16,
    pub(super) messages: Vec<Value>,
}

impl Stream {
    pub(super) async fn read(resp: Response) -> Stream {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let messages = if status == 200 {
            text.split("\r\n")
                .filter(|line| !line.is_empty())
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
                .collect()
        } else {
            vec![serde_json::from_str(&text).unwrap_or(Value::String(text))]
        };
        Stream { status, messages }
    }

    /// The error of a failed stream's last line.
    pub(super) fn error(&self) -> Option<&Value> {
        self.messages
            .last()
            .filter(|m| m["type"] == "error")
            .map(|m| &m["error"])
    }

    pub(super) fn assert_ok(&self) {
        assert_eq!(self.status, 200, "{:#?}", self.messages);
        assert!(
            self.error().is_none(),
            "import failed: {:#?}",
            self.messages
        );
    }

    /// Every message has `id` = `id`, as its last key.
    pub(super) fn assert_id_last_everywhere(&self, id: &Value) {
        for message in &self.messages {
            let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
            assert_eq!(keys.last().map(|k| k.as_str()), Some("id"), "{message}");
            assert_eq!(&message["id"], id, "{message}");
        }
    }

    /// The stream ended with an error line of `code`; its message.
    pub(super) fn assert_failed_with(&self, code: &str) -> String {
        assert_eq!(self.status, 200, "{:#?}", self.messages);
        let error = self
            .error()
            .unwrap_or_else(|| panic!("no error line: {:#?}", self.messages));
        assert_eq!(error["code"], code, "{:#?}", self.messages);
        let last = self.messages.last().and_then(Value::as_object).unwrap();
        let keys: Vec<&str> = last.keys().map(String::as_str).collect();
        assert_eq!(keys, ["type", "id", "error"], "the error line's key order");
        error["message"].as_str().unwrap_or_default().to_string()
    }

    pub(super) fn created(&self) -> &Value {
        self.messages
            .iter()
            .find(|m| m["type"] == "create-docker-image")
            .unwrap_or_else(|| panic!("no create-docker-image: {:#?}", self.messages))
    }

    /// The `payload.status` of every message about layer `short_id`.
    pub(super) fn layer_statuses(&self, short_id: &str) -> Vec<String> {
        self.statuses(|m| m["payload"]["id"] == short_id)
    }

    /// `payload.status` of the status messages without a layer id.
    pub(super) fn overall_statuses(&self) -> Vec<String> {
        self.statuses(|m| m["type"] == "status" && m["payload"]["id"].is_null())
    }

    fn statuses(&self, wanted: impl Fn(&Value) -> bool) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| wanted(m))
            .filter_map(|m| m["payload"]["status"].as_str())
            .map(str::to_string)
            .collect()
    }
}

/// `/images?action=import-docker-image&…` with `params` URL-encoded.
pub(super) fn import_path(params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("action", "import-docker-image")
        .extend_pairs(params)
        .finish();
    format!("/images?{query}")
}

/// `/images/UUID/push?repoAndTag=…`.
pub(super) fn push_path(uuid: &str, repo_and_tag: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("repoAndTag", repo_and_tag)
        .finish();
    format!("/images/{uuid}/push?{query}")
}

pub(super) async fn import(
    server: &TestServer,
    params: &[(&str, &str)],
    auth: Option<(&str, &str)>,
) -> Stream {
    let mut req = server.post(&import_path(params));
    if let Some((user, password)) = auth {
        req = req.header("x-registry-auth", registry_auth(user, password));
    }
    Stream::read(req.send().await.unwrap()).await
}

pub(super) async fn import_tag(
    server: &TestServer,
    repo: &str,
    auth: Option<(&str, &str)>,
) -> Stream {
    import(server, &[("repo", repo), ("tag", TAG)], auth).await
}

/// ListImages `state=all&type=docker`: an anonymous caller of a public
/// server sees the active ones only.
pub(super) async fn active_docker_images(server: &TestServer) -> Vec<Value> {
    let (status, list) = server.get_json("/images?state=all&type=docker").await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// The `state` of the image of the layer chain `chain`, None when there is
/// no such image.
pub(super) async fn layer_state(server: &TestServer, chain: &[String]) -> Option<String> {
    let (status, img) = server
        .get_json(&format!("/images/{}", rfd57_uuid(chain)))
        .await;
    match status {
        404 => None,
        200 => Some(img["state"].as_str().unwrap().to_string()),
        _ => panic!("GetImage: {status} {img}"),
    }
}

/// The status of GetImageFile of the layer chain `chain`.
pub(super) async fn file_status(server: &TestServer, chain: &[String]) -> u16 {
    let path = format!("/images/{}/file", rfd57_uuid(chain));
    server.get(&path).send().await.unwrap().status().as_u16()
}
