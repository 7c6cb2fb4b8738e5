//! The imports that run as a job: AdminImportRemoteImage (api.md §5.20)
//! and ImportFromDatacenter (§5.21), validated here in the spec's order
//! before their job ([`super::jobs`]) is queued.

use imgapi_domain::validate::is_lower_uuid;
use imgapi_domain::{ImageRecord, ImageState};
use imgapi_meta::StoredImage;
use imgapi_types::FieldError;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::chain::{self, Origin, WalkError};
use super::error::ImportError;
use super::fetch::Trust;
use super::from_source::checked_source;
use super::jobs::{self, ImportJob, StartedJob};
use super::manifest::{fetch_manifest, manifest_origin, manifest_str, remote_file};
use super::source::Source;
use crate::app::AppState;
use crate::service::{parse_bool_param, ServiceError};

// ---------------------------------------------------------------------------
// AdminImportRemoteImage (§5.20)

/// Query inputs of AdminImportRemoteImage.
pub struct RemoteImportParams<'a> {
    pub source: Option<&'a str>,
    pub account_given: bool,
    pub skip_owner_check: Option<&'a str>,
    /// The local channel the images go to.
    pub channel: Option<&'a str>,
}

/// AdminImportRemoteImage (api.md §5.20): validation in the spec's order,
/// then an import job. An image that is already here, active, with the
/// source's `files[0].sha1` is not an error (unlike the original's 409):
/// the answer is a job that has already succeeded.
pub async fn import_remote(
    app: &AppState,
    uuid: Uuid,
    params: RemoteImportParams<'_>,
) -> Result<StartedJob, ServiceError> {
    let Some(source) = params.source.filter(|s| !s.is_empty()) else {
        return Err(ServiceError::validation(
            "missing source parameter",
            vec![FieldError::missing("source")],
        ));
    };
    if params.account_given {
        return Err(ServiceError::OperatorOnly);
    }
    let skip_owner_check = parse_bool_param("skip_owner_check", params.skip_owner_check)?;
    let src = checked_source(app, source, "source").await?;
    let job = ImportJob {
        image_uuid: uuid,
        source: src.as_str().to_string(),
        origins: Vec::new(),
        skip_owner_check: skip_owner_check.unwrap_or(false),
        channel: params.channel.map(str::to_string),
        account: None,
        datacenter: None,
    };
    if let Some(local) = load(app, uuid).await? {
        if already_present(app, &src, &local.image).await {
            return jobs::record_already_present(app, job).await;
        }
        return Err(ServiceError::ImageUuidAlreadyExists(uuid));
    }
    let manifest = fetch_manifest(app, &src, uuid, None)
        .await
        .map_err(|source| ImportError::Manifest { uuid, source })?;
    let origins = missing_origins(app, &src, &manifest).await?;
    jobs::create_import_job(app, ImportJob { origins, ..job }).await
}

async fn load(app: &AppState, uuid: Uuid) -> Result<Option<StoredImage>, ServiceError> {
    app.meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))
}

/// The local image is active and has the same file as the source's.
async fn already_present(app: &AppState, src: &Source, local: &ImageRecord) -> bool {
    let Some(local_sha1) = local.files.first().map(|f| f.sha1.as_str()) else {
        return false;
    };
    if local.state != ImageState::Active {
        return false;
    }
    match fetch_manifest(app, src, local.uuid, None).await {
        Ok(m) => remote_file(&m).is_some_and(|r| r.sha1 == local_sha1),
        Err(_) => false,
    }
}

/// §5.20 step 6: the origins to import, base first. A local origin ends
/// the walk and must be active; a remote one must be active too.
async fn missing_origins(
    app: &AppState,
    src: &Source,
    manifest: &Map<String, Value>,
) -> Result<Vec<Uuid>, ServiceError> {
    let origins = chain::missing_origins(manifest_origin(manifest), &[], |origin| async move {
        if let Some(local) = load(app, origin).await? {
            if local.image.state != ImageState::Active {
                return Err(ServiceError::OriginIsNotActive(origin));
            }
            return Ok(Origin::Present);
        }
        let remote = fetch_manifest(app, src, origin, None)
            .await
            .map_err(|source| ImportError::OriginManifest {
                uuid: origin,
                source,
            })?;
        if manifest_str(&remote, "state") != Some("active") {
            return Err(ServiceError::OriginIsNotActive(origin));
        }
        let next = manifest_origin(&remote);
        Ok(Origin::Missing { item: (), next })
    })
    .await
    .map_err(|e| walk_failed(manifest, e))?;
    Ok(origins.into_iter().map(|(origin, ())| origin).collect())
}

/// A failed walk down the origin chain of `manifest`'s image.
fn walk_failed(manifest: &Map<String, Value>, e: WalkError<ServiceError>) -> ServiceError {
    match e {
        WalkError::TooLongOrLoops => ImportError::OriginChain {
            image: manifest_str(manifest, "uuid")
                .unwrap_or_default()
                .to_string(),
        }
        .into(),
        WalkError::Visit(e) => e,
    }
}

// ---------------------------------------------------------------------------
// ImportFromDatacenter (§5.21)

/// ImportFromDatacenter (api.md §5.21): every check in the spec's order,
/// then the import job (owner check on), from the configured IMGAPI URL
/// of `datacenter`.
pub async fn import_from_datacenter(
    app: &AppState,
    uuid: Uuid,
    account: Option<&str>,
    datacenter: Option<&str>,
    channel: Option<&str>,
) -> Result<StartedJob, ServiceError> {
    let parsed = account
        .filter(|a| is_lower_uuid(a))
        .and_then(|a| Uuid::parse_str(a).ok());
    let Some(account) = parsed else {
        return Err(ServiceError::validation(
            format!(
                "invalid image \"account\" (not a UUID): {}",
                account.unwrap_or("undefined")
            ),
            vec![FieldError::invalid("account")],
        ));
    };
    let Some(dc) = datacenter.filter(|d| !d.is_empty()) else {
        return Err(ServiceError::validation(
            "missing datacenter parameter",
            vec![FieldError::missing("datacenter")],
        ));
    };
    let this_dc = app.config.datacenter_name.as_deref();
    let names = app
        .config
        .datacenters
        .keys()
        .filter(|n| Some(n.as_str()) != this_dc)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let Some(url) = app.config.datacenters.get(dc) else {
        return Err(ServiceError::validation(
            format!("datacenter \"{dc}\" is not supported, valid datacenters names are: {names}"),
            vec![FieldError::invalid("datacenter")],
        ));
    };
    if Some(dc) == this_dc {
        return Err(ServiceError::validation(
            format!("cannot import into the same datacenter, valid datacenters names are: {names}"),
            vec![FieldError::invalid("datacenter")],
        ));
    }
    let src = Source::parse(url, Trust::Trusted).map_err(|source| ImportError::DatacenterUrl {
        datacenter: dc.to_string(),
        source,
    })?;
    let manifest = fetch_manifest(app, &src, uuid, Some(account))
        .await
        .map_err(|e| ImportError::passed_on(uuid, e))?;
    if manifest_str(&manifest, "state") != Some("active") {
        return Err(ServiceError::validation(
            format!("Cannot import image {uuid} - image is not active."),
            vec![],
        ));
    }
    if manifest_str(&manifest, "owner") != Some(account.to_string().as_str()) {
        return Err(ServiceError::Unauthorized(format!(
            "Cannot import image {uuid} - you are not the owner."
        )));
    }
    if load(app, uuid).await?.is_some() {
        return Err(ServiceError::ImageUuidAlreadyExists(uuid));
    }
    let origins = own_origins(app, &src, &manifest, account).await?;
    let job = ImportJob {
        image_uuid: uuid,
        source: src.as_str().to_string(),
        origins,
        skip_owner_check: false,
        channel: channel.map(str::to_string),
        account: Some(account),
        datacenter: Some(dc.to_string()),
    };
    jobs::create_import_job(app, job).await
}

/// §5.21 step 7: the account's own origins missing here, base first; an
/// origin owned by someone else must already be here.
async fn own_origins(
    app: &AppState,
    src: &Source,
    manifest: &Map<String, Value>,
    account: Uuid,
) -> Result<Vec<Uuid>, ServiceError> {
    let origins = chain::missing_origins(manifest_origin(manifest), &[], |origin| async move {
        if load(app, origin).await?.is_some() {
            return Ok(Origin::Present);
        }
        let remote = fetch_manifest(app, src, origin, Some(account))
            .await
            .map_err(|e| ImportError::passed_on(origin, e))?;
        if manifest_str(&remote, "owner") != Some(account.to_string().as_str()) {
            return Err(ImportError::ForeignOriginMissing(origin).into());
        }
        let next = manifest_origin(&remote);
        Ok(Origin::Missing { item: (), next })
    })
    .await
    .map_err(|e| walk_failed(manifest, e))?;
    Ok(origins.into_iter().map(|(origin, ())| origin).collect())
}
