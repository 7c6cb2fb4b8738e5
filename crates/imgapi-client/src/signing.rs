//! HTTP Signature request signing (api.md §1.5), the joyent/node-http-signature
//! 0.10 scheme:
//!
//! ```text
//! Authorization: Signature keyId="<username>",algorithm="<alg>",signature="<base64>"
//! ```
//!
//! over the signing string `date: <Date header>`. The key is either
//!
//! - a private key file: OpenSSH format (`-----BEGIN OPENSSH PRIVATE
//!   KEY-----`, what `ssh-keygen` writes by default) holding an Ed25519, RSA
//!   or ECDSA P-256 key, unencrypted or passphrase-protected (any cipher and
//!   KDF OpenSSH uses: bcrypt-pbkdf with aes256-ctr by default); or PEM
//!   `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY` (SEC1, P-256), `PRIVATE
//!   KEY` (PKCS#8, RSA or P-256) or `ENCRYPTED PRIVATE KEY` (PKCS#8 PBES2).
//!   The legacy OpenSSL encryption of PKCS#1/SEC1 files (`Proc-Type:
//!   4,ENCRYPTED`) is not supported; or
//! - a key held by ssh-agent ([`Signer::from_agent`], see [`crate::agent`]).
//!
//! Algorithms: `ed25519` (raw 64-byte signature), `rsa-sha256` (PKCS#1
//! v1.5), `ecdsa-sha256` (DER signature), whichever holds the key.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;

use crate::agent::{self, AgentKey, KeyKind};
use crate::ClientError;

/// The private key of a [`Signer`].
enum SigningKey {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Rsa(Box<rsa::PrivateKey>),
    EcdsaP256(Box<p256::ecdsa::SigningKey>),
    /// A key held by ssh-agent.
    Agent(AgentKey),
}

/// Signs requests as one user with one private key.
pub struct Signer {
    username: String,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("username", &self.username)
            .field("algorithm", &self.algorithm())
            .field("agent", &self.uses_agent())
            .finish_non_exhaustive()
    }
}

fn key_error(path: &Path, msg: impl fmt::Display) -> ClientError {
    ClientError::Key(format!("{}: {msg}", path.display()))
}

/// The identity among the agent's `identities` (at `socket`) whose public
/// key is that of the key file `path`.
pub(crate) fn agent_identity_of(
    socket: &Path,
    identities: Vec<agent::Identity>,
    path: &Path,
) -> Result<agent::Identity, ClientError> {
    let blob = public_key_of(path).map_err(|e| key_error(path, e))?;
    identities
        .into_iter()
        .find(|i| i.blob == blob)
        .ok_or_else(|| {
            ClientError::Agent(format!(
                "the agent at {} does not hold the key {}",
                socket.display(),
                path.display()
            ))
        })
}

/// Why a private key could not be loaded.
pub(crate) enum LoadError {
    /// Encrypted, and no passphrase was given.
    Encrypted,
    /// Encrypted, and the passphrase given does not decrypt it.
    BadPassphrase,
    Other(String),
}

impl From<String> for LoadError {
    fn from(msg: String) -> LoadError {
        LoadError::Other(msg)
    }
}

impl From<&str> for LoadError {
    fn from(msg: &str) -> LoadError {
        LoadError::Other(msg.to_string())
    }
}

impl LoadError {
    /// The client error for the key named `name` (a path or "private key").
    pub(crate) fn into_client_error(self, name: String) -> ClientError {
        match self {
            LoadError::Encrypted => ClientError::KeyEncrypted { key: name },
            LoadError::BadPassphrase => ClientError::KeyPassphrase { key: name },
            LoadError::Other(msg) => ClientError::Key(format!("{name}: {msg}")),
        }
    }
}

impl Signer {
    /// Read the unencrypted private key at `path` and sign as `username`.
    /// An encrypted key is [`ClientError::KeyEncrypted`].
    pub fn from_key_file(
        username: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Signer, ClientError> {
        Signer::from_key_file_with_passphrase(username, path, None)
    }

    /// Read the private key at `path`, decrypting it with `passphrase` when
    /// it is encrypted, and sign as `username`. An encrypted key without a
    /// passphrase is [`ClientError::KeyEncrypted`], a wrong passphrase
    /// [`ClientError::KeyPassphrase`]; the passphrase of an unencrypted key
    /// is ignored.
    pub fn from_key_file_with_passphrase(
        username: impl Into<String>,
        path: impl AsRef<Path>,
        passphrase: Option<&str>,
    ) -> Result<Signer, ClientError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| key_error(path, format!("cannot read private key: {e}")))?;
        let key = parse_private_key(&text, passphrase)
            .map_err(|e| e.into_client_error(path.display().to_string()))?;
        Ok(Signer {
            username: username.into(),
            key,
        })
    }

    /// Parse an unencrypted private key from its file contents.
    pub fn from_key_text(username: impl Into<String>, text: &str) -> Result<Signer, ClientError> {
        Signer::from_key_text_with_passphrase(username, text, None)
    }

    /// Parse a private key from its file contents, decrypting it with
    /// `passphrase` when it is encrypted (errors as
    /// [`Signer::from_key_file_with_passphrase`]).
    pub fn from_key_text_with_passphrase(
        username: impl Into<String>,
        text: &str,
        passphrase: Option<&str>,
    ) -> Result<Signer, ClientError> {
        let key = parse_private_key(text, passphrase)
            .map_err(|e| e.into_client_error("private key".to_string()))?;
        Ok(Signer {
            username: username.into(),
            key,
        })
    }

    /// Sign through the ssh-agent listening on `socket` (usually
    /// `$SSH_AUTH_SOCK`, see [`agent::socket_from_env`]).
    ///
    /// With `key`, the agent must hold that key: `key` is a public key
    /// file, or a private key file whose public half is known (an OpenSSH
    /// private key, encrypted or not, names it; otherwise `<key>.pub` is
    /// read). Without `key`, the agent's first Ed25519, RSA or ECDSA P-256
    /// identity is used. Fails with [`ClientError::Agent`] when the agent
    /// cannot be reached or holds no such key.
    pub fn from_agent(
        username: impl Into<String>,
        socket: impl AsRef<Path>,
        key: Option<&Path>,
    ) -> Result<Signer, ClientError> {
        let socket = socket.as_ref();
        let identities = agent::list_identities(socket)?;
        let (identity, kind) = match key {
            Some(path) => {
                let identity = agent_identity_of(socket, identities, path)?;
                let kind = KeyKind::of_blob(&identity.blob).ok_or_else(|| {
                    key_error(
                        path,
                        format!(
                            "unsupported key type \"{}\" (supported: {})",
                            identity.key_type(),
                            agent::SUPPORTED_TYPES
                        ),
                    )
                })?;
                (identity, kind)
            }
            None => identities
                .into_iter()
                .find_map(|i| KeyKind::of_blob(&i.blob).map(|k| (i, k)))
                .ok_or_else(|| {
                    ClientError::Agent(format!(
                        "the agent at {} holds no usable key (supported: {})",
                        socket.display(),
                        agent::SUPPORTED_TYPES
                    ))
                })?,
        };
        Ok(Signer {
            username: username.into(),
            key: SigningKey::Agent(AgentKey::new(socket, identity, kind)),
        })
    }

    /// Sign through the ssh-agent at `socket` with one of the keys it
    /// holds (see [`agent::list_identities`]), e.g. the one whose
    /// fingerprint a user named.
    pub fn from_agent_identity(
        username: impl Into<String>,
        socket: impl AsRef<Path>,
        identity: agent::Identity,
    ) -> Result<Signer, ClientError> {
        let kind = KeyKind::of_blob(&identity.blob).ok_or_else(|| {
            ClientError::Agent(format!(
                "unsupported key type \"{}\" (supported: {})",
                identity.key_type(),
                agent::SUPPORTED_TYPES
            ))
        })?;
        Ok(Signer {
            username: username.into(),
            key: SigningKey::Agent(AgentKey::new(socket.as_ref(), identity, kind)),
        })
    }

    /// The username sent as `keyId`.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// True when signatures are made by ssh-agent.
    pub fn uses_agent(&self) -> bool {
        matches!(self.key, SigningKey::Agent(_))
    }

    /// The HTTP Signature algorithm name used.
    pub fn algorithm(&self) -> &'static str {
        let kind = match &self.key {
            SigningKey::Ed25519(_) => KeyKind::Ed25519,
            SigningKey::Rsa(_) => KeyKind::Rsa,
            SigningKey::EcdsaP256(_) => KeyKind::EcdsaP256,
            SigningKey::Agent(k) => k.kind(),
        };
        kind.algorithm()
    }

    /// The raw signature over `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        Ok(match &self.key {
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(message).to_bytes().to_vec()
            }
            SigningKey::Rsa(k) => {
                let digest = sha2::Sha256::digest(message);
                // Signing with a validated key only fails on a digest/modulus
                // size mismatch, impossible for SHA-256 with >= 1024-bit keys;
                // an empty signature would simply be refused by the server.
                k.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
                    .unwrap_or_default()
            }
            SigningKey::EcdsaP256(k) => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::Agent(k) => k.sign(message)?,
        })
    }

    /// The `Authorization` header value for a request whose `Date` header
    /// is `date`. Fails only when signing through ssh-agent fails (agent
    /// gone, key removed, confirmation refused).
    pub fn authorization(&self, date: &str) -> Result<String, ClientError> {
        let signature = self.sign(format!("date: {date}").as_bytes())?;
        Ok(format!(
            "Signature keyId=\"{}\",algorithm=\"{}\",signature=\"{}\"",
            self.username,
            self.algorithm(),
            base64::engine::general_purpose::STANDARD.encode(signature)
        ))
    }
}

pub(crate) const LEGACY_PEM_ENCRYPTION: &str = "legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED) is not supported; convert the key to OpenSSH format with `ssh-keygen -p -f FILE`, or load it into ssh-agent";

pub(crate) const PUBLIC_NOT_PRIVATE: &str = "this is a public key, not a private key: give the private key, or load it into ssh-agent (SSH_AUTH_SOCK)";

/// Parse a private key file's contents, decrypting with `passphrase` when
/// the key is encrypted.
fn parse_private_key(text: &str, passphrase: Option<&str>) -> Result<SigningKey, LoadError> {
    if parse_public_key_line(text).is_some() {
        return Err(PUBLIC_NOT_PRIVATE.into());
    }
    let (label, headers, der) = parse_pem(text)?;
    if headers.iter().any(|h| h.starts_with("Proc-Type")) {
        return Err(LEGACY_PEM_ENCRYPTION.into());
    }
    match label.as_str() {
        "OPENSSH PRIVATE KEY" => parse_openssh(&der, passphrase),
        "RSA PRIVATE KEY" => {
            use rsa::pkcs1::DecodeRsaPrivateKey as _;
            rsa::PrivateKey::from_pkcs1_der(&der)
                .map(|k| SigningKey::Rsa(Box::new(k)))
                .map_err(|e| format!("invalid RSA private key: {e}").into())
        }
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
            .map(|k| SigningKey::EcdsaP256(Box::new(k.into())))
            .map_err(|e| format!("invalid EC private key (only P-256 is supported): {e}").into()),
        "PRIVATE KEY" => Ok(parse_pkcs8(&der)?),
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or(LoadError::Encrypted)?;
            let plain = decrypt_pkcs8(&der, passphrase)?;
            Ok(parse_pkcs8(plain.as_bytes())?)
        }
        other => Err(format!("unsupported private key type \"{other}\"").into()),
    }
}

/// Parse an unencrypted PKCS#8 `PrivateKeyInfo`.
fn parse_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
    use p256::pkcs8::DecodePrivateKey as _;
    if let Ok(k) = rsa::PrivateKey::from_pkcs8_der(der) {
        return Ok(SigningKey::Rsa(Box::new(k)));
    }
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
        return Ok(SigningKey::EcdsaP256(Box::new(k)));
    }
    Err("unsupported PKCS#8 private key (supported: RSA, ECDSA P-256)".into())
}

/// Decrypt a PKCS#8 `EncryptedPrivateKeyInfo` (PBES2: PBKDF2 or scrypt,
/// AES-CBC/GCM) into its `PrivateKeyInfo` DER.
pub(crate) fn decrypt_pkcs8(
    der: &[u8],
    passphrase: &str,
) -> Result<pkcs8::SecretDocument, LoadError> {
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der)
        .map_err(|e| format!("invalid encrypted PKCS#8 private key: {e}"))?;
    let plain = match info.decrypt(passphrase) {
        Ok(plain) => plain,
        // A wrong key shows as bad padding or as plaintext that is not DER.
        Err(
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed)
            | pkcs8::Error::Asn1(_),
        ) => return Err(LoadError::BadPassphrase),
        Err(e) => return Err(format!("cannot decrypt the private key: {e}").into()),
    };
    // Padding that checks out by chance still leaves garbage.
    if pkcs8::PrivateKeyInfoRef::try_from(plain.as_bytes()).is_err() {
        return Err(LoadError::BadPassphrase);
    }
    Ok(plain)
}

/// The SSH public key blob of a key file: an OpenSSH public key, an
/// OpenSSH private key (which names its public half), or another private
/// key beside its `.pub`.
pub fn public_key_blob(path: &Path) -> Result<Vec<u8>, ClientError> {
    public_key_of(path).map_err(|e| key_error(path, e))
}

/// The SSH public key blob (RFC 4253 §6.6) of the key at `path`, which is
/// an OpenSSH public key (`ssh-ed25519 AAAA... comment`), an OpenSSH private
/// key (encrypted or not; the public half is stored in the clear), or any
/// other private key with a `<path>.pub` beside it.
pub(crate) fn public_key_of(path: &Path) -> Result<Vec<u8>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the key file: {e}"))?;
    if let Some(blob) = parse_public_key_line(&text) {
        return Ok(blob);
    }
    if let Ok((label, _, der)) = parse_pem(&text) {
        if label == "OPENSSH PRIVATE KEY" {
            return openssh_public_blob(&der);
        }
    }
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = Path::new(&pub_path);
    match std::fs::read_to_string(pub_path) {
        Ok(text) => parse_public_key_line(&text)
            .ok_or_else(|| format!("{} is not an OpenSSH public key", pub_path.display())),
        Err(e) => Err(format!(
            "cannot tell its public key: it is neither an OpenSSH public or private key, and {} cannot be read: {e}",
            pub_path.display()
        )),
    }
}

/// The key blob of an OpenSSH public key line (`<type> <base64> [comment]`,
/// the format of `id_*.pub` files), when `text` starts with one.
pub(crate) fn parse_public_key_line(text: &str) -> Option<Vec<u8>> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let mut fields = line.split_whitespace();
    let key_type = fields.next()?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    let key = ssh_key::PublicKey::from_bytes(&blob).ok()?;
    (key.algorithm().as_str() == key_type).then_some(blob)
}

/// Split a PEM file into its label, its `Name: value` header lines and its
/// decoded body.
pub(crate) fn parse_pem(text: &str) -> Result<(String, Vec<String>, Vec<u8>), String> {
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .by_ref()
        .find_map(|l| {
            l.strip_prefix("-----BEGIN ")
                .and_then(|l| l.strip_suffix("-----"))
        })
        .ok_or("not a PEM private key file (no -----BEGIN ...----- line)")?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut headers = Vec::new();
    let mut body = String::new();
    let mut ended = false;
    for l in lines {
        if l == end {
            ended = true;
            break;
        }
        if l.contains(':') {
            headers.push(l.to_string());
        } else {
            body.push_str(l);
        }
    }
    if !ended {
        return Err(format!("missing \"{end}\" line"));
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "private key body is not valid base64".to_string())?;
    Ok((label, headers, der))
}

/// The public key blob stored in the clear in an `OPENSSH PRIVATE KEY`
/// body, encrypted or not.
fn openssh_public_blob(data: &[u8]) -> Result<Vec<u8>, String> {
    ssh_key::PrivateKey::from_bytes(data)
        .and_then(|key| key.public_key().to_bytes())
        .map_err(|e| format!("invalid OpenSSH private key: {e}"))
}

/// Parse the body of an `OPENSSH PRIVATE KEY` (PROTOCOL.key in OpenSSH),
/// decrypting it with `passphrase` when it is encrypted. The body comes
/// from [`parse_pem`] rather than ssh-key's own PEM reader, which insists
/// on OpenSSH's exact 70-column line wrapping.
fn parse_openssh(data: &[u8], passphrase: Option<&str>) -> Result<SigningKey, LoadError> {
    let key = decrypt_openssh(data, passphrase)?;
    Ok(signing_key_of(&key)?)
}

/// The decrypted key of an `OPENSSH PRIVATE KEY` body (see
/// [`parse_openssh`]).
pub(crate) fn decrypt_openssh(
    data: &[u8],
    passphrase: Option<&str>,
) -> Result<ssh_key::PrivateKey, LoadError> {
    let key = ssh_key::PrivateKey::from_bytes(data)
        .map_err(|e| format!("invalid OpenSSH private key: {e}"))?;
    let key = if key.is_encrypted() {
        let passphrase = passphrase.ok_or(LoadError::Encrypted)?;
        match key.decrypt(passphrase) {
            Ok(plain) => plain,
            // Check bytes that differ after decryption, or a failed AEAD tag.
            Err(ssh_key::Error::Crypto) => return Err(LoadError::BadPassphrase),
            Err(e) => return Err(format!("cannot decrypt the private key: {e}").into()),
        }
    } else {
        key
    };
    Ok(key)
}

/// The signing key of a decrypted OpenSSH private key.
fn signing_key_of(key: &ssh_key::PrivateKey) -> Result<SigningKey, String> {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    match key.key_data() {
        KeypairData::Ed25519(pair) => {
            let signing = ed25519_dalek::SigningKey::from_bytes(pair.private.as_ref());
            // ssh-key checks this only when built with its own ed25519 backend.
            if signing.verifying_key().as_bytes() != pair.public.as_ref() {
                return Err("invalid Ed25519 private key (public half mismatch)".into());
            }
            Ok(SigningKey::Ed25519(Box::new(signing)))
        }
        // Built from the components, as the server does, rather than
        // through ssh-key's `rsa` feature, which refuses 1024-bit keys.
        KeypairData::Rsa(pair) => {
            let (public, private) = (pair.public(), pair.private());
            rsa::PrivateKey::from_components(
                rsa_uint(public.n())?,
                rsa_uint(public.e())?,
                rsa_uint(private.d())?,
                vec![rsa_uint(private.p())?, rsa_uint(private.q())?],
            )
            .map(|k| SigningKey::Rsa(Box::new(k)))
            .map_err(|e| format!("invalid RSA private key: {e}"))
        }
        KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => {
            p256::ecdsa::SigningKey::from_slice(private.as_slice())
                .map(|k| SigningKey::EcdsaP256(Box::new(k)))
                .map_err(|e| format!("invalid ECDSA P-256 private key: {e}"))
        }
        _ => Err(format!(
            "unsupported OpenSSH key type \"{}\" (supported: {})",
            key.algorithm().as_str(),
            agent::SUPPORTED_TYPES
        )),
    }
}

/// An RSA key component, which OpenSSH stores as a positive mpint.
fn rsa_uint(value: &ssh_key::Mpint) -> Result<rsa::BoxedUint, String> {
    value
        .as_positive_bytes()
        .map(rsa::BoxedUint::from_be_slice_vartime)
        .ok_or_else(|| "invalid RSA private key (negative component)".to_string())
}
