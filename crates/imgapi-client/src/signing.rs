//! HTTP Signature request signing (api.md §1.5), the joyent/node-http-signature
//! 0.10 scheme:
//!
//! ```text
//! Authorization: Signature keyId="<username>",algorithm="<alg>",signature="<base64>"
//! ```
//!
//! over the signing string `date: <Date header>`. The key is read from an
//! unencrypted private key file: OpenSSH format (`-----BEGIN OPENSSH PRIVATE
//! KEY-----`, what `ssh-keygen` writes by default) holding an Ed25519, RSA or
//! ECDSA P-256 key; or PEM `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY`
//! (SEC1, P-256) or `PRIVATE KEY` (PKCS#8, RSA or P-256).
//!
//! Algorithms: `ed25519` (raw 64-byte signature), `rsa-sha256` (PKCS#1
//! v1.5), `ecdsa-sha256` (DER signature).
//!
//! Not here yet: encrypted keys and ssh-agent.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;

use crate::ClientError;

/// The private key of a [`Signer`].
enum SigningKey {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Rsa(Box<rsa::PrivateKey>),
    EcdsaP256(Box<p256::ecdsa::SigningKey>),
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
            .finish_non_exhaustive()
    }
}

fn key_error(path: &Path, msg: impl fmt::Display) -> ClientError {
    ClientError::Key(format!("{}: {msg}", path.display()))
}

impl Signer {
    /// Read the unencrypted private key at `path` and sign as `username`.
    pub fn from_key_file(
        username: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Signer, ClientError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| key_error(path, format!("cannot read private key: {e}")))?;
        let key = parse_private_key(&text).map_err(|e| key_error(path, e))?;
        Ok(Signer {
            username: username.into(),
            key,
        })
    }

    /// Parse an unencrypted private key from its file contents.
    pub fn from_key_text(username: impl Into<String>, text: &str) -> Result<Signer, ClientError> {
        let key = parse_private_key(text).map_err(ClientError::Key)?;
        Ok(Signer {
            username: username.into(),
            key,
        })
    }

    /// The username sent as `keyId`.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The HTTP Signature algorithm name used.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            SigningKey::Ed25519(_) => "ed25519",
            SigningKey::Rsa(_) => "rsa-sha256",
            SigningKey::EcdsaP256(_) => "ecdsa-sha256",
        }
    }

    /// The raw signature over `message`.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
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
        }
    }

    /// The `Authorization` header value for a request whose `Date` header
    /// is `date`.
    pub fn authorization(&self, date: &str) -> String {
        let signature = self.sign(format!("date: {date}").as_bytes());
        format!(
            "Signature keyId=\"{}\",algorithm=\"{}\",signature=\"{}\"",
            self.username,
            self.algorithm(),
            base64::engine::general_purpose::STANDARD.encode(signature)
        )
    }
}

const ENCRYPTED_HINT: &str = "the private key is encrypted (passphrase-protected); use an unencrypted key (ssh-agent support is not implemented yet)";

/// Parse a private key file's contents.
fn parse_private_key(text: &str) -> Result<SigningKey, String> {
    let (label, headers, der) = parse_pem(text)?;
    if headers.iter().any(|h| h.starts_with("Proc-Type")) {
        return Err(ENCRYPTED_HINT.into());
    }
    match label.as_str() {
        "OPENSSH PRIVATE KEY" => parse_openssh(&der),
        "RSA PRIVATE KEY" => {
            use rsa::pkcs1::DecodeRsaPrivateKey as _;
            rsa::PrivateKey::from_pkcs1_der(&der)
                .map(|k| SigningKey::Rsa(Box::new(k)))
                .map_err(|e| format!("invalid RSA private key: {e}"))
        }
        "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
            .map(|k| SigningKey::EcdsaP256(Box::new(k.into())))
            .map_err(|e| format!("invalid EC private key (only P-256 is supported): {e}")),
        "PRIVATE KEY" => {
            use p256::pkcs8::DecodePrivateKey as _;
            if let Ok(k) = rsa::PrivateKey::from_pkcs8_der(&der) {
                return Ok(SigningKey::Rsa(Box::new(k)));
            }
            if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(&der) {
                return Ok(SigningKey::EcdsaP256(Box::new(k)));
            }
            Err("unsupported PKCS#8 private key (supported: RSA, ECDSA P-256)".into())
        }
        "ENCRYPTED PRIVATE KEY" => Err(ENCRYPTED_HINT.into()),
        other => Err(format!("unsupported private key type \"{other}\"")),
    }
}

/// Split a PEM file into its label, its `Name: value` header lines and its
/// decoded body.
fn parse_pem(text: &str) -> Result<(String, Vec<String>, Vec<u8>), String> {
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

/// Reader of SSH wire-format fields (RFC 4251 §5).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated OpenSSH private key".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// An mpint as unsigned big-endian bytes (leading zeros stripped).
    fn mpint(&mut self) -> Result<&'a [u8], String> {
        let b = self.string()?;
        let zeros = b.iter().take_while(|&&x| x == 0).count();
        Ok(&b[zeros..])
    }
}

const OPENSSH_MAGIC: &[u8] = b"openssh-key-v1\0";

/// Parse the body of an `OPENSSH PRIVATE KEY` (PROTOCOL.key in OpenSSH).
fn parse_openssh(data: &[u8]) -> Result<SigningKey, String> {
    let mut r = Wire(
        data.strip_prefix(OPENSSH_MAGIC)
            .ok_or("not an OpenSSH private key (bad magic)")?,
    );
    let cipher = r.string()?;
    let kdf = r.string()?;
    let _kdf_options = r.string()?;
    if cipher != b"none" || kdf != b"none" {
        return Err(ENCRYPTED_HINT.into());
    }
    let nkeys = r.u32()?;
    if nkeys != 1 {
        return Err(format!(
            "OpenSSH private key file holds {nkeys} keys; exactly one is supported"
        ));
    }
    let _public = r.string()?;
    let mut p = Wire(r.string()?);
    let (check1, check2) = (p.u32()?, p.u32()?);
    if check1 != check2 {
        return Err("corrupt OpenSSH private key (check bytes differ)".into());
    }
    let key_type = p.string()?;
    match key_type {
        b"ssh-ed25519" => {
            let _public = p.string()?;
            let secret = p.string()?;
            if secret.len() != 64 {
                return Err("invalid Ed25519 private key length".into());
            }
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&secret[..32]);
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            if key.verifying_key().as_bytes() != &secret[32..] {
                return Err("invalid Ed25519 private key (public half mismatch)".into());
            }
            Ok(SigningKey::Ed25519(Box::new(key)))
        }
        b"ssh-rsa" => {
            let n = p.mpint()?;
            let e = p.mpint()?;
            let d = p.mpint()?;
            let _iqmp = p.mpint()?;
            let prime_p = p.mpint()?;
            let prime_q = p.mpint()?;
            let big = rsa::BoxedUint::from_be_slice_vartime;
            rsa::PrivateKey::from_components(
                big(n),
                big(e),
                big(d),
                vec![big(prime_p), big(prime_q)],
            )
            .map(|k| SigningKey::Rsa(Box::new(k)))
            .map_err(|e| format!("invalid RSA private key: {e}"))
        }
        b"ecdsa-sha2-nistp256" => {
            let _curve = p.string()?;
            let _point = p.string()?;
            let d = p.mpint()?;
            if d.len() > 32 {
                return Err("invalid ECDSA P-256 private key".into());
            }
            let mut scalar = [0u8; 32];
            scalar[32 - d.len()..].copy_from_slice(d);
            p256::ecdsa::SigningKey::from_slice(&scalar)
                .map(|k| SigningKey::EcdsaP256(Box::new(k)))
                .map_err(|e| format!("invalid ECDSA P-256 private key: {e}"))
        }
        other => Err(format!(
            "unsupported OpenSSH key type \"{}\" (supported: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256)",
            String::from_utf8_lossy(other)
        )),
    }
}
