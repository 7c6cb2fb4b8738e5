//! AdminPushDockerImage (api.md §5.27): the layer chain of a docker image,
//! its config and a manifest, uploaded to a registry.
//!
//! With the body sdc-docker sends (`manifest_str`, `image`,
//! `config_digest`) the manifest and config are pushed as given. Without
//! `manifest_str` (an extension; what `imgadm docker-push` sends) they are
//! built from the stored layers: a Docker schema 2 manifest of the same
//! layer blobs, so the layer digests are those of the import.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use imgapi_domain::ImageRecord;
use imgapi_types::FieldError;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::credentials::{self, Credentials};
use super::events::Events;
use super::image::{build_push_documents, short_id, uuid_from_digests, StoredLayer};
use super::reference::{parse_repo_and_ref, RepoRef};
use super::registry::{media, sha256_digest, Session};
use super::registry_error;
use crate::app::AppState;
use crate::service::files::open_blob;
use crate::service::import::chain::MAX_ORIGIN_CHAIN;
use crate::service::ServiceError;

/// Layers uploaded at once (as the original).
const CONCURRENT_PUSHES: usize = 3;
/// A "Pushing" message at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// What the request gives.
pub struct PushParams<'a> {
    pub repo_and_tag: Option<&'a str>,
    pub registry_auth: Option<&'a str>,
    pub body: Option<Value>,
}

/// What is pushed: the manifest and config given, or those built.
enum Documents {
    Given {
        manifest: Bytes,
        media_type: String,
        layer_digests: Vec<String>,
        config: Option<(String, Bytes)>,
    },
    Built,
}

/// A validated push, ready to run.
pub struct DockerPush {
    image: ImageRecord,
    repo: RepoRef,
    credentials: Option<Credentials>,
    documents: Documents,
}

impl DockerPush {
    /// `repo:tag` pushed to.
    pub fn target(&self) -> String {
        self.repo.local_with_reference()
    }
}

/// The checks made before the stream starts, in the original's order
/// (the image is loaded and its ownership checked by the caller).
pub fn validate(image: ImageRecord, params: PushParams<'_>) -> Result<DockerPush, ServiceError> {
    if image.image_type != "docker" {
        return Err(ServiceError::validation(
            "image is not a docker image",
            vec![FieldError::invalid("type")],
        ));
    }
    let repo_arg = params.repo_and_tag.unwrap_or_default();
    let repo = parse_repo_and_ref(repo_arg)
        .map_err(|m| ServiceError::validation(m, vec![FieldError::invalid("repoAndTag")]))?;
    let body = params.body.unwrap_or(Value::Null);
    let documents = match body.get("manifest_str") {
        None | Some(Value::Null) => Documents::Built,
        Some(raw) => given_documents(raw, &body)?,
    };
    let credentials = credentials::from_headers(params.registry_auth, None, Some(&repo))?;
    Ok(DockerPush {
        image,
        repo,
        credentials,
        documents,
    })
}

fn given_documents(raw: &Value, body: &Value) -> Result<Documents, ServiceError> {
    let unparsable = || {
        ServiceError::validation(
            "JSON parse of manifest_str failed",
            vec![FieldError::invalid("manifest_str")],
        )
    };
    let text = raw.as_str().ok_or_else(unparsable)?;
    let manifest: Value = serde_json::from_str(text).map_err(|_| unparsable())?;
    let layer_digests: Vec<String> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(|layers| {
            layers
                .iter()
                .filter_map(|l| l.get("digest").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let config = match body.get("image") {
        Some(image) if !image.is_null() => {
            let bytes = serde_json::to_vec(image).unwrap_or_default();
            let digest = sha256_digest(&bytes);
            let expected = body
                .get("config_digest")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if digest != expected {
                return Err(ServiceError::invalid_parameter(
                    format!("image config digest does not match: {digest} != {expected}"),
                    vec![FieldError::invalid("digest")],
                ));
            }
            Some((digest, Bytes::from(bytes)))
        }
        _ => None,
    };
    Ok(Documents::Given {
        media_type: manifest
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(media::DOCKER_MANIFEST)
            .to_string(),
        manifest: Bytes::from(text.to_string()),
        layer_digests,
        config,
    })
}

/// One layer to push: its image and blob digest.
struct PushLayer {
    image: ImageRecord,
    digest: String,
}

/// The images of `top`'s chain, base first.
async fn chain_of(app: &AppState, top: &ImageRecord) -> Result<Vec<ImageRecord>, ServiceError> {
    let mut chain = vec![top.clone()];
    let mut next = top.origin;
    while let Some(uuid) = next {
        if chain.len() > MAX_ORIGIN_CHAIN || chain.iter().any(|i| i.uuid == uuid) {
            return Err(ServiceError::validation(
                format!("the origin chain of {} is too long or loops", top.uuid),
                vec![FieldError::invalid("origin")],
            ));
        }
        let image = load_active(app, uuid).await?;
        next = image.origin;
        chain.push(image);
    }
    chain.reverse();
    Ok(chain)
}

async fn load_active(app: &AppState, uuid: Uuid) -> Result<ImageRecord, ServiceError> {
    match app
        .meta
        .get(uuid)
        .await
        .map_err(ServiceError::meta(format!("error loading image {uuid}")))?
    {
        Some(s) if s.image.activated => Ok(s.image),
        _ => Err(ServiceError::not_found(format!("{uuid} not found"))),
    }
}

fn stored_layer(image: &ImageRecord) -> Result<StoredLayer, ServiceError> {
    let file = image.files.first();
    let digest = file.and_then(|f| f.digest.clone());
    let uncompressed = file.and_then(|f| f.uncompressed_digest.clone());
    let (Some(file), Some(digest), Some(uncompressed_digest)) = (file, digest, uncompressed) else {
        return Err(ServiceError::validation(
            format!(
                "image {} has no docker layer digests (it was not imported from a registry)",
                image.uuid
            ),
            vec![FieldError::invalid("files")],
        ));
    };
    Ok(StoredLayer {
        digest,
        uncompressed_digest,
        size: file.size,
        compression: file.compression.clone(),
        published_at: image.published_at.clone(),
        description: image.description.clone(),
    })
}

/// Run the push, sending progress to `events`.
pub async fn run(app: &AppState, push: DockerPush, events: &Events) -> Result<(), ServiceError> {
    let tag = push.repo.reference().to_string();
    let (layers, config, manifest, media_type) = match push.documents {
        Documents::Given {
            manifest,
            media_type,
            layer_digests,
            config,
        } => {
            let mut layers = Vec::with_capacity(layer_digests.len());
            for (i, digest) in layer_digests.iter().enumerate() {
                let uuid = uuid_from_digests(&layer_digests[..=i]);
                layers.push(PushLayer {
                    image: load_active(app, uuid).await?,
                    digest: digest.clone(),
                });
            }
            (layers, config, manifest, media_type)
        }
        Documents::Built => {
            let chain = chain_of(app, &push.image).await?;
            let stored = chain
                .iter()
                .map(stored_layer)
                .collect::<Result<Vec<_>, _>>()?;
            let top_tags = push.image.tags.clone().map(Value::Object);
            let (config, manifest) = build_push_documents(&stored, top_tags.as_ref());
            let layers = chain
                .into_iter()
                .zip(stored)
                .map(|(image, s)| PushLayer {
                    image,
                    digest: s.digest,
                })
                .collect();
            (
                layers,
                Some((sha256_digest(&config), Bytes::from(config))),
                Bytes::from(manifest),
                media::DOCKER_MANIFEST.to_string(),
            )
        }
    };
    let mount_from: Vec<String> = layers
        .iter()
        .filter_map(|l| same_registry_source(&l.image, &push.repo))
        .collect();
    let session = app
        .registry
        .session(
            &push.repo,
            push.credentials.clone(),
            "pull,push",
            &mount_from,
        )
        .map_err(registry_error)?;
    let results: Vec<Result<(), ServiceError>> = futures_util::stream::iter(layers)
        .map(|layer| push_layer(app, &session, layer, &push.repo, events))
        .buffer_unordered(CONCURRENT_PUSHES)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    if let Some((digest, bytes)) = config {
        session
            .upload_bytes(&digest, bytes)
            .await
            .map_err(registry_error)?;
    }
    let size = manifest.len();
    let digest = session
        .put_manifest(&tag, &media_type, manifest)
        .await
        .map_err(registry_error)?;
    events.progress(json!({"status": format!("{tag}: digest: {digest} size: {size}")}));
    events.progress(
        json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": size}}),
    );
    Ok(())
}

/// The repository a layer was imported from, when it is on the registry
/// pushed to (a cross-repository mount source).
fn same_registry_source(image: &ImageRecord, target: &RepoRef) -> Option<String> {
    let local = image.tags.as_ref()?.get("docker:repo")?.as_str()?;
    let source = parse_repo_and_ref(local).ok()?;
    (source.index == target.index && source.remote_name != target.remote_name)
        .then_some(source.remote_name)
}

async fn push_layer(
    app: &AppState,
    session: &Session<'_>,
    layer: PushLayer,
    target: &RepoRef,
    events: &Events,
) -> Result<(), ServiceError> {
    let short = short_id(&layer.digest).to_string();
    let status = |s: &str, detail: Value| {
        events.progress(json!({"id": short, "progressDetail": detail, "status": s}));
    };
    status("Preparing", json!({}));
    let result = async {
        if session
            .has_blob(&layer.digest)
            .await
            .map_err(registry_error)?
        {
            status("Layer already exists", json!({}));
            return Ok(());
        }
        let file = layer.image.files.first().ok_or_else(|| {
            ServiceError::not_found(format!("image \"{}\" has no file", layer.image.uuid))
        })?;
        let stored = (file.stor.as_str(), file.blob_key.as_deref());
        let read = open_blob(app, layer.image.uuid, stored, None, "file").await?;
        let total = file.size;
        let sent = Arc::new(Mutex::new((0u64, Instant::now())));
        let progress_sent = Arc::clone(&sent);
        let progress_events = events.clone();
        let progress_id = short.clone();
        let body = read.stream.and_then(move |chunk| {
            let sent = Arc::clone(&progress_sent);
            let events = progress_events.clone();
            let id = progress_id.clone();
            async move {
                let mut guard = sent.lock().await;
                guard.0 += chunk.len() as u64;
                if guard.1.elapsed() >= PROGRESS_INTERVAL {
                    guard.1 = Instant::now();
                    events.progress(json!({
                        "id": id,
                        "progressDetail": {"current": guard.0, "total": total},
                        "status": "Pushing",
                    }));
                }
                Ok(chunk)
            }
        });
        let mount = same_registry_source(&layer.image, target);
        let mounted = session
            .upload_blob(&layer.digest, total, Box::pin(body), mount.as_deref())
            .await
            .map_err(registry_error)?;
        match mount.filter(|_| mounted) {
            Some(from) => status(&format!("Mounted from {from}"), json!({})),
            None => status("Pushed", json!({})),
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        status("Image push failed", json!({}));
    }
    result
}
