//! The request signer of a personality, from `-u USER` and `-i IDENTITY`
//! as sdc-imgapi-cli reads them: an identity is a private key file, or a
//! key fingerprint (what `ssh-keygen -l` prints: `SHA256:…`, or the older
//! MD5 `aa:bb:…`, optionally `MD5:`-prefixed) looked up in ssh-agent, then
//! among the public keys in `~/.ssh`. Without `-i`, `~/.ssh/id_rsa` when
//! it exists; failing that (our addition) ssh-agent's first key or
//! `~/.ssh/id_ed25519`, as our own `imgadm --user`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use imgapi_client::agent;
use imgapi_client::Signer;
use md5::Md5;
use sha2::{Digest, Sha256};

use super::CliError;
use crate::commands;

/// The signer for `user` with the identities given (first usable one).
pub fn signer(user: Option<&str>, identities: &[String]) -> Result<Option<Signer>, CliError> {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut identities = identities.to_vec();
    if identities.is_empty() {
        if let Some(rsa) = home
            .as_ref()
            .map(|h| h.join(".ssh/id_rsa"))
            .filter(|p| p.exists())
        {
            identities.push(rsa.display().to_string());
        }
    }
    let Some(identity) = identities.first() else {
        // Our addition: the keys our own imgadm would use; none usable
        // means unsigned requests, as the node tool sends then.
        return Ok(commands::signer(Some(user), None).ok().flatten());
    };
    let path = Path::new(identity);
    if path.exists() {
        return commands::signer(Some(user), Some(path)).map_err(signing_error);
    }
    let Some(wanted) = Fingerprint::parse(identity) else {
        return Err(CliError::new(
            "SigningError",
            format!("identity \"{identity}\" is neither a key file nor a key fingerprint"),
        ));
    };
    if let Some(socket) = agent::socket_from_env() {
        if let Ok(held) = agent::list_identities(&socket) {
            if let Some(found) = held.into_iter().find(|i| wanted.matches(&i.blob)) {
                return Signer::from_agent_identity(user, &socket, found)
                    .map(Some)
                    .map_err(|e| signing_error(e.into()));
            }
        }
    }
    if let Some(private) = home.as_deref().and_then(|h| key_file_with(h, &wanted)) {
        return commands::signer(Some(user), Some(&private)).map_err(signing_error);
    }
    Err(CliError::new(
        "SigningError",
        format!("no key with fingerprint \"{identity}\" in ssh-agent or ~/.ssh"),
    ))
}

fn signing_error(f: commands::Failure) -> CliError {
    CliError::new("SigningError", f.message)
}

/// The private key in `~/.ssh` whose `.pub` has the fingerprint.
fn key_file_with(home: &Path, wanted: &Fingerprint) -> Option<PathBuf> {
    let dir = std::fs::read_dir(home.join(".ssh")).ok()?;
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .find(|p| {
            imgapi_client::signing::public_key_blob(p).is_ok_and(|blob| wanted.matches(&blob))
        })
        .map(|p| p.with_extension(""))
        .filter(|p| p.exists())
}

/// A key fingerprint as `ssh-keygen -l` prints it.
#[derive(Debug, PartialEq, Eq)]
enum Fingerprint {
    /// `SHA256:` and the unpadded base64 of the blob's SHA-256.
    Sha256(String),
    /// The blob's MD5 as lower-case hex, colons removed.
    Md5(String),
}

impl Fingerprint {
    fn parse(text: &str) -> Option<Fingerprint> {
        if let Some(b64) = text.strip_prefix("SHA256:") {
            return Some(Fingerprint::Sha256(b64.trim_end_matches('=').to_string()));
        }
        let hex = text.strip_prefix("MD5:").unwrap_or(text);
        let parts: Vec<&str> = hex.split(':').collect();
        let valid = parts.len() == 16
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        valid.then(|| Fingerprint::Md5(parts.concat().to_ascii_lowercase()))
    }

    fn matches(&self, blob: &[u8]) -> bool {
        match self {
            Fingerprint::Sha256(want) => {
                let got =
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(blob));
                got == *want
            }
            Fingerprint::Md5(want) => hex::encode(Md5::digest(blob)) == *want,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_as_ssh_keygen_prints_them() {
        // ssh-keygen -l -E sha256 / -E md5 of this ed25519 public key.
        let blob = base64::engine::general_purpose::STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
            .unwrap();
        let sha = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob))
        );
        assert!(Fingerprint::parse(&sha).unwrap().matches(&blob));
        let md5 = hex::encode(Md5::digest(&blob));
        let colons: Vec<String> = md5
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let md5_text = colons.join(":");
        assert!(Fingerprint::parse(&md5_text).unwrap().matches(&blob));
        assert!(Fingerprint::parse(&format!("MD5:{md5_text}"))
            .unwrap()
            .matches(&blob));
        assert!(Fingerprint::parse("not-a-fingerprint").is_none());
        assert!(!Fingerprint::parse("SHA256:AAAA").unwrap().matches(&blob));
    }
}
