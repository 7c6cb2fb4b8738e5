//! The transport policy: plain http only for `[docker] insecure_registries`,
//! and the `[remote]` address rules for registries.

use test_registry::skopeo::PushOptions;
use test_registry::{tools_installed, Registry, RegistryKind};

use crate::support::*;

use super::setup::*;
use super::stream::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_outside_the_policy_are_refused() {
    if !tools_installed() {
        return;
    }
    let registry = Registry::start(RegistryKind::Open).await.unwrap();
    let spec = image_spec("amd64", 1);
    let (repo, _) = push_image(&registry, "fix/policy", &spec, &PushOptions::oci()).await;

    // Not named insecure: https only, which this registry does not speak.
    let https_only = server_for(&[]).await;
    // Named insecure, but loopback addresses are not allowed.
    let insecure = format!(
        "[docker]\ninsecure_registries = [{:?}]\n",
        registry.host_port()
    );
    let no_private = TestServer::spawn_with(&insecure).await;
    for server in [&https_only, &no_private] {
        import_tag(server, &repo, None)
            .await
            .assert_failed_with("RemoteSourceError");
        assert!(active_docker_images(server).await.is_empty());
    }
}
