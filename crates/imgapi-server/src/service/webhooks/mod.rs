//! Webhooks (docs/webhooks.md): the change log delivered to HTTP
//! receivers, one signed POST per event, in sequence order per endpoint.
//!
//! - this module: the operator API (`/webhooks`), the endpoints of
//!   `[[webhooks.endpoints]]` (upserted by name at start-up), and the wire
//!   form of an endpoint (never with its secret);
//! - [`deliver`]: the background task of every instance that delivers
//!   each due endpoint under a lease, with backoff and dead-lettering;
//! - [`client`]: the signed POST, under the `[remote]` address policy.

use std::collections::BTreeSet;

use imgapi_domain::redact::redact_url;
use imgapi_meta::{ChangeLogBounds, MetaError, StoredWebhook, WebhookSource};
use imgapi_types::{ChangeKind, FieldCode, FieldError, Webhook, WebhookTestResult};
use reqwest::Url;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::app::AppState;
use crate::config::WebhookEndpointConfig;
use crate::service::lifecycle::now_ms;
use crate::service::uploads::iso_of_ms;
use crate::service::ServiceError;

pub mod client;
pub mod deliver;

pub use client::{signature, SIGNATURE_HEADER};

/// Longest endpoint name accepted.
const MAX_NAME: usize = 200;
/// Longest URL accepted.
const MAX_URL: usize = 2048;
/// Longest secret accepted (an HMAC key longer than the block is hashed
/// anyway; this only bounds the row).
const MAX_SECRET: usize = 1024;

/// The wire form of an endpoint; `last_seq` gives its lag.
pub fn to_wire(hook: &StoredWebhook, last_seq: i64) -> Webhook {
    let now = now_ms();
    let state = if hook.dead {
        "dead"
    } else if hook.failures > 0 {
        "retrying"
    } else {
        "active"
    };
    let lease_live = hook.lease_expires_ms.is_some_and(|t| t >= now);
    Webhook {
        id: hook.id,
        name: hook.name.clone(),
        url: redact_url(&hook.url).into_owned(),
        secret: "set".into(),
        events: hook.events.clone(),
        source: hook.source.as_str().into(),
        state: state.into(),
        cursor: hook.cursor,
        lag: last_seq.saturating_sub(hook.cursor).max(0),
        delivered: hook.delivered,
        failures: hook.failures,
        next_attempt: (!hook.dead && hook.failures > 0).then(|| iso_of_ms(hook.next_attempt_ms)),
        last_error: hook.last_error.clone(),
        last_status: hook.last_status,
        last_delivered: hook.last_delivered_ms.map(iso_of_ms),
        dead_since: hook.dead_since_ms.map(iso_of_ms),
        lease_holder: hook.lease_holder.clone().filter(|_| lease_live),
        lease_expires: hook.lease_expires_ms.filter(|_| lease_live).map(iso_of_ms),
        created: iso_of_ms(hook.created_ms),
    }
}

async fn bounds(app: &AppState) -> Result<ChangeLogBounds, ServiceError> {
    app.meta
        .change_log_bounds()
        .await
        .map_err(ServiceError::meta("error reading the change log bounds"))
}

/// ListWebhooks: every endpoint, oldest first.
pub async fn list(app: &AppState) -> Result<Vec<Webhook>, ServiceError> {
    let hooks = app
        .meta
        .webhooks()
        .await
        .map_err(ServiceError::meta("error listing webhooks"))?;
    let last_seq = bounds(app).await?.last_seq;
    Ok(hooks.iter().map(|h| to_wire(h, last_seq)).collect())
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::not_found(format!("webhook \"{id}\" not found"))
}

/// The stored endpoint `id` names (404 for anything else).
async fn load(app: &AppState, id: &str) -> Result<StoredWebhook, ServiceError> {
    let uuid = Uuid::parse_str(id).map_err(|_| not_found(id))?;
    app.meta
        .get_webhook(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading webhook {id}")))?
        .ok_or_else(|| not_found(id))
}

/// GetWebhook.
pub async fn get(app: &AppState, id: &str) -> Result<Webhook, ServiceError> {
    let hook = load(app, id).await?;
    Ok(to_wire(&hook, bounds(app).await?.last_seq))
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid_parameter(message, vec![FieldError::invalid(field)])
}

/// What AddWebhook's body says.
struct NewWebhook {
    name: String,
    url: String,
    secret: String,
    events: Option<Vec<String>>,
    since: Option<i64>,
}

const FIELDS: &str = "name, url, secret, events, since";

fn parse_body(body: Option<Value>) -> Result<NewWebhook, ServiceError> {
    let Some(Value::Object(fields)) = body else {
        return Err(invalid(
            "url",
            "a webhook needs a JSON object body (Content-Type: application/json) with \"url\" and \"secret\"",
        ));
    };
    if let Some(extra) = fields
        .keys()
        .find(|k| !FIELDS.split(", ").any(|f| f == k.as_str()))
    {
        return Err(invalid(
            extra,
            format!("unknown field \"{extra}\" (fields: {FIELDS})"),
        ));
    }
    let text = |field: &str| -> Result<Option<String>, ServiceError> {
        match fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(
                field,
                format!("\"{field}\" must be a string (got {other})"),
            )),
        }
    };
    let url = text("url")?.ok_or_else(|| invalid("url", "\"url\" (a string) is required"))?;
    let secret =
        text("secret")?.ok_or_else(|| invalid("secret", "\"secret\" (a string) is required"))?;
    let name = match text("name")? {
        Some(name) => name,
        None => format!("webhook-{}", &Uuid::new_v4().simple().to_string()[..12]),
    };
    let events = match fields.get("events") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let names = items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| invalid("events", "\"events\" must be an array of event types"))?;
            Some(names)
        }
        Some(other) => {
            return Err(invalid(
                "events",
                format!("\"events\" must be an array of event types (got {other})"),
            ))
        }
    };
    let since = match fields.get("since") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            invalid(
                "since",
                format!("\"since\" must be an event sequence number, 0 or more (got {v})"),
            )
        })?),
    };
    Ok(NewWebhook {
        name,
        url,
        secret,
        events,
        since,
    })
}

/// The checks every endpoint definition passes (API and configuration):
/// `Err((field, message))`.
pub fn check_definition(
    name: &str,
    url: &str,
    secret: &str,
    events: Option<&[String]>,
) -> Result<Url, (&'static str, String)> {
    if name.trim().is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
        return Err((
            "name",
            format!("\"name\" must be 1 to {MAX_NAME} printable characters"),
        ));
    }
    if secret.is_empty() || secret.len() > MAX_SECRET {
        return Err((
            "secret",
            format!("\"secret\" must be 1 to {MAX_SECRET} bytes"),
        ));
    }
    if url.len() > MAX_URL {
        return Err(("url", format!("\"url\" is longer than {MAX_URL} bytes")));
    }
    let parsed = Url::parse(url)
        .map_err(|e| ("url", format!("invalid \"url\" {}: {e}", redact_url(url))))?;
    if let Some(events) = events {
        if events.is_empty() {
            return Err((
                "events",
                "\"events\" is empty: leave it out (or null) for every event type".into(),
            ));
        }
        if let Some(unknown) = events.iter().find(|e| ChangeKind::parse(e).is_none()) {
            return Err((
                "events",
                format!(
                    "unknown event type \"{unknown}\" (types: {})",
                    event_types().join(", ")
                ),
            ));
        }
    }
    Ok(parsed)
}

/// Every event type, as `events` names them.
fn event_types() -> Vec<&'static str> {
    ChangeKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// A definition's event list, de-duplicated in the order given.
fn dedup(events: Option<Vec<String>>) -> Option<Vec<String>> {
    events.map(|events| {
        let mut seen = BTreeSet::new();
        events
            .into_iter()
            .filter(|e| seen.insert(e.clone()))
            .collect()
    })
}

/// AddWebhook: the body checked, the URL checked against the `[remote]`
/// policy (its addresses resolved now; delivery checks again), stored.
/// The endpoint starts after the latest event unless `since` says where.
pub async fn add(app: &AppState, body: Option<Value>) -> Result<Webhook, ServiceError> {
    let new = parse_body(body)?;
    let url = check_definition(&new.name, &new.url, &new.secret, new.events.as_deref())
        .map_err(|(field, message)| invalid(field, message))?;
    app.remote.precheck(&url).await.map_err(|refused| {
        ServiceError::invalid_parameter(
            format!(
                "webhook URL {} refused: {refused}",
                redact_url(url.as_str())
            ),
            vec![FieldError::with_message(
                "url",
                FieldCode::Invalid,
                refused.0,
            )],
        )
    })?;
    let log = bounds(app).await?;
    let cursor = match new.since {
        None => log.last_seq,
        Some(since) if since < log.purged_through => {
            return Err(invalid(
                "since",
                format!(
                    "\"since\" {since} is older than the change log keeps (events through {} were purged); use {} or later",
                    log.purged_through, log.purged_through
                ),
            ))
        }
        Some(since) if since > log.last_seq => {
            return Err(invalid(
                "since",
                format!(
                    "\"since\" {since} is ahead of the change log (latest event {})",
                    log.last_seq
                ),
            ))
        }
        Some(since) => since,
    };
    let hook = StoredWebhook::new(
        new.name,
        new.url,
        new.secret,
        dedup(new.events),
        WebhookSource::Api,
        cursor,
        now_ms(),
    );
    match app.meta.insert_webhook(&hook).await {
        Ok(()) => {}
        Err(MetaError::AlreadyExists(_)) => {
            return Err(invalid(
                "name",
                format!(
                    "a webhook named \"{}\" already exists (GET /webhooks lists them)",
                    hook.name
                ),
            ))
        }
        Err(e) => return Err(ServiceError::meta("error storing the webhook")(e)),
    }
    tracing::info!(webhook = %hook.id, name = %hook.name, url = %redact_url(&hook.url), cursor, "webhook added");
    Ok(to_wire(&hook, log.last_seq))
}

/// DeleteWebhook: endpoints of the configuration file stay (edit the
/// file); a delivery in flight ends at its next step.
pub async fn delete(app: &AppState, id: &str) -> Result<(), ServiceError> {
    let hook = load(app, id).await?;
    if hook.source == WebhookSource::Config {
        return Err(invalid(
            "id",
            format!(
                "webhook \"{}\" ({id}) comes from the configuration file ([[webhooks.endpoints]]): remove it there and restart",
                hook.name
            ),
        ));
    }
    let deleted = app
        .meta
        .delete_webhook(hook.id)
        .await
        .map_err(ServiceError::meta(format!("error deleting webhook {id}")))?;
    if !deleted {
        return Err(not_found(id));
    }
    tracing::info!(webhook = %hook.id, name = %hook.name, "webhook deleted");
    Ok(())
}

/// ResumeWebhook: clear the dead state and the failures; the next attempt
/// is at once, from the cursor (or from `since` when the body gives it:
/// after events were purged, or to skip what the receiver no longer
/// wants).
pub async fn resume(
    app: &AppState,
    id: &str,
    body: Option<Value>,
) -> Result<Webhook, ServiceError> {
    let hook = load(app, id).await?;
    let since = match body {
        None | Some(Value::Null) => None,
        Some(Value::Object(fields)) => {
            if let Some(extra) = fields.keys().find(|k| k.as_str() != "since") {
                return Err(invalid(
                    extra,
                    format!("unknown field \"{extra}\" (fields: since)"),
                ));
            }
            match fields.get("since") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                    invalid(
                        "since",
                        format!("\"since\" must be an event sequence number (got {v})"),
                    )
                })?),
            }
        }
        Some(other) => {
            return Err(invalid(
                "since",
                format!("the body must be a JSON object like {{\"since\": 42}} (got {other})"),
            ))
        }
    };
    let log = bounds(app).await?;
    if let Some(since) = since {
        if since < log.purged_through || since > log.last_seq {
            return Err(invalid(
                "since",
                format!(
                    "\"since\" {since} is outside the change log ({} to {})",
                    log.purged_through, log.last_seq
                ),
            ));
        }
    }
    let resumed = app
        .meta
        .resume_webhook(hook.id, since)
        .await
        .map_err(ServiceError::meta(format!("error resuming webhook {id}")))?;
    if !resumed {
        return Err(not_found(id));
    }
    tracing::info!(webhook = %hook.id, name = %hook.name, since, "webhook resumed");
    get(app, id).await
}

/// TestWebhook: a signed `webhook.test` event POSTed now; the endpoint's
/// state does not change.
pub async fn test(app: &AppState, id: &str) -> Result<WebhookTestResult, ServiceError> {
    let hook = load(app, id).await?;
    let client = client::WebhookClient::new(&app.config)
        .map_err(|e| ServiceError::Internal(format!("webhook client: {e}")))?;
    let delivery = format!("{}:test-{}", hook.id, Uuid::new_v4().simple());
    let body = json!({
        "type": "webhook.test",
        "time": iso_of_ms(now_ms()),
        "webhook": hook.id,
        "name": hook.name,
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let started = std::time::Instant::now();
    let outcome = client
        .post(&hook.url, &hook.secret, "webhook.test", &delivery, body)
        .await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (ok, status, error) = match outcome {
        Ok(status) => (true, Some(status), None),
        Err(failure) => (false, failure.status, Some(failure.error)),
    };
    tracing::info!(webhook = %hook.id, ok, status, "webhook test delivery");
    Ok(WebhookTestResult {
        ok,
        status,
        error,
        duration_ms,
        delivery,
    })
}

/// The endpoints of `[[webhooks.endpoints]]`, at start-up: each upserted
/// by name (a new one starts after the latest event; an existing one keeps
/// its cursor and state), and the configured endpoints no longer in the
/// file deleted. A definition the `[remote]` policy refuses stops the
/// start-up.
pub async fn sync_configured(app: &AppState) -> Result<(), String> {
    let configured = &app.config.webhooks.endpoints;
    let log = app
        .meta
        .change_log_bounds()
        .await
        .map_err(|e| format!("webhooks: cannot read the change log: {e}"))?;
    for endpoint in configured {
        upsert_configured(app, endpoint, log.last_seq).await?;
    }
    let names: BTreeSet<&str> = configured.iter().map(|e| e.name.as_str()).collect();
    let stored = app
        .meta
        .webhooks()
        .await
        .map_err(|e| format!("webhooks: cannot list endpoints: {e}"))?;
    for gone in stored
        .iter()
        .filter(|h| h.source == WebhookSource::Config && !names.contains(h.name.as_str()))
    {
        app.meta
            .delete_webhook(gone.id)
            .await
            .map_err(|e| format!("webhooks: cannot delete endpoint {}: {e}", gone.name))?;
        tracing::info!(webhook = %gone.id, name = %gone.name, "configured webhook removed from the file: deleted");
    }
    Ok(())
}

async fn upsert_configured(
    app: &AppState,
    endpoint: &WebhookEndpointConfig,
    last_seq: i64,
) -> Result<(), String> {
    let what = format!("[[webhooks.endpoints]] \"{}\"", endpoint.name);
    let url = check_definition(
        &endpoint.name,
        &endpoint.url,
        &endpoint.secret,
        endpoint.events.as_deref(),
    )
    .map_err(|(field, message)| format!("{what}: {field}: {message}"))?;
    app.remote
        .policy()
        .check_url(&url)
        .map_err(|refused| format!("{what}: url refused by [remote]: {refused}"))?;
    let hook = StoredWebhook::new(
        endpoint.name.clone(),
        endpoint.url.clone(),
        endpoint.secret.clone(),
        dedup(endpoint.events.clone()),
        WebhookSource::Config,
        last_seq,
        now_ms(),
    );
    let stored = app
        .meta
        .upsert_webhook_by_name(&hook)
        .await
        .map_err(|e| format!("{what}: cannot store it: {e}"))?;
    tracing::info!(webhook = %stored.id, name = %stored.name, url = %redact_url(&stored.url), cursor = stored.cursor, "configured webhook");
    Ok(())
}
