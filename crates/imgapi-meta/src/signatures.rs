//! Image signatures (docs/signing.md): the [`ImageSignatureStore`] role.
//!
//! Signatures live beside the record, never in it, so manifests do not
//! change. Adding or removing one is an image write: it takes the image
//! write path, bumps the write generation and leaves an
//! `image.signature_added` / `image.signature_removed` event in the change
//! log in the same transaction. The store keeps what it is given: the
//! service verifies a signature before storing it.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{MetaError, Revision};

/// One stored signature of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSignature {
    pub uuid: Uuid,
    /// The signing key's SHA-256 fingerprint in lower-case hex.
    pub key_id: String,
    /// `SHA256:<base64>`.
    pub fingerprint: String,
    /// The key's algorithm name (`ssh-ed25519`, ...).
    pub algorithm: String,
    /// The key as an OpenSSH public key line.
    pub public_key: String,
    /// The armored SSHSIG.
    pub signature: String,
    pub added_ms: i64,
    /// An account uuid, or `operator`.
    pub added_by: String,
}

/// Image signatures.
#[async_trait]
pub trait ImageSignatureStore: Send + Sync + 'static {
    /// The signatures of `uuid`, oldest first (none for an unknown image).
    async fn image_signatures(&self, uuid: Uuid) -> Result<Vec<StoredSignature>, MetaError>;

    /// Store `signature` (replacing the image's signature by the same key)
    /// if the image exists and, when `expected` is given, is still at that
    /// revision: the one the signature was verified against. Otherwise
    /// `MetaError::NotFound` / `MetaError::Conflict`, and nothing changes.
    async fn put_image_signature(
        &self,
        signature: &StoredSignature,
        expected: Option<Revision>,
    ) -> Result<(), MetaError>;

    /// Remove the signature of `uuid` by key `key_id`; false when there was
    /// none.
    async fn remove_image_signature(&self, uuid: Uuid, key_id: &str) -> Result<bool, MetaError>;

    /// Every stored signature after `(uuid, key_id)` in that order, at most
    /// `limit` (what `imgapi migrate` copies).
    async fn image_signatures_after(
        &self,
        after: Option<(Uuid, String)>,
        limit: u32,
    ) -> Result<Vec<StoredSignature>, MetaError>;
}
