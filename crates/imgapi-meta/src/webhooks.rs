//! Webhook endpoints (docs/webhooks.md): the [`WebhookStore`] role. Each
//! endpoint receives the change log ([`crate::ChangeStore`]) after its
//! cursor, one event at a time, from whichever instance holds its lease.

use async_trait::async_trait;
use uuid::Uuid;

use crate::MetaError;

/// Where an endpoint was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookSource {
    /// `POST /webhooks`.
    Api,
    /// `[[webhooks.endpoints]]` of the configuration file (upserted by
    /// name at start-up).
    Config,
}

impl WebhookSource {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookSource::Api => "api",
            WebhookSource::Config => "config",
        }
    }

    pub fn parse(text: &str) -> Option<WebhookSource> {
        match text {
            "api" => Some(WebhookSource::Api),
            "config" => Some(WebhookSource::Config),
            _ => None,
        }
    }
}

/// One stored endpoint and its delivery state.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    pub id: Uuid,
    /// Unique among endpoints.
    pub name: String,
    pub url: String,
    /// The HMAC key of `X-Imgapi-Signature`. Never shown, never logged.
    pub secret: String,
    /// Event types delivered (`image.created`, …); `None` = every type.
    pub events: Option<Vec<String>>,
    pub source: WebhookSource,
    /// The last sequence number delivered or skipped.
    pub cursor: i64,
    /// Consecutive failed attempts (0 after a delivery).
    pub failures: u32,
    /// No attempt before this time (ms since the epoch; backoff).
    pub next_attempt_ms: i64,
    /// The last failure, as the operator reads it.
    pub last_error: Option<String>,
    /// The HTTP status of the last attempt that got an answer.
    pub last_status: Option<u16>,
    /// Dead-lettered: no attempt until an operator resumes it.
    pub dead: bool,
    pub dead_since_ms: Option<i64>,
    /// The instance delivering it now, and until when.
    pub lease_holder: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub created_ms: i64,
    /// Events delivered (2xx) over the endpoint's life.
    pub delivered: u64,
    pub last_delivered_ms: Option<i64>,
}

/// The secret stays out of logs and panics.
impl std::fmt::Debug for StoredWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredWebhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("events", &self.events)
            .field("source", &self.source)
            .field("cursor", &self.cursor)
            .field("failures", &self.failures)
            .field("next_attempt_ms", &self.next_attempt_ms)
            .field("last_error", &self.last_error)
            .field("last_status", &self.last_status)
            .field("dead", &self.dead)
            .field("dead_since_ms", &self.dead_since_ms)
            .field("lease_holder", &self.lease_holder)
            .field("lease_expires_ms", &self.lease_expires_ms)
            .field("created_ms", &self.created_ms)
            .field("delivered", &self.delivered)
            .field("last_delivered_ms", &self.last_delivered_ms)
            .finish_non_exhaustive()
    }
}

impl StoredWebhook {
    /// A new endpoint at `cursor`, with no delivery history.
    pub fn new(
        name: String,
        url: String,
        secret: String,
        events: Option<Vec<String>>,
        source: WebhookSource,
        cursor: i64,
        created_ms: i64,
    ) -> StoredWebhook {
        StoredWebhook {
            id: Uuid::new_v4(),
            name,
            url,
            secret,
            events,
            source,
            cursor,
            failures: 0,
            next_attempt_ms: 0,
            last_error: None,
            last_status: None,
            dead: false,
            dead_since_ms: None,
            lease_holder: None,
            lease_expires_ms: None,
            created_ms,
            delivered: 0,
            last_delivered_ms: None,
        }
    }
}

/// What the lease holder writes after a delivery step: the new state,
/// written as given (the holder read the row when it took the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookProgress {
    /// Never moves back: the stored cursor stays if it is larger.
    pub cursor: i64,
    /// Events delivered by this step (added to the count).
    pub delivered: u64,
    pub failures: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
    /// `Some(now)`: dead-letter the endpoint (and end the lease).
    pub dead_since_ms: Option<i64>,
    /// The lease is renewed to this time.
    pub lease_expires_ms: i64,
    /// Set when `delivered > 0`.
    pub last_delivered_ms: Option<i64>,
}

/// Webhook endpoints and their delivery state, shared by every instance.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Every endpoint, oldest first (ties by id).
    async fn webhooks(&self) -> Result<Vec<StoredWebhook>, MetaError>;

    /// One endpoint.
    async fn get_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>, MetaError>;

    /// Store a new endpoint. `MetaError::AlreadyExists(id)` if its id or
    /// its name is taken.
    async fn insert_webhook(&self, hook: &StoredWebhook) -> Result<(), MetaError>;

    /// Insert a configured endpoint, or update the one of that name (its
    /// url, secret, events and source; its cursor and delivery state
    /// stay): the endpoint as stored.
    async fn upsert_webhook_by_name(
        &self,
        hook: &StoredWebhook,
    ) -> Result<StoredWebhook, MetaError>;

    /// Delete an endpoint; `Ok(false)` if there was none with this id.
    async fn delete_webhook(&self, id: Uuid) -> Result<bool, MetaError>;

    /// Give `holder` the lease of a live endpoint until `expires_ms`, if
    /// nobody holds it at `now_ms` (or `holder` does): the endpoint as
    /// claimed, `None` when another instance holds it, it is dead or gone.
    async fn claim_webhook(
        &self,
        id: Uuid,
        holder: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<StoredWebhook>, MetaError>;

    /// Record a delivery step, if `holder` still holds the lease;
    /// `Ok(false)` when it lost it (deleted, resumed, taken over).
    async fn record_webhook_progress(
        &self,
        id: Uuid,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool, MetaError>;

    /// End `holder`'s lease (another instance may claim at once).
    async fn release_webhook(&self, id: Uuid, holder: &str) -> Result<bool, MetaError>;

    /// Clear the dead state and the failures, end any lease, and move the
    /// cursor to `cursor` when given; `Ok(false)` if there is no such
    /// endpoint.
    async fn resume_webhook(&self, id: Uuid, cursor: Option<i64>) -> Result<bool, MetaError>;
}
