//! AdminImportDockerImage (api.md §5.26): every non-empty layer of a
//! Docker or OCI image becomes an active `type: docker` image, base first.
//!
//! Layers are fetched concurrently (at most [`CONCURRENT_LAYERS`]) and
//! committed in chain order: a layer's record is written (unactivated,
//! with its verified file) as soon as its blob is in, and activated once
//! every layer below it is. A failure stops the transfers still running
//! and leaves the active prefix only: a layer that failed leaves nothing,
//! and complete layers above it are removed again (their origin does not
//! exist). A retry fetches only what is not active. After a crash, layers
//! left unactivated with their verified file are taken as they are
//! ("Download complete (cached)").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use imgapi_domain::{DomainError, ImageFile, ImageRecord};
use imgapi_meta::StoredImage;
use imgapi_types::FieldError;
use serde_json::{json, Map, Value};

use super::credentials::{self, Credentials};
use super::download::{download_layer, StoredBlob};
use super::events::Events;
use super::image::{
    choose_platform, layer_manifest, parse_document, plan_layers, Document, LayerPlan,
};
use super::reference::{parse_repo_and_ref, RepoRef};
use super::registry::{FetchedManifest, Session};
use super::registry_error;
use crate::app::AppState;
use crate::service::images::{activated, build_import_record, modify, ImportRecord};
use crate::service::{parse_bool_param, ServiceError};

/// Layers fetched at once.
pub const CONCURRENT_LAYERS: usize = 3;
/// Attempts at a layer whose transfer is cut short (as the original).
const DOWNLOAD_ATTEMPTS: u32 = 5;
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// What the request gives.
pub struct ImportDockerParams<'a> {
    pub account_given: bool,
    pub repo: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub public: Option<&'a str>,
    pub registry_auth: Option<&'a str>,
    pub registry_config: Option<&'a str>,
}

/// A validated import, ready to run.
pub struct DockerImport {
    pub repo: RepoRef,
    credentials: Option<Credentials>,
    public: bool,
    channel: Option<String>,
}

/// The checks made before the stream starts, in the original's order.
pub fn validate(
    params: ImportDockerParams<'_>,
    channel: Option<&str>,
) -> Result<DockerImport, ServiceError> {
    if params.account_given {
        return Err(ServiceError::OperatorOnly);
    }
    let tag = params.tag.filter(|t| !t.is_empty());
    let digest = params.digest.filter(|d| !d.is_empty());
    let mut errs = Vec::new();
    if params.repo.is_none() {
        errs.push(FieldError::new(
            "repo",
            imgapi_types::FieldCode::MissingParameter,
        ));
    }
    match (tag, digest) {
        (None, None) => errs.push(FieldError::with_message(
            "tag",
            imgapi_types::FieldCode::MissingParameter,
            "one of \"tag\" or \"digest\" is required",
        )),
        (Some(_), Some(_)) => errs.push(FieldError::with_message(
            "digest",
            imgapi_types::FieldCode::Invalid,
            "cannot specify both \"tag\" and \"digest\"",
        )),
        _ => {}
    }
    if !errs.is_empty() {
        return Err(ServiceError::validation("missing parameters", errs));
    }
    let repo_arg = params.repo.unwrap_or_default();
    let full = match (tag, digest) {
        (Some(t), _) => format!("{repo_arg}:{t}"),
        (None, Some(d)) => format!("{repo_arg}@{d}"),
        (None, None) => repo_arg.to_string(),
    };
    let repo = parse_repo_and_ref(&full)
        .map_err(|m| ServiceError::validation(m, vec![FieldError::invalid("repo")]))?;
    let credentials =
        credentials::from_headers(params.registry_auth, params.registry_config, Some(&repo))?;
    let public = parse_bool_param("public", params.public)?.unwrap_or(true);
    Ok(DockerImport {
        repo,
        credentials,
        public,
        channel: channel.map(str::to_string),
    })
}

/// The image manifest for the linux/amd64 platform: a list or index is
/// resolved to its entry.
async fn single_platform_manifest(
    session: &Session<'_>,
    repo: &RepoRef,
) -> Result<(FetchedManifest, Document), ServiceError> {
    let fetched = session
        .get_manifest(repo.reference())
        .await
        .map_err(registry_error)?;
    match parse_document(&fetched)? {
        Document::List(entries) => {
            let entry = choose_platform(&entries)?;
            let fetched = session
                .get_manifest(&entry.digest)
                .await
                .map_err(registry_error)?;
            match parse_document(&fetched)? {
                Document::List(_) => Err(ServiceError::NotImplemented(
                    "a manifest list entry is itself a list".into(),
                )),
                image => Ok((fetched, image)),
            }
        }
        image => Ok((fetched, image)),
    }
}

/// What became of one layer.
struct Layer {
    plan: LayerPlan,
    record: ImageRecord,
    /// Fetched (or found complete but unactivated) by this import.
    new: bool,
    /// Its record was created by this import (removed again if the import
    /// fails before it can be activated).
    inserted: bool,
}

/// Run the import, sending progress to `events`.
pub async fn run(
    app: &AppState,
    import: DockerImport,
    request_id: &str,
    events: &Events,
) -> Result<(), ServiceError> {
    let repo = &import.repo;
    let session = app
        .registry
        .session(repo, import.credentials.clone(), "pull", &[])
        .map_err(registry_error)?;
    let (fetched, document) = single_platform_manifest(&session, repo).await?;
    let Document::Image { config, layers } = document else {
        return Err(ServiceError::Internal("unexpected manifest list".into()));
    };
    events.status(json!({"status": format!(
        "{}: Pulling from {} (req {request_id})",
        repo.reference(),
        repo.local_name
    )}));
    let config_bytes = session
        .get_blob_bytes(&config.digest)
        .await
        .map_err(registry_error)?;
    let image_json: Value = serde_json::from_slice(&config_bytes).map_err(|e| {
        ServiceError::validation(
            format!(
                "invalid JSON for docker config, digest {}, err {e}",
                config.digest
            ),
            vec![],
        )
    })?;
    let plans = plan_layers(&image_json, &layers)?;
    if plans.is_empty() {
        return Err(ServiceError::validation(
            "the image has no layers",
            vec![FieldError::invalid("layers")],
        ));
    }
    for plan in &plans {
        events.status(
            json!({"id": plan.short_id(), "progressDetail": {}, "status": "Pulling fs layer"}),
        );
    }

    let cancelled = Arc::new(AtomicBool::new(false));
    let published_fallback = imgapi_domain::image::now_iso();
    let ctx = LayerContext {
        app,
        session: &session,
        import: &import,
        events,
        cancelled: Arc::clone(&cancelled),
        published_fallback: &published_fallback,
    };
    let mut results = futures_util::stream::iter(plans.iter().cloned())
        .map(|plan| ctx.bring(plan))
        .buffered(CONCURRENT_LAYERS);
    let mut committed: Vec<Layer> = Vec::with_capacity(plans.len());
    let mut failure = None;
    while let Some(result) = results.next().await {
        let outcome = match result {
            Ok(layer) if failure.is_none() => activate(app, layer, events).await,
            Ok(layer) => {
                discard_unactivated(app, layer).await;
                continue;
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(layer) => committed.push(layer),
            Err(e) => {
                cancelled.store(true, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }

    let size: u64 = committed
        .iter()
        .map(|l| l.record.files.first().map_or(0, |f| f.size))
        .sum();
    let head = committed.last().map(|l| l.record.uuid.to_string());
    let mut message = Map::new();
    message.insert("type".into(), json!("create-docker-image"));
    message.insert("config_digest".into(), json!(config.digest));
    message.insert("head".into(), json!(true));
    message.insert("image".into(), image_json);
    message.insert("image_uuid".into(), json!(head));
    message.insert("manifest_digest".into(), json!(fetched.digest));
    message.insert(
        "manifest_str".into(),
        json!(String::from_utf8_lossy(&fetched.bytes)),
    );
    message.insert("size".into(), json!(size));
    message.insert("dockerImageVersion".into(), json!("2.2"));
    events.send(message);
    events.status(json!({"status": format!("Digest: {}", fetched.digest)}));
    let status = if committed.iter().any(|l| l.new) {
        "Downloaded newer image for"
    } else {
        "Image is up to date for"
    };
    events.status(json!({"status": format!("Status: {status} {}", repo.local_with_reference())}));
    Ok(())
}

/// A layer above a failed one that this import created: it cannot be
/// activated, so it goes (record and file), leaving only the active prefix.
async fn discard_unactivated(app: &AppState, layer: Layer) {
    if !layer.inserted || layer.record.activated {
        return;
    }
    let uuid = layer.record.uuid;
    if let Err(e) = app.meta.delete(uuid).await {
        tracing::warn!(%uuid, error = %e, "could not remove a layer above a failed one");
        return;
    }
    for file in &layer.record.files {
        let (Some(key), Some(store)) = (&file.blob_key, app.blob_store(&file.stor)) else {
            continue;
        };
        if let Err(e) = store.delete(key).await {
            tracing::warn!(%uuid, key, error = %e, "could not delete the file of a removed layer");
        }
    }
}

/// Activate a layer whose layers below are all active.
async fn activate(app: &AppState, layer: Layer, events: &Events) -> Result<Layer, ServiceError> {
    if layer.record.activated {
        return Ok(layer);
    }
    let short = layer.plan.short_id().to_string();
    events.layer(&short, "Activating image");
    let uuid = layer.record.uuid;
    let stored = app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
        .ok_or_else(|| ServiceError::not_found(format!("image {uuid} not found")))?;
    let record = match modify(app, stored, true, activated).await {
        Ok(r) => r,
        // Another import of the same layer got there first.
        Err(ServiceError::Domain(DomainError::ImageAlreadyActivated(_))) => layer.record.clone(),
        Err(e) => return Err(e),
    };
    if layer.new {
        events.layer(&short, "Pull complete");
    }
    Ok(Layer { record, ..layer })
}

/// Whose record a layer ended up with.
enum Saved {
    /// `inserted`: a new record (else the file of an existing one).
    Ours { record: ImageRecord, inserted: bool },
    /// A concurrent import wrote it first.
    Theirs(ImageRecord),
}

/// What every layer's work needs.
struct LayerContext<'a> {
    app: &'a AppState,
    session: &'a Session<'a>,
    import: &'a DockerImport,
    events: &'a Events,
    cancelled: Arc<AtomicBool>,
    published_fallback: &'a str,
}

impl LayerContext<'_> {
    /// The layer's image as it stands, fetching its file when needed.
    async fn bring(&self, plan: LayerPlan) -> Result<Layer, ServiceError> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(ServiceError::Download("Download canceled".into()));
        }
        let uuid = plan.uuid();
        let existing = self
            .app
            .meta
            .get(uuid)
            .await
            .map_err(ServiceError::meta(format!("error loading image {uuid}")))?;
        let short = plan.short_id().to_string();
        match existing {
            Some(s) if s.image.activated => {
                self.events.layer(&short, "Already exists");
                return Ok(Layer {
                    plan,
                    record: s.image,
                    new: false,
                    inserted: false,
                });
            }
            Some(s) if has_layer_file(&s.image, &plan) => {
                self.events.layer(&short, "Download complete (cached)");
                return Ok(Layer {
                    plan,
                    record: s.image,
                    new: true,
                    inserted: false,
                });
            }
            _ => {}
        }
        let store = &self.app.blobs;
        let mut attempt = 1;
        let blob = loop {
            let tried = download_layer(
                self.session,
                store,
                &plan,
                self.events,
                Arc::clone(&self.cancelled),
            )
            .await;
            match tried {
                Ok(blob) => break blob,
                Err(f) if f.transient && attempt < DOWNLOAD_ATTEMPTS => {
                    tracing::info!(layer = plan.digest, attempt, error = %f.error, "retrying a layer download");
                    attempt += 1;
                    tokio::time::sleep(RETRY_PAUSE).await;
                    if self.cancelled.load(Ordering::Relaxed) {
                        return Err(f.error);
                    }
                }
                Err(f) => return Err(f.error),
            }
        };
        let file = layer_file(store.kind(), &plan, &blob);
        let saved = self.save(&plan, existing, file).await;
        let record = match saved {
            Ok(Saved::Ours { record, inserted }) => {
                return Ok(Layer {
                    plan,
                    record,
                    new: true,
                    inserted,
                })
            }
            Ok(Saved::Theirs(record)) => Ok(record),
            Err(e) => Err(e),
        };
        if let Err(del) = store.delete(&blob.key).await {
            tracing::warn!(key = blob.key, error = %del, "could not delete an unused layer");
        }
        record.map(|record| Layer {
            plan,
            record,
            new: false,
            inserted: false,
        })
    }

    /// Write the layer's record with its file: a new record, or the file
    /// of an unactivated one left by an earlier import.
    async fn save(
        &self,
        plan: &LayerPlan,
        existing: Option<StoredImage>,
        file: ImageFile,
    ) -> Result<Saved, ServiceError> {
        let app = self.app;
        if let Some(stored) = existing {
            let previous = stored.image.files.first().cloned();
            let record = modify(app, stored, true, |img| {
                if img.activated {
                    return Err(DomainError::ImageAlreadyActivated(img.uuid).into());
                }
                let mut new = img.clone();
                new.files = vec![file.clone()];
                Ok(new)
            })
            .await?;
            if let Some(old) = previous.and_then(|f| Some((f.blob_key?, f.stor))) {
                if let Some(store) = app.blob_store(&old.1) {
                    let _ = store.delete(&old.0).await;
                }
            }
            return Ok(Saved::Ours {
                record,
                inserted: false,
            });
        }
        let manifest = layer_manifest(
            plan,
            &self.import.repo,
            self.import.public,
            self.published_fallback,
        );
        let how = ImportRecord {
            skip_owner_check: None,
            user_agent: None,
            placeholder_ok: false,
            check_origin: false,
        };
        let mut record = build_import_record(
            app,
            plan.uuid(),
            manifest,
            how,
            self.import.channel.as_deref(),
        )
        .await?;
        record.files = vec![file];
        let reservation = crate::service::quotas::reserve_stored_record(app, &record).await?;
        let inserted = app.meta.insert(&record).await;
        crate::service::quotas::release(reservation).await;
        match inserted {
            Ok(_) => Ok(Saved::Ours {
                record,
                inserted: true,
            }),
            Err(imgapi_meta::MetaError::Conflict(_) | imgapi_meta::MetaError::AlreadyExists(_)) => {
                // A concurrent import of the same layer won: use its record.
                let winner = app
                    .meta
                    .get(record.uuid)
                    .await
                    .map_err(ServiceError::meta("error loading image"))?
                    .ok_or(ServiceError::ImageUuidAlreadyExists(record.uuid))?;
                Ok(Saved::Theirs(winner.image))
            }
            Err(e) => Err(ServiceError::meta(format!(
                "error saving image {}",
                record.uuid
            ))(e)),
        }
    }
}

fn has_layer_file(img: &ImageRecord, plan: &LayerPlan) -> bool {
    img.files.first().is_some_and(|f| {
        f.digest.as_deref() == Some(plan.digest.as_str())
            && f.uncompressed_digest.as_deref() == Some(plan.diff_id.as_str())
            && f.blob_key.is_some()
    })
}

fn layer_file(stor: &str, plan: &LayerPlan, blob: &StoredBlob) -> ImageFile {
    ImageFile {
        sha1: blob.outcome.sha1.clone(),
        size: blob.outcome.size,
        compression: blob.compression.name().to_string(),
        dataset_guid: None,
        content_md5: blob.outcome.md5_base64.clone(),
        sha256: Some(blob.outcome.sha256.clone()),
        mtime: imgapi_domain::image::now_iso(),
        stor: stor.to_string(),
        digest: Some(plan.digest.clone()),
        uncompressed_digest: Some(plan.diff_id.clone()),
        blob_key: Some(blob.key.clone()),
    }
}
