//! `REPO[:TAG|@DIGEST]` as `docker pull` reads it: enough to build the
//! request and to know which registry's credentials to send. The server
//! checks the name fully.

use imgapi_client::DockerReference;

/// Docker Hub's name as a registry.
pub const DOCKER_HUB: &str = "docker.io";
/// The tag `docker pull NAME` means.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The repository as given, without tag or digest.
    pub repo: String,
    pub reference: DockerReference,
    /// The registry host (`registry.example.com:5000`), or [`DOCKER_HUB`].
    pub registry: String,
}

impl ImageRef {
    /// Parse `text`; without a tag or digest the tag is `latest`.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err(format!("invalid image reference {text:?}"));
        }
        let (repo, reference) = match text.split_once('@') {
            Some((repo, digest)) => {
                check_digest(digest)?;
                (repo, DockerReference::Digest(digest.to_string()))
            }
            None => match text.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')) {
                Some((repo, tag)) => {
                    check_tag(tag)?;
                    (repo, DockerReference::Tag(tag.to_string()))
                }
                None => (text, DockerReference::Tag(DEFAULT_TAG.to_string())),
            },
        };
        if repo.is_empty() || repo.starts_with('/') || repo.ends_with('/') {
            return Err(format!("invalid repository name {repo:?} in {text:?}"));
        }
        Ok(ImageRef {
            repo: repo.to_string(),
            reference,
            registry: registry_of(repo),
        })
    }

    /// `repo:tag` or `repo@digest`.
    pub fn display(&self) -> String {
        match &self.reference {
            DockerReference::Tag(tag) => format!("{}:{tag}", self.repo),
            DockerReference::Digest(digest) => format!("{}@{digest}", self.repo),
        }
    }
}

/// The registry of a repository name: its first path component when that
/// looks like a host (has a `.` or a `:`, or is `localhost`), else Docker Hub.
pub fn registry_of(repo: &str) -> String {
    match repo.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first.to_string(),
        _ => DOCKER_HUB.to_string(),
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let first_ok = tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && tag.len() <= 128 && tag.chars().all(valid_char) {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?}: up to 128 of [A-Za-z0-9_.-], not starting with . or -"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
        !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
            && hex.len() >= 32
            && hex.chars().all(|c| c.is_ascii_hexdigit())
    });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid digest {digest:?}: expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(t: &str) -> DockerReference {
        DockerReference::Tag(t.to_string())
    }

    #[test]
    fn splits_repo_tag_digest_and_registry() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("busybox", "busybox", tag("latest"), "docker.io"),
            (
                "library/busybox:1.36",
                "library/busybox",
                tag("1.36"),
                "docker.io",
            ),
            ("localhost/app", "localhost/app", tag("latest"), "localhost"),
            (
                "127.0.0.1:5000/fix/alpine:3",
                "127.0.0.1:5000/fix/alpine",
                tag("3"),
                "127.0.0.1:5000",
            ),
            ("reg:5000/app", "reg:5000/app", tag("latest"), "reg:5000"),
            (
                "quay.io/org/app",
                "quay.io/org/app",
                tag("latest"),
                "quay.io",
            ),
            ("org/app", "org/app", tag("latest"), "docker.io"),
        ];
        for (text, repo, reference, registry) in cases {
            let r = ImageRef::parse(text).unwrap();
            assert_eq!(
                (r.repo.as_str(), &r.reference, r.registry.as_str()),
                (repo, &reference, registry),
                "{text}"
            );
        }
        let r = ImageRef::parse(&format!("ghcr.io/o/a@{digest}")).unwrap();
        assert_eq!(r.reference, DockerReference::Digest(digest.clone()));
        assert_eq!(r.registry, "ghcr.io");
        assert_eq!(r.display(), format!("ghcr.io/o/a@{digest}"));
        assert_eq!(
            ImageRef::parse("busybox").unwrap().display(),
            "busybox:latest"
        );
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "busybox:",
            "busybox:-x",
            "a b",
            "busybox@sha256:xyz",
            "busybox@abc",
            "/x",
            "x/",
            ":tag",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
    }
}
