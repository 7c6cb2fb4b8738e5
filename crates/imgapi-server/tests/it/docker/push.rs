//! AdminPushDockerImage to a real registry, read back with skopeo.

use serde_json::{json, Value};
use test_registry::fixture::sha256_digest;
use test_registry::skopeo::{self, PushOptions};
use test_registry::{tools_installed, RegistryKind};

use super::expect::*;
use super::setup::*;
use super::stream::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_chain_round_trips_with_identical_digests() {
    if !tools_installed() {
        return;
    }
    let (_registry, server, repo, image) =
        set_up(RegistryKind::Open, "fix/source", &PushOptions::oci()).await;
    import_tag(&server, &repo, None).await.assert_ok();

    let target = format!("{}/other", repo.split('/').next().unwrap());
    let repo_and_tag = format!("{target}:pushed");
    let resp = server
        .post(&push_path(&top_uuid(&image), &repo_and_tag))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let push = Stream::read(resp).await;
    push.assert_ok();
    for layer in &image.layers {
        let statuses = push.layer_statuses(&short_id(&layer.digest));
        assert!(
            is_subsequence(&["Preparing", "Pushed"], &statuses),
            "{statuses:?}"
        );
    }
    let aux = push
        .messages
        .iter()
        .find_map(|m| m["payload"].get("aux"))
        .unwrap_or_else(|| panic!("no aux: {:#?}", push.messages));
    assert_eq!(aux["Tag"], "pushed");

    let raw = skopeo::inspect_raw(&repo_and_tag, None).await.unwrap();
    assert_eq!(aux["Digest"], sha256_digest(raw.as_bytes()));
    assert_eq!(aux["Size"], raw.len());
    let manifest: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let pushed: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(pushed, image.layer_digests());
    let out = tempfile::tempdir().unwrap();
    skopeo::copy_to_dir(&repo_and_tag, &out.path().join("copy"), None)
        .await
        .unwrap();
}
