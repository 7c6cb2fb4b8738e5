//! Which credentials a docker import or push sends to the registry:
//! `--registry-user` (or `$IMGADM_REGISTRY_USER`) with a password given
//! on stdin or in `$IMGADM_REGISTRY_PASSWORD`; else what `docker login`
//! stored in the docker CLI's `config.json`; else none (anonymous).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use imgapi_client::docker::DOCKER_HUB_AUTH_KEY;
use imgapi_client::RegistryAuth;
use serde_json::Value;

use crate::cli::RegistryLoginArgs;
use crate::commands::Failure;
use crate::docker_ref::DOCKER_HUB;

/// The environment variable holding the registry password.
pub const PASSWORD_ENV: &str = "IMGADM_REGISTRY_PASSWORD";

/// Credentials found, and what the user should know about the search.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub auth: Option<RegistryAuth>,
    /// Printed as `imgadm: warning: …` (never a secret).
    pub warnings: Vec<String>,
}

/// The key docker's config uses for `registry`, and the `serveraddress`
/// sent with its credentials.
pub fn auth_key(registry: &str) -> String {
    if is_docker_hub(registry) {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        DOCKER_HUB | "index.docker.io" | "registry-1.docker.io"
    )
}

/// Credentials given on the command line or in the environment.
pub fn from_user(registry: &str, username: &str, password: String) -> RegistryAuth {
    RegistryAuth {
        username: username.to_string(),
        password,
        serveraddress: Some(auth_key(registry)),
    }
}

/// What the command line and the environment gave.
#[derive(Debug, Default)]
pub struct Given {
    /// `--registry-user` / `$IMGADM_REGISTRY_USER`.
    pub user: Option<String>,
    /// From stdin, `$IMGADM_REGISTRY_PASSWORD` or a prompt.
    pub password: Option<String>,
}

/// The credentials for `registry` from the command line, the environment
/// (`$IMGADM_REGISTRY_PASSWORD`, `$DOCKER_CONFIG`, `$HOME`) and the docker
/// config file. Without a password for a user given, one is asked on the
/// terminal when stdin is one.
pub fn from_command_line(login: &RegistryLoginArgs, registry: &str) -> Result<Found, Failure> {
    use std::io::{IsTerminal as _, Read as _};

    let user = login.registry_user.clone().filter(|u| !u.is_empty());
    let password = if login.registry_password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::usage(format!("cannot read the registry password from stdin: {e}"))
        })?;
        let password = text.strip_suffix('\n').unwrap_or(&text);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            return Err(Failure::usage("--registry-password-stdin: stdin is empty"));
        }
        Some(password.to_string())
    } else {
        match std::env::var_os(PASSWORD_ENV) {
            Some(p) => Some(
                p.into_string()
                    .map_err(|_| Failure::usage(format!("{PASSWORD_ENV} is not valid UTF-8")))?,
            ),
            None => None,
        }
    };
    let password = match (&user, password) {
        (Some(user), None) if std::io::stdin().is_terminal() => Some(
            rpassword::prompt_password(format!("Password for {user} at {registry}: "))
                .map_err(|e| Failure::usage(format!("cannot read the registry password: {e}")))?,
        ),
        (_, password) => password,
    };
    let docker_config = docker_config_path(
        std::env::var_os("DOCKER_CONFIG").as_deref().map(Path::new),
        std::env::var_os("HOME").as_deref().map(Path::new),
    );
    resolve(Given { user, password }, registry, docker_config.as_deref()).map_err(Failure::usage)
}

/// The credentials for `registry`: the user given (who then needs a
/// password), else those in the docker config file at `docker_config`.
pub fn resolve(
    given: Given,
    registry: &str,
    docker_config: Option<&Path>,
) -> Result<Found, String> {
    match (given.user.filter(|u| !u.is_empty()), given.password) {
        (Some(user), Some(password)) => Ok(Found {
            auth: Some(from_user(registry, &user, password)),
            warnings: Vec::new(),
        }),
        (Some(user), None) => Err(format!(
            "no password for registry user {user}: give it on stdin with \
             --registry-password-stdin or in ${PASSWORD_ENV}"
        )),
        (None, _) => Ok(docker_config
            .map(|path| from_docker_config(path, registry))
            .unwrap_or_default()),
    }
}

/// The docker CLI's config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json` (`None` without either variable).
pub fn docker_config_path(docker_config: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    match (docker_config, home) {
        (Some(dir), _) => Some(dir.join("config.json")),
        (None, Some(home)) => Some(home.join(".docker").join("config.json")),
        (None, None) => None,
    }
}

/// The credentials for `registry` in the docker config file at `path`. A
/// missing file means none; a file that cannot be read or parsed is
/// warned about and ignored, so that public images still import.
pub fn from_docker_config(path: &Path, registry: &str) -> Found {
    match std::fs::read_to_string(path) {
        Ok(text) => lookup(&text, registry, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Found::default(),
        Err(e) => warn(format!(
            "cannot read {}: {e}; continuing without registry credentials",
            path.display()
        )),
    }
}

fn warn(message: String) -> Found {
    Found {
        auth: None,
        warnings: vec![message],
    }
}

/// Look `registry` up in the text of a docker config file named `file`.
pub fn lookup(text: &str, registry: &str, file: &str) -> Found {
    let config: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return warn(format!(
                "{file} is not valid JSON ({e}); continuing without registry credentials"
            ))
        }
    };
    let anonymous = "imgadm cannot ask credential helpers: continuing without registry \
                     credentials (give them with --registry-user)";
    if let Some(helper) = config
        .get("credHelpers")
        .and_then(|h| h.get(auth_key(registry)).or_else(|| h.get(registry)))
        .and_then(Value::as_str)
    {
        return warn(format!(
            "{file}: the credentials for {registry} are kept by the credential helper \
             docker-credential-{helper} (credHelpers); {anonymous}"
        ));
    }
    let entry = find_entry(&config, registry);
    match entry.map(|(key, entry)| credentials(key, entry)) {
        Some(Ok(Some(auth))) => Found {
            auth: Some(auth),
            warnings: Vec::new(),
        },
        Some(Err(why)) => warn(format!(
            "{file}: {why} for {registry}; continuing without registry credentials"
        )),
        Some(Ok(None)) | None => match config.get("credsStore").and_then(Value::as_str) {
            Some(store) => warn(format!(
                "{file}: credentials are kept by the credential store \
                 docker-credential-{store} (credsStore), not in the file; {anonymous}"
            )),
            None => Found::default(),
        },
    }
}

/// The `auths` entry for `registry`: its own key first, else a key naming
/// the same host with a scheme or path (`https://host/v1/`).
fn find_entry<'a>(config: &'a Value, registry: &str) -> Option<(&'a str, &'a Value)> {
    let auths = config.get("auths")?.as_object()?;
    let key = auth_key(registry);
    if let Some((key, entry)) = auths.get_key_value(&key) {
        return Some((key.as_str(), entry));
    }
    let same_host =
        |host: &str| host == registry || (is_docker_hub(registry) && is_docker_hub(host));
    auths
        .iter()
        .find(|(k, _)| same_host(host_of(k)))
        .map(|(k, v)| (k.as_str(), v))
}

/// `https://host:port/v1/` → `host:port`.
fn host_of(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// The credentials of one `auths` entry: `auth` (base64 of `user:pass`),
/// else `username` and `password`. `Ok(None)` when it holds neither (what
/// `docker login` leaves when a credential store keeps them).
fn credentials(key: &str, entry: &Value) -> Result<Option<RegistryAuth>, String> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (username, password) = if let Some(auth) = field("auth") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or("the \"auth\" entry is not base64 of USER:PASSWORD")?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or("the \"auth\" entry is not base64 of USER:PASSWORD")?;
        (user.to_string(), pass.to_string())
    } else if let (Some(user), Some(pass)) = (field("username"), field("password")) {
        (user.to_string(), pass.to_string())
    } else if field("identitytoken").is_some() {
        return Err("an identity token (OAuth) is not supported".to_string());
    } else {
        return Ok(None);
    };
    Ok(Some(RegistryAuth {
        username,
        password,
        serveraddress: Some(key.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn user_of(found: &Found) -> Option<(&str, &str, Option<&str>)> {
        found.auth.as_ref().map(|a| {
            (
                a.username.as_str(),
                a.password.as_str(),
                a.serveraddress.as_deref(),
            )
        })
    }

    #[test]
    fn docker_hub_uses_the_index_key() {
        let text = json!({"auths": {
            "https://index.docker.io/v1/": {"auth": b64("hub:pw:with:colons")},
            "reg.example.com:5000": {"auth": b64("reg:pw")}
        }})
        .to_string();
        let found = lookup(&text, "docker.io", "cfg");
        assert_eq!(
            user_of(&found),
            Some(("hub", "pw:with:colons", Some(DOCKER_HUB_AUTH_KEY)))
        );
        assert!(found.warnings.is_empty());
        let found = lookup(&text, "reg.example.com:5000", "cfg");
        assert_eq!(
            user_of(&found),
            Some(("reg", "pw", Some("reg.example.com:5000")))
        );
        assert_eq!(lookup(&text, "other.example.com", "cfg"), Found::default());
    }

    #[test]
    fn keys_with_scheme_or_path_and_username_fields_match() {
        let text = json!({"auths": {
            "https://reg.example.com/v2/": {"username": "u", "password": "p"},
            "index.docker.io": {"auth": b64("h:p")}
        }})
        .to_string();
        assert_eq!(
            user_of(&lookup(&text, "reg.example.com", "cfg")),
            Some(("u", "p", Some("https://reg.example.com/v2/")))
        );
        assert_eq!(
            user_of(&lookup(&text, "docker.io", "cfg")),
            Some(("h", "p", Some("index.docker.io")))
        );
    }

    #[test]
    fn credential_helpers_are_warned_about() {
        let text = json!({"auths": {"https://index.docker.io/v1/": {}}, "credsStore": "desktop"})
            .to_string();
        let found = lookup(&text, "docker.io", "cfg");
        assert_eq!(found.auth, None);
        assert_eq!(found.warnings.len(), 1);
        assert!(
            found.warnings[0].contains("docker-credential-desktop"),
            "{found:?}"
        );
        let text =
            json!({"auths": {"gcr.io": {"auth": b64("a:b")}}, "credHelpers": {"gcr.io": "gcloud"}})
                .to_string();
        let found = lookup(&text, "gcr.io", "cfg");
        assert_eq!(found.auth, None);
        assert!(found.warnings[0].contains("docker-credential-gcloud"));
        // Credentials in the file win over the store.
        let text =
            json!({"auths": {"q.io": {"auth": b64("a:b")}}, "credsStore": "pass"}).to_string();
        assert_eq!(
            user_of(&lookup(&text, "q.io", "cfg")),
            Some(("a", "b", Some("q.io")))
        );
    }

    #[test]
    fn broken_entries_and_files_are_warned_about_without_secrets() {
        let text = json!({"auths": {"q.io": {"auth": "bm9jb2xvbg=="}}}).to_string(); // "nocolon"
        let found = lookup(&text, "q.io", "cfg");
        assert_eq!(found.auth, None);
        assert!(found.warnings[0].contains("not base64 of USER:PASSWORD"));
        assert!(!found.warnings[0].contains("nocolon"));
        let text = json!({"auths": {"q.io": {"identitytoken": "tok"}}}).to_string();
        assert!(lookup(&text, "q.io", "cfg").warnings[0].contains("identity token"));
        assert!(lookup("{", "q.io", "cfg").warnings[0].contains("not valid JSON"));
    }

    #[test]
    fn a_given_user_wins_over_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let text = json!({"auths": {"q.io": {"auth": b64("file:pw")}}}).to_string();
        std::fs::write(&path, text).unwrap();
        let given = |user: Option<&str>, password: Option<&str>| Given {
            user: user.map(str::to_string),
            password: password.map(str::to_string),
        };
        let found = resolve(given(Some("env"), Some("envpw")), "q.io", Some(&path)).unwrap();
        assert_eq!(user_of(&found), Some(("env", "envpw", Some("q.io"))));
        let found = resolve(given(None, Some("ignored")), "q.io", Some(&path)).unwrap();
        assert_eq!(user_of(&found), Some(("file", "pw", Some("q.io"))));
        let err = resolve(given(Some("env"), None), "q.io", Some(&path)).unwrap_err();
        assert!(err.contains("--registry-password-stdin"), "{err}");
        assert_eq!(
            resolve(given(None, None), "q.io", None).unwrap(),
            Found::default()
        );
    }

    #[test]
    fn config_path_and_flags() {
        assert_eq!(
            docker_config_path(Some(Path::new("/d")), Some(Path::new("/h"))),
            Some(PathBuf::from("/d/config.json"))
        );
        assert_eq!(
            docker_config_path(None, Some(Path::new("/h"))),
            Some(PathBuf::from("/h/.docker/config.json"))
        );
        assert_eq!(docker_config_path(None, None), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            from_docker_config(&dir.path().join("absent.json"), "docker.io"),
            Found::default()
        );
        let auth = from_user("docker.io", "alice", "pw".into());
        assert_eq!(auth.serveraddress.as_deref(), Some(DOCKER_HUB_AUTH_KEY));
        assert_eq!(
            from_user("r:5000", "alice", "pw".into())
                .serveraddress
                .as_deref(),
            Some("r:5000")
        );
    }
}
