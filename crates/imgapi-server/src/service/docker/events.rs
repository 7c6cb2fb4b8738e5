//! The progress stream of a Docker import or push: JSON objects, each
//! followed by `\r\n`, as the original writes them (sdc-docker relays
//! them to `docker pull` / `docker push`). Every message carries the
//! stream's `id` (the repository for an import, the request id for a push)
//! as its last key.

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

/// Where messages go; a receiver that went away (client gone) is ignored:
/// the work goes on.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::UnboundedSender<Bytes>,
    id: String,
    /// The key `id` is appended under: `id` (docker), `alias` (LXD).
    last_key: &'static str,
}

/// The receiving end: the response body.
pub type EventStream = mpsc::UnboundedReceiver<Bytes>;

impl Events {
    pub fn new(id: impl Into<String>) -> (Events, EventStream) {
        Self::ending_with("id", id)
    }

    /// A stream whose messages end with `last_key: id` (AdminImportLxdImage
    /// appends the request's `alias`).
    pub fn ending_with(last_key: &'static str, id: impl Into<String>) -> (Events, EventStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = Events {
            tx,
            id: id.into(),
            last_key,
        };
        (events, rx)
    }

    /// Send `message` with the stream's id appended (or replaced in place).
    pub fn send(&self, mut message: Map<String, Value>) {
        message.insert(self.last_key.into(), Value::String(self.id.clone()));
        let mut line = serde_json::to_vec(&Value::Object(message)).unwrap_or_default();
        line.extend_from_slice(b"\r\n");
        let _ = self.tx.send(Bytes::from(line));
    }

    fn typed(&self, kind: &str, payload: Value) {
        let mut m = Map::new();
        m.insert("type".into(), json!(kind));
        m.insert("payload".into(), payload);
        self.send(m);
    }

    pub fn status(&self, payload: Value) {
        self.typed("status", payload);
    }

    pub fn progress(&self, payload: Value) {
        self.typed("progress", payload);
    }

    /// `{"type":"progress","payload":{"id":…,"status":…}}`.
    pub fn layer(&self, short_id: &str, status: &str) {
        self.progress(json!({"id": short_id, "status": status}));
    }

    /// The last line of a failed stream. `id_first`: the import puts `id`
    /// before `error` (the original sets it first), the push after.
    pub fn error(&self, code: &str, message: &str, id_first: bool) {
        let mut m = Map::new();
        m.insert("type".into(), json!("error"));
        if id_first {
            m.insert("id".into(), json!(self.id));
        }
        m.insert("error".into(), json!({"code": code, "message": message}));
        self.send(m);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_and_key_order() {
        let (events, mut rx) = Events::new("docker.io/busybox");
        events.layer("abc", "Pulling fs layer");
        events.error("Download", "cut", true);
        let first = rx.recv().await.unwrap();
        assert_eq!(
            std::str::from_utf8(&first).unwrap(),
            "{\"type\":\"progress\",\"payload\":{\"id\":\"abc\",\"status\":\"Pulling fs layer\"},\"id\":\"docker.io/busybox\"}\r\n"
        );
        let second = rx.recv().await.unwrap();
        assert_eq!(
            std::str::from_utf8(&second).unwrap(),
            "{\"type\":\"error\",\"id\":\"docker.io/busybox\",\"error\":{\"code\":\"Download\",\"message\":\"cut\"}}\r\n"
        );
    }
}
