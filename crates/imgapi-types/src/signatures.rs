//! Image signatures (an IMGAPI extension, docs/signing.md): what
//! `/images/:uuid/signatures` answers and takes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One signature of an image: an OpenSSH SSHSIG over the image's statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageSignature {
    /// The signing key's SHA-256 fingerprint in lower-case hex: one
    /// signature per key and image (adding another replaces it).
    pub id: String,
    /// The same fingerprint as `ssh-keygen -l` prints it (`SHA256:...`).
    pub fingerprint: String,
    /// The key's algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...).
    pub algorithm: String,
    /// The signing key as an OpenSSH public key line.
    pub public_key: String,
    /// The armored signature (`-----BEGIN SSH SIGNATURE-----` ...), as
    /// `ssh-keygen -Y sign -n imgapi` writes it.
    pub signature: String,
    /// Whether the signature verifies against the image's statement now (a
    /// later change of a signed field or of the file makes it `false`).
    pub valid: bool,
    /// Whom this server knows the key as: `owner` (a key of a user mapped
    /// to the image's owner), `operator` (an operator's key, or one of
    /// `[signing] allowed_signers`), absent when it knows neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["owner", "operator"]))]
    pub role: Option<String>,
    /// When it was added (ISO 8601).
    pub added_at: String,
    /// Who added it: an account uuid, or `operator`.
    pub added_by: String,
}

/// An image's signatures and the statement they sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ImageSignatures {
    pub uuid: Uuid,
    /// The statement of the image as stored now (docs/signing.md), the exact
    /// bytes to sign; `null` while the image cannot be signed (no file yet).
    pub statement: Option<String>,
    pub signatures: Vec<ImageSignature>,
}

/// The body of AddImageSignature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AddSignatureBody {
    /// The armored SSHSIG signature of the image's statement, namespace `imgapi`.
    pub signature: String,
}
