//! Docker repository references, `[INDEX/]REPO[:TAG|@DIGEST]`, parsed the
//! way the original's registry client parses them (names, canonical names
//! and error messages are part of the wire: they appear in the stream and
//! in the images' `docker:repo` tag).

/// The registry Docker Hub is known by.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is served.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DEFAULT_TAG: &str = "latest";

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// The registry: `docker.io`, `host:port`, `localhost`…
    pub index: String,
    /// `http` or `https` when the reference named a scheme.
    pub scheme: Option<String>,
    /// The name on the registry (`library/busybox`).
    pub remote_name: String,
    /// The name as Docker shows it (`busybox`, `127.0.0.1:5000/fix/alpine`).
    pub local_name: String,
    /// `docker.io/busybox`, or the local name for other registries.
    pub canonical_name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RepoRef {
    /// The tag or digest to fetch.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// `localName:tag` or `localName@digest`.
    pub fn local_with_reference(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{d}", self.local_name),
            None => format!("{}:{}", self.local_name, self.reference()),
        }
    }

    /// The host the registry API is served from.
    pub fn api_host(&self) -> &str {
        if self.index == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.index
        }
    }
}

/// Parse `[INDEX/]REPO[:TAG|@DIGEST]`; the default tag is `latest`.
pub fn parse_repo_and_ref(arg: &str) -> Result<RepoRef, String> {
    let (repo, tag, digest) = match arg.rfind('@') {
        Some(at) => (&arg[..at], None, Some(&arg[at + 1..])),
        None => {
            let colon = arg.rfind(':');
            let slash = arg.rfind('/');
            match colon {
                Some(c) if slash.is_none_or(|s| c > s) => (&arg[..c], Some(&arg[c + 1..]), None),
                _ => (arg, None, None),
            }
        }
    };
    let mut info = parse_repo(repo)?;
    match (digest, tag) {
        (Some(d), _) if !d.is_empty() => info.digest = Some(d.to_string()),
        (_, Some(t)) if !t.is_empty() => info.tag = Some(t.to_string()),
        _ => info.tag = Some(DEFAULT_TAG.to_string()),
    }
    Ok(info)
}

struct Index {
    name: String,
    scheme: Option<String>,
    official: bool,
}

fn looks_like_host(s: &str) -> bool {
    s.contains('.') || s.contains(':') || s == "localhost"
}

fn parse_index(arg: Option<&str>) -> Result<Index, String> {
    let Some(arg) = arg.filter(|a| !a.is_empty() && *a != "https://index.docker.io/v1/") else {
        return Ok(Index {
            name: DOCKER_HUB.into(),
            scheme: None,
            official: true,
        });
    };
    let (scheme, mut name) = match arg.find("://") {
        Some(i) => {
            let scheme = &arg[..i];
            if scheme != "http" && scheme != "https" {
                return Err(format!(
                    "invalid index scheme, must be \"http\" or \"https\": {arg}"
                ));
            }
            (Some(scheme.to_string()), &arg[i + 3..])
        }
        None => (None, arg),
    };
    if name.is_empty() {
        return Err(format!("invalid index, empty host: {arg}"));
    }
    if !looks_like_host(name) {
        return Err(format!(
            "invalid index, \"{name}\" does not look like a valid host: {arg}"
        ));
    }
    name = name.strip_suffix('/').unwrap_or(name);
    if name.contains('/') {
        return Err(format!("invalid index, trailing repo: {arg}"));
    }
    let name = if name == "index.docker.io" {
        DOCKER_HUB
    } else {
        name
    };
    let official = name == DOCKER_HUB;
    if official && scheme.as_deref() == Some("http") {
        return Err(format!(
            "invalid index, HTTP to official index is disallowed: {arg}"
        ));
    }
    Ok(Index {
        name: name.to_string(),
        scheme,
        official,
    })
}

fn valid_namespace(ns: &str) -> Result<(), String> {
    if ns.len() < 2 || ns.len() > 255 {
        return Err(format!(
            "invalid repository namespace, must be between 2 and 255 characters: {ns}"
        ));
    }
    if !ns
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "invalid repository namespace, may only contain [a-z0-9._-] characters: {ns}"
        ));
    }
    if ns.starts_with('-') && ns.ends_with('-') {
        return Err(format!(
            "invalid repository namespace, cannot start or end with a hypen: {ns}"
        ));
    }
    if ns.contains("--") {
        return Err(format!(
            "invalid repository namespace, cannot contain consecutive hyphens: {ns}"
        ));
    }
    Ok(())
}

fn parse_repo(arg: &str) -> Result<RepoRef, String> {
    let (index, remote) = match arg.find("://") {
        Some(i) => {
            let Some(slash) = arg[i + 3..].find('/').map(|s| s + i + 3) else {
                return Err(format!(
                    "invalid repository name, no \"/REPO\" after hostame: {arg}"
                ));
            };
            (parse_index(Some(&arg[..slash]))?, &arg[slash + 1..])
        }
        None => match arg.split_once('/') {
            Some((host, rest)) if looks_like_host(host) => (parse_index(Some(host))?, rest),
            _ => (parse_index(None)?, arg),
        },
    };
    let (ns, name) = match remote.split_once('/') {
        Some((ns, name)) => {
            valid_namespace(ns)?;
            (Some(ns.to_string()), name)
        }
        None => (index.official.then(|| "library".to_string()), remote),
    };
    let name_ok = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'/' | b'.' | b'-')
        });
    if !name_ok {
        return Err(format!(
            "invalid repository name, may only contain [a-z0-9_/.-] characters: {name}"
        ));
    }
    let remote_name = match &ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    let (local_name, canonical_name) = if index.official {
        let local = if ns.as_deref() == Some("library") {
            name.to_string()
        } else {
            remote_name.clone()
        };
        let canonical = format!("{DOCKER_HUB}/{local}");
        (local, canonical)
    } else {
        let local = format!("{}/{remote_name}", index.name);
        (local.clone(), local)
    };
    Ok(RepoRef {
        index: index.name,
        scheme: index.scheme,
        remote_name,
        local_name,
        canonical_name,
        tag: None,
        digest: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn official_images() {
        let r = parse_repo_and_ref("busybox").unwrap();
        assert_eq!(r.index, "docker.io");
        assert_eq!(r.remote_name, "library/busybox");
        assert_eq!(r.local_name, "busybox");
        assert_eq!(r.canonical_name, "docker.io/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = parse_repo_and_ref("docker.io/google/python:3.3").unwrap();
        assert_eq!(r.remote_name, "google/python");
        assert_eq!(r.local_name, "google/python");
        assert_eq!(r.canonical_name, "docker.io/google/python");
        assert_eq!(r.tag.as_deref(), Some("3.3"));
    }

    #[test]
    fn private_registries() {
        let r = parse_repo_and_ref("127.0.0.1:5000/fix/alpine:v1").unwrap();
        assert_eq!(r.index, "127.0.0.1:5000");
        assert_eq!(r.remote_name, "fix/alpine");
        assert_eq!(r.local_name, "127.0.0.1:5000/fix/alpine");
        assert_eq!(r.canonical_name, r.local_name);
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_repo_and_ref(&format!("localhost:5000/blarg@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag, None);
        assert_eq!(
            r.local_with_reference(),
            format!("localhost:5000/blarg@{d}")
        );
        let r = parse_repo_and_ref("http://localhost:5000/blarg:latest").unwrap();
        assert_eq!(r.scheme.as_deref(), Some("http"));
        assert_eq!(r.index, "localhost:5000");
    }

    #[test]
    fn errors_read_as_the_original() {
        assert_eq!(
            parse_repo_and_ref("Foo").unwrap_err(),
            "invalid repository name, may only contain [a-z0-9_/.-] characters: Foo"
        );
        assert_eq!(
            parse_repo_and_ref("ftp://x.com/a").unwrap_err(),
            "invalid index scheme, must be \"http\" or \"https\": ftp://x.com"
        );
        assert_eq!(
            parse_repo_and_ref("http://docker.io/a").unwrap_err(),
            "invalid index, HTTP to official index is disallowed: http://docker.io"
        );
        assert!(parse_repo_and_ref("ab/B/c")
            .unwrap_err()
            .starts_with("invalid repository name"));
        assert!(parse_repo_and_ref("x/c")
            .unwrap_err()
            .contains("must be between 2 and 255"));
        assert!(parse_repo_and_ref("").is_err());
    }
}
