//! Use cases. Services apply the pure rules of `imgapi-domain` and persist
//! through the `MetaStore` / `BlobStore` traits. Handlers call services;
//! services call stores; stores never call services.

pub mod changes;
pub mod clone;
pub mod docker;
pub mod dsapi;
mod error;
pub mod export;
pub mod files;
pub mod health;
pub mod images;
pub mod import;
pub mod lifecycle;
pub mod list_cache;
pub mod listing;
pub mod lxd;
pub mod quotas;
pub mod recycle_bin;
pub mod retention;
pub mod signatures;
pub mod simplestreams;
pub mod sweeper;
pub mod uploads;
pub mod usage;
pub mod webhooks;

pub use error::ServiceError;

use imgapi_domain::access;
use imgapi_domain::validate::is_lower_uuid;
use imgapi_meta::StoredImage;
use imgapi_types::FieldError;
use uuid::Uuid;

use crate::app::AppState;

/// The configured store named by a file's `stor`.
pub fn store_for<'a>(
    app: &'a AppState,
    stor: &str,
) -> Result<&'a std::sync::Arc<dyn imgapi_blob::BlobStore>, ServiceError> {
    app.blob_store(stor).ok_or(ServiceError::StorageUnsupported)
}

/// How a route resolves `?channel=` (api.md §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRule {
    /// Absent → the default channel.
    Channel,
    /// As `Channel`, plus `*` = no restriction.
    ChannelOrStar,
}

/// Resolve the `channel` query parameter. `Ok(None)` = no restriction
/// (server without channels, or `*` where allowed).
pub fn resolve_channel(
    app: &AppState,
    param: Option<&str>,
    rule: ChannelRule,
) -> Result<Option<String>, ServiceError> {
    if !app.channels_enabled() {
        return Ok(None);
    }
    match param.filter(|p| !p.is_empty()) {
        None => match app.default_channel() {
            Some(ch) => Ok(Some(ch.name.clone())),
            None => Err(ServiceError::validation(
                "channel not specified and the server has no default channel",
                vec![FieldError::missing("channel")],
            )),
        },
        Some("*") if rule == ChannelRule::ChannelOrStar => Ok(None),
        Some(name) => {
            if app.channels().iter().any(|c| c.name == name) {
                Ok(Some(name.to_string()))
            } else {
                Err(ServiceError::validation(
                    format!("unknown channel: {name}"),
                    vec![FieldError::invalid("channel")],
                ))
            }
        }
    }
}

/// Validate an `account` parameter (api.md §1.6 rule 1).
pub fn parse_account(raw: Option<&str>) -> Result<Option<Uuid>, ServiceError> {
    match raw {
        None => Ok(None),
        Some(s) if is_lower_uuid(s) => Ok(Uuid::parse_str(s).ok()),
        Some(s) => Err(ServiceError::invalid_parameter(
            format!("invalid \"account\": not a UUID: \"{s}\""),
            vec![FieldError::invalid("account")],
        )),
    }
}

/// The image a `/images/:uuid...` request is about, after the shared load
/// step: account format, existence, channel membership and visibility.
pub struct Loaded {
    pub stored: StoredImage,
    pub account: Option<Uuid>,
}

pub async fn load_image(
    app: &AppState,
    uuid: Uuid,
    account: Option<&str>,
    channel: Option<&str>,
) -> Result<Loaded, ServiceError> {
    let account = parse_account(account)?;
    let stored = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
        .ok_or_else(|| ServiceError::not_found(format!("image {uuid} not found")))?;
    if let Some(ch) = channel {
        if !stored.image.in_channel(ch) {
            return Err(ServiceError::not_found("image not found"));
        }
    }
    if let Some(acc) = account {
        if !access::visible_to(&stored.image, acc) {
            return Err(ServiceError::not_found("image not found"));
        }
    }
    Ok(Loaded { stored, account })
}

impl Loaded {
    /// Rule 3: modifying endpoints need ownership when `account` is given.
    pub fn ensure_owner(&self) -> Result<(), ServiceError> {
        access::ensure_owner(&self.stored.image, self.account).map_err(ServiceError::from)
    }
}

/// Parse a boolean query parameter (`true`/`false`), else 422 with the
/// original's message.
pub fn parse_bool_param(name: &str, raw: Option<&str>) -> Result<Option<bool>, ServiceError> {
    match raw {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(ServiceError::invalid_parameter(
            format!(
                "invalid value for \"{name}\" param: {} is not a boolean",
                serde_json::Value::String(other.to_string())
            ),
            vec![FieldError::invalid(name)],
        )),
    }
}
