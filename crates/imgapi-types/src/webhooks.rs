//! Webhook endpoints (an IMGAPI extension, docs/webhooks.md): what
//! `/webhooks` answers. The secret is never part of an answer.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One webhook endpoint and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Webhook {
    pub id: Uuid,
    /// Unique among endpoints; configured endpoints are kept under it.
    pub name: String,
    /// Where events are POSTed (user and password, if any, shown as `***`).
    pub url: String,
    /// Always `"set"`: the secret itself is never shown.
    #[schemars(extend("enum" = ["set"]))]
    pub secret: String,
    /// Event types delivered; `null` = every type.
    pub events: Option<Vec<String>>,
    /// `config` (`[[webhooks.endpoints]]`, not deletable through the API)
    /// or `api`.
    #[schemars(extend("enum" = ["config", "api"]))]
    pub source: String,
    /// `active` (delivering or up to date), `retrying` (the last attempt
    /// failed; the next is at `next_attempt`) or `dead` (no attempts until
    /// ResumeWebhook).
    #[schemars(extend("enum" = ["active", "retrying", "dead"]))]
    pub state: String,
    /// The last event sequence number delivered or skipped (filtered out).
    pub cursor: i64,
    /// Events in the log after `cursor` (of every type: those the filter
    /// skips count until they are skipped).
    pub lag: i64,
    /// Events delivered (answered 2xx) over the endpoint's life.
    pub delivered: u64,
    /// Consecutive failed attempts (0 after a delivery).
    pub failures: u32,
    /// When the next attempt may happen (ISO 8601), while retrying.
    pub next_attempt: Option<String>,
    /// The last failure: an HTTP status, a timeout, a refused address….
    pub last_error: Option<String>,
    /// The HTTP status of the last answer received.
    pub last_status: Option<u16>,
    /// When the last event was delivered (ISO 8601).
    pub last_delivered: Option<String>,
    /// When the endpoint was dead-lettered (ISO 8601).
    pub dead_since: Option<String>,
    /// The instance delivering it now, while its lease runs.
    pub lease_holder: Option<String>,
    /// When that lease ends (ISO 8601).
    pub lease_expires: Option<String>,
    /// When the endpoint was added (ISO 8601).
    pub created: String,
}

/// What TestWebhook's signed `webhook.test` POST got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookTestResult {
    /// Whether the receiver answered 2xx.
    pub ok: bool,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it failed (status, timeout, connection, refused address).
    pub error: Option<String>,
    /// How long the POST took, in milliseconds.
    pub duration_ms: u64,
    /// The `X-Imgapi-Delivery` header sent (`<id>:test-<random>`).
    pub delivery: String,
}
