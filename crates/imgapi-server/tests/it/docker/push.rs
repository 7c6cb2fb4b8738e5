//! AdminPushDockerImage to real registries, read back with skopeo: an
//! upload to another registry, a cross-repository mount, a re-push.

use serde_json::{json, Value};
use test_registry::fixture::{sha256_digest, FixtureImage};
use test_registry::skopeo::{self, PushOptions};
use test_registry::{tools_installed, Registry, RegistryKind};

use crate::support::*;

use super::expect::*;
use super::setup::*;
use super::stream::*;

/// `POST /images/<top layer>/push?repoAndTag=…` with the body imgadm sends.
async fn push(server: &TestServer, image: &FixtureImage, repo_and_tag: &str) -> Stream {
    let resp = server
        .post(&push_path(&top_uuid(image), repo_and_tag))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let stream = Stream::read(resp).await;
    stream.assert_ok();
    stream
}

/// Every layer went through `Preparing` then `outcome`.
fn assert_layers_ended_with(stream: &Stream, image: &FixtureImage, outcome: &str) {
    for layer in &image.layers {
        let statuses = stream.layer_statuses(&short_id(&layer.digest));
        assert!(
            is_subsequence(&["Preparing", outcome], &statuses),
            "{statuses:?}"
        );
    }
}

/// The registry holds a Docker schema 2 manifest with the imported layer
/// digests, the one the stream's `aux` names; skopeo copies it out whole.
async fn assert_round_trip(stream: &Stream, image: &FixtureImage, repo_and_tag: &str) {
    let aux = stream
        .messages
        .iter()
        .find_map(|m| m["payload"].get("aux"))
        .unwrap_or_else(|| panic!("no aux: {:#?}", stream.messages));
    let tag = repo_and_tag.rsplit_once(':').unwrap().1;
    assert_eq!(aux["Tag"], tag);

    let raw = skopeo::inspect_raw(repo_and_tag, None).await.unwrap();
    let digest = sha256_digest(raw.as_bytes());
    assert_eq!(aux["Digest"], digest.as_str());
    assert_eq!(aux["Size"], raw.len());
    let summary = format!("{tag}: digest: {digest} size: {}", raw.len());
    assert!(
        stream
            .messages
            .iter()
            .any(|m| m["payload"]["status"] == summary.as_str()),
        "no {summary:?}"
    );
    // Every line ends with the request's id.
    let request_id = &stream.messages[0]["id"];
    assert!(request_id.is_string());
    stream.assert_id_last_everywhere(request_id);
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(manifest_layer_digests(&manifest), image.layer_digests());
    let out = tempfile::tempdir().unwrap();
    skopeo::copy_to_dir(repo_and_tag, &out.path().join("copy"), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_another_registry_uploads_every_layer_with_identical_digests() {
    if !tools_installed() {
        return;
    }
    let source = Registry::start(RegistryKind::Open).await.unwrap();
    let target = Registry::start(RegistryKind::Open).await.unwrap();
    let (repo, image) = push_image(
        &source,
        "fix/source",
        &image_spec("amd64", 1),
        &PushOptions::oci(),
    )
    .await;
    let server = server_for(&[source.host_port(), target.host_port()]).await;
    import_tag(&server, &repo, None).await.assert_ok();

    let repo_and_tag = format!("{}/fix/copy:pushed", target.host_port());
    let first = push(&server, &image, &repo_and_tag).await;
    assert_layers_ended_with(&first, &image, "Pushed");
    assert_round_trip(&first, &image, &repo_and_tag).await;

    let again = push(&server, &image, &repo_and_tag).await;
    assert_layers_ended_with(&again, &image, "Layer already exists");
    assert_round_trip(&again, &image, &repo_and_tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_the_source_registry_mounts_the_layers() {
    if !tools_installed() {
        return;
    }
    let (registry, server, repo, image) =
        set_up(RegistryKind::Open, "fix/source", &PushOptions::oci()).await;
    import_tag(&server, &repo, None).await.assert_ok();

    let repo_and_tag = format!("{}/other:pushed", registry.host_port());
    let stream = push(&server, &image, &repo_and_tag).await;
    assert_layers_ended_with(&stream, &image, "Mounted from fix/source");
    assert_round_trip(&stream, &image, &repo_and_tag).await;
}
