//! Checking one SSHSIG signature (OpenSSH's PROTOCOL.sshsig, the armored
//! `-----BEGIN SSH SIGNATURE-----` text `ssh-keygen -Y sign` writes) over a
//! statement.

use ssh_key::{Algorithm, EcdsaCurve, HashAlg, PublicKey, SshSig};

use crate::NAMESPACE;

/// Largest armored signature read (an RSA-16384 signature is about 5 KiB).
pub const MAX_ARMORED_BYTES: usize = 16 * 1024;

/// A signature that verified, and the key that made it.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    pub key: PublicKey,
    /// `SHA256:<unpadded base64>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The same SHA-256 in lower-case hex: the signature's id on an image.
    pub key_id: String,
    /// The key's algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...).
    pub algorithm: String,
    /// The armored signature as given, with one line ending style (`\n`).
    pub armored: String,
}

impl VerifiedSignature {
    /// The public key as an OpenSSH public key line (`<type> <base64>`).
    pub fn public_key_line(&self) -> String {
        let mut key = self.key.clone();
        key.set_comment("");
        key.to_openssh().unwrap_or_default().trim_end().to_owned()
    }
}

/// Why a signature was refused. The messages are for people and name no
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is larger than {MAX_ARMORED_BYTES} bytes")]
    TooLarge,
    #[error("not an SSH signature (expected the armored text of `ssh-keygen -Y sign`): {0}")]
    Malformed(String),
    #[error("the signature is for namespace \"{0}\", not \"imgapi\" (sign with `ssh-keygen -Y sign -n imgapi`)")]
    Namespace(String),
    #[error("unsupported key type {0} (supported: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa with rsa-sha2-512 or rsa-sha2-256)")]
    UnsupportedKey(String),
    #[error("RSA signatures must use rsa-sha2-512 or rsa-sha2-256, not SHA-1")]
    RsaSha1,
    #[error("the signature does not match this image's statement (another image, a changed field or file, or a damaged signature)")]
    Mismatch,
}

/// The id of a public key: its SHA-256 fingerprint in lower-case hex.
pub fn key_id(key: &ssh_key::public::KeyData) -> String {
    hex::encode(key.fingerprint(HashAlg::Sha256).as_bytes())
}

/// Check `armored` as an SSHSIG signature over `message` in the `imgapi`
/// namespace, by the key it names.
pub fn verify(message: &[u8], armored: &str) -> Result<VerifiedSignature, SignatureError> {
    if armored.len() > MAX_ARMORED_BYTES {
        return Err(SignatureError::TooLarge);
    }
    let normalized = armored.replace("\r\n", "\n");
    let sig = SshSig::from_pem(normalized.trim())
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if sig.namespace() != NAMESPACE {
        return Err(SignatureError::Namespace(printable(sig.namespace())));
    }
    let key_data = sig.public_key().clone();
    let algorithm = key_data.algorithm();
    match &algorithm {
        Algorithm::Ed25519 | Algorithm::Rsa { .. } => {}
        Algorithm::Ecdsa { curve } => match curve {
            EcdsaCurve::NistP256 | EcdsaCurve::NistP384 | EcdsaCurve::NistP521 => {}
        },
        other => return Err(SignatureError::UnsupportedKey(other.as_str().to_owned())),
    }
    if sig.signature().algorithm() == (Algorithm::Rsa { hash: None }) {
        return Err(SignatureError::RsaSha1);
    }
    let key = PublicKey::from(key_data);
    key.verify(NAMESPACE, message, &sig)
        .map_err(|_| SignatureError::Mismatch)?;
    let mut armored = normalized.trim().to_owned();
    armored.push('\n');
    Ok(VerifiedSignature {
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        key_id: key_id(key.key_data()),
        algorithm: algorithm.as_str().to_owned(),
        key,
        armored,
    })
}

/// `s` for a message: control characters escaped, at most 64 characters.
fn printable(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_default).collect()
}
