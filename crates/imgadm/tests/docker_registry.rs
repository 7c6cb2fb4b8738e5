//! `imgadm docker-import` / `docker-push` end to end: the in-process
//! server, a real registry (`docker-registry`, CNCF distribution) on a free
//! loopback port, and a fixture image pushed there by `skopeo` (both run by
//! the `test-registry` crate). Skipped when docker-registry or skopeo is
//! not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use assert_cmd::Command;
use common::{spawn_with, Server};
use serde_json::Value;
use test_registry::fixture::{ImageSpec, Layer, OciLayout};
use test_registry::skopeo::{self, PushOptions};
use test_registry::{tools_installed, Registry, RegistryKind};

/// A registry with a two-layer fixture image pushed as `fix/app:1`; the
/// fixture's layer digests and manifest digest.
fn registry_with_fixture(rt: &tokio::runtime::Runtime) -> (Registry, Vec<String>, String) {
    rt.block_on(async {
        let registry = Registry::start(RegistryKind::Open).await.unwrap();
        let mut layout = OciLayout::new().unwrap();
        let spec = ImageSpec::new("amd64")
            .layer(Layer::files(&[("etc/base", b"base layer\n")]))
            .layer(Layer::files(&[("app/bin", b"the application\n")]))
            .cmd(&["/app/bin"]);
        let image = layout.add_image("1", &spec).unwrap();
        let dest = format!("{}/fix/app:1", registry.host_port());
        skopeo::push(&layout, "1", &dest, &PushOptions::oci())
            .await
            .unwrap();
        (registry, image.layer_digests(), image.manifest_digest)
    })
}

fn imgadm(server: &Server) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env("IMGAPI_URL", &server.url)
        .env("IMGADM_CONFIG_DIR", server.dir.path().join("config"))
        .env("HOME", server.dir.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("IMGAPI_CHANNEL")
        .env_remove("IMGADM_REGISTRY_USER")
        .env_remove("IMGADM_REGISTRY_PASSWORD");
    cmd
}

fn stdout_of(cmd: &mut Command, exit: i32) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(exit),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn import_reimport_and_push_against_a_registry() {
    if !tools_installed() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (registry, layers, manifest_digest) = registry_with_fixture(&rt);
    let server = spawn_with(&format!(
        "[remote]\nallow_private_addresses = true\n[docker]\ninsecure_registries = [\"{}\"]\n",
        registry.host_port()
    ));
    let short_ids: Vec<String> = layers
        .iter()
        .map(|d| d["sha256:".len()..][..12].to_string())
        .collect();
    let reference = format!("{}/fix/app:1", registry.host_port());

    let out = stdout_of(imgadm(&server).args(["docker-import", &reference]), 0);
    for id in &short_ids {
        assert!(out.contains(&format!("{id}: Pull complete\n")), "{out}");
    }
    assert!(
        out.contains(&format!("Digest: {manifest_digest}\n")),
        "{out}"
    );
    let uuid = out
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("Image UUID: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let image: Value =
        serde_json::from_str(&stdout_of(imgadm(&server).args(["get", &uuid]), 0)).unwrap();
    assert_eq!(
        (image["type"].as_str(), image["state"].as_str()),
        (Some("docker"), Some("active"))
    );

    let again = stdout_of(imgadm(&server).args(["docker-import", &reference]), 0);
    for id in &short_ids {
        assert!(
            again.contains(&format!("{id}: Already exists\n")),
            "{again}"
        );
    }
    assert!(again.contains("Status: Image is up to date for"), "{again}");
    assert!(again.ends_with(&format!("Image UUID: {uuid}\n")), "{again}");

    let target = format!("{}/fix/copy:2", registry.host_port());
    let pushed = stdout_of(imgadm(&server).args(["docker-push", &uuid, &target]), 0);
    assert!(
        pushed
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("2: digest: sha256:")),
        "{pushed}"
    );

    let missing = format!("{}/fix/absent:1", registry.host_port());
    stdout_of(imgadm(&server).args(["docker-import", &missing]), 3);
}
