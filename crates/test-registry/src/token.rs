//! A token issuer of the test's own for distribution's `auth.token`: the
//! Bearer flow Docker Hub uses. Tokens are RS256 JWTs whose header carries
//! `x5c` (the self-signed certificate the registry trusts) and whose
//! `access` claim grants only what the user is allowed, so a registry
//! answers `insufficient_scope` for the rest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::background::Background;
use crate::Error;

const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-token-issuer";
const TOKEN_LIFETIME_SECS: u64 = 300;

/// What one user (or anonymous callers) may do on repositories matching a
/// pattern: an exact name, a prefix ending in `*`, or `*` for all.
#[derive(Clone, Debug)]
pub struct Grant {
    pub repo_pattern: String,
    pub actions: Vec<String>,
}

impl Grant {
    pub fn new(repo_pattern: &str, actions: &[&str]) -> Grant {
        Grant {
            repo_pattern: repo_pattern.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn matches(&self, repo: &str) -> bool {
        match self.repo_pattern.strip_suffix('*') {
            Some(prefix) => repo.starts_with(prefix),
            None => repo == self.repo_pattern,
        }
    }
}

/// A user the issuer knows, with the password Basic credentials must carry.
#[derive(Clone, Debug)]
pub struct TokenUser {
    pub name: String,
    pub password: String,
    pub grants: Vec<Grant>,
}

impl TokenUser {
    pub fn new(name: &str, password: &str, grants: Vec<Grant>) -> TokenUser {
        TokenUser {
            name: name.to_string(),
            password: password.to_string(),
            grants,
        }
    }
}

/// One `GET /token` the issuer received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub service: Option<String>,
    pub account: Option<String>,
    /// Every `scope` parameter, in order.
    pub scopes: Vec<String>,
    /// The user of the Basic credentials, if any were sent.
    pub basic_user: Option<String>,
    /// False when the credentials were wrong (answered 401).
    pub accepted: bool,
}

struct IssuerState {
    users: Vec<TokenUser>,
    anonymous: Vec<Grant>,
    key: EncodingKey,
    cert_der_base64: String,
    requests: Mutex<Vec<TokenRequest>>,
}

/// The running issuer; stops when dropped.
pub struct TokenIssuer {
    realm: String,
    cert_path: PathBuf,
    state: Arc<IssuerState>,
    _server: Background,
    _keys: TempDir,
}

impl TokenIssuer {
    /// Generates a key and self-signed certificate with `openssl` and starts
    /// answering `GET /token` on a free port. `anonymous` is what a request
    /// without credentials is granted.
    pub fn start(users: Vec<TokenUser>, anonymous: Vec<Grant>) -> Result<TokenIssuer, Error> {
        let keys = tempfile::tempdir().map_err(Error::io("create a key dir"))?;
        let (key_path, cert_path) = generate_key_and_cert(keys.path())?;
        let key_pem = std::fs::read(&key_path).map_err(Error::io("read the issuer key"))?;
        let cert_pem =
            std::fs::read_to_string(&cert_path).map_err(Error::io("read the issuer cert"))?;
        let key = EncodingKey::from_rsa_pem(&key_pem).map_err(Error::other)?;
        let state = Arc::new(IssuerState {
            users,
            anonymous,
            key,
            cert_der_base64: pem_body(&cert_pem),
            requests: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(Error::io("bind the token issuer"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("token issuer address"))?;
        let router = Router::new()
            .route("/token", get(issue))
            .with_state(state.clone());
        let server = Background::spawn(listener, move |listener, shutdown| async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = shutdown.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("test-registry: token issuer: {e}");
            }
        })?;
        Ok(TokenIssuer {
            realm: format!("http://{addr}/token"),
            cert_path,
            state,
            _server: server,
            _keys: keys,
        })
    }

    /// The URL distribution sends clients to (`realm` of its challenge).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn service(&self) -> &str {
        SERVICE
    }

    pub fn issuer(&self) -> &str {
        ISSUER
    }

    /// The PEM certificate the registry's `rootcertbundle` must name.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The token requests received so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.recorded().clone()
    }

    pub fn clear_requests(&self) {
        self.recorded().clear();
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, Vec<TokenRequest>> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn generate_key_and_cert(dir: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let key = dir.join("key.pem");
    let cert = dir.join("cert.pem");
    // PKCS#1 ("traditional"): the form jsonwebtoken's RSA signer reads.
    run_openssl(&["genrsa", "-traditional", "-out", path_str(&key)?, "2048"])?;
    run_openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        path_str(&key)?,
        "-subj",
        "/CN=test-token-issuer",
        "-days",
        "2",
        "-out",
        path_str(&cert)?,
    ])?;
    Ok((key, cert))
}

fn path_str(path: &Path) -> Result<&str, Error> {
    path.to_str()
        .ok_or_else(|| Error::other(format!("non-UTF-8 path {}", path.display())))
}

fn run_openssl(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .map_err(Error::io("run openssl"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        command: format!("openssl {}", args.join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The base64 body of a one-block PEM: the DER in standard base64, which is
/// what `x5c` carries.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

async fn issue(
    State(state): State<Arc<IssuerState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut request = TokenRequest {
        service: None,
        account: None,
        scopes: Vec::new(),
        basic_user: None,
        accepted: false,
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "service" => request.service = Some(v.into_owned()),
            "account" => request.account = Some(v.into_owned()),
            "scope" => request.scopes.push(v.into_owned()),
            _ => {}
        }
    }
    let credentials = basic_credentials(&headers);
    request.basic_user = credentials.as_ref().map(|(user, _)| user.clone());
    let grants = match &credentials {
        None => Some(state.anonymous.as_slice()),
        Some((user, password)) => state
            .users
            .iter()
            .find(|u| &u.name == user && &u.password == password)
            .map(|u| u.grants.as_slice()),
    };
    request.accepted = grants.is_some();
    let scopes = request.scopes.clone();
    let subject = request.basic_user.clone().unwrap_or_default();
    state
        .requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    let Some(grants) = grants else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"details":"incorrect username or password"}"#,
        )
            .into_response();
    };
    match sign(&state, &subject, access(grants, &scopes)) {
        Ok(token) => {
            let body =
                json!({"token": token, "access_token": token, "expires_in": TOKEN_LIFETIME_SECS});
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The `access` claim: for each `repository:NAME:ACTIONS` scope, the asked
/// actions the grants allow (possibly none).
fn access(grants: &[Grant], scopes: &[String]) -> Vec<Value> {
    scopes
        .iter()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let allowed: Vec<&str> = actions
                .split(',')
                .filter(|action| {
                    grants.iter().any(|g| {
                        g.matches(name) && g.actions.iter().any(|a| a == action || a == "*")
                    })
                })
                .collect();
            Some(json!({"type": kind, "name": name, "actions": allowed}))
        })
        .collect()
}

fn sign(state: &IssuerState, subject: &str, access: Vec<Value>) -> Result<String, Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Error::other)?
        .as_secs();
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + TOKEN_LIFETIME_SECS,
        "nbf": now.saturating_sub(60),
        "iat": now,
        "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.x5c = Some(vec![state.cert_der_base64.clone()]);
    jsonwebtoken::encode(&header, &claims, &state.key).map_err(Error::other)
}
