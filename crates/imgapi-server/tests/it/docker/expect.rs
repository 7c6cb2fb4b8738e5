//! Expectations computed from the fixtures alone (RFD 57 uuids, fields),
//! never from the server.

use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use test_registry::fixture::{sha256_digest, FixtureImage};

use crate::support::*;

use super::setup::*;
use super::stream::*;

/// RFD 57: sha256 of the layer digests joined by a space, as a uuid.
pub(super) fn rfd57_uuid(digests: &[String]) -> String {
    let hex = hex::encode(Sha256::digest(digests.join(" ").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(super) fn short_id(digest: &str) -> String {
    digest.trim_start_matches("sha256:")[..12].to_string()
}

pub(super) fn top_uuid(image: &FixtureImage) -> String {
    rfd57_uuid(&image.layer_digests())
}

/// The history entries of the non-empty layers, base first.
pub(super) fn layer_history(image: &FixtureImage) -> Vec<Value> {
    image.config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .cloned()
        .collect()
}

/// The layer digests a manifest names, base first.
pub(super) fn manifest_layer_digests(manifest: &Value) -> Vec<String> {
    let layers = manifest["layers"].as_array().unwrap();
    layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// `2024-01-01T00:00:02.123456789Z` → `2024-01-01T00:00:02.123Z`.
pub(super) fn millis(created: &str) -> String {
    format!("{}Z", &created[..23])
}

pub(super) fn is_subsequence(wanted: &[&str], got: &[String]) -> bool {
    let mut got = got.iter();
    wanted.iter().all(|w| got.any(|g| g == w))
}

/// `{Cmd, Entrypoint, Env, WorkingDir}` of the config, absent ones left out
/// (as the original's JSON.stringify of undefined values does).
fn docker_config(image: &FixtureImage) -> Value {
    let runtime = &image.config["config"];
    let present = ["Cmd", "Entrypoint", "Env", "WorkingDir"]
        .into_iter()
        .filter(|k| !runtime[*k].is_null())
        .map(|k| (k.to_string(), runtime[k].clone()));
    Value::Object(present.collect())
}

/// Every layer of `image` is an active docker image built as the wire says.
pub(super) async fn assert_chain(server: &TestServer, image: &FixtureImage, repo: &str) {
    let digests = image.layer_digests();
    let history = layer_history(image);
    let top = digests.len() - 1;
    for (n, layer) in image.layers.iter().enumerate() {
        let uuid = rfd57_uuid(&digests[..=n]);
        let (status, img) = server.get_json(&format!("/images/{uuid}")).await;
        assert_eq!(status, 200, "layer {n} ({uuid}): {img}");
        let at = format!("layer {n}: {img:#}");
        assert_eq!(img["type"], "docker", "{at}");
        assert_eq!(img["name"], "docker-layer", "{at}");
        assert_eq!(img["version"], short_id(&layer.digest), "{at}");
        assert_eq!(img["state"], "active", "{at}");
        assert_eq!(img["public"], true, "{at}");
        assert_eq!(img["owner"], ZERO_OWNER, "{at}");
        let origin = (n > 0).then(|| rfd57_uuid(&digests[..n]));
        assert_eq!(img["origin"].as_str().map(str::to_string), origin, "{at}");
        assert_eq!(img["os"], if n == top { "linux" } else { "other" }, "{at}");
        assert_eq!(
            img["published_at"],
            millis(history[n]["created"].as_str().unwrap()),
            "{at}"
        );
        assert_eq!(img["tags"]["docker:repo"], repo, "{at}");
        assert_eq!(img["tags"]["docker:id"], layer.digest.as_str(), "{at}");
        assert_eq!(img["files"][0]["size"], layer.size, "{at}");
        assert_eq!(img["files"][0]["compression"], "gzip", "{at}");
        if n == top {
            assert_eq!(
                img["tags"]["docker:architecture"],
                image.architecture.as_str(),
                "{at}"
            );
            assert_eq!(img["tags"]["docker:config"], docker_config(image), "{at}");
        } else {
            assert_eq!(img["description"], history[n]["created_by"], "{at}");
        }
    }
}

/// The layer files the server serves are the registry's blobs.
pub(super) async fn assert_files_match(server: &TestServer, image: &FixtureImage) {
    let digests = image.layer_digests();
    for n in 0..digests.len() {
        let uuid = rfd57_uuid(&digests[..=n]);
        let resp = server
            .get(&format!("/images/{uuid}/file"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "file of layer {n}");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(sha256_digest(&bytes), digests[n], "file of layer {n}");
        let (_, img) = server.get_json(&format!("/images/{uuid}")).await;
        assert_eq!(img["files"][0]["sha1"], hex::encode(Sha1::digest(&bytes)));
    }
}

/// The wire of a first, complete import: message order, ids, and the
/// `create-docker-image` message.
pub(super) fn assert_first_import_stream(
    pull: &Stream,
    image: &FixtureImage,
    repo: &str,
    manifest_media_type: &str,
) {
    pull.assert_ok();
    pull.assert_id_last_everywhere(&json!(repo));
    let overall = pull.overall_statuses();
    assert!(
        overall[0].starts_with(&format!("{TAG}: Pulling from {repo} (req ")),
        "{overall:?}"
    );
    for layer in &image.layers {
        let statuses = pull.layer_statuses(&short_id(&layer.digest));
        let wanted = [
            "Pulling fs layer",
            "Download complete",
            "Activating image",
            "Pull complete",
        ];
        assert!(is_subsequence(&wanted, &statuses), "{statuses:?}");
    }
    let big = image.layers.last().unwrap();
    let downloading: Vec<&Value> = pull
        .messages
        .iter()
        .filter(|m| m["payload"]["status"] == "Downloading")
        .collect();
    assert!(
        !downloading.is_empty(),
        "no Downloading line for the big layer"
    );
    for message in downloading {
        let detail = &message["payload"]["progressDetail"];
        assert_eq!(message["payload"]["id"], short_id(&big.digest), "{message}");
        assert_eq!(detail["total"], big.size, "{message}");
        assert!(detail["current"].as_u64().unwrap() <= big.size, "{message}");
        assert!(detail["start"].as_u64().is_some(), "{message}");
    }

    let created = pull.created();
    let manifest_str = created["manifest_str"].as_str().unwrap();
    let manifest: Value = serde_json::from_str(manifest_str).unwrap();
    assert_eq!(manifest["mediaType"], manifest_media_type);
    assert_eq!(manifest_layer_digests(&manifest), image.layer_digests());
    assert_eq!(
        created["manifest_digest"],
        sha256_digest(manifest_str.as_bytes())
    );
    assert_eq!(created["config_digest"], manifest["config"]["digest"]);
    assert_eq!(created["image_uuid"], top_uuid(image));
    assert_eq!(created["head"], true);
    assert_eq!(created["dockerImageVersion"], "2.2");
    assert_eq!(
        created["size"],
        image.layers.iter().map(|l| l.size).sum::<u64>()
    );
    assert_eq!(created["image"]["rootfs"], image.config["rootfs"]);

    let digest = created["manifest_digest"].as_str().unwrap();
    let n = overall.len();
    assert_eq!(overall[n - 2], format!("Digest: {digest}"));
    assert_eq!(
        overall[n - 1],
        format!("Status: Downloaded newer image for {repo}:{TAG}")
    );
}

/// A second import fetches nothing.
pub(super) async fn assert_reimport_already_exists(
    server: &TestServer,
    image: &FixtureImage,
    repo: &str,
    auth: Option<(&str, &str)>,
) {
    let again = import_tag(server, repo, auth).await;
    again.assert_ok();
    for layer in &image.layers {
        let statuses = again.layer_statuses(&short_id(&layer.digest));
        assert!(
            statuses.iter().any(|s| s == "Already exists"),
            "{statuses:?}"
        );
        assert!(
            !statuses
                .iter()
                .any(|s| s == "Downloading" || s == "Download complete"),
            "{statuses:?}"
        );
    }
    let overall = again.overall_statuses();
    assert_eq!(
        overall.last().unwrap(),
        &format!("Status: Image is up to date for {repo}:{TAG}")
    );
}
