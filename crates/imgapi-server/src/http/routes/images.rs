//! Image resource handlers (api.md §5.1–§5.3, §5.11–§5.25).

use axum::response::Response;
use http::StatusCode;
use imgapi_domain::serialize::{api_object, SerializeOptions};
use imgapi_domain::ImageRecord;
use imgapi_meta::StoredImage;
use imgapi_types::FieldError;
use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::http::conditional::{evaluate, Precondition};
use crate::http::error::ApiError;
use crate::http::parse_uuid;
use crate::http::request::Req;
use crate::http::response::{self, etag_of};
use crate::service::images::{self as svc, ImportParams};
use crate::service::import::jobs::StartedJob;
use crate::service::import::{self as import_svc, RemoteImportParams};
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
    let valid_until = crate::service::lifecycle::listing_valid_until(app).await?;
    let (images, admin) = list_images(
        app,
        &req.query.list_query(),
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
    app.list_cache
        .put(key, generation, valid_until, bytes.clone());
    Ok(response::json_bytes(StatusCode::OK, bytes))
}

/// GetImage (api.md §5.2).
pub async fn get(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
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
        Some("import-docker-image") => {
            return super::docker::import(&req, channel.as_deref()).await
        }
        Some("import-lxd-image") => return super::lxd::import(&req, channel.as_deref()).await,
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

/// `POST /images/:uuid?action=…`, in the handler order of api.md §2.1:
/// the imports create the image, every other action needs it to exist.
pub async fn action(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let uuid = parse_uuid(&req, &req.arg(0))?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let body = req.json_body().await?;
    let channel = channel.as_deref();
    match req.query.get("action") {
        Some("import-remote") => import_remote(app, &req, uuid, channel).await,
        Some("import") if req.query.contains("source") => {
            import_from_source(app, &req, uuid, channel).await
        }
        Some("import") => import(app, &req, uuid, body, channel).await,
        Some("import-from-datacenter") => import_from_datacenter(app, &req, uuid, channel).await,
        _ => change_image(app, &req, uuid, body, channel).await,
    }
}

/// AdminImportRemoteImage (api.md §5.20): a job.
async fn import_remote(
    app: &AppState,
    req: &Req,
    uuid: Uuid,
    channel: Option<&str>,
) -> Result<Response, ApiError> {
    let params = RemoteImportParams {
        source: req.query.get("source"),
        account_given: req.account().is_some(),
        skip_owner_check: req.query.get("skip_owner_check"),
        channel,
    };
    let started = import_svc::import_remote(app, uuid, params).await?;
    Ok(job_response(app, req, started))
}

/// AdminImportImageFromSource (api.md §5.19).
async fn import_from_source(
    app: &AppState,
    req: &Req,
    uuid: Uuid,
    channel: Option<&str>,
) -> Result<Response, ApiError> {
    let params = import_params(req);
    let source = req.query.get("source").unwrap_or_default();
    let record = import_svc::import_from_source(app, uuid, source, params, channel).await?;
    // Serialised as for Accept-Version `*` (api.md §5.19).
    let opts = SerializeOptions {
        channels: true,
        ..req.serialize_options(app, false)
    };
    Ok(image_response(&record, opts))
}

/// What AdminImportImage and AdminImportImageFromSource read of the request
/// besides the manifest.
fn import_params(req: &Req) -> ImportParams<'_> {
    ImportParams {
        account_given: req.account().is_some(),
        skip_owner_check: req.query.get("skip_owner_check"),
        user_agent: req.header(&http::header::USER_AGENT),
    }
}

/// AdminImportImage (api.md §5.18).
async fn import(
    app: &AppState,
    req: &Req,
    uuid: Uuid,
    body: Option<Value>,
    channel: Option<&str>,
) -> Result<Response, ApiError> {
    let params = import_params(req);
    let record = svc::import_image(app, uuid, body, params, channel).await?;
    Ok(image_response(&record, req.serialize_options(app, false)))
}

/// ImportFromDatacenter (api.md §5.21): a job.
async fn import_from_datacenter(
    app: &AppState,
    req: &Req,
    uuid: Uuid,
    channel: Option<&str>,
) -> Result<Response, ApiError> {
    let datacenter = req.query.get("datacenter");
    let started =
        import_svc::import_from_datacenter(app, uuid, req.account(), datacenter, channel).await?;
    Ok(job_response(app, req, started))
}

/// The actions on an existing image: change-stor (operators), export,
/// then the changes of the record, under the ETag preconditions.
async fn change_image(
    app: &AppState,
    req: &Req,
    uuid: Uuid,
    body: Option<Value>,
    channel: Option<&str>,
) -> Result<Response, ApiError> {
    let action = req.query.get("action");
    let loaded = load_image(app, uuid, req.account(), channel).await?;
    if action == Some("change-stor") {
        return change_stor(app, req, loaded).await;
    }
    loaded.ensure_owner()?;
    if action == Some("export") {
        return export(app, req, &loaded).await;
    }
    let etag = current_etag(app, req, &loaded.stored.image);
    let conditional = req.headers.contains_key(http::header::IF_MATCH)
        || req.headers.contains_key(http::header::IF_NONE_MATCH);
    if evaluate(&req.method, &req.headers, &etag, None)? == Precondition::NotModified {
        return Ok(response::empty(StatusCode::NOT_MODIFIED));
    }
    let change = RecordChange {
        retry: !conditional,
        operator: req.account().is_none(),
        body: body.as_ref(),
    };
    let record = change.apply(app, loaded.stored, action).await?;
    Ok(image_response(&record, req.serialize_options(app, false)))
}

/// One change of an image record: ActivateImage, DisableImage, EnableImage,
/// ChannelAddImage, UpdateImage.
struct RecordChange<'a> {
    /// Re-apply after losing a race (not when the client sent a
    /// precondition: its answer must refer to the version it saw).
    retry: bool,
    operator: bool,
    body: Option<&'a Value>,
}

impl RecordChange<'_> {
    async fn apply(
        &self,
        app: &AppState,
        stored: StoredImage,
        action: Option<&str>,
    ) -> Result<ImageRecord, ApiError> {
        let (retry, body, operator) = (self.retry, self.body, self.operator);
        Ok(match action {
            Some("activate") => {
                crate::service::signatures::ensure_signed_for_activation(app, &stored.image)
                    .await?;
                svc::modify(app, stored, retry, svc::activated).await?
            }
            Some("disable") => {
                svc::modify(app, stored, retry, |img| Ok(svc::with_disabled(img, true))).await?
            }
            Some("enable") => {
                svc::modify(app, stored, retry, |img| Ok(svc::with_disabled(img, false))).await?
            }
            Some("channel-add") if app.channels_enabled() => {
                svc::modify(app, stored, retry, |img| {
                    svc::with_channel_added(app, img, body)
                })
                .await?
            }
            Some("update") => svc::update_image(app, stored, body, operator, retry).await?,
            Some(other) => return Err(invalid_action(other)),
            None => {
                return Err(ApiError::invalid_param(
                    "no image \"action\" was specified",
                    vec![FieldError::missing("action")],
                ))
            }
        })
    }
}

/// `{"image_uuid", "job_uuid"}` of a started import job (api.md §5.20,
/// §5.21), with `workflow-api`: the original names its workflow API there,
/// whose `GET /jobs/:uuid` clients poll (sdc-clients'
/// `adminImportRemoteImageAndWait`). Jobs run in this server, which
/// answers `GET /jobs/:uuid` itself: the header is this server's URL as
/// the client reached it (`in-process` when the request has no usable
/// `Host`).
fn job_response(app: &AppState, req: &Req, started: StartedJob) -> Response {
    let body = serde_json::json!({
        "image_uuid": started.image_uuid.to_string(),
        "job_uuid": started.job_uuid.to_string(),
    });
    let mut resp = response::json(StatusCode::OK, &body);
    let url = req
        .external_base_url(app.config.tls_cert.is_some())
        .unwrap_or_else(|| "in-process".into());
    if let Ok(v) = http::HeaderValue::from_str(&url) {
        resp.headers_mut()
            .insert(http::HeaderName::from_static("workflow-api"), v);
    }
    resp
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

/// ExportImage (api.md §5.23): the manifest (for this request's version)
/// and file to the `[export]` location; see `service::export`.
async fn export(app: &AppState, req: &Req, loaded: &Loaded) -> Result<Response, ApiError> {
    let img = &loaded.stored.image;
    let manifest = api_object(img, req.serialize_options(app, false));
    let exported = crate::service::export::export_image(
        app,
        img,
        req.query.get("manta_path"),
        loaded.account,
        &manifest,
    )
    .await?;
    Ok(response::json(StatusCode::OK, &exported))
}

/// DeleteImage (api.md §5.14).
pub async fn delete(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    loaded.ensure_owner()?;
    let by = Some(req.account().unwrap_or("operator").to_string());
    svc::delete_image(
        app,
        loaded.stored,
        channel.as_deref(),
        req.query.get("force_all_channels"),
        svc::Removal::Requested { by },
    )
    .await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

/// AddImageAcl / RemoveImageAcl (api.md §5.15–§5.16).
pub async fn acl(app: &AppState, mut req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
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
pub async fn clone(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::Channel)?;
    let loaded = load_image(app, uuid, req.account(), channel.as_deref()).await?;
    let record = clone_svc::clone_image(app, loaded, req.account()).await?;
    Ok(image_response(&record, req.serialize_options(app, false)))
}

/// `GET /jobs/:uuid`: one job (what the `workflow-api` header points
/// clients to). No authentication, as ListImageJobs: job uuids are random.
pub async fn job(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let job = crate::service::import::jobs::get_job(app, uuid).await?;
    Ok(response::json(StatusCode::OK, &job))
}

/// ListImageJobs (api.md §5.25).
pub async fn jobs(app: &AppState, req: Req) -> Result<Response, ApiError> {
    let id = &req.arg(0);
    let uuid = parse_uuid(&req, id)?;
    let channel = resolve_channel(app, req.query.get("channel"), ChannelRule::ChannelOrStar)?;
    let jobs = crate::service::import::jobs::list_image_jobs(
        app,
        uuid,
        req.account(),
        channel.as_deref(),
        req.query.get_nonempty("task"),
        req.query.get_nonempty("execution"),
    )
    .await?;
    Ok(response::json(StatusCode::OK, &jobs))
}
