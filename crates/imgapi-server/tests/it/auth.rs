//! HTTP Signature auth in public mode (api.md §1.5, UC2): what anonymous
//! callers may do, signed writes, key reload.

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::RequestBuilder;
use serde_json::json;

use crate::support::*;

pub(crate) struct User {
    pub(crate) name: &'static str,
    key: SigningKey,
}

impl User {
    pub(crate) fn new(name: &'static str, seed: u8) -> Self {
        User {
            name,
            key: SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// The OpenSSH public key line of this user's key.
    pub(crate) fn public_line(&self) -> String {
        let mut blob = Vec::new();
        for part in [
            b"ssh-ed25519".as_slice(),
            self.key.verifying_key().as_bytes(),
        ] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        format!(
            "ssh-ed25519 {} {}@test",
            base64::engine::general_purpose::STANDARD.encode(blob),
            self.name
        )
    }

    pub(crate) fn sign(&self, rb: RequestBuilder) -> RequestBuilder {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let sig = self.key.sign(format!("date: {date}").as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
        rb.header("date", date).header(
            "authorization",
            format!(
                "Signature keyId=\"{}\",algorithm=\"ed25519\",signature=\"{b64}\"",
                self.name
            ),
        )
    }
}

async fn signed_server(users: &[&User], keys_dir: &std::path::Path) -> TestServer {
    let mut toml = format!(
        "auth_type = \"signature\"\nauth_keys_dir = {:?}\n[auth_keys]\n",
        keys_dir.display().to_string()
    );
    for u in users {
        toml.push_str(&format!("{} = [{:?}]\n", u.name, u.public_line()));
    }
    TestServer::spawn_with(&toml).await
}

#[tokio::test]
async fn public_mode_with_signatures_uc2() {
    let trent = User::new("trentm", 1);
    let mallory = User::new("mallory", 2);
    let keys_dir = tempfile::tempdir().unwrap();
    let s = signed_server(&[&trent], keys_dir.path()).await;

    // Unsigned writes: 401.
    let got = s.post_json("/images", &manifest()).await;
    assert_eq!(
        got,
        (
            401,
            json!({"code": "UnauthorizedError", "message": "Unauthorized"})
        )
    );
    // A signature by an unknown user: 401.
    let resp = mallory
        .sign(s.post("/images"))
        .json(&manifest())
        .send()
        .await
        .unwrap();
    assert_error(
        &status_json(resp).await,
        401,
        "UnauthorizedError",
        Some("Unauthorized"),
    );
    // Signed publish works.
    let resp = trent
        .sign(s.post("/images"))
        .json(&manifest())
        .send()
        .await
        .unwrap();
    let (status, img) = status_json(resp).await;
    assert_eq!(status, 200, "{img}");
    let uuid = uuid_of(&img);
    let resp = trent
        .sign(s.put(&format!("/images/{uuid}/file?compression=bzip2")))
        .body(vec![3u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Unactivated: anonymous listing does not show it, even with state=all.
    assert_eq!(s.get_json("/images?state=all").await, (200, json!([])));
    let resp = trent
        .sign(s.post(&format!("/images/{uuid}?action=activate")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Anonymous reads of active images, files.
    let (_, list) = s.get_json("/images").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        s.get(&format!("/images/{uuid}/file"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(s.get_json("/images?state=disabled").await, (200, json!([])));
    let got = s.get_json("/images?inclAdminFields=true").await;
    assert_error(
        &got,
        401,
        "UnauthorizedError",
        Some("Unauthorized (auth required to use \"inclAdminFields\" parameter)"),
    );
    let resp = trent
        .sign(s.get("/images?inclAdminFields=true"))
        .send()
        .await
        .unwrap();
    let (status, list) = status_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["files"][0]["stor"], expected_stor());
    // Ping: anonymous exactly three keys; signed adds pid and user.
    let (_, ping) = s.get_json("/ping").await;
    assert_eq!(
        ping,
        json!({"ping": "pong", "version": "4.11.0", "imgapi": true})
    );
    let resp = trent.sign(s.get("/ping")).send().await.unwrap();
    let (_, ping) = status_json(resp).await;
    assert_eq!(ping["user"], "trentm");
    assert!(ping["pid"].is_number());
    // A bad signature on a passive route is refused, not ignored.
    let resp = mallory.sign(s.get("/ping")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // Unsigned update / delete: 401, and nothing changed.
    let got = s
        .post_json(
            &format!("/images/{uuid}?action=update"),
            &json!({"description": "x"}),
        )
        .await;
    assert_eq!(got.0, 401);
    assert_eq!(
        s.delete(&format!("/images/{uuid}"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let (_, img) = s.get_json(&format!("/images/{uuid}")).await;
    assert!(img.get("description").is_none());
    // Auth-none routes ignore even a bad header.
    let resp = mallory
        .sign(s.get(&format!("/images/{uuid}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn reload_picks_up_new_keys_without_restart() {
    let trent = User::new("trentm", 1);
    let newbie = User::new("newbie", 3);
    let keys_dir = tempfile::tempdir().unwrap();
    let s = signed_server(&[&trent], keys_dir.path()).await;
    let resp = newbie.sign(s.get("/ping")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    std::fs::write(
        keys_dir.path().join("newbie.keys"),
        format!("# newbie's laptop\n\n{}\n", newbie.public_line()),
    )
    .unwrap();
    let resp = s.post("/authkeys/reload").send().await.unwrap();
    assert_eq!(resp.status(), 401, "reload itself needs auth");
    let resp = trent.sign(s.post("/authkeys/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = newbie.sign(s.get("/ping")).send().await.unwrap();
    let (status, ping) = status_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(ping["user"], "newbie");
}

#[tokio::test]
async fn stale_dates_are_refused() {
    let trent = User::new("trentm", 1);
    let keys_dir = tempfile::tempdir().unwrap();
    let s = signed_server(&[&trent], keys_dir.path()).await;
    let date =
        httpdate::fmt_http_date(std::time::SystemTime::now() - std::time::Duration::from_secs(600));
    let sig = trent.key.sign(format!("date: {date}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
    let resp = s
        .get("/ping")
        .header("date", date)
        .header(
            "authorization",
            format!("Signature keyId=\"trentm\",algorithm=\"ed25519\",signature=\"{b64}\""),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 401);
    assert!(
        body["message"].as_str().unwrap().contains("clock skew"),
        "{body}"
    );
}
