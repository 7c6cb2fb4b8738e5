//! Image lifecycle flags (docs/lifecycle.md): deprecation and protection.
//!
//! The flags live beside the image record (`imgapi_meta::ImageFlagsStore`),
//! never in it, so manifests stay what clients expect. A deprecated image
//! is left out of listings for everyone but its owner and operators; a
//! protected one cannot be deleted.

use imgapi_domain::filter::Predicate;
use imgapi_domain::image::parse_iso_ms;
use imgapi_meta::{FlagsChange, ImageFlags};
use imgapi_types::{FieldError, ImageLifecycle};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::uploads::iso_of_ms;
use super::{Loaded, ServiceError};
use crate::app::AppState;

/// Who last changed the flags when it was not an account.
const OPERATOR: &str = "operator";

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A checked `PUT /images/:uuid/lifecycle` body: the fields given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleUpdate {
    /// `Some(None)`: clear the deprecation time.
    pub deprecated_ms: Option<Option<i64>>,
    pub protected: Option<bool>,
}

impl LifecycleUpdate {
    fn is_empty(&self) -> bool {
        self.deprecated_ms.is_none() && self.protected.is_none()
    }
}

fn invalid(field: &str, message: String) -> ServiceError {
    ServiceError::invalid_parameter(message, vec![FieldError::invalid(field)])
}

/// Check an update body: a JSON object with any of `deprecated_at` (an ISO
/// 8601 time, `"now"`, or `null` to clear) and `protected` (a boolean).
pub fn parse_update(body: Option<&Value>, now_ms: i64) -> Result<LifecycleUpdate, ServiceError> {
    let Some(Value::Object(data)) = body else {
        return Err(ServiceError::validation(
            "missing request body: a JSON object with \"deprecated_at\" and/or \"protected\"",
            vec![FieldError::missing("body")],
        ));
    };
    reject_unknown_fields(data)?;
    let mut update = LifecycleUpdate::default();
    if let Some(value) = data.get("deprecated_at") {
        update.deprecated_ms = Some(match value {
            Value::Null => None,
            Value::String(s) if s == "now" => Some(now_ms),
            Value::String(s) => Some(parse_iso_ms(s).ok_or_else(|| {
                invalid(
                    "deprecated_at",
                    format!("invalid \"deprecated_at\": {value} is not an ISO 8601 date, \"now\" or null"),
                )
            })?),
            other => {
                return Err(invalid(
                    "deprecated_at",
                    format!("invalid \"deprecated_at\": {other} is not an ISO 8601 date, \"now\" or null"),
                ))
            }
        });
    }
    if let Some(value) = data.get("protected") {
        update.protected = Some(value.as_bool().ok_or_else(|| {
            invalid(
                "protected",
                format!("invalid \"protected\": {value} is not a boolean"),
            )
        })?);
    }
    Ok(update)
}

/// `invalid extra parameters: "a", "b"`, as UpdateImage words it.
fn reject_unknown_fields(data: &Map<String, Value>) -> Result<(), ServiceError> {
    let unknown: Vec<&String> = data
        .keys()
        .filter(|k| !matches!(k.as_str(), "deprecated_at" | "protected"))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = unknown.iter().map(|k| format!("\"{k}\"")).collect();
    Err(ServiceError::invalid_parameter(
        format!("invalid extra parameters: {}", quoted.join(", ")),
        unknown.into_iter().map(FieldError::invalid).collect(),
    ))
}

/// The wire form of `flags` (none = the defaults) of image `uuid`.
pub fn to_wire(uuid: Uuid, flags: Option<&ImageFlags>, now_ms: i64) -> ImageLifecycle {
    ImageLifecycle {
        uuid: uuid.to_string(),
        deprecated_at: flags.and_then(|f| f.deprecated_ms).map(iso_of_ms),
        deprecated: flags.is_some_and(|f| f.deprecated_at(now_ms)),
        protected: flags.is_some_and(|f| f.protected),
    }
}

/// The flags of `uuid` (after the caller's load step), none = the defaults.
pub async fn flags_of(app: &AppState, uuid: Uuid) -> Result<Option<ImageFlags>, ServiceError> {
    app.meta
        .image_flags(uuid)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading the lifecycle of image {uuid}"
        )))
}

/// GetImageLifecycle, after the load step.
pub async fn get(app: &AppState, loaded: &Loaded) -> Result<ImageLifecycle, ServiceError> {
    let uuid = loaded.stored.image.uuid;
    let flags = flags_of(app, uuid).await?;
    Ok(to_wire(uuid, flags.as_ref(), now_ms()))
}

/// UpdateImageLifecycle, after the load step: owner or operator only.
pub async fn update(
    app: &AppState,
    loaded: &Loaded,
    update: LifecycleUpdate,
) -> Result<ImageLifecycle, ServiceError> {
    loaded.ensure_owner()?;
    let uuid = loaded.stored.image.uuid;
    let now = now_ms();
    if update.is_empty() {
        let flags = flags_of(app, uuid).await?;
        return Ok(to_wire(uuid, flags.as_ref(), now));
    }
    let change = FlagsChange {
        deprecated_ms: update.deprecated_ms,
        protected: update.protected,
        at_ms: now,
        by: loaded
            .account
            .map_or_else(|| OPERATOR.to_owned(), |a| a.to_string()),
    };
    let flags = app
        .meta
        .change_image_flags(uuid, &change)
        .await
        .map_err(|e| match e {
            imgapi_meta::MetaError::NotFound(_) => {
                ServiceError::not_found(format!("image {uuid} not found"))
            }
            e => ServiceError::meta(format!("error changing the lifecycle of image {uuid}"))(e),
        })?;
    Ok(to_wire(uuid, Some(&flags), now))
}

/// Refuse to delete a protected image (DeleteImage, retention, `imgapi
/// mirror --delete`: every delete goes through `images::delete_image`).
pub async fn ensure_deletable(app: &AppState, uuid: Uuid) -> Result<(), ServiceError> {
    match flags_of(app, uuid).await? {
        Some(flags) if flags.protected => Err(ServiceError::ImageProtected(uuid)),
        _ => Ok(()),
    }
}

/// Who is looking at a listing, for deprecation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer<'a> {
    /// Operators see every image.
    Operator,
    /// An account sees its own deprecated images, nobody else's.
    Account(&'a str),
    /// Anonymous callers see no deprecated image.
    Anonymous,
}

/// The predicate leaving deprecated images out of a listing for `viewer`
/// at `now_ms`; `None` when nothing is left out.
pub fn hide_deprecated(viewer: Viewer<'_>, now_ms: i64) -> Option<Predicate> {
    match viewer {
        Viewer::Operator => None,
        Viewer::Account(account) => Some(Predicate::NotDeprecated {
            at_ms: now_ms,
            unless_owner: Some(account.to_owned()),
        }),
        Viewer::Anonymous => Some(Predicate::NotDeprecated {
            at_ms: now_ms,
            unless_owner: None,
        }),
    }
}

/// Until when (ms since the epoch) a listing built now stays right without
/// a write: the next deprecation instant. Read before the listing is
/// built, so an instant passing meanwhile only makes the entry expire at
/// once.
pub async fn listing_valid_until(app: &AppState) -> Result<Option<i64>, ServiceError> {
    app.meta
        .next_deprecation_after(now_ms())
        .await
        .map_err(ServiceError::meta(
            "error reading the next deprecation time",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn update_bodies() {
        let now = 1_000;
        let parse = |v: Value| parse_update(Some(&v), now);
        assert_eq!(
            parse(json!({"deprecated_at": "2020-01-02T03:04:05Z", "protected": true})).ok(),
            Some(LifecycleUpdate {
                deprecated_ms: Some(Some(1_577_934_245_000)),
                protected: Some(true)
            })
        );
        assert_eq!(
            parse(json!({"deprecated_at": "now"})).ok(),
            Some(LifecycleUpdate {
                deprecated_ms: Some(Some(now)),
                protected: None
            })
        );
        assert_eq!(
            parse(json!({"deprecated_at": null})).ok(),
            Some(LifecycleUpdate {
                deprecated_ms: Some(None),
                protected: None
            })
        );
        assert_eq!(parse(json!({})).ok(), Some(LifecycleUpdate::default()));
        for bad in [
            json!({"deprecated_at": "yesterday"}),
            json!({"deprecated_at": 5}),
            json!({"protected": "yes"}),
            json!({"protected": true, "name": "x"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad} accepted");
        }
        assert!(parse_update(None, now).is_err());
        assert!(parse_update(Some(&json!([])), now).is_err());
    }
}
