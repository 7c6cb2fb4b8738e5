//! Each registry kind against the real skopeo; the fault proxy and the
//! fixtures against a real registry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::time::Duration;

use test_registry::fixture::{sha256_digest, FixtureImage, ImageSpec, Layer, OciLayout};
use test_registry::skopeo::{self, PushOptions};
use test_registry::{tools_installed, Fault, FaultProxy, Grant, Registry, RegistryKind, TokenUser};

fn two_layer_image() -> (OciLayout, FixtureImage) {
    let mut layout = OciLayout::new().unwrap();
    let spec = ImageSpec::new("amd64")
        .layer(Layer::files(&[("etc/motd", b"hello\n")]).created_by("ADD motd /etc/"))
        .empty_layer("ENV A=1")
        .layer(Layer::random("data/blob", 300_000, 7))
        .cmd(&["/bin/sh"])
        .env(&["PATH=/bin"])
        .working_dir("/");
    let image = layout.add_image("latest", &spec).unwrap();
    (layout, image)
}

fn basic_kind() -> RegistryKind {
    RegistryKind::Basic {
        users: vec![("alice".into(), "s3cret".into())],
    }
}

fn token_kind() -> RegistryKind {
    RegistryKind::Token {
        users: vec![
            TokenUser::new(
                "alice",
                "s3cret",
                vec![Grant::new("fix/*", &["pull", "push"])],
            ),
            TokenUser::new("reader", "r", vec![Grant::new("*", &["pull"])]),
        ],
        anonymous: vec![],
    }
}

#[test]
fn fixtures_are_deterministic_and_their_digests_hold() {
    let (first, image) = two_layer_image();
    let (_second, again) = two_layer_image();
    assert_eq!(image.layers, again.layers);
    assert_eq!(image.manifest_digest, again.manifest_digest);
    assert_eq!(image.layers.len(), 2, "the empty-layer step has no blob");
    assert_eq!(image.config["history"].as_array().unwrap().len(), 3);
    assert_eq!(image.config["history"][1]["empty_layer"], true);
    for layer in &image.layers {
        let blob =
            std::fs::read(first.path().join("blobs/sha256").join(&layer.digest[7..])).unwrap();
        assert_eq!(sha256_digest(&blob), layer.digest);
        assert_eq!(blob.len() as u64, layer.size);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(blob.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256_digest(&tar), layer.diff_id);
    }
    assert_eq!(
        image.config["rootfs"]["diff_ids"][1],
        image.layers[1].diff_id.as_str()
    );
}

#[tokio::test]
async fn open_registry_takes_a_push_and_gives_it_back() {
    if !tools_installed() {
        return;
    }
    let registry = Registry::start(RegistryKind::Open).await.unwrap();
    let (layout, image) = two_layer_image();
    let dest = format!("{}/fix/two:latest", registry.host_port());
    skopeo::push(&layout, "latest", &dest, &PushOptions::oci())
        .await
        .unwrap();
    let raw = skopeo::inspect_raw(&dest, None).await.unwrap();
    assert_eq!(sha256_digest(raw.as_bytes()), image.manifest_digest);
    let out = tempfile::tempdir().unwrap();
    skopeo::copy_to_dir(&dest, &out.path().join("copy"), None)
        .await
        .unwrap();
    assert!(registry.blob_path(&image.layers[1].digest).is_file());
}

#[tokio::test]
async fn basic_registry_needs_the_credentials() {
    if !tools_installed() {
        return;
    }
    let registry = Registry::start(basic_kind()).await.unwrap();
    let (layout, _) = two_layer_image();
    let dest = format!("{}/fix/two:latest", registry.host_port());
    let refused = skopeo::push(&layout, "latest", &dest, &PushOptions::oci()).await;
    assert!(refused.is_err(), "anonymous push accepted");
    let wrong = PushOptions::oci().creds("alice", "nope");
    assert!(skopeo::push(&layout, "latest", &dest, &wrong)
        .await
        .is_err());
    let right = PushOptions::docker_v2s2().creds("alice", "s3cret");
    skopeo::push(&layout, "latest", &dest, &right)
        .await
        .unwrap();
    let raw = skopeo::inspect_raw(&dest, Some(("alice", "s3cret")))
        .await
        .unwrap();
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );
}

#[tokio::test]
async fn token_registry_grants_only_what_the_user_may() {
    if !tools_installed() {
        return;
    }
    let registry = Registry::start(token_kind()).await.unwrap();
    let issuer = registry.token_issuer().unwrap();
    let (layout, _) = two_layer_image();
    let dest = format!("{}/fix/two:latest", registry.host_port());

    let pusher = PushOptions::oci().creds("alice", "s3cret");
    skopeo::push(&layout, "latest", &dest, &pusher)
        .await
        .unwrap();
    let asked = issuer.requests();
    assert!(asked
        .iter()
        .all(|r| r.accepted && r.basic_user.as_deref() == Some("alice")));
    assert!(
        asked
            .iter()
            .any(|r| r.scopes.iter().any(|s| s == "repository:fix/two:pull,push")),
        "{asked:?}"
    );

    issuer.clear_requests();
    let wrong = PushOptions::oci().creds("alice", "nope");
    let err = skopeo::push(&layout, "latest", &dest, &wrong)
        .await
        .unwrap_err();
    assert!(issuer.requests().iter().any(|r| !r.accepted), "{err}");

    let reader = PushOptions::oci().creds("reader", "r");
    let err = skopeo::push(
        &layout,
        "latest",
        &format!("{}/fix/other:latest", registry.host_port()),
        &reader,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("denied") || err.to_string().contains("unauthorized"),
        "{err}"
    );
    skopeo::inspect_raw(&dest, Some(("reader", "r")))
        .await
        .unwrap();
}

#[tokio::test]
async fn fault_proxy_counts_and_cuts_and_the_registry_restarts_on_its_storage() {
    if !tools_installed() {
        return;
    }
    let mut registry = Registry::start(RegistryKind::Open).await.unwrap();
    let (layout, image) = two_layer_image();
    let dest = format!("{}/fix/two:latest", registry.host_port());
    skopeo::push(&layout, "latest", &dest, &PushOptions::oci())
        .await
        .unwrap();
    registry.restart().await.unwrap();

    let proxy = FaultProxy::start(&registry.host_port()).unwrap();
    let big = &image.layers[1];
    let blob_url = format!(
        "http://{}/v2/fix/two/blobs/{}",
        proxy.host_port(),
        big.digest
    );
    let whole = get(&blob_url).await.unwrap();
    assert_eq!(sha256_digest(&whole), big.digest);

    proxy.arm(Fault::cut(&big.digest, 100_000).times(2));
    for _ in 0..2 {
        assert!(
            get(&blob_url).await.is_err(),
            "the cut response ended cleanly"
        );
    }
    assert_eq!(proxy.fired(), 2);

    proxy.arm(Fault::throttle(
        &big.digest,
        250_000,
        16_384,
        Duration::from_millis(5),
    ));
    let slow = get(&blob_url).await.unwrap();
    assert_eq!(sha256_digest(&slow), big.digest);
    assert_eq!(proxy.count("GET", &big.digest), 4);

    registry.corrupt_blob(&big.digest).unwrap();
    let bad = get(&blob_url).await.unwrap();
    assert_eq!(bad.len(), whole.len());
    assert_ne!(sha256_digest(&bad), big.digest);
}

async fn get(url: &str) -> reqwest::Result<Vec<u8>> {
    let resp = reqwest::get(url).await?;
    Ok(resp.bytes().await?.to_vec())
}
