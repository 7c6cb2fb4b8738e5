//! Image resource handlers (api.md §5.1–§5.3, §5.11–§5.25).

use axum::response::Response;
use http::StatusCode;
use imgapi_domain::serialize::{api_object, SerializeOptions};
use imgapi_domain::ImageRecord;
use imgapi_types::{FieldError, RestCode};
use serde_json::Value;

use crate::app::AppState;
use crate::http::conditional::{evaluate, Precondition};
use crate::http::error::ApiError;
use crate::http::parse_uuid;
use crate::http::request::Req;
use crate::http::response::{self, etag_of};
use crate::service::images::{self as svc, ImportParams};
use crate::service::listing::{admin_fields_allowed, list_images};
use crate::service::{
    clone as clone_svc, load_image, resolve_channel, ChannelRule, Loaded, ServiceError,
};

fn image_response(img: &ImageRecord, opts: SerializeOptions) -> Response {
    response::image(api_object(img, opts))
}

/// The ETag preconditions of `/images/:uuid` routes are checked against:
/// the image for this request's version, without admin fields (§1.8).
pub fn current_etag(app: &AppState, req: &Req, img: &ImageRecord) -> String {
    etag_of(&api_object(img, req.serialize_options(app, false)))
}

/// ListImages (api.md §5.1). Answers are cached per query and caller until
/// the next write anywhere (see `service::list_cache`).
pub async fn list(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let generation = app
        .meta
        .generation()
        .await
        .map_err(ServiceError::meta("error reading the metadata generation"))?;
    let key = format!(
        "{}|{}|{}|{}|{}",
        req.url,
        req.account().unwrap_or(""),
        req.caller.is_authenticated(),
        req.version.v2,
        channel.as_deref().unwrap_or("*"),
    );
    if let Some(body) = app.list_cache.get(&key, generation) {
        return Ok(response::json_bytes(StatusCode::OK, body));
    }
    let (images, admin) = list_images(
        app,
        &req.query,
        req.account(),
        channel.as_deref(),
        req.caller.is_authenticated(),
    )
    .await?;
    let opts = req.serialize_options(app, admin);
    let body: Vec<Value> = images
        .iter()
        .map(|img| Value::Object(api_object(img, opts)))
        .collect();
    let bytes = bytes::Bytes::from(serde_json::to_vec_pretty(&body).unwrap_or_default());
    app.list_cache.put(key, generation, bytes.clone());
    Ok(response::json_bytes(StatusCode::OK, bytes))
}

/// GetImage (api.md §5.2).
pub async fn get(app: &AppState, req: Req, id: &str) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    let admin = admin_fields_allowed(
        app,
        req.query.get("inclAdminFields"),
        req.caller.is_authenticated(),
    )?;
    let img = &loaded.stored.image;
    let etag = current_etag(app, &req, img);
    if evaluate(&req.method, &req.headers, &etag, None)? == Precondition::NotModified {
        return Ok(response::empty(StatusCode::NOT_MODIFIED));
    }
    Ok(image_response(img, req.serialize_options(app, admin)))
}

/// CreateImage (api.md §5.3) and the `action` forms of `POST /images`.
pub async fn create(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    match req.query.get("action") {
        None => {}
        Some("create-from-vm") => {
            return Err(ServiceError::NotAvailable(
                "custom image creation is not currently available".into(),
            )
            .into())
        }
        Some("import-docker-image" | "import-lxd-image") => {
            if req.account().is_some() {
                return Err(ServiceError::OperatorOnly.into());
            }
            return Err(ServiceError::NotAvailable(
                "docker and LXD imports are not available on this server".into(),
            )
            .into());
        }
        Some(other) => return Err(invalid_action(other)),
    }
    let body = req.json_body().await?;
    let record = svc::create_image(app, body, req.account(), channel.as_deref()).await?;
    Ok(image_response(&record, req.serialize_options(app, false)))
}

fn invalid_action(action: &str) -> ApiError {
    ApiError::invalid_param(
        format!("\"{action}\" is not a valid action"),
        vec![FieldError::invalid("action")],
    )
}

/// `POST /images/:uuid?action=…`, in the handler order of api.md §2.1.
pub async fn action(app: &AppState, mut req: Req, id: &str) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let body = req.json_body().await?;
    let action = req.query.get("action").map(str::to_string);
    let account_given = req.account().is_some();
    match action.as_deref() {
        Some("import-remote") => return import_remote(app, &req, uuid).await,
        Some("import") if req.query.contains("source") => {
            if account_given {
                return Err(ServiceError::OperatorOnly.into());
            }
            crate::service::parse_bool_param(
                "skip_owner_check",
                req.query.get("skip_owner_check"),
            )?;
            return Err(ServiceError::NotAvailable(
                "importing from a source IMGAPI is not available yet; use action=import with the manifest".into(),
            )
            .into());
        }
        Some("import") => {
            let params = ImportParams {
                account_given,
                skip_owner_check: req.query.get("skip_owner_check"),
                user_agent: req.header(&http::header::USER_AGENT),
            };
            let record = svc::import_image(app, uuid, body, params, channel.as_deref()).await?;
            return Ok(image_response(&record, req.serialize_options(app, false)));
        }
        Some("import-from-datacenter") => return import_from_datacenter(app, &req),
        _ => {}
    }
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    if action.as_deref() == Some("change-stor") {
        return change_stor(app, &req, loaded).await;
    }
    loaded.ensure_owner()?;
    if action.as_deref() == Some("export") {
        return export(&req);
    }
    let etag = current_etag(app, &req, &loaded.stored.image);
    let conditional = req.headers.contains_key(http::header::IF_MATCH)
        || req.headers.contains_key(http::header::IF_NONE_MATCH);
    if evaluate(&req.method, &req.headers, &etag, None)? == Precondition::NotModified {
        return Ok(response::empty(StatusCode::NOT_MODIFIED));
    }
    let retry = !conditional;
    let operator = !account_given;
    let stored = loaded.stored;
    let record = match action.as_deref() {
        Some("activate") => svc::modify(app, stored, retry, svc::activated).await?,
        Some("disable") => {
            svc::modify(app, stored, retry, |img| Ok(svc::with_disabled(img, true))).await?
        }
        Some("enable") => {
            svc::modify(app, stored, retry, |img| Ok(svc::with_disabled(img, false))).await?
        }
        Some("channel-add") if app.channels_enabled() => {
            svc::modify(app, stored, retry, |img| {
                svc::with_channel_added(app, img, body.as_ref())
            })
            .await?
        }
        Some("update") => {
            // Validation errors first, then (dc mode) the new owner's existence.
            let preview = svc::updated(app, &stored.image, body.as_ref(), operator)?;
            if preview.owner != stored.image.owner {
                let owner = Value::String(preview.owner.to_string());
                svc::ensure_owner_exists(app, Some(&owner)).await?;
            }
            svc::modify(app, stored, retry, |img| {
                svc::updated(app, img, body.as_ref(), operator)
            })
            .await?
        }
        Some(other) => return Err(invalid_action(other)),
        None => {
            return Err(ApiError::invalid_param(
                "no image \"action\" was specified",
                vec![FieldError::missing("action")],
            ))
        }
    };
    Ok(image_response(&record, req.serialize_options(app, false)))
}

/// AdminImportRemoteImage (api.md §5.20): validation, then the job service.
async fn import_remote(app: &AppState, req: &Req, uuid: uuid::Uuid) -> Result<Response, ApiError> {
    if req.query.get_nonempty("source").is_none() {
        return Err(ApiError::validation(
            "missing source parameter",
            vec![FieldError::missing("source")],
        ));
    }
    if req.account().is_some() {
        return Err(ServiceError::OperatorOnly.into());
    }
    crate::service::parse_bool_param("skip_owner_check", req.query.get("skip_owner_check"))?;
    let exists = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?;
    if exists.is_some() {
        return Err(ServiceError::ImageUuidAlreadyExists(uuid).into());
    }
    Err(ServiceError::WorkflowUnavailable.into())
}

/// ImportFromDatacenter (api.md §5.21): parameter checks; no peer
/// datacenters are configured on this server.
fn import_from_datacenter(_app: &AppState, req: &Req) -> Result<Response, ApiError> {
    let account = req.account();
    if !account.is_some_and(imgapi_domain::validate::is_lower_uuid) {
        return Err(ApiError::validation(
            format!(
                "invalid image \"account\" (not a UUID): {}",
                account.unwrap_or("undefined")
            ),
            vec![FieldError::invalid("account")],
        ));
    }
    match req.query.get_nonempty("datacenter") {
        None => Err(ApiError::validation(
            "missing datacenter parameter",
            vec![FieldError::missing("datacenter")],
        )),
        Some(dc) => Err(ApiError::validation(
            format!("datacenter \"{dc}\" is not supported, valid datacenters names are: "),
            vec![FieldError::invalid("datacenter")],
        )),
    }
}

/// AdminChangeImageStor (api.md §5.22): move the file to another
/// configured store, verifying it, then point the record at the copy.
async fn change_stor(app: &AppState, req: &Req, loaded: Loaded) -> Result<Response, ApiError> {
    if loaded.account.is_some() {
        return Err(ServiceError::OperatorOnly.into());
    }
    let stor = req.query.get_nonempty("stor").ok_or_else(|| {
        ApiError::validation(
            "missing \"stor\" query parameter",
            vec![FieldError::missing("stor")],
        )
    })?;
    let record = crate::service::files::change_stor(app, loaded.stored, stor).await?;
    let opts = SerializeOptions {
        mode: app.config.mode,
        channels: true,
        admin_fields: true,
    };
    Ok(response::json(StatusCode::OK, &api_object(&record, opts)))
}

/// ExportImage (api.md §5.23): parameter checks; Manta is not configured.
fn export(req: &Req) -> Result<Response, ApiError> {
    let Some(path) = req.query.get_nonempty("manta_path") else {
        return Err(ApiError::validation(
            "missing 'manta_path' prefix parameter",
            vec![FieldError::missing("manta_path")],
        ));
    };
    let login = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    if login.is_empty() {
        return Err(ApiError::invalid_param(
            "invalid manta_path prefix, not a valid manta path",
            vec![FieldError::invalid("manta_path")],
        ));
    }
    Err(ServiceError::StorageUnsupported.into())
}

/// DeleteImage (api.md §5.14).
pub async fn delete(app: &AppState, req: Req, id: &str) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    svc::delete_image(
        app,
        loaded.stored,
        channel.as_deref(),
        req.query.get("force_all_channels"),
    )
    .await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// AddImageAcl / RemoveImageAcl (api.md §5.15–§5.16).
pub async fn acl(app: &AppState, mut req: Req, id: &str) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let body = req.json_body().await?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    let add = match req.query.get("action") {
        None | Some("add") => true,
        Some("remove") => false,
        Some(other) => return Err(invalid_action(other)),
    };
    let record = svc::modify(app, loaded.stored, true, |img| {
        svc::with_acl_change(img, body.as_ref(), add)
    })
    .await?;
    Ok(image_response(&record, req.serialize_options(app, false)))
}

/// CloneImage (api.md §5.17, dc mode only).
pub async fn clone(app: &AppState, req: Req, id: &str) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    let record = clone_svc::clone_image(app, loaded, req.account()).await?;
    Ok(image_response(&record, req.serialize_options(app, false)))
}

/// ListImageJobs (api.md §5.25): there is no job service on this server.
pub async fn jobs(app: &AppState, req: Req, id: &str) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    load_image(app, uuid, req.account(), channel.as_deref()).await?;
    Err(ApiError::new(
        RestCode::ServiceUnavailableError,
        "Workflow API is down.",
    ))
}
