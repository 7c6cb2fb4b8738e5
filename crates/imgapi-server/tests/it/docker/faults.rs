//! Failures mid-import (registry cut, corrupted blob, server restart) and
//! the retries after them.

use std::time::Duration;

use test_registry::skopeo::PushOptions;
use test_registry::{tools_installed, Fault, FaultProxy, RegistryKind};

use crate::support::*;

use super::expect::*;
use super::setup::*;
use super::stream::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_cut_mid_layer_then_retry_fetches_only_the_missing_layer() {
    if !tools_installed() {
        return;
    }
    let (_registry, proxy, repo, image) = behind_fault_proxy("fix/cut", 4, 3 << 20).await;
    let server = server_for(&[proxy.host_port()]).await;
    let digests = image.layer_digests();
    let big = digests.last().unwrap();

    // Every attempt is cut: the server's own retries of the layer fail too.
    proxy.arm(Fault::cut(big, 1 << 20).times(usize::MAX));
    import_tag(&server, &repo, None)
        .await
        .assert_failed_with("Download");
    let cut_attempts = proxy.fired();
    proxy.disarm();
    // The small layers below were complete: they stay, active.
    assert_eq!(
        layer_state(&server, &digests[..1]).await.as_deref(),
        Some("active")
    );
    assert_eq!(
        layer_state(&server, &digests[..2]).await.as_deref(),
        Some("active")
    );
    assert_eq!(layer_state(&server, &digests).await, None);

    let retry = import_tag(&server, &repo, None).await;
    retry.assert_ok();
    for digest in &digests[..2] {
        assert!(retry
            .layer_statuses(&short_id(digest))
            .iter()
            .any(|s| s == "Already exists"));
        assert_eq!(
            proxy.count("GET", &format!("/blobs/{digest}")),
            1,
            "{:#?}",
            proxy.requests()
        );
    }
    assert_eq!(
        proxy.count("GET", &format!("/blobs/{big}")),
        cut_attempts + 1,
        "{:#?}",
        proxy.requests()
    );
    assert_chain(&server, &image, &repo).await;
    assert_files_match(&server, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_is_refused_and_nothing_is_kept() {
    if !tools_installed() {
        return;
    }
    let (registry, server, repo, image) =
        set_up(RegistryKind::Open, "fix/corrupt", &PushOptions::oci()).await;
    let digests = image.layer_digests();
    registry.corrupt_blob(&digests[1]).unwrap();

    import_tag(&server, &repo, None)
        .await
        .assert_failed_with("Download");
    assert_eq!(
        layer_state(&server, &digests[..1]).await.as_deref(),
        Some("active")
    );
    // The refused layer: no record, no file.
    assert_eq!(layer_state(&server, &digests[..2]).await, None);
    assert_eq!(file_status(&server, &digests[..2]).await, 404);
    // Nothing above it is kept either: only the active prefix remains.
    assert_eq!(layer_state(&server, &digests).await, None);
    assert_eq!(file_status(&server, &digests).await, 404);

    // Repaired, the import completes.
    registry.corrupt_blob(&digests[1]).unwrap();
    import_tag(&server, &repo, None).await.assert_ok();
    assert_chain(&server, &image, &repo).await;
    assert_files_match(&server, &image).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_in_the_middle_of_an_import_then_retry_completes() {
    if !tools_installed() {
        return;
    }
    let (_registry, proxy, repo, image) = behind_fault_proxy("fix/restart", 5, 4 << 20).await;
    let toml = format!(
        "metrics_listen = \"127.0.0.1:0\"\n{}",
        docker_toml(&[proxy.host_port()])
    );
    let dir = tempfile::tempdir().unwrap();
    // The binary imports and is killed (SIGKILL) mid-layer; the same data
    // is then served again.
    let seed = TestServer::spawn_in(dir.path(), &toml).await;
    let config = write_config(seed, dir.path()).await;
    let mut imgapi = crate::restart::start(&config);
    let big = image.layers.last().unwrap().digest.clone();
    let url = format!(
        "http://{}{}",
        imgapi.addr,
        import_path(&[("repo", &repo), ("tag", TAG)])
    );
    let pulling = trickle_big_layer(&proxy, &big, reqwest::Client::new().post(url)).await;
    imgapi.child.kill().unwrap();
    imgapi.child.wait().unwrap();
    pulling.abort();

    let server = TestServer::spawn_in(dir.path(), &toml).await;
    // As after a cut: the layers below stay active, the interrupted one left nothing.
    let digests = image.layer_digests();
    assert_eq!(
        layer_state(&server, &digests[..2]).await.as_deref(),
        Some("active")
    );
    assert_eq!(layer_state(&server, &digests).await, None);
    assert_eq!(file_status(&server, &digests).await, 404);
    import_tag(&server, &repo, None).await.assert_ok();
    assert_eq!(proxy.count("GET", &format!("/blobs/{}", digests[0])), 1);
    assert_eq!(proxy.count("GET", &format!("/blobs/{big}")), 2);
    assert_chain(&server, &image, &repo).await;
    assert_files_match(&server, &image).await;
}

/// The configuration `seed` runs with, as a file for the binary; `seed` is
/// stopped (its data stays in `dir`).
async fn write_config(seed: TestServer, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("imgapi.toml");
    std::fs::write(&path, &seed.config_toml).unwrap();
    seed.stop().await;
    path
}

/// Sends `import` while the big layer trickles through the proxy; returns
/// once that layer is on its way (the layers below it are done by then).
async fn trickle_big_layer(
    proxy: &FaultProxy,
    big: &str,
    import: reqwest::RequestBuilder,
) -> tokio::task::JoinHandle<()> {
    proxy.arm(Fault::throttle(
        big,
        512 << 10,
        64 << 10,
        Duration::from_millis(100),
    ));
    let pulling = tokio::spawn(async move {
        if let Ok(resp) = import.send().await {
            let _ = resp.text().await;
        }
    });
    for _ in 0..200 {
        if proxy.fired() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(proxy.fired(), 1, "the big layer was never requested");
    tokio::time::sleep(Duration::from_millis(300)).await;
    pulling
}
