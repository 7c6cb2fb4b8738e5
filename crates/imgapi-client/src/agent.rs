//! A minimal ssh-agent client: list the agent's keys and have it sign, over
//! the Unix socket named by `$SSH_AUTH_SOCK` (the agent protocol,
//! draft-miller-ssh-agent: `SSH_AGENTC_REQUEST_IDENTITIES`,
//! `SSH2_AGENTC_SIGN_REQUEST`).
//!
//! Each call is one blocking connection and one request/reply of a few
//! hundred bytes, so signing stays synchronous. The agent's SSH-format
//! signatures are converted to what HTTP Signature carries: Ed25519 raw 64
//! bytes, RSA (`rsa-sha2-256`, requested with `SSH_AGENT_RSA_SHA2_256`)
//! raw, ECDSA P-256 `(r, s)` as DER (as the file-key signer produces).
//!
//! The message framing is hand-written rather than a crate: the two
//! messages take ~150 lines, while the maintained client crate
//! (ssh-agent-client-rs) pulls in the previous RustCrypto generation
//! (ssh-key 0.6, signature 2) beside the one this workspace uses. The SSH
//! wire fields inside the messages are read with ssh-key's encoding.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh_key::encoding::Decode as _;
use ssh_key::{Algorithm, EcdsaCurve, Mpint};

use crate::ClientError;

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH2_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
pub(crate) const SSH_AGENT_RSA_SHA2_256: u32 = 2;
/// Asks an RSA key for an `rsa-sha2-512` signature (image signatures).
pub(crate) const SSH_AGENT_RSA_SHA2_512: u32 = 4;

/// Largest reply accepted (OpenSSH's agent limit).
const MAX_MESSAGE: usize = 256 * 1024;

/// How long to wait for the agent; generous because a key added with
/// `ssh-add -c` waits for a person to confirm each signature.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The key types that can sign, for messages.
pub(crate) const SUPPORTED_TYPES: &str = "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256";

/// The agent socket named by `$SSH_AUTH_SOCK`, when set and not empty.
pub fn socket_from_env() -> Option<PathBuf> {
    std::env::var_os("SSH_AUTH_SOCK")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// One key held by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The SSH public key blob (RFC 4253 §6.6).
    pub blob: Vec<u8>,
    /// The comment the key was added with (often its file name).
    pub comment: String,
}

impl Identity {
    /// The key type named in the blob (`ssh-ed25519`, `ssh-rsa`, ...).
    pub fn key_type(&self) -> String {
        Vec::<u8>::decode(&mut self.blob.as_slice())
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default()
    }
}

/// A key family the signer supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Ed25519,
    Rsa,
    EcdsaP256,
}

impl KeyKind {
    /// The family of an SSH public key blob, `None` when unsupported. Only
    /// the leading algorithm (and ECDSA curve) names are read: the agent
    /// checks the rest of a blob it holds.
    pub(crate) fn of_blob(mut blob: &[u8]) -> Option<KeyKind> {
        let reader = &mut blob;
        match Algorithm::decode(reader).ok()? {
            Algorithm::Ed25519 => Some(KeyKind::Ed25519),
            Algorithm::Rsa { hash: None } => Some(KeyKind::Rsa),
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            } if EcdsaCurve::decode(reader).ok()? == EcdsaCurve::NistP256 => {
                Some(KeyKind::EcdsaP256)
            }
            _ => None,
        }
    }

    /// The HTTP Signature algorithm name.
    pub(crate) fn algorithm(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Rsa => "rsa-sha256",
            KeyKind::EcdsaP256 => "ecdsa-sha256",
        }
    }
}

/// A key in the agent at `socket` that [`crate::Signer`] signs with.
pub(crate) struct AgentKey {
    socket: PathBuf,
    identity: Identity,
    kind: KeyKind,
}

impl AgentKey {
    pub(crate) fn new(socket: &Path, identity: Identity, kind: KeyKind) -> AgentKey {
        AgentKey {
            socket: socket.to_path_buf(),
            identity,
            kind,
        }
    }

    pub(crate) fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Have the agent sign `message`; the signature as HTTP Signature
    /// carries it.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        let flags = match self.kind {
            KeyKind::Rsa => SSH_AGENT_RSA_SHA2_256,
            KeyKind::Ed25519 | KeyKind::EcdsaP256 => 0,
        };
        let blob = sign_blob(&self.socket, &self.identity, message, flags)?;
        let fail = |msg: &str| signing_error(&self.socket, &self.identity, msg);
        let malformed = |_| fail("malformed signature in the agent's reply");
        let reader = &mut blob.as_slice();
        let format = Vec::<u8>::decode(reader).map_err(malformed)?;
        let signature = Vec::<u8>::decode(reader).map_err(malformed)?;
        match (self.kind, format.as_slice()) {
            (KeyKind::Ed25519, b"ssh-ed25519") if signature.len() == 64 => Ok(signature),
            (KeyKind::Rsa, b"rsa-sha2-256") => Ok(signature),
            (KeyKind::EcdsaP256, b"ecdsa-sha2-nistp256") => {
                // string signature = mpint r || mpint s
                let reader = &mut signature.as_slice();
                let r = Mpint::decode(reader).map_err(malformed)?;
                let s = Mpint::decode(reader).map_err(malformed)?;
                let (Some(r), Some(s)) = (r.as_positive_bytes(), s.as_positive_bytes()) else {
                    return Err(fail("ECDSA signature scalar not positive"));
                };
                if r.len() > 32 || s.len() > 32 {
                    return Err(fail("ECDSA signature scalar too long"));
                }
                let mut fixed = [0u8; 64];
                fixed[32 - r.len()..32].copy_from_slice(r);
                fixed[64 - s.len()..].copy_from_slice(s);
                let sig = p256::ecdsa::Signature::from_slice(&fixed)
                    .map_err(|e| fail(&format!("invalid ECDSA signature: {e}")))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            (_, other) => Err(fail(&format!(
                "the agent answered with a \"{}\" signature (an old agent without rsa-sha2-256?)",
                String::from_utf8_lossy(other)
            ))),
        }
    }
}

/// An agent error while signing with `identity`.
fn signing_error(socket: &Path, identity: &Identity, msg: &str) -> ClientError {
    ClientError::Agent(format!(
        "{}: signing with {} key \"{}\": {msg}",
        socket.display(),
        identity.key_type(),
        identity.comment
    ))
}

/// Have the agent at `socket` sign `data` with `identity` (`flags`: 0, or
/// [`SSH_AGENT_RSA_SHA2_256`] / [`SSH_AGENT_RSA_SHA2_512`] for RSA keys);
/// the SSH signature blob it answers (`string format, string signature`).
pub(crate) fn sign_blob(
    socket: &Path,
    identity: &Identity,
    data: &[u8],
    flags: u32,
) -> Result<Vec<u8>, ClientError> {
    let mut request = vec![SSH2_AGENTC_SIGN_REQUEST];
    put_string(&mut request, &identity.blob)?;
    put_string(&mut request, data)?;
    request.extend_from_slice(&flags.to_be_bytes());
    let reply = round_trip(socket, &request)?;
    let fail = |msg: &str| signing_error(socket, identity, msg);
    match reply.first() {
        Some(&SSH_AGENT_SIGN_RESPONSE) => {}
        Some(&SSH_AGENT_FAILURE) => {
            return Err(fail(
                "the agent refused (key removed from the agent, or confirmation denied?)",
            ))
        }
        Some(other) => return Err(fail(&format!("unexpected agent reply type {other}"))),
        None => return Err(fail("empty agent reply")),
    }
    Vec::<u8>::decode(&mut &reply[1..])
        .map_err(|_| fail("malformed signature in the agent's reply"))
}

/// The keys the agent at `socket` holds, in its order.
pub fn list_identities(socket: &Path) -> Result<Vec<Identity>, ClientError> {
    let reply = round_trip(socket, &[SSH_AGENTC_REQUEST_IDENTITIES])?;
    let fail = |msg: &str| ClientError::Agent(format!("{}: {msg}", socket.display()));
    match reply.first() {
        Some(&SSH_AGENT_IDENTITIES_ANSWER) => {}
        Some(&SSH_AGENT_FAILURE) => return Err(fail("the agent refused to list its keys")),
        Some(other) => return Err(fail(&format!("unexpected agent reply type {other}"))),
        None => return Err(fail("empty agent reply")),
    }
    let malformed = |_| fail("malformed key list in the agent's reply");
    let reader = &mut &reply[1..];
    let count = u32::decode(reader).map_err(malformed)?;
    let mut identities = Vec::new();
    for _ in 0..count {
        let blob = Vec::<u8>::decode(reader).map_err(malformed)?;
        let comment =
            String::from_utf8_lossy(&Vec::<u8>::decode(reader).map_err(malformed)?).into_owned();
        identities.push(Identity { blob, comment });
    }
    Ok(identities)
}

/// Append an SSH `string` (u32 length, bytes).
fn put_string(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<(), ClientError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| ClientError::Agent("message too long for the agent".into()))?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

/// Send one message to the agent and read its reply (both without the
/// length prefix).
#[cfg(unix)]
fn round_trip(socket: &Path, request: &[u8]) -> Result<Vec<u8>, ClientError> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixStream;

    let err = |what: &str, e: std::io::Error| {
        ClientError::Agent(format!("{}: {what}: {e}", socket.display()))
    };
    let mut stream =
        UnixStream::connect(socket).map_err(|e| err("cannot connect to ssh-agent", e))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| err("cannot set a timeout", e))?;
    let mut frame = Vec::with_capacity(request.len() + 4);
    put_string(&mut frame, request)?;
    stream
        .write_all(&frame)
        .map_err(|e| err("cannot write to ssh-agent", e))?;
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .map_err(|e| err("cannot read from ssh-agent", e))?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_MESSAGE {
        return Err(ClientError::Agent(format!(
            "{}: agent reply of {len} bytes",
            socket.display()
        )));
    }
    let mut reply = vec![0u8; len];
    stream
        .read_exact(&mut reply)
        .map_err(|e| err("cannot read from ssh-agent", e))?;
    Ok(reply)
}

#[cfg(not(unix))]
fn round_trip(socket: &Path, _request: &[u8]) -> Result<Vec<u8>, ClientError> {
    Err(ClientError::Agent(format!(
        "{}: ssh-agent is only supported on Unix",
        socket.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_string(&mut v, s).unwrap();
        v
    }

    #[test]
    fn key_kinds() {
        assert_eq!(
            KeyKind::of_blob(&string(b"ssh-ed25519")),
            Some(KeyKind::Ed25519)
        );
        assert_eq!(KeyKind::of_blob(&string(b"ssh-rsa")), Some(KeyKind::Rsa));
        let mut p256 = string(b"ecdsa-sha2-nistp256");
        p256.extend(string(b"nistp256"));
        assert_eq!(KeyKind::of_blob(&p256), Some(KeyKind::EcdsaP256));
        let mut p384 = string(b"ecdsa-sha2-nistp384");
        p384.extend(string(b"nistp384"));
        assert_eq!(KeyKind::of_blob(&p384), None);
        assert_eq!(KeyKind::of_blob(&string(b"ssh-dss")), None);
        assert_eq!(KeyKind::of_blob(b"\x00\x00"), None);
    }

    #[test]
    fn missing_socket_is_an_agent_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = list_identities(&dir.path().join("nope.sock")).unwrap_err();
        assert!(matches!(err, ClientError::Agent(_)), "{err:?}");
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
