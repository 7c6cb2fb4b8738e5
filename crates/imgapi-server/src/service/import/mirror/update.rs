//! Bringing a present, active image up to date with the upstream's:
//! its mutable manifest fields, the disabled flag and the icon.

use imgapi_domain::build::apply_update;
use imgapi_domain::{ImageRecord, RuleContext};
use imgapi_meta::StoredImage;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::SyncError;
use super::{Outcome, Run};
use crate::service::files::delete_icon;
use crate::service::images::{build_import_record, modify, with_disabled};
use crate::service::import::icon::{announced_sha1, fetch_icon, store_fetched_icon};
use crate::service::ServiceError;

/// Fields a mirror keeps equal to the upstream's: UpdateImage's mutable
/// fields (but `channels`, which are local) and `error`. `disabled` and
/// the icon are handled on their own; files, origin, uuid and
/// `published_at` never change on an active image.
fn synced_fields() -> impl Iterator<Item = &'static str> {
    imgapi_domain::build::MUTABLE_FIELDS
        .into_iter()
        .filter(|f| *f != "channels")
        .chain(["error"])
}

/// An UpdateImage body turning `local`'s synced fields into `desired`'s
/// (`null` deletes a field).
fn update_body(local: &ImageRecord, desired: &ImageRecord) -> Map<String, Value> {
    let (have, want) = (local.to_raw_map(), desired.to_raw_map());
    let mut body = Map::new();
    for key in synced_fields() {
        let wanted = want.get(key);
        if have.get(key) != wanted {
            body.insert(key.into(), wanted.cloned().unwrap_or(Value::Null));
        }
    }
    body
}

/// `local` brought up to `desired` (fields, then the disabled flag).
pub(super) fn synced(
    local: &ImageRecord,
    desired: &ImageRecord,
    rules: &RuleContext,
) -> Result<ImageRecord, ServiceError> {
    let body = update_body(local, desired);
    let mut new = if body.is_empty() {
        local.clone()
    } else {
        apply_update(local, Some(&Value::Object(body)), true, rules)?
    };
    if new.disabled != desired.disabled {
        new = with_disabled(&new, desired.disabled);
    }
    Ok(new)
}

/// What to do about an image's icon.
enum IconChange {
    None,
    Add,
    /// The upstream's icon differs: its answer, headers read.
    Replace(reqwest::Response),
    Remove,
}

impl Run<'_> {
    /// A present, active image brought up to date with the upstream's.
    /// The record the upstream's manifest makes here (its `"icon": true`
    /// tells that an icon exists; the icon is compared on its own).
    pub(super) async fn desired(
        &self,
        uuid: Uuid,
        m: &Map<String, Value>,
    ) -> Result<ImageRecord, SyncError> {
        let mut manifest = m.clone();
        if manifest.get("icon") == Some(&Value::Bool(true)) {
            manifest.remove("icon");
        }
        build_import_record(
            self.app,
            uuid,
            manifest,
            self.import_how(),
            self.local_channel.as_deref(),
        )
        .await
        .map_err(SyncError::Unimportable)
    }

    pub(super) async fn update(
        &mut self,
        stored: StoredImage,
        m: &Map<String, Value>,
    ) -> Result<Outcome, SyncError> {
        let uuid = stored.image.uuid;
        let desired = self.desired(uuid, m).await?;
        let mut fields: Vec<String> = update_body(&stored.image, &desired)
            .keys()
            .cloned()
            .collect();
        let disabled = (stored.image.disabled != desired.disabled).then_some(desired.disabled);
        // Asked before any write: an upstream that cannot tell its
        // signatures leaves the image as it is, failed for this run. When
        // fields change here, signatures refused against the old record
        // may verify against the new one: asked again whatever the feed
        // says.
        let signatures = if fields.is_empty() {
            self.upstream_signatures_of(uuid).await?
        } else {
            self.fresh_upstream_signatures(uuid).await?
        };
        let icon = self.icon_change(&stored, m).await?;
        if !matches!(icon, IconChange::None) {
            fields.push("icon".into());
        }
        let rules = self.app.rules();
        if fields.is_empty() && disabled.is_none() {
            let signed = self.sync_signatures(&stored.image, &signatures).await?;
            self.say_signatures(uuid, m, &signed);
            return Ok(Outcome::Unchanged);
        }
        if self.opts.dry_run {
            // Verified against the record as the update would make it.
            let would_be = synced(&stored.image, &desired, &rules).map_err(SyncError::Update)?;
            let signed = self.sync_signatures(&would_be, &signatures).await?;
            self.say_signatures(uuid, m, &signed);
            return Ok(Outcome::Changed { disabled, fields });
        }
        let stored = if fields.iter().any(|f| f != "icon") || disabled.is_some() {
            modify(self.app, stored, true, |img| synced(img, &desired, &rules))
                .await
                .map_err(SyncError::Update)?;
            self.load_existing(uuid).await?
        } else {
            stored
        };
        // After the fields: a signed field (name, version...) may have
        // changed with them.
        let signed = self.sync_signatures(&stored.image, &signatures).await?;
        self.say_signatures(uuid, m, &signed);
        match icon {
            IconChange::None => {}
            IconChange::Add => {
                let resp = fetch_icon(self.app, &self.src, uuid)
                    .await
                    .map_err(SyncError::Step)?;
                self.store_icon(stored, resp).await?;
            }
            IconChange::Replace(resp) => self.store_icon(stored, resp).await?,
            IconChange::Remove => {
                delete_icon(self.app, stored)
                    .await
                    .map_err(SyncError::DeleteIcon)?;
            }
        }
        Ok(Outcome::Changed { disabled, fields })
    }

    async fn store_icon(
        &mut self,
        stored: StoredImage,
        resp: reqwest::Response,
    ) -> Result<(), SyncError> {
        let record = store_fetched_icon(self.app, stored, resp)
            .await
            .map_err(SyncError::Icon)?;
        self.summary.bytes += record.icon.as_ref().map_or(0, |i| i.size);
        Ok(())
    }

    /// Compare the icons. A present icon is compared by the sha1 the
    /// upstream announces (`ETag`); without one, presence alone counts.
    async fn icon_change(
        &self,
        stored: &StoredImage,
        m: &Map<String, Value>,
    ) -> Result<IconChange, SyncError> {
        if self.src.dsapi {
            return Ok(IconChange::None); // DSAPI has no icons
        }
        let upstream_has = m.get("icon") == Some(&Value::Bool(true));
        match (upstream_has, &stored.image.icon) {
            (false, None) => Ok(IconChange::None),
            (false, Some(_)) => Ok(IconChange::Remove),
            (true, None) => Ok(IconChange::Add),
            (true, Some(icon)) => {
                let resp = fetch_icon(self.app, &self.src, stored.image.uuid)
                    .await
                    .map_err(SyncError::Step)?;
                match announced_sha1(&resp) {
                    Some(sha1) if sha1 != icon.sha1 => Ok(IconChange::Replace(resp)),
                    _ => Ok(IconChange::None),
                }
            }
        }
    }
}
