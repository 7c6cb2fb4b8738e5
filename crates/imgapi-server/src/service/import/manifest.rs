//! Remote manifests: fetched, upgraded from DSAPI, and read.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::fetch::FetchError;
use super::source::Source;
use crate::app::AppState;

/// GET `<source>/images/<uuid>` (with `account`, when given), or for a
/// DSAPI source `<source>/<uuid>`: the remote manifest (v2: a DSAPI one is
/// upgraded), which must be about `uuid`.
pub(crate) async fn fetch_manifest(
    app: &AppState,
    src: &Source,
    uuid: Uuid,
    account: Option<Uuid>,
) -> Result<Map<String, Value>, FetchError> {
    let manifest = app
        .remote
        .get_object(src.image_url(uuid, account), src.trust)
        .await?;
    let manifest = if src.dsapi {
        dsapi_to_v2(manifest)
    } else {
        manifest
    };
    let got = manifest.get("uuid").and_then(Value::as_str);
    if got != Some(uuid.to_string().as_str()) {
        return Err(FetchError::Transport(format!(
            "the answer is the manifest of {}, not of {uuid}",
            got.unwrap_or("no image")
        )));
    }
    Ok(manifest)
}

/// A DSAPI (v1) manifest as the v2 manifest an import takes
/// (`imgapi_domain::upgrade_legacy`, manifest.md §10). The upgrade drops
/// `files[].url`; it is put back, as the only way to the file (an import
/// discards `files` anyway). A manifest the upgrade does not apply to is
/// returned as it came, for validation to judge.
pub(crate) fn dsapi_to_v2(manifest: Map<String, Value>) -> Map<String, Value> {
    let urls: Vec<Option<Value>> = manifest
        .get("files")
        .and_then(Value::as_array)
        .map(|files| files.iter().map(|f| f.get("url").cloned()).collect())
        .unwrap_or_default();
    let mut upgraded = imgapi_domain::upgrade_legacy(manifest);
    if let Some(files) = upgraded.get_mut("files").and_then(Value::as_array_mut) {
        for (file, url) in files.iter_mut().zip(urls) {
            if let (Some(obj), Some(url)) = (file.as_object_mut(), url) {
                obj.entry("url").or_insert(url);
            }
        }
    }
    upgraded
}

/// The remote manifest's `files[0]`.
#[derive(Debug, Clone)]
pub(crate) struct RemoteFile {
    pub sha1: String,
    pub size: u64,
    pub compression: String,
    pub dataset_guid: Option<String>,
    /// `files[0].url` (DSAPI manifests name their file's URL; used only
    /// for a DSAPI source).
    pub url: Option<String>,
}

pub(crate) fn remote_file(manifest: &Map<String, Value>) -> Option<RemoteFile> {
    let file = manifest.get("files")?.as_array()?.first()?.as_object()?;
    Some(RemoteFile {
        url: file.get("url").and_then(Value::as_str).map(str::to_string),
        sha1: file.get("sha1")?.as_str()?.to_string(),
        size: file.get("size")?.as_u64()?,
        compression: file
            .get("compression")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string(),
        dataset_guid: file
            .get("dataset_guid")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

pub(crate) fn manifest_str<'a>(manifest: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    manifest.get(key).and_then(Value::as_str)
}

pub(crate) fn manifest_origin(manifest: &Map<String, Value>) -> Option<Uuid> {
    manifest_str(manifest, "origin").and_then(|o| Uuid::parse_str(o).ok())
}
