//! Signed images (docs/signing.md): what is signed, how a signature is
//! checked, and which keys a consumer trusts.
//!
//! - [`statement`]: the canonical, line-based statement of an image that
//!   publishers sign (uuid, owner, name, version, type, os, origin and each
//!   file's SHA-256 and size), built and parsed in one place for the server,
//!   the client and the documentation.
//! - [`verify`]: an OpenSSH `SSHSIG` signature (`ssh-keygen -Y sign -n
//!   imgapi`) checked against a statement.
//! - [`allowed_signers`]: OpenSSH `allowed_signers` trust files (the
//!   `ssh-keygen -Y verify -f` format), read by `imgadm` and the server.
//!
//! The server and `imgadm` both depend on this crate so a signature the one
//! accepts is exactly one the other accepts.

pub mod allowed_signers;
pub mod statement;
pub mod verify;

pub use allowed_signers::{AllowedSigners, TrustError, TrustedSigner};
pub use statement::{FileDigest, Statement, StatementError};
pub use verify::{key_id, verify, SignatureError, VerifiedSignature};

/// The SSHSIG namespace of image signatures (`ssh-keygen -Y sign -n imgapi`).
pub const NAMESPACE: &str = "imgapi";
