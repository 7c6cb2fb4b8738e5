//! Image lifecycle use cases: create, import, activate, disable/enable,
//! channel-add, update, delete, ACLs (api.md §4.2, §5.3, §5.11–§5.18).

use imgapi_domain::build::{apply_update, build_record, parse_acl_body, BuildKind};
use imgapi_domain::validate::is_lower_uuid;
use imgapi_domain::{ImageRecord, ImageState, Mode};
use imgapi_meta::{MetaError, StoredImage};
use imgapi_types::{FieldCode, FieldError, UNSET_OWNER_UUID};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::quotas;
pub use super::recycle_bin::Removal;
use super::{parse_account, parse_bool_param, ServiceError};
use crate::app::AppState;

/// How many times a write is re-applied after losing an optimistic-
/// concurrency race before giving up (many instances may write one image).
pub(crate) const MAX_WRITE_ATTEMPTS: u32 = 50;

fn as_object(body: Option<Value>) -> Map<String, Value> {
    match body {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// JS-ish rendering of a JSON value inside a message (`undefined` if absent).
fn js_string(v: Option<&Value>) -> String {
    match v {
        None => "undefined".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Check that `origin` (when it is a UUID) names an existing image.
async fn ensure_origin_exists(
    app: &AppState,
    body: &Map<String, Value>,
) -> Result<(), ServiceError> {
    let Some(Value::String(origin)) = body.get("origin") else {
        return Ok(());
    };
    if !is_lower_uuid(origin) {
        return Ok(()); // validation reports the malformed value
    }
    let Ok(uuid) = Uuid::parse_str(origin) else {
        return Ok(());
    };
    let found = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading origin image {uuid}"
        )))?;
    match found {
        Some(_) => Ok(()),
        None => Err(ServiceError::OriginDoesNotExist(uuid)),
    }
}

/// dc mode: the owner must exist in the account directory (api.md §5.3
/// step 4). A missing or malformed owner is left to validation.
pub async fn ensure_owner_exists(
    app: &AppState,
    owner: Option<&Value>,
) -> Result<(), ServiceError> {
    if app.config.mode != Mode::Dc {
        return Ok(());
    }
    let Some(owner) = owner
        .and_then(Value::as_str)
        .filter(|s| is_lower_uuid(s))
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return Ok(());
    };
    match app.accounts.exists(owner).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ServiceError::OwnerDoesNotExist(owner)),
        Err(e) => Err(ServiceError::AccountDirectoryUnavailable(e.to_string())),
    }
}

fn set_channels(app: &AppState, body: &mut Map<String, Value>, channel: Option<&str>) {
    body.remove("channels");
    if app.channels_enabled() {
        if let Some(ch) = channel {
            body.insert(
                "channels".into(),
                Value::Array(vec![Value::String(ch.into())]),
            );
        }
    }
}

/// CreateImage (api.md §5.3).
pub async fn create_image(
    app: &AppState,
    body: Option<Value>,
    account: Option<&str>,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    let account = parse_account(account)?;
    let mut body = as_object(body);
    if let Some(acc) = account {
        match body.get("owner") {
            None => {
                body.insert("owner".into(), Value::String(acc.to_string()));
            }
            Some(owner) if owner.as_str() != Some(acc.to_string().as_str()) => {
                return Err(ServiceError::invalid_parameter(
                    format!(
                        "invalid owner: given owner, \"{}\", does not match account, \"{acc}\"",
                        js_string(Some(owner))
                    ),
                    vec![FieldError::invalid("owner")],
                ));
            }
            Some(_) => {}
        }
    }
    if body.contains_key("state") {
        return Err(ServiceError::validation(
            "invalid image data: \"state\"",
            vec![FieldError::with_message(
                "state",
                FieldCode::NotAllowed,
                "Parameter cannot be set",
            )],
        ));
    }
    set_channels(app, &mut body, channel);
    ensure_owner_exists(app, body.get("owner")).await?;
    ensure_origin_exists(app, &body).await?;
    let record = build_record(body, BuildKind::Create, Uuid::new_v4(), &app.rules())?;
    let reservation = quotas::reserve_image(app, &record, true).await?;
    let saved = app.meta.insert(&record).await;
    quotas::release(reservation).await;
    saved.map_err(ServiceError::meta(format!(
        "error saving image {}",
        record.uuid
    )))?;
    Ok(record)
}

/// Query inputs of AdminImportImage and AdminImportImageFromSource.
pub struct ImportParams<'a> {
    pub account_given: bool,
    pub skip_owner_check: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

/// AdminImportImage (api.md §5.18): keeps uuid and published_at.
pub async fn import_image(
    app: &AppState,
    uuid: Uuid,
    body: Option<Value>,
    params: ImportParams<'_>,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    if params.account_given {
        return Err(ServiceError::OperatorOnly);
    }
    let body = as_object(body);
    if body.get("uuid").and_then(Value::as_str) != Some(uuid.to_string().as_str()) {
        return Err(ServiceError::invalid_parameter(
            format!(
                "URL UUID, \"{uuid}\" and body UUID, \"{}\" do not match",
                js_string(body.get("uuid"))
            ),
            vec![FieldError::invalid("uuid")],
        ));
    }
    let skip_owner_check = parse_bool_param("skip_owner_check", params.skip_owner_check)?;
    let how = ImportRecord {
        skip_owner_check,
        user_agent: params.user_agent,
        placeholder_ok: true,
        check_origin: true,
    };
    import_record(app, uuid, body, how, channel).await
}

/// How [`import_record`] treats an import body.
pub(crate) struct ImportRecord<'a> {
    pub skip_owner_check: Option<bool>,
    pub user_agent: Option<&'a str>,
    /// Overwrite an existing `creating` placeholder (§5.18) instead of 409.
    pub placeholder_ok: bool,
    /// 422 OriginDoesNotExist for an unknown origin (§5.18 step 6).
    pub check_origin: bool,
}

/// Steps 4–10 of AdminImportImage (api.md §5.18), shared with
/// AdminImportImageFromSource (§5.19): channels, existence, origin, owner,
/// build (legacy manifests upgraded, manifest.md §10), persist.
pub(crate) async fn import_record(
    app: &AppState,
    uuid: Uuid,
    body: Map<String, Value>,
    how: ImportRecord<'_>,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    let existing = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?;
    let overwrite_placeholder = match &existing {
        Some(s) if how.placeholder_ok && s.image.state == ImageState::Creating => true,
        Some(_) => return Err(ServiceError::ImageUuidAlreadyExists(uuid)),
        None => false,
    };
    let record = build_import_record(app, uuid, body, how, channel).await?;
    // A placeholder already counts as an image of its owner.
    let reservation = quotas::reserve_image(app, &record, !overwrite_placeholder).await?;
    let saved = if overwrite_placeholder {
        app.meta.put(&record).await
    } else {
        app.meta.insert(&record).await
    };
    quotas::release(reservation).await;
    saved.map_err(ServiceError::meta(format!("error saving image {uuid}")))?;
    Ok(record)
}

/// The record an import of `body` creates (steps 4 and 6–9 of §5.18),
/// without looking for an existing record and without saving it: what
/// `imgapi mirror` compares a local image with.
pub(crate) async fn build_import_record(
    app: &AppState,
    uuid: Uuid,
    mut body: Map<String, Value>,
    how: ImportRecord<'_>,
    channel: Option<&str>,
) -> Result<ImageRecord, ServiceError> {
    let ImportRecord {
        skip_owner_check,
        user_agent,
        placeholder_ok: _,
        check_origin,
    } = how;
    set_channels(app, &mut body, channel);
    if check_origin {
        ensure_origin_exists(app, &body).await?;
    }
    let zero_owner = body.get("owner") == Some(&Value::String(UNSET_OWNER_UUID.into()));
    apply_import_owner(app, &mut body);
    if !zero_owner && skip_owner_check != Some(true) {
        // A legacy manifest's owner is its creator_uuid.
        let owner = body
            .get("owner")
            .or_else(|| body.get("creator_uuid"))
            .cloned();
        ensure_owner_exists(app, owner.as_ref()).await?;
    }
    apply_imgadm_min_platform_compat(app, &mut body, user_agent).await?;
    Ok(build_record(body, BuildKind::Import, uuid, &app.rules())?)
}

/// Owner rules of an import (api.md §5.18 step 7).
fn apply_import_owner(app: &AppState, body: &mut Map<String, Value>) {
    let unset = Value::String(UNSET_OWNER_UUID.into());
    if app.config.mode == Mode::Dc {
        if body.get("owner") == Some(&unset) {
            if let Some(admin) = app.config.admin_uuid {
                body.insert("owner".into(), Value::String(admin.to_string()));
            }
        }
    } else {
        body.insert("owner".into(), unset);
    }
}

/// IMGAPI-651: old imgadm (< 3.7.4) sends a wrong lx-dataset min_platform;
/// use the origin's instead (or drop it).
async fn apply_imgadm_min_platform_compat(
    app: &AppState,
    body: &mut Map<String, Value>,
    user_agent: Option<&str>,
) -> Result<(), ServiceError> {
    let old_imgadm = user_agent
        .and_then(|ua| ua.strip_prefix("imgadm/"))
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(ver, _)| semver::Version::parse(ver).ok())
        .is_some_and(|v| v < semver::Version::new(3, 7, 4));
    let is_lx = body.get("type").and_then(Value::as_str) == Some("lx-dataset");
    let has_min = body
        .get("requirements")
        .and_then(Value::as_object)
        .is_some_and(|r| r.contains_key("min_platform"));
    if !(old_imgadm && is_lx && has_min) {
        return Ok(());
    }
    let origin_min = match body
        .get("origin")
        .and_then(Value::as_str)
        .and_then(|o| Uuid::parse_str(o).ok())
    {
        Some(origin) => app
            .meta
            .get(origin)
            .await
            .map_err(ServiceError::meta(format!(
                "error loading origin image {origin}"
            )))?
            .and_then(|s| s.image.requirements)
            .and_then(|r| r.get("min_platform").cloned()),
        None => None,
    };
    if let Some(Value::Object(reqs)) = body.get_mut("requirements") {
        match origin_min {
            Some(min) => {
                reqs.insert("min_platform".into(), min);
            }
            None => {
                reqs.remove("min_platform");
            }
        }
    }
    Ok(())
}

/// Apply `change` to the image and save it with optimistic concurrency,
/// re-reading and re-applying after a lost race when `retry` is allowed
/// (it is not when the client sent a precondition on the version it saw).
pub async fn modify<F>(
    app: &AppState,
    stored: StoredImage,
    retry: bool,
    change: F,
) -> Result<ImageRecord, ServiceError>
where
    F: Fn(&ImageRecord) -> Result<ImageRecord, ServiceError>,
{
    modify_replacing(app, stored, retry, change)
        .await
        .map(|(_, new)| new)
}

/// [`modify`], also returning the record the saved one replaced: after a
/// lost race that is the winner's record, not the one first read, so what
/// the change displaced (a file's blob) is known exactly.
pub async fn modify_replacing<F>(
    app: &AppState,
    mut stored: StoredImage,
    retry: bool,
    change: F,
) -> Result<(ImageRecord, ImageRecord), ServiceError>
where
    F: Fn(&ImageRecord) -> Result<ImageRecord, ServiceError>,
{
    let uuid = stored.image.uuid;
    for attempt in 0..MAX_WRITE_ATTEMPTS {
        if attempt > 0 {
            // Jittered back-off so racing writers stop colliding in lockstep.
            let jitter = u64::from(uuid::Uuid::new_v4().as_u128() as u8 % 8);
            let wait = u64::from(attempt.min(10)) + jitter;
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
        let new = change(&stored.image)?;
        if new == stored.image {
            return Ok((stored.image, new));
        }
        let result = if new.uuid == uuid {
            app.meta.update(&new, stored.revision).await
        } else {
            app.meta.rename(uuid, stored.revision, &new).await
        };
        match result {
            Ok(_) => return Ok((stored.image, new)),
            Err(MetaError::Conflict(_)) if retry => {
                stored = app
                    .meta
                    .get(uuid)
                    .await
                    .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
                    .ok_or_else(|| ServiceError::not_found(format!("image {uuid} not found")))?;
            }
            Err(MetaError::NotFound(_)) => {
                return Err(ServiceError::not_found(format!("image {uuid} not found")))
            }
            Err(e) => return Err(ServiceError::meta(format!("error saving image {uuid}"))(e)),
        }
    }
    Err(ServiceError::meta(format!("error saving image {uuid}"))(
        MetaError::Conflict(uuid),
    ))
}

/// ActivateImage (api.md §5.11).
pub fn activated(img: &ImageRecord) -> Result<ImageRecord, ServiceError> {
    if img.activated {
        return Err(imgapi_domain::DomainError::ImageAlreadyActivated(img.uuid).into());
    }
    if img.files.is_empty() {
        return Err(imgapi_domain::DomainError::NoActivationNoFile(img.uuid).into());
    }
    let mut new = img.clone();
    if new.published_at.is_none() {
        new.published_at = Some(imgapi_domain::image::now_iso());
    }
    new.activated = true;
    new.state = ImageState::derive(true, new.disabled);
    new.expires_at = None;
    Ok(new)
}

/// DisableImage / EnableImage (api.md §5.12): flag, then derived state.
pub fn with_disabled(img: &ImageRecord, disabled: bool) -> ImageRecord {
    let mut new = img.clone();
    new.disabled = disabled;
    new.state = ImageState::derive(new.activated, disabled);
    new
}

/// ChannelAddImage (api.md §4.2): `body.channel` must be a configured channel.
pub fn with_channel_added(
    app: &AppState,
    img: &ImageRecord,
    body: Option<&Value>,
) -> Result<ImageRecord, ServiceError> {
    let requested = body.and_then(|b| b.get("channel"));
    let name = match requested {
        Some(Value::String(s)) if app.channels().iter().any(|c| &c.name == s) => s.clone(),
        other => {
            return Err(ServiceError::validation(
                format!("unknown channel: {}", js_string(other)),
                vec![FieldError::invalid("channel")],
            ))
        }
    };
    let mut new = img.clone();
    let channels = new.channels.get_or_insert_with(Vec::new);
    if !channels.contains(&name) {
        channels.push(name);
    }
    Ok(new)
}

/// UpdateImage (api.md §5.13): validation errors first, then (dc mode) a
/// new owner's existence, then the quotas: a new owner counts one more
/// image and its bytes, a new (name, version) is claimed (write-once
/// versions), both held until the update is saved.
pub async fn update_image(
    app: &AppState,
    stored: StoredImage,
    body: Option<&Value>,
    operator: bool,
    retry: bool,
) -> Result<ImageRecord, ServiceError> {
    let preview = updated(app, &stored.image, body, operator)?;
    let moved = preview.owner != stored.image.owner;
    if moved {
        let owner = Value::String(preview.owner.to_string());
        ensure_owner_exists(app, Some(&owner)).await?;
    }
    let renamed = preview.name != stored.image.name || preview.version != stored.image.version;
    let reservation = if moved {
        quotas::reserve_stored_record(app, &preview).await?
    } else if renamed {
        quotas::reserve_image(app, &preview, false).await?
    } else {
        None
    };
    let saved = modify(app, stored, retry, |img| updated(app, img, body, operator)).await;
    quotas::release(reservation).await;
    saved
}

/// The record UpdateImage makes of `img` (api.md §5.13).
pub fn updated(
    app: &AppState,
    img: &ImageRecord,
    body: Option<&Value>,
    operator: bool,
) -> Result<ImageRecord, ServiceError> {
    Ok(apply_update(img, body, operator, &app.rules())?)
}

/// AddImageAcl / RemoveImageAcl (api.md §5.15–§5.16).
pub fn with_acl_change(
    img: &ImageRecord,
    body: Option<&Value>,
    add: bool,
) -> Result<ImageRecord, ServiceError> {
    let accounts = parse_acl_body(body)?;
    let mut new = img.clone();
    if add {
        for acc in accounts {
            if !new.acl.contains(&acc) {
                new.acl.push(acc);
            }
        }
    } else {
        new.acl.retain(|a| !accounts.contains(a));
    }
    Ok(new)
}

/// DeleteImage (api.md §5.14). Returns once the record is gone (or, for a
/// multi-channel image, once the current channel is removed). `removal`
/// says whether a requested deletion may go to the recycle bin.
pub async fn delete_image(
    app: &AppState,
    stored: StoredImage,
    channel: Option<&str>,
    force_all_channels: Option<&str>,
    removal: Removal,
) -> Result<(), ServiceError> {
    let force = parse_bool_param("force_all_channels", force_all_channels)?.unwrap_or(false);
    let uuid = stored.image.uuid;
    let dependents = app
        .meta
        .dependents(uuid, channel)
        .await
        .map_err(ServiceError::meta(format!(
            "error loading dependents of {uuid}"
        )))?;
    if !dependents.is_empty() {
        return Err(ServiceError::ImageHasDependentImages { uuid, dependents });
    }
    if let Some(ch) = channel {
        let in_several = stored.image.channels.as_ref().is_some_and(|c| c.len() > 1);
        if in_several && !force {
            let ch = ch.to_string();
            modify(app, stored, true, move |img| {
                let mut new = img.clone();
                if let Some(chs) = new.channels.as_mut() {
                    chs.retain(|c| c != &ch);
                }
                Ok(new)
            })
            .await?;
            return Ok(());
        }
    }
    super::lifecycle::ensure_deletable(app, uuid).await?;
    if let Removal::Requested { by } = removal {
        if app.config.lifecycle.recycles() {
            return super::recycle_bin::move_to_bin(app, stored, by).await;
        }
    }
    app.meta
        .delete(uuid)
        .await
        .map_err(ServiceError::meta(format!("error deleting image {uuid}")))?;
    delete_blobs(app, &stored.image).await
}

/// Delete the files and icon of `image`, whose record is gone: a file that
/// cannot be deleted is an error, an icon only a warning.
pub(crate) async fn delete_blobs(app: &AppState, image: &ImageRecord) -> Result<(), ServiceError> {
    let uuid = image.uuid;
    for file in &image.files {
        if let Some(key) = &file.blob_key {
            super::store_for(app, &file.stor)?
                .delete(key)
                .await
                .map_err(ServiceError::blob("error deleting image file"))?;
        }
    }
    if let Some(icon) = image.icon.as_ref() {
        let key = icon.blob_key.as_deref().unwrap_or_default();
        let deleted = match app.blob_store(&icon.stor) {
            Some(store) if !key.is_empty() => store.delete(key).await,
            _ => Ok(()),
        };
        if let Err(e) = deleted {
            tracing::warn!(image = %uuid, error = %e, "could not delete icon of deleted image");
        }
    }
    Ok(())
}
