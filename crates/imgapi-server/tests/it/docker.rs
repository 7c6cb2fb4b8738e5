//! AdminImportDockerImage and AdminPushDockerImage against real registries
//! (CNCF distribution, open / Basic / token auth) fed by skopeo from OCI
//! layouts written by the test. Skipped, with a visible line, when
//! docker-registry or skopeo is not installed.
//!
//! Expected uuids are computed here from the fixture digests (RFD 57), not
//! taken from the server.

use std::time::Duration;

use base64::Engine;
use reqwest::Response;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use test_registry::fixture::{sha256_digest, FixtureImage, ImageSpec, Layer, OciLayout};
use test_registry::skopeo::{self, PushOptions};
use test_registry::{tools_installed, Fault, FaultProxy, Grant, Registry, RegistryKind, TokenUser};

use crate::support::*;

const ZERO_OWNER: &str = "00000000-0000-0000-0000-000000000000";
const TAG: &str = "latest";

// ---------------------------------------------------------------------------
// Fixtures and set-up

/// Three layers (small, small, ~700 KB so a `Downloading` line is due) and
/// an empty-layer history step; `seed` varies the content.
fn image_spec(architecture: &str, seed: u64) -> ImageSpec {
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
fn image_with_big_top(seed: u64, top_size: u64) -> ImageSpec {
    let base = format!("base {seed}\n");
    ImageSpec::new("amd64")
        .layer(Layer::files(&[("etc/base", base.as_bytes())]))
        .layer(Layer::files(&[("etc/middle", b"middle\n")]))
        .layer(Layer::random("opt/big.bin", top_size, seed))
        .cmd(&["/bin/sh"])
}

/// A server that reaches `hosts` over plain http.
async fn server_for(hosts: &[String]) -> TestServer {
    TestServer::spawn_with(&docker_toml(hosts)).await
}

fn docker_toml(hosts: &[String]) -> String {
    let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    format!(
        "[remote]\nallow_http = true\nallow_private_addresses = true\n[docker]\ninsecure_registries = [{}]\n",
        list.join(", ")
    )
}

/// The hosts a server must reach for `registry`: it and its token realm.
fn hosts_of(registry: &Registry) -> Vec<String> {
    let mut hosts = vec![registry.host_port()];
    if let Some(issuer) = registry.token_issuer() {
        let realm = issuer.realm().trim_start_matches("http://");
        hosts.push(realm.split('/').next().unwrap().to_string());
    }
    hosts
}

/// Pushes one image (tag [`TAG`]) as `registry/name`; the repo name.
async fn push_image(
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
async fn set_up(
    kind: RegistryKind,
    name: &str,
    options: &PushOptions,
) -> (Registry, TestServer, String, FixtureImage) {
    let registry = Registry::start(kind).await.unwrap();
    let (repo, image) = push_image(&registry, name, &image_spec("amd64", 1), options).await;
    let server = server_for(&hosts_of(&registry)).await;
    (registry, server, repo, image)
}

/// An open registry holding [`image_with_big_top`] as `name`, and a fault
/// proxy in front of it; the repo name is the proxy's.
async fn behind_fault_proxy(
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

// ---------------------------------------------------------------------------
// Talking to the server

fn registry_auth(user: &str, password: &str) -> String {
    let auth = json!({"username": user, "password": password});
    base64::engine::general_purpose::STANDARD.encode(auth.to_string())
}

/// An import's or push's answer: the stream's messages, or the one error
/// body when the status is not 200.
struct Stream {
    status: u16,
    messages: Vec<Value>,
}

impl Stream {
    async fn read(resp: Response) -> Stream {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let messages = if status == 200 {
            text.split("\r\n")
                .filter(|line| !line.is_empty())
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
                .collect()
        } else {
            vec![serde_json::from_str(&text).unwrap_or(Value::String(text))]
        };
        Stream { status, messages }
    }

    /// The error of a failed stream's last line.
    fn error(&self) -> Option<&Value> {
        self.messages
            .last()
            .filter(|m| m["type"] == "error")
            .map(|m| &m["error"])
    }

    fn assert_ok(&self) {
        assert_eq!(self.status, 200, "{:#?}", self.messages);
        assert!(
            self.error().is_none(),
            "import failed: {:#?}",
            self.messages
        );
    }

    fn assert_failed_with(&self, code: &str) {
        assert_eq!(self.status, 200, "{:#?}", self.messages);
        let error = self
            .error()
            .unwrap_or_else(|| panic!("no error line: {:#?}", self.messages));
        assert_eq!(error["code"], code, "{:#?}", self.messages);
    }

    fn created(&self) -> &Value {
        self.messages
            .iter()
            .find(|m| m["type"] == "create-docker-image")
            .unwrap_or_else(|| panic!("no create-docker-image: {:#?}", self.messages))
    }

    /// The `payload.status` of every message about layer `short_id`.
    fn layer_statuses(&self, short_id: &str) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m["payload"]["id"] == short_id)
            .map(|m| {
                m["payload"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// `payload.status` of the status messages without a layer id.
    fn overall_statuses(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "status" && m["payload"]["id"].is_null())
            .map(|m| {
                m["payload"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

/// `/images?action=import-docker-image&…` with `params` URL-encoded.
fn import_path(params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("action", "import-docker-image")
        .extend_pairs(params)
        .finish();
    format!("/images?{query}")
}

/// `/images/UUID/push?repoAndTag=…`.
fn push_path(uuid: &str, repo_and_tag: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("repoAndTag", repo_and_tag)
        .finish();
    format!("/images/{uuid}/push?{query}")
}

async fn import(
    server: &TestServer,
    params: &[(&str, &str)],
    auth: Option<(&str, &str)>,
) -> Stream {
    let mut req = server.post(&import_path(params));
    if let Some((user, password)) = auth {
        req = req.header("x-registry-auth", registry_auth(user, password));
    }
    Stream::read(req.send().await.unwrap()).await
}

async fn import_tag(server: &TestServer, repo: &str, auth: Option<(&str, &str)>) -> Stream {
    import(server, &[("repo", repo), ("tag", TAG)], auth).await
}

async fn images_of_type_docker(server: &TestServer) -> Vec<Value> {
    let (status, list) = server.get_json("/images?state=all&type=docker").await;
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------
// Expectations computed from the fixtures

/// RFD 57: sha256 of the layer digests joined by a space, as a uuid.
fn rfd57_uuid(digests: &[String]) -> String {
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

fn short_id(digest: &str) -> String {
    digest.trim_start_matches("sha256:")[..12].to_string()
}

fn top_uuid(image: &FixtureImage) -> String {
    rfd57_uuid(&image.layer_digests())
}

/// The history entries of the non-empty layers, base first.
fn layer_history(image: &FixtureImage) -> Vec<Value> {
    image.config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .cloned()
        .collect()
}

/// `2024-01-01T00:00:02.123456789Z` → `2024-01-01T00:00:02.123Z`.
fn millis(created: &str) -> String {
    format!("{}Z", &created[..23])
}

fn is_subsequence(wanted: &[&str], got: &[String]) -> bool {
    let mut got = got.iter();
    wanted.iter().all(|w| got.any(|g| g == w))
}

/// Every layer of `image` is an active docker image built as the wire says.
async fn assert_chain(server: &TestServer, image: &FixtureImage, repo: &str) {
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
            let runtime = &image.config["config"];
            assert_eq!(
                img["tags"]["docker:architecture"],
                image.architecture.as_str(),
                "{at}"
            );
            assert_eq!(
                img["tags"]["docker:config"],
                json!({
                    "Cmd": runtime["Cmd"],
                    "Entrypoint": runtime["Entrypoint"],
                    "Env": runtime["Env"],
                    "WorkingDir": runtime["WorkingDir"],
                }),
                "{at}"
            );
        } else {
            assert_eq!(img["description"], history[n]["created_by"], "{at}");
        }
    }
}

/// The layer files the server serves are the registry's blobs.
async fn assert_files_match(server: &TestServer, image: &FixtureImage) {
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
fn assert_first_import_stream(
    pull: &Stream,
    image: &FixtureImage,
    repo: &str,
    manifest_media_type: &str,
) {
    pull.assert_ok();
    for message in &pull.messages {
        let keys: Vec<&String> = message.as_object().unwrap().keys().collect();
        assert_eq!(keys.last().map(|k| k.as_str()), Some("id"), "{message}");
        assert_eq!(message["id"], repo, "{message}");
    }
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
    assert!(pull
        .layer_statuses(&short_id(&big.digest))
        .iter()
        .any(|s| s == "Downloading"));

    let created = pull.created();
    let manifest_str = created["manifest_str"].as_str().unwrap();
    let manifest: Value = serde_json::from_str(manifest_str).unwrap();
    assert_eq!(manifest["mediaType"], manifest_media_type);
    let manifest_layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(manifest_layers, image.layer_digests());
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
async fn assert_reimport_already_exists(
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

// ---------------------------------------------------------------------------
// Manifest kinds

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
        images_of_type_docker(&server).await.len(),
        image.layers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_manifest_import_builds_the_layer_chain() {
    if !tools_installed() {
        return;
    }
    let (_registry, server, repo, image) =
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
}

/// A two-platform index pushed with `options` (`--all`): linux/amd64 is imported.
async fn import_of_a_list_picks_linux_amd64(options: PushOptions, name: &str) {
    let registry = Registry::start(RegistryKind::Open).await.unwrap();
    let mut layout = OciLayout::new().unwrap();
    let index = layout
        .add_index(TAG, &[image_spec("arm64", 2), image_spec("amd64", 3)])
        .unwrap();
    let repo = format!("{}/{name}", registry.host_port());
    skopeo::push(&layout, TAG, &format!("{repo}:{TAG}"), &options.all())
        .await
        .unwrap();
    let server = server_for(&hosts_of(&registry)).await;

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
        images_of_type_docker(&server).await.len(),
        amd64.layers.len()
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

// ---------------------------------------------------------------------------
// Registry auth

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
        .assert_failed_with("Unauthorized");
    import_tag(&server, &repo, Some(("alice", "wrong")))
        .await
        .assert_failed_with("Unauthorized");
    assert!(images_of_type_docker(&server).await.is_empty());

    import_tag(&server, &repo, Some(("alice", "s3cret")))
        .await
        .assert_ok();
    assert_chain(&server, &image, &repo).await;
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
        .assert_failed_with("Unauthorized");
    // bob gets a token, but one without pull on fix/token: insufficient_scope.
    import_tag(&server, &repo, Some(("bob", "b0b")))
        .await
        .assert_failed_with("Unauthorized");
    import_tag(&server, &repo, None)
        .await
        .assert_failed_with("Unauthorized");
    assert!(images_of_type_docker(&server).await.is_empty());

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

// ---------------------------------------------------------------------------
// Failures and retries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_cut_mid_layer_then_retry_fetches_only_the_missing_layer() {
    if !tools_installed() {
        return;
    }
    let (_registry, proxy, repo, image) = behind_fault_proxy("fix/cut", 4, 3 << 20).await;
    let server = server_for(&[proxy.host_port()]).await;
    let digests = image.layer_digests();
    let big = digests.last().unwrap();

    proxy.arm(Fault::cut(big, 1 << 20));
    import_tag(&server, &repo, None)
        .await
        .assert_failed_with("Download");
    assert_eq!(proxy.fired(), 1);
    // The small layers below were complete: they are kept, active.
    let kept = images_of_type_docker(&server).await;
    assert!(kept.iter().all(|i| i["state"] == "active"), "{kept:#?}");
    assert_eq!(
        server
            .get_json(&format!("/images/{}", top_uuid(&image)))
            .await
            .0,
        404
    );
    assert_eq!(kept.len(), 2, "{kept:#?}");

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
        2,
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
    // The base layer is bad: no layer above it may be kept either.
    let base = &image.layers[0];
    registry.corrupt_blob(&base.digest).unwrap();

    import_tag(&server, &repo, None)
        .await
        .assert_failed_with("Download");
    assert!(images_of_type_docker(&server).await.is_empty());
    let digests = image.layer_digests();
    for n in 0..digests.len() {
        let uuid = rfd57_uuid(&digests[..=n]);
        assert_eq!(
            server
                .get(&format!("/images/{uuid}/file"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_in_the_middle_of_an_import_then_retry_completes() {
    if !tools_installed() {
        return;
    }
    let (_registry, proxy, repo, image) = behind_fault_proxy("fix/restart", 5, 4 << 20).await;
    let toml = docker_toml(&[proxy.host_port()]);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_in(dir.path(), &toml).await;

    let big = image.layers.last().unwrap().digest.clone();
    proxy.arm(Fault::throttle(
        &big,
        512 << 10,
        64 << 10,
        Duration::from_millis(100),
    ));
    let pulling = {
        let req = server.post(&import_path(&[("repo", &repo), ("tag", TAG)]));
        tokio::spawn(async move { req.send().await.map(|r| r.status()) })
    };
    for _ in 0..200 {
        if proxy.fired() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(proxy.fired(), 1, "the big layer was never requested");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop().await;
    pulling.abort();

    let server = TestServer::spawn_in(dir.path(), &toml).await;
    let left = images_of_type_docker(&server).await;
    assert!(left.iter().all(|i| i["state"] == "active"), "{left:#?}");
    import_tag(&server, &repo, None).await.assert_ok();
    assert_chain(&server, &image, &repo).await;
    assert_files_match(&server, &image).await;
}

// ---------------------------------------------------------------------------
// Push

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

// ---------------------------------------------------------------------------
// Validation (no registry is reached)

#[tokio::test]
async fn import_validation_errors() {
    let server = server_for(&["127.0.0.1:5000".to_string()]).await;
    let post = |query: &str| server.post(&format!("/images?action=import-docker-image{query}"));
    let answer =
        |req: reqwest::RequestBuilder| async move { status_json(req.send().await.unwrap()).await };

    let got = answer(post(&format!("&repo=fix/a&tag=latest&account={OWNER}"))).await;
    assert_error(&got, 403, "OperatorOnly", None);

    let got = answer(post("&tag=latest")).await;
    assert_error(&got, 422, "ValidationFailed", Some("missing parameters"));
    assert_eq!(
        got.1["errors"],
        json!([{"field": "repo", "code": "MissingParameter"}])
    );

    let got = answer(post("&repo=fix/a")).await;
    assert_error(&got, 422, "ValidationFailed", Some("missing parameters"));
    assert_eq!(
        got.1["errors"],
        json!([{"field": "tag", "code": "MissingParameter", "message": "one of \"tag\" or \"digest\" is required"}])
    );

    let digest = format!("sha256:{}", "a".repeat(64));
    let got = answer(post(&format!("&repo=fix/a&tag=latest&digest={digest}"))).await;
    assert_error(&got, 422, "ValidationFailed", Some("missing parameters"));
    assert_eq!(
        got.1["errors"],
        json!([{"field": "digest", "code": "Invalid", "message": "cannot specify both \"tag\" and \"digest\""}])
    );

    let got = answer(post("&repo=Foo&tag=latest")).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("invalid repository name, may only contain [a-z0-9_/.-] characters: Foo"),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "repo", "code": "Invalid"}])
    );

    let token = base64::engine::general_purpose::STANDARD.encode(r#"{"identitytoken":"abc"}"#);
    let got = answer(post("&repo=fix/a&tag=latest").header("x-registry-auth", token)).await;
    assert_error(
        &got,
        400,
        "NotImplemented",
        Some("OAuth to Docker registry is not yet supported, please \"docker logout\" and \"docker login\" and try again"),
    );

    let got = answer(post("&repo=fix/a&tag=latest&public=maybe")).await;
    assert_error(&got, 422, "InvalidParameter", None);
}

#[tokio::test]
async fn push_validation_errors() {
    let server = server_for(&["127.0.0.1:5000".to_string()]).await;
    let zone = server.publish(json!({})).await;
    let push = |uuid: String, repo_and_tag: &'static str, body: Value| {
        let req = server.post(&push_path(&uuid, repo_and_tag)).json(&body);
        async move { status_json(req.send().await.unwrap()).await }
    };

    let got = push(uuid_of(&zone), "127.0.0.1:5000/fix/a:tag", json!({})).await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("image is not a docker image"),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "type", "code": "Invalid"}])
    );

    let docker = server
        .publish(json!({"type": "docker", "os": "linux", "name": "docker-layer", "version": "0123456789ab"}))
        .await;
    let got = push(uuid_of(&docker), "Not A Repo:tag", json!({})).await;
    assert_error(&got, 422, "ValidationFailed", None);
    assert_eq!(got.1["errors"][0]["field"], "repoAndTag", "{}", got.1);
    assert_eq!(got.1["errors"][0]["code"], "Invalid", "{}", got.1);

    let got = push(
        uuid_of(&docker),
        "127.0.0.1:5000/fix/a:tag",
        json!({"manifest_str": "not json"}),
    )
    .await;
    assert_error(
        &got,
        422,
        "ValidationFailed",
        Some("JSON parse of manifest_str failed"),
    );
    assert_eq!(
        got.1["errors"],
        json!([{"field": "manifest_str", "code": "Invalid"}])
    );

    let unknown = "0ab9a8ee-5b7f-11e6-a1aa-9b1a2a1a9e25".to_string();
    assert_eq!(
        push(unknown, "127.0.0.1:5000/fix/a:tag", json!({})).await.0,
        404
    );
}
