//! Fixture images, registries and servers that may reach them.

use test_registry::fixture::{FixtureImage, ImageSpec, Layer, OciLayout};
use test_registry::skopeo::{self, PushOptions};
use test_registry::{FaultProxy, Registry, RegistryKind};

use crate::support::*;

pub(super) const ZERO_OWNER: &str = "00000000-0000-0000-0000-000000000000";
pub(super) const TAG: &str = "latest";
/// The code of a refused registry auth, as docs/docker.md has it (the
/// design brief said `Unauthorized`).
pub(super) const UNAUTHORIZED: &str = "UnauthorizedError";
/// The code when a token lacks the pull scope: what the server answers
/// (docs/docker.md's table says `UnauthorizedError`).
pub(super) const INSUFFICIENT_SCOPE: &str = "ResourceNotFound";

/// Three layers (small, small, ~700 KB so a `Downloading` line is due) and
/// an empty-layer history step; `seed` varies the content.
pub(super) fn image_spec(architecture: &str, seed: u64) -> ImageSpec {
    let release = format!("ID=fixture-{architecture}-{seed}\n");
    ImageSpec::new(architecture)
        .layer(
            Layer::files(&[("etc/os-release", release.as_bytes())]).created_by("ADD rootfs.tar /"),
        )
        .empty_layer("ENV PATH=/usr/bin")
        .layer(Layer::files(&[("etc/motd", b"hello\n")]).created_by("RUN echo hello > /etc/motd"))
        .layer(Layer::random("opt/data.bin", 700_000, seed).created_by("COPY data.bin /opt/"))
        .cmd(&["/bin/sh", "-c", "true"])
        .entrypoint(&["/entry"])
        .env(&["PATH=/usr/bin"])
        .working_dir("/opt")
}

/// Two small layers and a top one of `top_size` pseudo-random bytes.
pub(super) fn image_with_big_top(seed: u64, top_size: u64) -> ImageSpec {
    let base = format!("base {seed}\n");
    ImageSpec::new("amd64")
        .layer(Layer::files(&[("etc/base", base.as_bytes())]))
        .layer(Layer::files(&[("etc/middle", b"middle\n")]))
        .layer(Layer::random("opt/big.bin", top_size, seed))
        .cmd(&["/bin/sh"])
}

/// A server that reaches `hosts` over plain http (and the token realms they
/// name, over the scheme they give).
pub(super) async fn server_for(hosts: &[String]) -> TestServer {
    TestServer::spawn_with(&docker_toml(hosts)).await
}

pub(super) fn docker_toml(hosts: &[String]) -> String {
    let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    format!(
        "[remote]\nallow_private_addresses = true\n[docker]\ninsecure_registries = [{}]\n",
        list.join(", ")
    )
}

/// Pushes one image (tag [`TAG`]) as `registry/name`; the repo name.
pub(super) async fn push_image(
    registry: &Registry,
    name: &str,
    spec: &ImageSpec,
    options: &PushOptions,
) -> (String, FixtureImage) {
    let mut layout = OciLayout::new().unwrap();
    let image = layout.add_image(TAG, spec).unwrap();
    let repo = format!("{}/{name}", registry.host_port());
    skopeo::push(&layout, TAG, &format!("{repo}:{TAG}"), options)
        .await
        .unwrap();
    (repo, image)
}

/// A registry of `kind`, one image pushed to it and a server that may reach it.
pub(super) async fn set_up(
    kind: RegistryKind,
    name: &str,
    options: &PushOptions,
) -> (Registry, TestServer, String, FixtureImage) {
    let registry = Registry::start(kind).await.unwrap();
    let (repo, image) = push_image(&registry, name, &image_spec("amd64", 1), options).await;
    let server = server_for(&[registry.host_port()]).await;
    (registry, server, repo, image)
}

/// An open registry holding [`image_with_big_top`] as `name`, and a fault
/// proxy in front of it; the repo name is the proxy's.
pub(super) async fn behind_fault_proxy(
    name: &str,
    seed: u64,
    top_size: u64,
) -> (Registry, FaultProxy, String, FixtureImage) {
    let registry = Registry::start(RegistryKind::Open).await.unwrap();
    let spec = image_with_big_top(seed, top_size);
    let (_, image) = push_image(&registry, name, &spec, &PushOptions::oci()).await;
    let proxy = FaultProxy::start(&registry.host_port()).unwrap();
    let repo = format!("{}/{name}", proxy.host_port());
    (registry, proxy, repo, image)
}
