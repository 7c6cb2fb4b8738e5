//! HTTP Signature authentication, the joyent/node-http-signature 0.10 scheme
//! that IMGAPI clients speak (api.md §1.5):
//!
//! ```text
//! Authorization: Signature keyId="<username>",algorithm="<alg>"[,headers="date ..."],signature="<base64>"
//! ```
//!
//! The signing string is one line per name in `headers` (default `date`),
//! `<lowercase name>: <value>`, joined by `\n`; the pseudo-headers
//! `request-line` (`<METHOD> <path?query> HTTP/1.1`, no prefix, as
//! node-http-signature) and `(request-target)` (`(request-target): <method>
//! <path?query>`, as the later drafts) are supported. The `Date` header must
//! be present and within [`MAX_CLOCK_SKEW_SECS`] of now. `keyId` is the
//! username; the signature must verify against one of that user's keys
//! whose type matches the algorithm.
//!
//! Differences from node-http-signature 0.10, all stricter: unknown and
//! duplicate parameters are refused (node ignored / overwrote them); a
//! `Date` header is always required and must parse (node skipped the skew
//! check without one and let an unparseable date through); a signature that
//! is not base64 is a parse error. Optional whitespace after the commas is
//! accepted, and the scheme name is case-insensitive.
//!
//! Timing: every byte comparison of a verification happens inside the
//! RustCrypto verifiers (RSA's PKCS#1 v1.5 unpadding compares with
//! `subtle::ConstantTimeEq`); this module never compares signature bytes.
//! HMAC, the only scheme where the compared value is secret, is refused.

use std::time::{Duration, SystemTime};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use http::HeaderMap;
use sha1::Digest as _;

use crate::auth_keys::{AuthKeys, KeyKind, KeyMaterial, PublicKey};

/// Largest accepted difference between the `Date` header and now.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// Most names a `headers` parameter may list.
const MAX_SIGNED_HEADERS: usize = 64;

/// A digest used by a signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => sha1::Sha1::digest(msg).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(msg).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        }
    }
}

/// A supported signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5: `rsa-sha1`, `rsa-sha256`, `rsa-sha512`.
    Rsa(Hash),
    /// `dsa-sha1` (DER signature).
    Dsa(Hash),
    /// `ecdsa-sha256/384/512` with a P-256/384/521 key (DER or fixed-size
    /// `r||s` signature; any of the hashes with any of the curves).
    Ecdsa(Hash),
    /// `ed25519` / `ed25519-sha512` (PureEdDSA, raw 64-byte signature).
    Ed25519,
}

impl Algorithm {
    /// Parse an algorithm name, case-insensitively. HMAC and anything else
    /// not listed is `None`.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Some(match name.to_ascii_lowercase().as_str() {
            "rsa-sha1" => Algorithm::Rsa(Hash::Sha1),
            "rsa-sha256" => Algorithm::Rsa(Hash::Sha256),
            "rsa-sha512" => Algorithm::Rsa(Hash::Sha512),
            "dsa-sha1" => Algorithm::Dsa(Hash::Sha1),
            "ecdsa-sha256" => Algorithm::Ecdsa(Hash::Sha256),
            "ecdsa-sha384" => Algorithm::Ecdsa(Hash::Sha384),
            "ecdsa-sha512" => Algorithm::Ecdsa(Hash::Sha512),
            "ed25519" | "ed25519-sha512" => Algorithm::Ed25519,
            _ => return None,
        })
    }

    /// The key family this algorithm needs.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Algorithm::Rsa(_) => KeyKind::Rsa,
            Algorithm::Dsa(_) => KeyKind::Dsa,
            Algorithm::Ecdsa(_) => KeyKind::Ecdsa,
            Algorithm::Ed25519 => KeyKind::Ed25519,
        }
    }
}

/// Why a request's signature was not accepted. `Display` is the message
/// for the 401 `UnauthorizedError` body (node-http-signature's and IMGAPI's
/// wording where they had one).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("no authorization header present in the request")]
    NoAuthorization,
    #[error("bad param format")]
    BadParamFormat,
    #[error("scheme was not \"Signature\"")]
    BadScheme,
    #[error("{0} was not specified")]
    MissingParam(&'static str),
    #[error("unknown param \"{0}\"")]
    UnknownParam(String),
    #[error("duplicate param \"{0}\"")]
    DuplicateParam(String),
    #[error("signature is not valid base64")]
    BadSignatureEncoding,
    #[error("too many signed headers (at most {MAX_SIGNED_HEADERS})")]
    TooManyHeaders,
    #[error("{0} was not in the request")]
    MissingHeader(String),
    #[error("date header is not a valid HTTP date")]
    InvalidDate,
    #[error("clock skew of {skew_secs}s was greater than {max_secs}s")]
    ClockSkew { skew_secs: f64, max_secs: u64 },
    /// The algorithm as sent, upper-cased (IMGAPI's message).
    #[error("Unauthorized (\"{0}\" is not a supported http-signature signing algorithm)")]
    UnsupportedAlgorithm(String),
    /// Unknown user, or no key of the user verifies the signature.
    #[error("Unauthorized")]
    Unauthorized,
}

/// The parameters of an `Authorization: Signature ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// `keyId`: the username.
    pub key_id: String,
    /// `algorithm` exactly as sent (see [`SignatureParams::algorithm`]).
    pub algorithm_name: String,
    /// The signed header names, lower-cased (default `["date"]`).
    pub headers: Vec<String>,
    /// The decoded `signature`.
    pub signature: Vec<u8>,
}

impl SignatureParams {
    /// The algorithm, or the IMGAPI "not a supported ... algorithm" error.
    pub fn algorithm(&self) -> Result<Algorithm, SignatureError> {
        Algorithm::parse(&self.algorithm_name).ok_or_else(|| {
            SignatureError::UnsupportedAlgorithm(self.algorithm_name.to_ascii_uppercase())
        })
    }
}

/// Base64 as node's `Buffer.from(s, 'base64')` mostly reads it: padding
/// optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Parse an `Authorization` header value. Never panics.
pub fn parse_authorization(value: &str) -> Result<SignatureParams, SignatureError> {
    let (scheme, rest) = match value.split_once(' ') {
        Some((scheme, rest)) => (scheme, rest),
        None => (value, ""),
    };
    let mut key_id = None;
    let mut algorithm = None;
    let mut headers = None;
    let mut signature = None;

    let mut s = rest.trim_matches(|c| c == ' ' || c == '\t');
    while !s.is_empty() {
        // name
        let name_len = s.bytes().take_while(u8::is_ascii_alphabetic).count();
        if name_len == 0 {
            return Err(SignatureError::BadParamFormat);
        }
        let (name, after) = s.split_at(name_len);
        let after = after
            .strip_prefix("=\"")
            .ok_or(SignatureError::BadParamFormat)?;
        let end = after.find('"').ok_or(SignatureError::BadParamFormat)?;
        let (val, after) = after.split_at(end);
        let after = &after[1..]; // the closing quote (ASCII, so a char boundary)
        let slot = match name {
            "keyId" => &mut key_id,
            "algorithm" => &mut algorithm,
            "headers" => &mut headers,
            "signature" => &mut signature,
            other => return Err(SignatureError::UnknownParam(other.to_string())),
        };
        if slot.replace(val).is_some() {
            return Err(SignatureError::DuplicateParam(name.to_string()));
        }
        // separator: OWS "," OWS, or the end
        let after = after.trim_start_matches([' ', '\t']);
        s = match after.strip_prefix(',') {
            Some(next) => {
                let next = next.trim_start_matches([' ', '\t']);
                if next.is_empty() {
                    return Err(SignatureError::BadParamFormat);
                }
                next
            }
            None if after.is_empty() => after,
            None => return Err(SignatureError::BadParamFormat),
        };
    }

    if !scheme.eq_ignore_ascii_case("Signature") {
        return Err(SignatureError::BadScheme);
    }
    let key_id = key_id
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingParam("keyId"))?;
    let algorithm = algorithm
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingParam("algorithm"))?;
    let signature = signature
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingParam("signature"))?;
    let signature = LENIENT_BASE64
        .decode(signature)
        .map_err(|_| SignatureError::BadSignatureEncoding)?;
    let headers: Vec<String> = match headers {
        None | Some("") => vec!["date".to_string()],
        Some(list) => {
            let names: Vec<&str> = list.split(' ').collect();
            if names.len() > MAX_SIGNED_HEADERS {
                return Err(SignatureError::TooManyHeaders);
            }
            names.into_iter().map(str::to_ascii_lowercase).collect()
        }
    };
    Ok(SignatureParams {
        key_id: key_id.to_string(),
        algorithm_name: algorithm.to_string(),
        headers,
        signature,
    })
}

/// Build the signing string for `params` over a request with `method` and
/// `path_and_query` (as on the request line), looking header values up with
/// `header` (given a lower-case name). A missing or empty header is an error.
pub fn signing_string(
    params: &SignatureParams,
    method: &str,
    path_and_query: &str,
    header: impl Fn(&str) -> Option<String>,
) -> Result<String, SignatureError> {
    let mut out = String::new();
    for (i, name) in params.headers.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match name.as_str() {
            "request-line" => {
                out.push_str(method);
                out.push(' ');
                out.push_str(path_and_query);
                out.push_str(" HTTP/1.1");
            }
            "(request-target)" => {
                out.push_str("(request-target): ");
                out.push_str(&method.to_ascii_lowercase());
                out.push(' ');
                out.push_str(path_and_query);
            }
            _ => {
                let value = header(name)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| SignatureError::MissingHeader(name.clone()))?;
                out.push_str(name);
                out.push_str(": ");
                out.push_str(&value);
            }
        }
    }
    Ok(out)
}

/// Check a `Date` header value against `now` (at most `max_skew` either way).
pub fn check_date(
    date: Option<&str>,
    now: SystemTime,
    max_skew: Duration,
) -> Result<(), SignatureError> {
    let date = date
        .filter(|d| !d.is_empty())
        .ok_or_else(|| SignatureError::MissingHeader("date".into()))?;
    let when = httpdate::parse_http_date(date.trim()).map_err(|_| SignatureError::InvalidDate)?;
    let skew = match now.duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > max_skew {
        return Err(SignatureError::ClockSkew {
            skew_secs: skew.as_millis() as f64 / 1000.0,
            max_secs: max_skew.as_secs(),
        });
    }
    Ok(())
}

/// Verify an ECDSA signature given as ASN.1 DER (OpenSSL, node crypto) or
/// as fixed-size `r||s` (`$field` bytes each) over the `$hash` of `$msg`.
macro_rules! ecdsa_verify {
    ($curve:ident, $key:expr, $field:expr, $hash:expr, $msg:expr, $sig:expr) => {{
        let sig = if $sig.len() == 2 * $field {
            $curve::ecdsa::Signature::from_slice($sig)
        } else {
            $curve::ecdsa::Signature::from_der($sig)
        };
        sig.is_ok_and(|sig| $key.verify_prehash(&$hash.digest($msg), &sig).is_ok())
    }};
}

/// Does `signature` over `message` verify with `key` under `algorithm`?
/// A key of another family than the algorithm's never verifies.
pub fn verify_signature(
    algorithm: Algorithm,
    key: &KeyMaterial,
    message: &[u8],
    signature: &[u8],
) -> bool {
    use dsa::signature::hazmat::PrehashVerifier as _;
    match (algorithm, key) {
        (Algorithm::Rsa(hash), KeyMaterial::Rsa(key)) => {
            let scheme = match hash {
                Hash::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
            };
            key.verify(scheme, &hash.digest(message), signature).is_ok()
        }
        (Algorithm::Dsa(hash), KeyMaterial::Dsa(key)) => dsa::Signature::try_from(signature)
            .is_ok_and(|sig| key.verify_prehash(&hash.digest(message), &sig).is_ok()),
        (Algorithm::Ecdsa(hash), KeyMaterial::EcdsaP256(key)) => {
            ecdsa_verify!(p256, key, 32, hash, message, signature)
        }
        (Algorithm::Ecdsa(hash), KeyMaterial::EcdsaP384(key)) => {
            ecdsa_verify!(p384, key, 48, hash, message, signature)
        }
        (Algorithm::Ecdsa(hash), KeyMaterial::EcdsaP521(key)) => {
            ecdsa_verify!(p521, key, 66, hash, message, signature)
        }
        (Algorithm::Ed25519, KeyMaterial::Ed25519(key)) => {
            ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok())
        }
        _ => false,
    }
}

/// Whether any of `keys` verifies.
fn any_key_verifies(
    algorithm: Algorithm,
    keys: &[std::sync::Arc<PublicKey>],
    message: &[u8],
    signature: &[u8],
) -> bool {
    keys.iter()
        .filter(|k| k.material.kind() == algorithm.key_kind())
        .any(|k| verify_signature(algorithm, &k.material, message, signature))
}

/// A header's value as node sees it: repeated headers joined by `", "`,
/// non-UTF-8 bytes replaced.
pub fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
    let mut values = headers.get_all(&name).iter();
    let first = values.next()?;
    let mut out = String::from_utf8_lossy(first.as_bytes()).into_owned();
    for v in values {
        out.push_str(", ");
        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    Some(out)
}

/// Authenticate one request: parse its `Authorization` header, build the
/// signing string, check the `Date` skew against `now`, and verify against
/// the keys of the `keyId` user. Returns the username.
///
/// `path_and_query` is the request target as sent (`uri.path_and_query()`).
pub fn verify_request(
    headers: &HeaderMap,
    method: &http::Method,
    path_and_query: &str,
    keys: &AuthKeys,
    now: SystemTime,
) -> Result<String, SignatureError> {
    let authz = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(SignatureError::NoAuthorization)?;
    let authz = authz.to_str().map_err(|_| SignatureError::BadParamFormat)?;
    let params = parse_authorization(authz)?;
    let message = signing_string(&params, method.as_str(), path_and_query, |name| {
        header_value(headers, name)
    })?;
    check_date(
        header_value(headers, "date").as_deref(),
        now,
        Duration::from_secs(MAX_CLOCK_SKEW_SECS),
    )?;
    let algorithm = params.algorithm()?;
    let user_keys = keys
        .keys_for(&params.key_id)
        .ok_or(SignatureError::Unauthorized)?;
    if any_key_verifies(algorithm, &user_keys, message.as_bytes(), &params.signature) {
        Ok(params.key_id)
    } else {
        Err(SignatureError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    //! The positive cases are signed by OpenSSL (a signer we did not write)
    //! over keys made by ssh-keygen; the header is assembled here.
    use super::*;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::{Arc, OnceLock};

    use http::{HeaderValue, Method};
    use proptest::prelude::*;

    use crate::auth_keys::{parse_public_key, KeyMap};

    const DATE: &str = "Tue, 21 Jul 2020 10:00:00 GMT";

    fn at(date: &str) -> SystemTime {
        httpdate::parse_http_date(date).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn run(cmd: &mut Command) -> Option<Vec<u8>> {
        let out = cmd.output().ok()?;
        if out.status.success() {
            Some(out.stdout)
        } else {
            eprintln!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
    }

    /// One test key: its OpenSSH public line and a PEM private key that
    /// OpenSSL can sign with.
    struct TestKey {
        name: &'static str,
        public_line: String,
        pem: PathBuf,
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        keys: HashMap<&'static str, TestKey>,
    }

    impl Fixture {
        fn key(&self, name: &str) -> Option<&TestKey> {
            let k = self.keys.get(name);
            if k.is_none() {
                eprintln!("SKIP: no {name} test key on this machine");
            }
            k
        }
    }

    /// ssh-keygen key, converted in place to PEM for OpenSSL.
    fn ssh_keygen_key(dir: &Path, name: &'static str, args: &[&str]) -> Option<TestKey> {
        let public_line = crate::auth_keys::tests::keygen(dir, name, args)?;
        let pem = dir.join(name);
        run(Command::new("ssh-keygen")
            .args(["-p", "-m", "PEM", "-N", "", "-P", "", "-q", "-f"])
            .arg(&pem))?;
        Some(TestKey {
            name,
            public_line,
            pem,
        })
    }

    /// Ed25519: OpenSSH cannot export its Ed25519 private keys as PEM, so
    /// OpenSSL makes the key and the OpenSSH line wraps its raw public key.
    fn openssl_ed25519_key(dir: &Path) -> Option<TestKey> {
        let pem = dir.join("ed25519.pem");
        run(Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&pem))?;
        let spki = run(Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&pem))?;
        let raw = spki.get(spki.len().checked_sub(32)?..)?;
        let key_data = ssh_key::public::Ed25519PublicKey::try_from(raw).ok()?;
        let public_line = ssh_key::PublicKey::new(key_data.into(), "ed25519")
            .to_openssh()
            .ok()?;
        Some(TestKey {
            name: "ed25519",
            public_line,
            pem,
        })
    }

    fn fixture() -> Option<&'static Fixture> {
        static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
        let f = FIXTURE.get_or_init(|| {
            for tool in ["ssh-keygen", "openssl"] {
                if Command::new(tool).arg("version").output().is_err() {
                    eprintln!("SKIP: `{tool}` is not installed");
                    return None;
                }
            }
            let dir = tempfile::tempdir().ok()?;
            let mut keys = HashMap::new();
            let specs: [(&'static str, &[&str]); 6] = [
                ("rsa", &["-t", "rsa", "-b", "2048"]),
                ("rsa-other", &["-t", "rsa", "-b", "2048"]),
                ("dsa", &["-t", "dsa"]),
                ("ecdsa-p256", &["-t", "ecdsa", "-b", "256"]),
                ("ecdsa-p384", &["-t", "ecdsa", "-b", "384"]),
                ("ecdsa-p521", &["-t", "ecdsa", "-b", "521"]),
            ];
            for (name, args) in specs {
                if let Some(k) = ssh_keygen_key(dir.path(), name, args) {
                    keys.insert(name, k);
                }
            }
            if let Some(k) = openssl_ed25519_key(dir.path()) {
                keys.insert("ed25519", k);
            }
            Some(Fixture { _dir: dir, keys })
        });
        f.as_ref()
    }

    /// Sign `message` with OpenSSL: `dgst -<hash> -sign` (DER for DSA/ECDSA)
    /// or, for Ed25519, `pkeyutl -sign -rawin`.
    fn openssl_sign(key: &TestKey, hash: Option<&str>, message: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let msg = dir.path().join("msg");
        std::fs::write(&msg, message).unwrap();
        let mut cmd = Command::new("openssl");
        match hash {
            Some(h) => cmd
                .args(["dgst", &format!("-{h}"), "-sign"])
                .arg(&key.pem)
                .arg(&msg),
            None => cmd
                .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
                .arg(&key.pem)
                .arg("-in")
                .arg(&msg),
        };
        let sig =
            run(&mut cmd).unwrap_or_else(|| panic!("openssl could not sign with {}", key.name));
        assert!(!sig.is_empty());
        sig
    }

    /// A key store: `users` → the public lines of the named test keys.
    fn store(f: &Fixture, users: &[(&str, &[&str])]) -> AuthKeys {
        let mut map = KeyMap::new();
        for (user, names) in users {
            let entry = map.entry(user.to_string()).or_default();
            for name in *names {
                if let Some(k) = f.keys.get(name) {
                    entry.push(Arc::new(parse_public_key(&k.public_line).unwrap()));
                }
            }
        }
        AuthKeys::from_map(map)
    }

    fn request_headers(date: Option<&str>, authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(d) = date {
            h.insert(http::header::DATE, HeaderValue::from_str(d).unwrap());
        }
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        h
    }

    fn authz(key_id: &str, alg: &str, headers: Option<&str>, sig: &[u8]) -> String {
        match headers {
            Some(list) => format!(
                "Signature keyId=\"{key_id}\",algorithm=\"{alg}\",headers=\"{list}\",signature=\"{}\"",
                b64(sig)
            ),
            None => format!(
                "Signature keyId=\"{key_id}\",algorithm=\"{alg}\",signature=\"{}\"",
                b64(sig)
            ),
        }
    }

    fn check(
        keys: &AuthKeys,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<String, SignatureError> {
        verify_request(headers, &Method::GET, "/images?owner=x", keys, now)
    }

    /// (key, algorithm name, openssl digest or None for Ed25519)
    const CASES: &[(&str, &str, Option<&str>)] = &[
        ("rsa", "rsa-sha1", Some("sha1")),
        ("rsa", "rsa-sha256", Some("sha256")),
        ("rsa", "RSA-SHA512", Some("sha512")),
        ("dsa", "dsa-sha1", Some("sha1")),
        ("ecdsa-p256", "ecdsa-sha256", Some("sha256")),
        ("ecdsa-p384", "ecdsa-sha384", Some("sha384")),
        ("ecdsa-p384", "ecdsa-sha256", Some("sha256")),
        ("ecdsa-p521", "ecdsa-sha512", Some("sha512")),
        ("ed25519", "ed25519", None),
        ("ed25519", "ED25519-SHA512", None),
    ];

    #[test]
    fn openssl_signatures_verify_for_every_key_type() {
        let Some(f) = fixture() else { return };
        let all: Vec<&str> = f.keys.keys().copied().collect();
        let keys = store(f, &[("alice", &all)]);
        let message = format!("date: {DATE}");
        let mut verified = 0;
        for (key, alg, hash) in CASES {
            let Some(k) = f.key(key) else { continue };
            let sig = openssl_sign(k, *hash, &message);
            let h = request_headers(Some(DATE), &authz("alice", alg, None, &sig));
            assert_eq!(
                check(&keys, &h, at(DATE)),
                Ok("alice".into()),
                "{key} {alg}"
            );
            // A key registered alone for its user verifies too (no luck from
            // another key of the same user).
            let solo = store(f, &[("solo", &[key])]);
            let h = request_headers(Some(DATE), &authz("solo", alg, None, &sig));
            assert_eq!(
                check(&solo, &h, at(DATE)),
                Ok("solo".into()),
                "{key} {alg} alone"
            );
            // The same signature over another date is refused, for every type.
            let later = "Tue, 21 Jul 2020 10:00:01 GMT";
            let h = request_headers(Some(later), &authz("alice", alg, None, &sig));
            assert_eq!(
                check(&keys, &h, at(DATE)),
                Err(SignatureError::Unauthorized),
                "{key} {alg} tampered"
            );
            verified += 1;
        }
        eprintln!("verified {verified} OpenSSL signatures");
    }

    #[test]
    fn ecdsa_fixed_size_signatures_verify() {
        let Some(f) = fixture() else { return };
        let message = format!("date: {DATE}");
        for (key, alg, hash) in [
            ("ecdsa-p256", "ecdsa-sha256", "sha256"),
            ("ecdsa-p384", "ecdsa-sha384", "sha384"),
            ("ecdsa-p521", "ecdsa-sha512", "sha512"),
        ] {
            let Some(k) = f.key(key) else { continue };
            let der = openssl_sign(k, Some(hash), &message);
            let raw = match key {
                "ecdsa-p256" => p256::ecdsa::Signature::from_der(&der)
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
                "ecdsa-p384" => p384::ecdsa::Signature::from_der(&der)
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
                _ => p521::ecdsa::Signature::from_der(&der)
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            };
            let keys = store(f, &[("alice", &[key])]);
            let h = request_headers(Some(DATE), &authz("alice", alg, None, &raw));
            assert_eq!(check(&keys, &h, at(DATE)), Ok("alice".into()), "{key}");
        }
    }

    #[test]
    fn request_line_and_request_target_are_signed() {
        let Some(f) = fixture() else { return };
        let Some(k) = f.key("rsa") else { return };
        let keys = store(f, &[("alice", &["rsa"])]);
        for (list, message) in [
            (
                "date request-line",
                format!("date: {DATE}\nGET /images?owner=x HTTP/1.1"),
            ),
            (
                "(request-target) Date",
                format!("(request-target): get /images?owner=x\ndate: {DATE}"),
            ),
        ] {
            let sig = openssl_sign(k, Some("sha256"), &message);
            let h = request_headers(Some(DATE), &authz("alice", "rsa-sha256", Some(list), &sig));
            assert_eq!(check(&keys, &h, at(DATE)), Ok("alice".into()), "{list}");
            // Same signature on another path or method: refused.
            let other = verify_request(&h, &Method::GET, "/images?owner=y", &keys, at(DATE));
            assert_eq!(other, Err(SignatureError::Unauthorized), "{list}");
            let other = verify_request(&h, &Method::POST, "/images?owner=x", &keys, at(DATE));
            assert_eq!(other, Err(SignatureError::Unauthorized), "{list}");
        }
    }

    #[test]
    fn signed_extra_headers_must_be_present_and_match() {
        let Some(f) = fixture() else { return };
        let Some(k) = f.key("ed25519") else { return };
        let keys = store(f, &[("alice", &["ed25519"])]);
        let message = format!("date: {DATE}\ncontent-md5: abc==");
        let sig = openssl_sign(k, None, &message);
        let mut h = request_headers(
            Some(DATE),
            &authz("alice", "ed25519", Some("date content-md5"), &sig),
        );
        assert_eq!(
            check(&keys, &h, at(DATE)),
            Err(SignatureError::MissingHeader("content-md5".into()))
        );
        h.insert("content-md5", HeaderValue::from_static("abc=="));
        assert_eq!(check(&keys, &h, at(DATE)), Ok("alice".into()));
        h.insert("content-md5", HeaderValue::from_static("abd=="));
        assert_eq!(
            check(&keys, &h, at(DATE)),
            Err(SignatureError::Unauthorized)
        );
    }

    #[test]
    fn negative_cases_with_real_signatures() {
        let Some(f) = fixture() else { return };
        let (Some(rsa_key), Some(ed_key)) = (f.key("rsa"), f.key("ed25519")) else {
            return;
        };
        let keys = store(
            f,
            &[("alice", &["rsa", "ed25519"]), ("bob", &["rsa-other"])],
        );
        let message = format!("date: {DATE}");
        let rsa_sig = openssl_sign(rsa_key, Some("sha256"), &message);
        let ed_sig = openssl_sign(ed_key, None, &message);
        let ok = request_headers(Some(DATE), &authz("alice", "rsa-sha256", None, &rsa_sig));
        assert_eq!(check(&keys, &ok, at(DATE)), Ok("alice".into()));

        // Tampered date (still within the skew): the signature no longer matches.
        let later = "Tue, 21 Jul 2020 10:00:01 GMT";
        let h = request_headers(Some(later), &authz("alice", "rsa-sha256", None, &rsa_sig));
        assert_eq!(
            check(&keys, &h, at(DATE)),
            Err(SignatureError::Unauthorized)
        );

        // Wrong user: bob's keys do not verify alice's signature; unknown user.
        for user in ["bob", "mallory", "Alice"] {
            let h = request_headers(Some(DATE), &authz(user, "rsa-sha256", None, &rsa_sig));
            assert_eq!(
                check(&keys, &h, at(DATE)),
                Err(SignatureError::Unauthorized),
                "{user}"
            );
        }

        // Wrong key: alice registered only with another RSA key.
        let other = store(f, &[("alice", &["rsa-other"])]);
        assert_eq!(
            check(&other, &ok, at(DATE)),
            Err(SignatureError::Unauthorized)
        );

        // Clock skew: 300 s either way is fine, more is not.
        let t = at(DATE);
        assert!(check(&keys, &ok, t + Duration::from_secs(300)).is_ok());
        assert!(check(&keys, &ok, t - Duration::from_secs(300)).is_ok());
        let err = check(&keys, &ok, t + Duration::from_millis(301_500)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "clock skew of 301.5s was greater than 300s"
        );
        let err = check(&keys, &ok, t - Duration::from_secs(400)).unwrap_err();
        assert_eq!(err.to_string(), "clock skew of 400s was greater than 300s");

        // Unsupported algorithms (checked before any key is looked at).
        for (alg, shown) in [
            ("hmac-sha256", "HMAC-SHA256"),
            ("hmac-sha1", "HMAC-SHA1"),
            ("rsa-md5", "RSA-MD5"),
            ("Ecdsa-Sha1", "ECDSA-SHA1"),
        ] {
            let h = request_headers(Some(DATE), &authz("alice", alg, None, &rsa_sig));
            let err = check(&keys, &h, at(DATE)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("Unauthorized (\"{shown}\" is not a supported http-signature signing algorithm)")
            );
        }

        // Algorithm / key mismatches.
        for (alg, sig) in [
            ("ecdsa-sha256", &rsa_sig),
            ("dsa-sha1", &rsa_sig),
            ("ed25519", &rsa_sig),
            ("rsa-sha1", &rsa_sig), // right key, wrong hash
            ("rsa-sha512", &rsa_sig),
            ("rsa-sha256", &ed_sig),
            ("ecdsa-sha512", &ed_sig),
        ] {
            let h = request_headers(Some(DATE), &authz("alice", alg, None, sig));
            assert_eq!(
                check(&keys, &h, at(DATE)),
                Err(SignatureError::Unauthorized),
                "{alg}"
            );
        }

        // A flipped bit anywhere in the signature.
        for i in [0, rsa_sig.len() / 2, rsa_sig.len() - 1] {
            let mut bad = rsa_sig.clone();
            bad[i] ^= 0x01;
            let h = request_headers(Some(DATE), &authz("alice", "rsa-sha256", None, &bad));
            assert_eq!(
                check(&keys, &h, at(DATE)),
                Err(SignatureError::Unauthorized)
            );
        }
        let mut bad = ed_sig.clone();
        bad[10] ^= 0x80;
        let h = request_headers(Some(DATE), &authz("alice", "ed25519", None, &bad));
        assert_eq!(
            check(&keys, &h, at(DATE)),
            Err(SignatureError::Unauthorized)
        );

        // No Date header: the default signed header is missing.
        let h = request_headers(None, &authz("alice", "rsa-sha256", None, &rsa_sig));
        assert_eq!(
            check(&keys, &h, at(DATE)),
            Err(SignatureError::MissingHeader("date".into()))
        );
        // Date not signed but still required for the skew check.
        let rl = openssl_sign(rsa_key, Some("sha256"), "GET /images?owner=x HTTP/1.1");
        let h = request_headers(
            None,
            &authz("alice", "rsa-sha256", Some("request-line"), &rl),
        );
        assert_eq!(
            check(&keys, &h, at(DATE)),
            Err(SignatureError::MissingHeader("date".into()))
        );
        let h = request_headers(
            Some(DATE),
            &authz("alice", "rsa-sha256", Some("request-line"), &rl),
        );
        assert_eq!(check(&keys, &h, at(DATE)), Ok("alice".into()));
        // Unparseable date.
        let h = request_headers(
            Some("yesterday"),
            &authz("alice", "rsa-sha256", None, &rsa_sig),
        );
        assert_eq!(check(&keys, &h, at(DATE)), Err(SignatureError::InvalidDate));

        // No Authorization header at all.
        let mut h = HeaderMap::new();
        h.insert(http::header::DATE, HeaderValue::from_static(DATE));
        assert_eq!(
            check(&keys, &h, at(DATE)),
            Err(SignatureError::NoAuthorization)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let sig = b64(b"0123456789");
        let good = format!("Signature keyId=\"a\",algorithm=\"rsa-sha256\",signature=\"{sig}\"");
        let p = parse_authorization(&good).unwrap();
        assert_eq!(p.key_id, "a");
        assert_eq!(p.algorithm_name, "rsa-sha256");
        assert_eq!(p.headers, vec!["date".to_string()]);
        assert_eq!(p.signature, b"0123456789");
        assert_eq!(p.algorithm(), Ok(Algorithm::Rsa(Hash::Sha256)));

        // Accepted variations.
        for ok in [
            format!("signature keyId=\"a\", algorithm=\"rsa-sha256\", signature=\"{sig}\""),
            format!("Signature  keyId=\"a\" , algorithm=\"rsa-sha256\",signature=\"{sig}\"  "),
            format!(
                "Signature keyId=\"a\",algorithm=\"rsa-sha256\",headers=\"\",signature=\"{sig}\""
            ),
            format!(
                "Signature keyId=\"a\",algorithm=\"rsa-sha256\",signature=\"{}\"",
                sig.trim_end_matches('=')
            ),
        ] {
            let p = parse_authorization(&ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(p.headers, vec!["date".to_string()]);
            assert_eq!(p.signature, b"0123456789");
        }
        let p = parse_authorization(&format!(
            "Signature keyId=\"a\",algorithm=\"x\",headers=\"Date Request-Line (request-target)\",signature=\"{sig}\""
        ))
        .unwrap();
        assert_eq!(p.headers, ["date", "request-line", "(request-target)"]);

        use SignatureError as E;
        let cases: Vec<(String, E)> = vec![
            (String::new(), E::BadScheme),
            ("Signature".into(), E::MissingParam("keyId")),
            (format!("Basic {sig}"), E::BadParamFormat),
            ("Basic".into(), E::BadScheme),
            (good.replacen("Signature", "Signatures", 1), E::BadScheme),
            (
                "Signature keyId=\"a\",algorithm=\"rsa-sha256\"".into(),
                E::MissingParam("signature"),
            ),
            (
                "Signature keyId=\"a\",algorithm=\"rsa-sha256\",signature=\"\"".into(),
                E::MissingParam("signature"),
            ),
            (
                format!("Signature algorithm=\"rsa-sha256\",signature=\"{sig}\""),
                E::MissingParam("keyId"),
            ),
            (
                format!("Signature keyId=\"\",algorithm=\"rsa-sha256\",signature=\"{sig}\""),
                E::MissingParam("keyId"),
            ),
            (
                format!("Signature keyId=\"a\",signature=\"{sig}\""),
                E::MissingParam("algorithm"),
            ),
            (
                "Signature keyId=\"a\",algorithm=\"rsa-sha256\",signature=\"not*base64!\"".into(),
                E::BadSignatureEncoding,
            ),
            (
                "Signature keyId=\"a\",algorithm=\"rsa-sha256\",signature=\"QUJD=x\"".into(),
                E::BadSignatureEncoding,
            ),
            (
                format!("{good},extra=\"1\""),
                E::UnknownParam("extra".into()),
            ),
            (
                format!("{good},created=\"1\""),
                E::UnknownParam("created".into()),
            ),
            (
                good.replacen("keyId", "keyid", 1),
                E::UnknownParam("keyid".into()),
            ),
            (
                format!("{good},keyId=\"b\""),
                E::DuplicateParam("keyId".into()),
            ),
            (
                format!("{good},signature=\"{sig}\""),
                E::DuplicateParam("signature".into()),
            ),
            (format!("{good},"), E::BadParamFormat),
            (format!("{good},,"), E::BadParamFormat),
            (format!("{good} junk"), E::BadParamFormat),
            (
                "Signature keyId=a,algorithm=\"rsa-sha256\"".into(),
                E::BadParamFormat,
            ),
            ("Signature keyId=\"a".into(), E::BadParamFormat),
            ("Signature keyId = \"a\"".into(), E::BadParamFormat),
            ("Signature =\"a\"".into(), E::BadParamFormat),
            ("Signature key-id=\"a\"".into(), E::BadParamFormat),
            (
                "Signature keyId=\"a\"algorithm=\"b\"".into(),
                E::BadParamFormat,
            ),
            ("Signature keyId=\"é\",ключ=\"b\"".into(), E::BadParamFormat),
            (
                format!(
                    "Signature keyId=\"a\",algorithm=\"x\",headers=\"{}\",signature=\"{sig}\"",
                    vec!["date"; 65].join(" ")
                ),
                E::TooManyHeaders,
            ),
        ];
        for (header, want) in cases {
            assert_eq!(parse_authorization(&header), Err(want), "{header:?}");
        }
    }

    #[test]
    fn signing_string_shapes() {
        let params = |list: &[&str]| SignatureParams {
            key_id: "a".into(),
            algorithm_name: "rsa-sha256".into(),
            headers: list.iter().map(|s| s.to_string()).collect(),
            signature: vec![],
        };
        let lookup = |name: &str| match name {
            "date" => Some(DATE.to_string()),
            "x-empty" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            signing_string(&params(&["date"]), "GET", "/ping", lookup).unwrap(),
            format!("date: {DATE}")
        );
        assert_eq!(
            signing_string(
                &params(&["request-line", "date", "(request-target)"]),
                "PUT",
                "/a?b=c",
                lookup
            )
            .unwrap(),
            format!("PUT /a?b=c HTTP/1.1\ndate: {DATE}\n(request-target): put /a?b=c")
        );
        assert_eq!(
            signing_string(&params(&["date", "x-empty"]), "GET", "/", lookup),
            Err(SignatureError::MissingHeader("x-empty".into()))
        );
        assert_eq!(
            signing_string(&params(&["date", ""]), "GET", "/", lookup),
            Err(SignatureError::MissingHeader(String::new()))
        );

        // Repeated headers are joined as node joins them.
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        assert_eq!(header_value(&h, "x-a").as_deref(), Some("1, 2"));
        assert_eq!(header_value(&h, "(request-target)"), None);
        assert_eq!(header_value(&h, "x-b"), None);
    }

    #[test]
    fn date_check_formats() {
        let t = at(DATE);
        let max = Duration::from_secs(MAX_CLOCK_SKEW_SECS);
        // All three HTTP date formats.
        for d in [
            DATE,
            "Tuesday, 21-Jul-20 10:00:00 GMT",
            "Tue Jul 21 10:00:00 2020",
        ] {
            assert_eq!(check_date(Some(d), t, max), Ok(()), "{d}");
        }
        assert_eq!(
            check_date(None, t, max),
            Err(SignatureError::MissingHeader("date".into()))
        );
        assert_eq!(
            check_date(Some("2020-07-21T10:00:00Z"), t, max),
            Err(SignatureError::InvalidDate)
        );
        assert!(matches!(
            check_date(Some("Thu, 01 Jan 1970 00:00:00 GMT"), t, max),
            Err(SignatureError::ClockSkew { .. })
        ));
    }

    #[test]
    fn random_signatures_never_verify_or_panic() {
        let Some(f) = fixture() else { return };
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let algs = [
            "rsa-sha256",
            "dsa-sha1",
            "ecdsa-sha256",
            "ecdsa-sha384",
            "ecdsa-sha512",
            "ed25519",
        ];
        for k in f.keys.values() {
            let key = parse_public_key(&k.public_line).unwrap();
            for alg in algs {
                let alg = Algorithm::parse(alg).unwrap();
                for round in 0..200 {
                    let len = match round % 5 {
                        0 => 0,
                        1 => 64,
                        2 => 256,
                        _ => (next() % 600) as usize,
                    };
                    let mut sig: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    // Some well-formed DER SEQUENCE { INTEGER r, INTEGER s }
                    // with random (possibly huge or zero) integers.
                    if round % 3 == 0 {
                        let rl = (next() % 140) as usize + 1;
                        let sl = (next() % 140) as usize + 1;
                        let mut der = vec![0x30, 0x81, (rl + sl + 4) as u8, 0x02, rl as u8];
                        der.extend((0..rl).map(|_| (next() as u8) & 0x7f));
                        der.extend([0x02, sl as u8]);
                        der.extend((0..sl).map(|_| (next() as u8) & 0x7f));
                        sig = der;
                    }
                    assert!(!verify_signature(alg, &key.material, b"date: x", &sig));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parser_never_panics(s in any::<String>()) {
            let _ = parse_authorization(&s);
        }

        #[test]
        fn parser_never_panics_on_near_valid_headers(
            scheme in prop_oneof![Just("Signature".to_string()), Just("signature".to_string()), "[A-Za-z]{0,12}"],
            params in proptest::collection::vec(
                (
                    prop_oneof![Just("keyId".to_string()), Just("algorithm".to_string()), Just("headers".to_string()), Just("signature".to_string()), "[a-zA-Z=\" ,]{0,8}"],
                    "[ -~é]{0,40}",
                    prop_oneof![Just(",".to_string()), Just(", ".to_string()), Just("".to_string()), Just(" ,".to_string()), "[ -~]{0,2}"],
                ),
                0..6,
            ),
        ) {
            let mut h = format!("{scheme} ");
            for (name, value, sep) in &params {
                h.push_str(&format!("{name}=\"{value}\"{sep}"));
            }
            let _ = parse_authorization(&h);
        }

        #[test]
        fn verify_request_never_panics(
            authorization in "Signature [ -~]{0,200}",
            date in "[ -~]{0,40}",
            extra in proptest::collection::vec(("[a-z-]{1,12}", "[ -~]{0,30}"), 0..4),
            path in "/[ -~]{0,30}",
        ) {
            let keys = AuthKeys::from_map(KeyMap::new());
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&authorization) {
                h.insert(http::header::AUTHORIZATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&date) {
                h.insert(http::header::DATE, v);
            }
            for (n, v) in &extra {
                if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                    h.append(n, v);
                }
            }
            let r = verify_request(&h, &Method::GET, &path, &keys, SystemTime::now());
            prop_assert!(r.is_err());
        }
    }
}
