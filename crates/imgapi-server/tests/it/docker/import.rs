//! Imports of every manifest kind, with every kind of registry auth.

use test_registry::fixture::OciLayout;
use test_registry::skopeo::{self, PushOptions};
use test_registry::{tools_installed, Grant, Registry, RegistryKind, TokenUser};

use super::expect::*;
use super::setup::*;
use super::stream::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_import_builds_the_layer_chain() {
    if !tools_installed() {
        return;
    }
    let (_registry, server, repo, image) = set_up(
        RegistryKind::Open,
        "fix/schema2",
        &PushOptions::docker_v2s2(),
    )
    .await;
    let pull = import_tag(&server, &repo, None).await;
    assert_first_import_stream(
        &pull,
        &image,
        &repo,
        "application/vnd.docker.distribution.manifest.v2+json",
    );
    assert_chain(&server, &image, &repo).await;
    assert_files_match(&server, &image).await;
    assert_reimport_already_exists(&server, &image, &repo, None).await;
    assert_eq!(
        active_docker_images(&server).await.len(),
        image.layers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_manifest_import_builds_the_layer_chain() {
    if !tools_installed() {
        return;
    }
    let (registry, server, repo, image) =
        set_up(RegistryKind::Open, "fix/oci", &PushOptions::oci()).await;
    let pull = import_tag(&server, &repo, None).await;
    assert_first_import_stream(
        &pull,
        &image,
        &repo,
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(
        pull.created()["manifest_digest"],
        image.manifest_digest.as_str()
    );
    assert_eq!(
        pull.created()["config_digest"],
        image.config_digest.as_str()
    );
    assert_chain(&server, &image, &repo).await;

    // By digest: the same chain, already there.
    let by_digest = import(
        &server,
        &[("repo", &repo), ("digest", &image.manifest_digest)],
        None,
    )
    .await;
    by_digest.assert_ok();
    let overall = by_digest.overall_statuses();
    assert_eq!(
        overall.last().unwrap(),
        &format!(
            "Status: Image is up to date for {repo}@{}",
            image.manifest_digest
        )
    );

    let missing = import(&server, &[("repo", &repo), ("tag", "no-such-tag")], None).await;
    missing.assert_failed_with("ResourceNotFound");

    // The same layers under another name are stored once.
    let (copy_repo, copy) = push_image(
        &registry,
        "fix/oci-copy",
        &image_spec("amd64", 1),
        &PushOptions::oci(),
    )
    .await;
    assert_eq!(copy.layers, image.layers);
    assert_reimport_already_exists(&server, &image, &copy_repo, None).await;
    assert_eq!(
        active_docker_images(&server).await.len(),
        image.layers.len()
    );
}

/// A two-platform index pushed with `options` (`--all`): linux/amd64 is imported.
async fn import_of_a_list_picks_linux_amd64(options: PushOptions, name: &str) {
    let registry = Registry::start(RegistryKind::Open).await.unwrap();
    let mut layout = OciLayout::new().unwrap();
    let index = layout
        .add_index(TAG, &[image_spec("arm64", 2), image_spec("amd64", 3)])
        .unwrap();
    let repo = format!("{}/{name}", registry.host_port());
    skopeo::push(
        &layout,
        TAG,
        &format!("{repo}:{TAG}"),
        &options.clone().all(),
    )
    .await
    .unwrap();
    let server = server_for(&[registry.host_port()]).await;

    let pull = import_tag(&server, &repo, None).await;
    pull.assert_ok();
    let amd64 = index.platform("amd64").unwrap();
    let arm64 = index.platform("arm64").unwrap();
    assert_eq!(pull.created()["image_uuid"], top_uuid(amd64));
    assert_chain(&server, amd64, &repo).await;
    assert_eq!(
        server
            .get_json(&format!("/images/{}", top_uuid(arm64)))
            .await
            .0,
        404
    );
    assert_eq!(
        active_docker_images(&server).await.len(),
        amd64.layers.len()
    );

    let arm_only = "arm-only";
    layout
        .add_index(arm_only, &[image_spec("arm64", 4)])
        .unwrap();
    let dest = format!("{repo}:{arm_only}");
    skopeo::push(&layout, arm_only, &dest, &options.all())
        .await
        .unwrap();
    let message = import(&server, &[("repo", &repo), ("tag", arm_only)], None)
        .await
        .assert_failed_with("ValidationFailed");
    assert_eq!(
        message,
        "no linux-amd64 platform found in manifest list: linux-arm64"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_index_import_picks_linux_amd64() {
    if !tools_installed() {
        return;
    }
    import_of_a_list_picks_linux_amd64(PushOptions::oci(), "fix/index").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_manifest_list_import_picks_linux_amd64() {
    if !tools_installed() {
        return;
    }
    import_of_a_list_picks_linux_amd64(PushOptions::docker_v2s2(), "fix/list").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_import_with_and_without_credentials() {
    if !tools_installed() {
        return;
    }
    let kind = RegistryKind::Basic {
        users: vec![("alice".into(), "s3cret".into())],
    };
    let push = PushOptions::oci().creds("alice", "s3cret");
    let (_registry, server, repo, image) = set_up(kind, "fix/basic", &push).await;

    import_tag(&server, &repo, None)
        .await
        .assert_failed_with(UNAUTHORIZED);
    import_tag(&server, &repo, Some(("alice", "wrong")))
        .await
        .assert_failed_with(UNAUTHORIZED);
    assert!(active_docker_images(&server).await.is_empty());

    // The credentials of the registry's entry in x-registry-config.
    let host = repo.split('/').next().unwrap();
    let resp = server
        .post(&import_path(&[("repo", &repo), ("tag", TAG)]))
        .header(
            "x-registry-config",
            registry_config(host, "alice", "s3cret"),
        )
        .send()
        .await
        .unwrap();
    Stream::read(resp).await.assert_ok();
    assert_chain(&server, &image, &repo).await;
    assert_reimport_already_exists(&server, &image, &repo, Some(("alice", "s3cret"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_import_asks_for_pull_and_honours_the_grant() {
    if !tools_installed() {
        return;
    }
    let kind = RegistryKind::Token {
        users: vec![
            TokenUser::new("alice", "s3cret", vec![Grant::new("*", &["pull", "push"])]),
            TokenUser::new("bob", "b0b", vec![Grant::new("other/*", &["pull"])]),
        ],
        anonymous: vec![Grant::new("fix/public", &["pull"])],
    };
    let push = PushOptions::oci().creds("alice", "s3cret");
    let (registry, server, repo, image) = set_up(kind, "fix/token", &push).await;
    let issuer = registry.token_issuer().unwrap();

    import_tag(&server, &repo, Some(("alice", "wrong")))
        .await
        .assert_failed_with(UNAUTHORIZED);
    // bob, and anonymous callers, get a token without pull on fix/token: the
    // registry answers insufficient_scope, which the original reads as "no
    // such repository" (docker-registry-client turns that 401 into a 404).
    for auth in [Some(("bob", "b0b")), None] {
        let message = import_tag(&server, &repo, auth)
            .await
            .assert_failed_with(INSUFFICIENT_SCOPE);
        assert!(message.contains("insufficient_scope"), "{message}");
    }
    assert!(active_docker_images(&server).await.is_empty());

    issuer.clear_requests();
    import_tag(&server, &repo, Some(("alice", "s3cret")))
        .await
        .assert_ok();
    assert_chain(&server, &image, &repo).await;
    let asked = issuer.requests();
    assert!(!asked.is_empty());
    for request in &asked {
        assert_eq!(request.basic_user.as_deref(), Some("alice"), "{asked:?}");
        assert_eq!(
            request.service.as_deref(),
            Some(issuer.service()),
            "{asked:?}"
        );
        assert_eq!(request.scopes, ["repository:fix/token:pull"], "{asked:?}");
    }

    // A token without credentials, for what anonymous callers may pull.
    let (public_repo, public) =
        push_image(&registry, "fix/public", &image_spec("amd64", 9), &push).await;
    import_tag(&server, &public_repo, None).await.assert_ok();
    assert_chain(&server, &public, &public_repo).await;
}
