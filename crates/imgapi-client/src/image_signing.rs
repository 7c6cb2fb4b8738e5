//! Signing an image's statement (docs/signing.md) as an OpenSSH `SSHSIG`
//! signature, what `ssh-keygen -Y sign -n imgapi` writes: namespace
//! [`imgapi_signing::NAMESPACE`], hash SHA-512, armored with `\n` line
//! endings.
//!
//! The keys are those of request signing ([`crate::Signer`]), plus the
//! ECDSA curves HTTP Signature does not use:
//!
//! - a private key file: OpenSSH format (Ed25519, ECDSA P-256/384/521,
//!   RSA), unencrypted or passphrase-protected; or PEM `RSA PRIVATE KEY`,
//!   `EC PRIVATE KEY` (P-256/384/521), `PRIVATE KEY` or `ENCRYPTED PRIVATE
//!   KEY` (PKCS#8);
//! - a key held by ssh-agent: the agent signs the SSHSIG "signed data"
//!   blob ([`ssh_key::SshSig::signed_data`]) and its answer is wrapped into
//!   the `SSHSIG` structure. RSA keys are asked for `rsa-sha2-512`.
//!
//! Every signature made is checked with [`imgapi_signing::verify`] before
//! it is handed out, so a key or agent that signs wrongly fails here, not
//! on the server.

use std::fmt;
use std::path::{Path, PathBuf};

use ssh_key::encoding::Decode as _;
use ssh_key::private::{EcdsaKeypair, KeypairData, RsaKeypair};
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use crate::agent::{self, Identity};
use crate::signing::{self, LoadError};
use crate::ClientError;

/// The key types an image can be signed with, for messages.
pub const SUPPORTED_KEY_TYPES: &str =
    "ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (signing with rsa-sha2-512)";

/// Where the private key is.
enum Key {
    File(Box<PrivateKey>),
    Agent { socket: PathBuf, identity: Identity },
}

/// Signs image statements with one key.
pub struct ImageSigner {
    key: Key,
    public: PublicKey,
}

impl fmt::Debug for ImageSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageSigner")
            .field("fingerprint", &self.fingerprint())
            .field("agent", &self.uses_agent())
            .finish_non_exhaustive()
    }
}

impl ImageSigner {
    /// Read the private key at `path`, decrypting it with `passphrase` when
    /// it is encrypted. Errors as [`crate::Signer::from_key_file_with_passphrase`]:
    /// [`ClientError::KeyEncrypted`], [`ClientError::KeyPassphrase`],
    /// [`ClientError::Key`].
    pub fn from_key_file(
        path: &Path,
        passphrase: Option<&str>,
    ) -> Result<ImageSigner, ClientError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Key(format!("{name}: cannot read private key: {e}")))?;
        let key = parse_private_key(&text, passphrase).map_err(|e| e.into_client_error(name))?;
        ImageSigner::from_private_key(key)
            .map_err(|e| ClientError::Key(format!("{}: {e}", path.display())))
    }

    /// Parse a private key from its file contents (errors as
    /// [`ImageSigner::from_key_file`]).
    pub fn from_key_text(text: &str, passphrase: Option<&str>) -> Result<ImageSigner, ClientError> {
        let key = parse_private_key(text, passphrase)
            .map_err(|e| e.into_client_error("private key".to_string()))?;
        ImageSigner::from_private_key(key)
            .map_err(|e| ClientError::Key(format!("private key: {e}")))
    }

    fn from_private_key(key: PrivateKey) -> Result<ImageSigner, String> {
        check_key_type(key.public_key().key_data())?;
        let mut public = key.public_key().clone();
        public.set_comment("");
        Ok(ImageSigner {
            key: Key::File(Box::new(key)),
            public,
        })
    }

    /// Sign through the ssh-agent listening on `socket`. With `key` (a
    /// public key file, or a private key file whose public half is known:
    /// an OpenSSH private key, or one with a `<key>.pub` beside it) the
    /// agent must hold that key; without, its first key of a supported type
    /// signs. [`ClientError::Agent`] when the agent cannot be reached or
    /// holds no such key.
    pub fn from_agent(socket: &Path, key: Option<&Path>) -> Result<ImageSigner, ClientError> {
        let identities = agent::list_identities(socket)?;
        let identity = match key {
            Some(path) => signing::agent_identity_of(socket, identities, path)?,
            None => identities
                .into_iter()
                .find(|i| public_key_of_blob(&i.blob).is_ok())
                .ok_or_else(|| {
                    ClientError::Agent(format!(
                        "the agent at {} holds no key that can sign images (supported: {SUPPORTED_KEY_TYPES})",
                        socket.display()
                    ))
                })?,
        };
        ImageSigner::from_agent_identity(socket, identity)
    }

    /// Sign through the ssh-agent at `socket` with one of the keys it holds
    /// (see [`agent::list_identities`]).
    pub fn from_agent_identity(
        socket: &Path,
        identity: Identity,
    ) -> Result<ImageSigner, ClientError> {
        let public = public_key_of_blob(&identity.blob).map_err(|e| {
            ClientError::Agent(format!(
                "{}: key \"{}\": {e}",
                socket.display(),
                identity.comment
            ))
        })?;
        Ok(ImageSigner {
            key: Key::Agent {
                socket: socket.to_path_buf(),
                identity,
            },
            public,
        })
    }

    /// The public key that signs (without comment).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key's SHA-256 fingerprint as `ssh-keygen -l` prints it
    /// (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint(HashAlg::Sha256).to_string()
    }

    /// True when ssh-agent signs.
    pub fn uses_agent(&self) -> bool {
        matches!(self.key, Key::Agent { .. })
    }

    /// Sign `statement` (the exact bytes of an image's statement): the
    /// armored SSHSIG signature, `\n` line endings, ending with one `\n`.
    pub fn sign(&self, statement: &[u8]) -> Result<String, ClientError> {
        let sig = match &self.key {
            Key::File(key) => key
                .sign(imgapi_signing::NAMESPACE, HashAlg::Sha512, statement)
                .map_err(|e| ClientError::Key(format!("cannot sign: {e}")))?,
            Key::Agent { socket, identity } => {
                self.sign_through_agent(socket, identity, statement)?
            }
        };
        let mut armored = sig
            .to_pem(LineEnding::LF)
            .map_err(|e| ClientError::Key(format!("cannot encode the signature: {e}")))?;
        if !armored.ends_with('\n') {
            armored.push('\n');
        }
        let verified = imgapi_signing::verify(statement, &armored).map_err(|e| {
            ClientError::Key(format!("the signature just made does not verify: {e}"))
        })?;
        if verified.key.key_data() != self.public.key_data() {
            return Err(ClientError::Key(
                "the signature just made names another key".to_string(),
            ));
        }
        Ok(armored)
    }

    fn sign_through_agent(
        &self,
        socket: &Path,
        identity: &Identity,
        statement: &[u8],
    ) -> Result<SshSig, ClientError> {
        let fail = |msg: String| {
            ClientError::Agent(format!(
                "{}: signing with key \"{}\": {msg}",
                socket.display(),
                identity.comment
            ))
        };
        let data = SshSig::signed_data(imgapi_signing::NAMESPACE, HashAlg::Sha512, statement)
            .map_err(|e| fail(e.to_string()))?;
        let flags = match self.public.algorithm() {
            Algorithm::Rsa { .. } => agent::SSH_AGENT_RSA_SHA2_512,
            _ => 0,
        };
        let blob = agent::sign_blob(socket, identity, &data, flags)?;
        let signature = ssh_key::Signature::decode(&mut blob.as_slice())
            .map_err(|e| fail(format!("malformed signature in the agent's reply: {e}")))?;
        if matches!(self.public.algorithm(), Algorithm::Rsa { .. })
            && signature.algorithm()
                != (Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                })
        {
            return Err(fail(format!(
                "the agent answered with a \"{}\" signature, not rsa-sha2-512 (an old agent?)",
                signature.algorithm().as_str()
            )));
        }
        SshSig::new(
            self.public.key_data().clone(),
            imgapi_signing::NAMESPACE,
            HashAlg::Sha512,
            signature,
        )
        .map_err(|e| fail(e.to_string()))
    }
}

/// Only the key types the server and `imgadm` verify can sign.
fn check_key_type(key: &ssh_key::public::KeyData) -> Result<(), String> {
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Rsa { .. } => Ok(()),
        Algorithm::Ecdsa { curve } => match curve {
            EcdsaCurve::NistP256 | EcdsaCurve::NistP384 | EcdsaCurve::NistP521 => Ok(()),
        },
        other => Err(format!(
            "unsupported key type \"{}\" for image signatures (supported: {SUPPORTED_KEY_TYPES})",
            other.as_str()
        )),
    }
}

/// The public key of an SSH key blob, when it can sign images.
fn public_key_of_blob(blob: &[u8]) -> Result<PublicKey, String> {
    let key = PublicKey::from_bytes(blob).map_err(|e| format!("unreadable public key: {e}"))?;
    check_key_type(key.key_data())?;
    Ok(key)
}

/// Parse a private key file's contents as an SSH private key.
fn parse_private_key(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, LoadError> {
    if signing::parse_public_key_line(text).is_some() {
        return Err(signing::PUBLIC_NOT_PRIVATE.into());
    }
    let (label, headers, der) = signing::parse_pem(text)?;
    if headers.iter().any(|h| h.starts_with("Proc-Type")) {
        return Err(signing::LEGACY_PEM_ENCRYPTION.into());
    }
    let pair = match label.as_str() {
        "OPENSSH PRIVATE KEY" => return signing::decrypt_openssh(&der, passphrase),
        "RSA PRIVATE KEY" => {
            use rsa::pkcs1::DecodeRsaPrivateKey as _;
            let key = rsa::PrivateKey::from_pkcs1_der(&der)
                .map_err(|e| format!("invalid RSA private key: {e}"))?;
            rsa_pair(&key)?
        }
        "EC PRIVATE KEY" => ec_pair_from_sec1(&der)?,
        "PRIVATE KEY" => pkcs8_pair(&der)?,
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or(LoadError::Encrypted)?;
            let plain = signing::decrypt_pkcs8(&der, passphrase)?;
            pkcs8_pair(plain.as_bytes())?
        }
        other => return Err(format!("unsupported private key type \"{other}\"").into()),
    };
    PrivateKey::new(pair, "").map_err(|e| LoadError::from(format!("invalid private key: {e}")))
}

fn rsa_pair(key: &rsa::PrivateKey) -> Result<KeypairData, String> {
    RsaKeypair::try_from(key)
        .map(KeypairData::from)
        .map_err(|e| format!("unusable RSA private key (at least 2048 bits, two primes): {e}"))
}

/// A SEC1 `EC PRIVATE KEY` on P-256, P-384 or P-521.
fn ec_pair_from_sec1(der: &[u8]) -> Result<KeypairData, String> {
    if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
        let public = k.public_key().into();
        return Ok(EcdsaKeypair::NistP256 {
            public,
            private: k.into(),
        }
        .into());
    }
    if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
        let public = k.public_key().into();
        return Ok(EcdsaKeypair::NistP384 {
            public,
            private: k.into(),
        }
        .into());
    }
    if let Ok(k) = p521::SecretKey::from_sec1_der(der) {
        let public = k.public_key().into();
        return Ok(EcdsaKeypair::NistP521 {
            public,
            private: k.into(),
        }
        .into());
    }
    Err("invalid EC private key (supported curves: P-256, P-384, P-521)".to_string())
}

/// An unencrypted PKCS#8 `PrivateKeyInfo`: RSA or ECDSA P-256/384/521.
fn pkcs8_pair(der: &[u8]) -> Result<KeypairData, String> {
    use p256::pkcs8::DecodePrivateKey as _;
    if let Ok(k) = rsa::PrivateKey::from_pkcs8_der(der) {
        return rsa_pair(&k);
    }
    if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
        let public = k.public_key().into();
        return Ok(EcdsaKeypair::NistP256 {
            public,
            private: k.into(),
        }
        .into());
    }
    if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
        let public = k.public_key().into();
        return Ok(EcdsaKeypair::NistP384 {
            public,
            private: k.into(),
        }
        .into());
    }
    if let Ok(k) = p521::SecretKey::from_pkcs8_der(der) {
        let public = k.public_key().into();
        return Ok(EcdsaKeypair::NistP521 {
            public,
            private: k.into(),
        }
        .into());
    }
    Err("unsupported PKCS#8 private key (supported: RSA, ECDSA P-256/384/521)".to_string())
}
