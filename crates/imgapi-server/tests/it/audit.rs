//! The audit log of the real `imgapi` binary (its stderr): every line names
//! the verified caller, error answers included, and no credential of a URL
//! (user-info password, `token=`-like parameters, also inside an encoded
//! `source=`) reaches any log line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::RequestBuilder;
use serde_json::{json, Value};

use crate::auth::User;
use crate::remote_import::OPEN;
use crate::restart::{start, Proc};
use crate::support::*;

const SECRETS: &[&str] = &["SECRETPASS", "TOKENSECRET", "SIGSECRET", "CREDSECRET"];

/// The audit lines of these request ids, and every line read meanwhile.
pub(crate) fn read_audit(proc: &Proc, ids: &[&str]) -> (HashMap<String, Value>, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut audit, mut all) = (HashMap::new(), Vec::new());
    while ids.iter().any(|id| !audit.contains_key(*id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = proc.lines.recv_timeout(left) else {
            panic!(
                "audit lines missing; got {audit:?}\nlog:\n{}",
                all.join("\n")
            );
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v["target"] == "audit" {
                if let Some(id) = v["fields"]["req_id"].as_str() {
                    audit.insert(id.to_string(), v.clone());
                }
            }
        }
        all.push(line);
    }
    (audit, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_names_the_caller_and_never_logs_url_credentials() {
    let trent = User::new("trentm", 1);
    let keys_dir = tempfile::tempdir().unwrap();
    let seed = TestServer::spawn_with(&format!(
        "metrics_listen = \"127.0.0.1:0\"\nauth_type = \"signature\"\nauth_keys_dir = {:?}\n{OPEN}[auth_keys]\ntrentm = [{:?}]\n",
        keys_dir.path().display().to_string(),
        trent.public_line()
    ))
    .await;
    let config_toml = seed.config_toml.clone();
    let _keep = seed.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("imgapi.toml");
    std::fs::write(&config, &config_toml).unwrap();
    let mut proc = start(&config);
    let base = format!("http://{}", proc.addr);
    let client = reqwest::Client::new();
    let send = |rb: RequestBuilder, id: &str| {
        let rb = rb.header("x-request-id", id);
        async move { rb.send().await.unwrap().status().as_u16() }
    };

    let unknown = uuid::Uuid::new_v4();
    let status = send(
        trent.sign(client.get(format!("{base}/images/{unknown}"))),
        "signed-404",
    )
    .await;
    assert_eq!(status, 404);
    let status = send(
        trent.sign(
            client
                .post(format!("{base}/images"))
                .json(&json!({"name": 1})),
        ),
        "signed-422",
    )
    .await;
    assert_eq!(status, 422);
    let status = send(
        client.post(format!("{base}/images")).json(&manifest()),
        "unsigned-401",
    )
    .await;
    assert_eq!(status, 401);
    let status = send(
        client.get(format!(
            "{base}/images?name=x&token=TOKENSECRET&X-Amz-Signature=SIGSECRET&X-Amz-Credential=CREDSECRET"
        )),
        "anonymous-list",
    )
    .await;
    assert_eq!(status, 200);
    // import-remote from a source that refuses connections: the error
    // answer's cause names the source.
    let image = uuid::Uuid::new_v4();
    let status = send(
        trent.sign(client.post(format!(
            "{base}/images/{image}?action=import-remote&source=http%3A%2F%2Fbob%3ASECRETPASS%40127.0.0.1%3A1%2F%3Ftoken%3DTOKENSECRET"
        ))),
        "import-remote",
    )
    .await;
    assert!(status >= 400, "import-remote from a closed port: {status}");
    // The client's error message names the source too, without its secrets.
    let answer = trent
        .sign(client.post(format!(
            "{base}/images/{}?action=import-remote&source=http%3A%2F%2Fbob%3ASECRETPASS%40127.0.0.1%3A1%2F%3Ftoken%3DTOKENSECRET",
            uuid::Uuid::new_v4()
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in SECRETS {
        assert!(!answer.contains(secret), "{secret} answered: {answer}");
    }

    let (audit, all) = read_audit(
        &proc,
        &[
            "signed-404",
            "signed-422",
            "unsigned-401",
            "anonymous-list",
            "import-remote",
        ],
    );
    let _ = proc.child.kill();
    let _ = proc.child.wait();
    let field = |id: &str, name: &str| audit[id]["fields"][name].clone();
    assert_eq!(field("signed-404", "caller"), "trentm");
    assert_eq!(field("signed-404", "status"), 404);
    assert_eq!(field("signed-422", "caller"), "trentm");
    assert_eq!(field("import-remote", "caller"), "trentm");
    assert_eq!(field("unsigned-401", "caller"), "-");
    assert_eq!(field("anonymous-list", "caller"), "-");
    assert_eq!(
        field("anonymous-list", "url"),
        "/images?name=x&token=***&X-Amz-Signature=***&X-Amz-Credential=***"
    );
    assert_eq!(
        field("import-remote", "url"),
        format!(
            "/images/{image}?action=import-remote&source=http%3A%2F%2Fbob%3A***%40127.0.0.1%3A1%2F%3Ftoken%3D***"
        )
    );
    for line in &all {
        for secret in SECRETS {
            assert!(!line.contains(secret), "{secret} logged: {line}");
        }
    }
}
