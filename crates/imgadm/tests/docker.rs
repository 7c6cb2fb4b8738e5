//! `imgadm docker-import` and `imgadm docker-push` against a fake IMGAPI
//! (tests/common/fake_imgapi.rs) that answers canned message streams and
//! records what it was asked: the query, the body, and the registry
//! credentials in `x-registry-auth` / `x-registry-config`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/fake_imgapi.rs"]
mod fake_imgapi;
#[path = "common/tmux.rs"]
mod tmux;

use std::path::Path;

use assert_cmd::Command;
use base64::Engine as _;
use fake_imgapi::{FakeImgapi, Received, Reply};
use serde_json::{json, Value};

const REPO_ID: &str = "docker.io/busybox";
const TOP_UUID: &str = "4b5a8e44-2d6e-1f0a-5d8c-2a7c9d0e1f23";
const UUID: &str = "4b5a8e44-2d6e-1f0a-5d8c-2a7c9d0e1f23";
const SECRET: &str = "s3cret-Pa55";
const HUB_KEY: &str = "https://index.docker.io/v1/";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn layer(id: &str, status: &str) -> Value {
    json!({"type": "progress", "payload": {"id": id, "status": status}, "id": REPO_ID})
}

fn line(status: &str) -> Value {
    json!({"type": "status", "payload": {"status": status}, "id": REPO_ID})
}

/// What the server streams for a two-layer import, the base layer
/// already present.
fn import_messages() -> Vec<Value> {
    let a = "aaaaaaaaaaaa";
    let b = "bbbbbbbbbbbb";
    let pulling = |id: &str| json!({"type": "status", "payload": {"id": id, "progressDetail": {}, "status": "Pulling fs layer"}, "id": REPO_ID});
    let downloading = |current: u64| json!({"type": "progress", "payload": {"id": b, "status": "Downloading", "progressDetail": {"current": current, "total": 1048576, "start": 1700000000}}, "id": REPO_ID});
    vec![
        line("1.36: Pulling from busybox (req 9b7d0c1e)"),
        pulling(a),
        pulling(b),
        layer(a, "Already exists"),
        layer(b, "Pulling fs layer"),
        downloading(524289),
        downloading(1048576),
        layer(b, "Download complete"),
        layer(b, "Activating image"),
        layer(b, "Pull complete"),
        json!({"type": "create-docker-image", "config_digest": digest('c'), "head": true,
               "image": {"architecture": "amd64", "os": "linux"}, "image_uuid": TOP_UUID,
               "manifest_digest": digest('d'), "manifest_str": "{\"schemaVersion\":2}",
               "size": 2097152, "dockerImageVersion": "2.2", "id": REPO_ID}),
        line(&format!("Digest: {}", digest('d'))),
        line("Status: Downloaded newer image for busybox:1.36"),
    ]
}

/// The messages as the server writes them, cut into chunks of `size`
/// bytes: messages (and their `\r\n`) are split across chunks.
fn chunked(messages: &[Value], size: usize) -> Vec<String> {
    let text: String = messages.iter().map(|m| format!("{m}\r\n")).collect();
    text.as_bytes()
        .chunks(size)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect()
}

fn stream(messages: &[Value]) -> Reply {
    Reply::Stream {
        chunks: chunked(messages, 37),
        hold: false,
    }
}

/// imgadm against `server`, with no profile and no docker config but the
/// one the test writes.
fn imgadm(server: &FakeImgapi, home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("imgadm").unwrap();
    cmd.env("IMGAPI_URL", &server.url)
        .env("IMGADM_CONFIG_DIR", home.join(".imgadm"))
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("IMGAPI_CHANNEL")
        .env_remove("IMGAPI_USER")
        .env_remove("IMGADM_REGISTRY_USER")
        .env_remove("IMGADM_REGISTRY_PASSWORD");
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "a secret was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn write_docker_config(dir: &Path, config: &Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The JSON a credentials header carries.
fn header_json(request: &Received, name: &str) -> Option<Value> {
    let value = request.headers.get(name)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn import_shows_each_layer_then_digest_status_and_uuid() {
    let server = FakeImgapi::start(stream(&import_messages()));
    let home = tempfile::tempdir().unwrap();
    write_docker_config(
        &home.path().join(".docker"),
        &json!({"auths": {HUB_KEY: {"auth": b64(&format!("hubuser:{SECRET}"))},
                          "other.example.com": {"auth": b64("x:y")}}}),
    );
    let r = run(imgadm(&server, home.path()).args(["docker-import", "busybox:1.36"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = format!(
        "1.36: Pulling from busybox (req 9b7d0c1e)\n\
         aaaaaaaaaaaa: Pulling fs layer\n\
         bbbbbbbbbbbb: Pulling fs layer\n\
         aaaaaaaaaaaa: Already exists\n\
         bbbbbbbbbbbb: Downloading 512.00 KiB/1.00 MiB\n\
         bbbbbbbbbbbb: Download complete\n\
         bbbbbbbbbbbb: Activating image\n\
         bbbbbbbbbbbb: Pull complete\n\
         Digest: {}\n\
         Status: Downloaded newer image for busybox:1.36\n\
         Image UUID: {TOP_UUID}\n",
        digest('d')
    );
    assert_eq!(r.stdout, expected);
    assert_eq!(r.stderr, "");

    let request = server.only_request();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/images")
    );
    assert_eq!(
        request.query,
        [
            ("action", "import-docker-image"),
            ("repo", "busybox"),
            ("tag", "1.36")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    let auth = json!({"username": "hubuser", "password": SECRET, "serveraddress": HUB_KEY});
    assert_eq!(header_json(&request, "x-registry-auth"), Some(auth.clone()));
    assert_eq!(
        header_json(&request, "x-registry-config"),
        Some(json!({ HUB_KEY: auth }))
    );
    assert!(request.body.is_empty());
}

#[test]
fn import_json_prints_every_message_as_sent() {
    let mut messages = import_messages();
    messages.insert(
        3,
        json!({"type": "future-kind", "payload": {"z": 1, "a": [true]}, "id": REPO_ID}),
    );
    let server = FakeImgapi::start(Reply::Stream {
        chunks: chunked(&messages, 1),
        hold: false,
    });
    let home = tempfile::tempdir().unwrap();
    let reference = format!("127.0.0.1:5000/fix/alpine@{}", digest('e'));
    let r = run(imgadm(&server, home.path())
        .args([
            "-j",
            "--channel",
            "dev",
            "docker-import",
            &reference,
            "--no-public",
        ])
        .args(["--registry-user", "bob", "--registry-password-stdin"])
        .write_stdin(format!("{SECRET}\n")));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let printed: Vec<String> = r.stdout.lines().map(str::to_string).collect();
    let sent: Vec<String> = messages.iter().map(Value::to_string).collect();
    assert_eq!(printed, sent);

    let request = server.only_request();
    assert_eq!(request.param("repo"), Some("127.0.0.1:5000/fix/alpine"));
    assert_eq!(request.param("digest"), Some(digest('e').as_str()));
    assert_eq!(request.param("tag"), None);
    assert_eq!(request.param("public"), Some("false"));
    assert_eq!(request.param("channel"), Some("dev"));
    assert_eq!(
        header_json(&request, "x-registry-auth"),
        Some(json!({"username": "bob", "password": SECRET, "serveraddress": "127.0.0.1:5000"}))
    );
}

#[test]
fn import_error_message_is_the_exit_status() {
    let home = tempfile::tempdir().unwrap();
    for (code, exit) in [
        ("ResourceNotFound", 3),
        ("Unauthorized", 1),
        ("Download", 1),
    ] {
        let mut messages = import_messages()[..6].to_vec();
        messages.push(json!({"type": "error", "id": REPO_ID,
                             "error": {"code": code, "message": "it went wrong"}}));
        let server = FakeImgapi::start(stream(&messages));
        let r = run(imgadm(&server, home.path()).args(["docker-import", "--public", "busybox"]));
        assert_eq!(r.code, exit, "{code}: {}", r.stderr);
        assert_eq!(r.stderr, format!("imgadm: error ({code}): it went wrong\n"));
        assert!(
            r.stdout.contains("aaaaaaaaaaaa: Already exists\n"),
            "{}",
            r.stdout
        );
        assert!(!r.stdout.contains("Image UUID"));
        let request = server.only_request();
        assert_eq!(request.param("tag"), Some("latest"));
        assert_eq!(request.param("public"), Some("true"));
        // No credentials anywhere: anonymous.
        assert_eq!(request.headers.get("x-registry-auth"), None);
    }
}

#[test]
fn import_http_errors_before_the_stream() {
    let home = tempfile::tempdir().unwrap();
    let body = json!({"code": "ValidationFailed", "message": "invalid repository name, may only contain [a-z0-9_/.-] characters: Foo",
                      "errors": [{"field": "repo", "code": "Invalid"}]});
    let server = FakeImgapi::start(Reply::Error(422, body.to_string()));
    let r = run(imgadm(&server, home.path()).args(["docker-import", "Foo"]));
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "imgadm: error (ValidationFailed): invalid repository name, may only contain [a-z0-9_/.-] characters: Foo\n    repo: Invalid\n",
        "the field-level errors[] under the error line (its code: no message)"
    );
    let body = json!({"code": "ResourceNotFound", "message": "no such image"});
    let server = FakeImgapi::start(Reply::Error(404, body.to_string()));
    let r = run(imgadm(&server, home.path()).args(["docker-push", UUID, "reg.example.com/app:1"]));
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[test]
fn a_stream_cut_or_without_result_fails() {
    let home = tempfile::tempdir().unwrap();
    let mut chunks = chunked(&import_messages()[..4], 50);
    chunks.push("{\"type\":\"progress\",\"pay".to_string());
    let server = FakeImgapi::start(Reply::Stream {
        chunks,
        hold: false,
    });
    let r = run(imgadm(&server, home.path()).args(["docker-import", "busybox"]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("ends in the middle of a message"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("the server may still be importing busybox:latest"),
        "{}",
        r.stderr
    );

    let server = FakeImgapi::start(stream(&import_messages()[..4]));
    let r = run(imgadm(&server, home.path()).args(["docker-import", "busybox"]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("without the imported image"),
        "{}",
        r.stderr
    );
}

fn push_messages() -> Vec<Value> {
    let req = "c0ffee00-0000-4000-8000-000000000001";
    let p = |payload: Value| json!({"type": "progress", "payload": payload, "id": req});
    vec![
        p(json!({"id": "aaaaaaaaaaaa", "progressDetail": {}, "status": "Preparing"})),
        p(json!({"id": "bbbbbbbbbbbb", "progressDetail": {}, "status": "Preparing"})),
        p(json!({"id": "aaaaaaaaaaaa", "progressDetail": {}, "status": "Layer already exists"})),
        p(
            json!({"id": "bbbbbbbbbbbb", "progressDetail": {"current": 3145728, "total": 6291456}, "status": "Pushing"}),
        ),
        p(
            json!({"id": "bbbbbbbbbbbb", "progressDetail": {"current": 6291456, "total": 6291456}, "status": "Pushing"}),
        ),
        p(json!({"id": "bbbbbbbbbbbb", "progressDetail": {}, "status": "Pushed"})),
        p(json!({"status": format!("1.0: digest: {} size: 739", digest('f'))})),
        p(json!({"progressDetail": {}, "aux": {"Tag": "1.0", "Digest": digest('f'), "Size": 739}})),
    ]
}

#[test]
fn push_shows_each_layer_and_sends_env_credentials_over_the_config_file() {
    let server = FakeImgapi::start(stream(&push_messages()));
    let home = tempfile::tempdir().unwrap();
    let docker_dir = home.path().join("elsewhere");
    write_docker_config(
        &docker_dir,
        &json!({"auths": {"reg.example.com:5000": {"auth": b64("fileuser:filepw")}}}),
    );
    let r = run(imgadm(&server, home.path())
        .env("DOCKER_CONFIG", &docker_dir)
        .env("IMGADM_REGISTRY_USER", "envuser")
        .env("IMGADM_REGISTRY_PASSWORD", SECRET)
        .args(["docker-push", UUID, "reg.example.com:5000/team/app:1.0"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "aaaaaaaaaaaa: Preparing\n\
             bbbbbbbbbbbb: Preparing\n\
             aaaaaaaaaaaa: Layer already exists\n\
             bbbbbbbbbbbb: Pushing 3.00 MiB/6.00 MiB\n\
             bbbbbbbbbbbb: Pushed\n\
             1.0: digest: {} size: 739\n",
            digest('f')
        )
    );
    let request = server.only_request();
    assert_eq!(request.path, format!("/images/{UUID}/push"));
    assert_eq!(
        request.query,
        vec![(
            "repoAndTag".to_string(),
            "reg.example.com:5000/team/app:1.0".to_string()
        )]
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({})
    );
    assert_eq!(
        header_json(&request, "x-registry-auth"),
        Some(
            json!({"username": "envuser", "password": SECRET, "serveraddress": "reg.example.com:5000"})
        )
    );

    // Without the environment, the file named by $DOCKER_CONFIG is used.
    let server = FakeImgapi::start(stream(&push_messages()));
    let r = run(imgadm(&server, home.path())
        .env("DOCKER_CONFIG", &docker_dir)
        .args([
            "-j",
            "docker-push",
            UUID,
            "reg.example.com:5000/team/app:1.0",
        ]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), push_messages().len());
    assert_eq!(
        header_json(&server.only_request(), "x-registry-auth"),
        Some(
            json!({"username": "fileuser", "password": "filepw", "serveraddress": "reg.example.com:5000"})
        )
    );
}

#[test]
fn push_without_result_fails() {
    let home = tempfile::tempdir().unwrap();
    let server = FakeImgapi::start(stream(&push_messages()[..6]));
    let r = run(imgadm(&server, home.path()).args(["docker-push", UUID, "reg.example.com/app"]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("without the pushed manifest"),
        "{}",
        r.stderr
    );
    assert_eq!(
        server.only_request().param("repoAndTag"),
        Some("reg.example.com/app:latest")
    );
}

#[test]
fn credential_stores_are_warned_about_and_skipped() {
    let server = FakeImgapi::start(stream(&import_messages()));
    let home = tempfile::tempdir().unwrap();
    write_docker_config(
        &home.path().join(".docker"),
        &json!({"auths": {HUB_KEY: {}}, "credsStore": "desktop"}),
    );
    let r = run(imgadm(&server, home.path()).args(["docker-import", "busybox:1.36"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("imgadm: warning: ") && r.stderr.contains("docker-credential-desktop"),
        "{}",
        r.stderr
    );
    assert_eq!(server.only_request().headers.get("x-registry-auth"), None);
}

#[test]
fn usage_errors_send_nothing() {
    let server = FakeImgapi::start(stream(&import_messages()));
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["docker-import", "busybox:-bad"],
        vec!["docker-import", "busybox@md5"],
        vec![
            "docker-push",
            UUID,
            &"reg.example.com/app@sha256:0123456789abcdef0123456789abcdef",
        ],
        vec!["docker-import", "busybox", "--registry-user", "u"],
    ] {
        let r = run(imgadm(&server, home.path()).args(&args));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    // --registry-password-stdin needs a user.
    let r = run(imgadm(&server, home.path()).args([
        "docker-import",
        "busybox",
        "--registry-password-stdin",
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(server.request_count(), 0);
}

/// Ctrl-C while the server streams: imgadm says how far the server got
/// and that it goes on.
#[cfg(unix)]
#[test]
fn ctrl_c_says_what_was_done() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let server = FakeImgapi::start(Reply::Stream {
        chunks: chunked(&import_messages()[..6], 64),
        hold: true,
    });
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_imgadm"))
        .env("IMGAPI_URL", &server.url)
        .env("IMGADM_CONFIG_DIR", home.path().join(".imgadm"))
        .env("HOME", home.path())
        .env_remove("DOCKER_CONFIG")
        .env_remove("IMGADM_REGISTRY_USER")
        .args(["docker-import", "busybox:1.36"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("bbbbbbbbbbbb: Downloading") {
        let mut l = String::new();
        assert!(
            stdout.read_line(&mut l).unwrap() > 0,
            "stdout ended: {seen}"
        );
        seen.push_str(&l);
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(
        stderr,
        "imgadm: error: interrupted: the server goes on importing busybox:1.36 \
         (1 of the 2 layers seen were imported so far); run the same command again to follow it\n"
    );
}

/// In a terminal each layer has one line, redrawn in place: what stays on
/// the screen is `docker pull`'s picture.
#[cfg(unix)]
#[test]
fn a_terminal_shows_one_line_per_layer() {
    use tmux::{sh_quote, Tmux};

    if !Tmux::available() {
        eprintln!("SKIP: tmux not installed");
        return;
    }
    let server = FakeImgapi::start(stream(&import_messages()));
    let home = tempfile::tempdir().unwrap();
    let home_dir = home.path().to_str().unwrap();
    let script = format!(
        "env -u DOCKER_CONFIG -u IMGADM_REGISTRY_USER -u IMGADM_REGISTRY_PASSWORD -u IMGAPI_CHANNEL \
         HOME={} IMGADM_CONFIG_DIR={} IMGAPI_URL={} {} docker-import busybox:1.36; \
         echo EXIT=$?; exec sleep 3600",
        sh_quote(home_dir),
        sh_quote(&format!("{home_dir}/.imgadm")),
        sh_quote(&server.url),
        sh_quote(env!("CARGO_BIN_EXE_imgadm")),
    );
    let tmux = Tmux::start(&script);
    let screen = tmux.wait_for("the import to end", |s| s.contains("EXIT="));
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let digest_line = format!("Digest: {}", digest('d'));
    let uuid_line = format!("Image UUID: {TOP_UUID}");
    assert_eq!(
        lines,
        [
            "1.36: Pulling from busybox (req 9b7d0c1e)",
            "aaaaaaaaaaaa: Already exists",
            "bbbbbbbbbbbb: Pull complete",
            digest_line.as_str(),
            "Status: Downloaded newer image for busybox:1.36",
            uuid_line.as_str(),
            "EXIT=0",
        ],
        "{screen}"
    );
}
