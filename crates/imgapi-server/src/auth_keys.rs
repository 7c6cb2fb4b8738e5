//! The SSH public keys that HTTP Signature requests are verified against
//! (api.md §1.5): username → keys, from the config table `auth_keys` and a
//! directory `auth_keys_dir` of `<username>.keys` files (one OpenSSH public
//! key per line; blank lines and `#` comments ignored; bad lines logged and
//! skipped). [`AuthKeys::reload`] re-reads the directory and swaps the whole
//! set atomically, so a request sees either the old or the new keys, never a
//! mix.
//!
//! Supported key types: `ssh-rsa` (1024..=16384 bits), `ssh-dss`,
//! `ecdsa-sha2-nistp256/384/521` and `ssh-ed25519`. The key blob is decoded
//! by ssh-key and turned into the RustCrypto verifying keys used by
//! [`crate::http::signature`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use ssh_key::encoding::Decode as _;

/// Largest `.keys` file read (bigger ones are skipped with a warning).
const MAX_KEYS_FILE_BYTES: u64 = 1024 * 1024;
/// RSA modulus sizes accepted, in bits.
const RSA_MIN_BITS: usize = 1024;
const RSA_MAX_BITS: usize = 16384;

/// The key material of one parsed SSH public key.
#[derive(Clone)]
pub enum KeyMaterial {
    Rsa(rsa::PublicKey),
    Dsa(dsa::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
    EcdsaP384(p384::ecdsa::VerifyingKey),
    EcdsaP521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// The family of a key; an HTTP Signature algorithm names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa,
    Dsa,
    Ecdsa,
    Ed25519,
}

impl KeyMaterial {
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyMaterial::Rsa(_) => KeyKind::Rsa,
            KeyMaterial::Dsa(_) => KeyKind::Dsa,
            KeyMaterial::EcdsaP256(_) | KeyMaterial::EcdsaP384(_) | KeyMaterial::EcdsaP521(_) => {
                KeyKind::Ecdsa
            }
            KeyMaterial::Ed25519(_) => KeyKind::Ed25519,
        }
    }
}

/// One registered public key.
#[derive(Clone)]
pub struct PublicKey {
    /// The OpenSSH key type token, e.g. `ssh-ed25519`.
    pub key_type: String,
    /// The comment after the key (may be empty).
    pub comment: String,
    /// OpenSSH-style fingerprint, `SHA256:<unpadded base64>`.
    pub fingerprint: String,
    pub material: KeyMaterial,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_type", &self.key_type)
            .field("fingerprint", &self.fingerprint)
            .field("comment", &self.comment)
            .finish()
    }
}

/// Why an OpenSSH public key line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("not an OpenSSH public key line (expected `<type> <base64> [comment]`)")]
    Format,
    #[error("key data is not valid base64")]
    Base64,
    #[error("unsupported key type `{0}`")]
    UnsupportedType(String),
    #[error("key type `{line}` does not match the key data (`{blob}`)")]
    TypeMismatch { line: String, blob: String },
    #[error("truncated or malformed key data")]
    Malformed,
    #[error("invalid {0} key: {1}")]
    InvalidKey(&'static str, String),
}

/// The key types accepted; any other type (security keys, certificates,
/// unknown names) is refused as unsupported.
const SUPPORTED_TYPES: &[&str] = &[
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-ed25519",
];

/// Parse one OpenSSH public key line: `<type> <base64 blob> [comment]`.
/// Fields may be separated by spaces or tabs (authorized_keys files use
/// both), which is why the line is split here rather than by ssh-key.
pub fn parse_public_key(line: &str) -> Result<PublicKey, KeyParseError> {
    let line = line.trim();
    let mut parts = line.splitn(3, [' ', '\t']);
    let key_type = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or(KeyParseError::Format)?;
    let b64 = parts
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(KeyParseError::Format)?;
    let comment = parts.next().unwrap_or("").trim().to_string();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| KeyParseError::Base64)?;
    let key_data = parse_key_blob(key_type, &blob)?;
    let material = key_material(&key_data)?;
    Ok(PublicKey {
        key_type: key_type.to_string(),
        comment,
        fingerprint: key_data.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        material,
    })
}

/// Decode an SSH wire-format public key blob whose line said `key_type`.
fn parse_key_blob(key_type: &str, blob: &[u8]) -> Result<ssh_key::public::KeyData, KeyParseError> {
    let blob_type = Vec::<u8>::decode(&mut &blob[..]).map_err(|_| KeyParseError::Malformed)?;
    if blob_type != key_type.as_bytes() {
        return Err(KeyParseError::TypeMismatch {
            line: key_type.to_string(),
            blob: String::from_utf8_lossy(&blob_type).into_owned(),
        });
    }
    if !SUPPORTED_TYPES.contains(&key_type) {
        return Err(KeyParseError::UnsupportedType(key_type.to_string()));
    }
    let key = ssh_key::PublicKey::from_bytes(blob).map_err(|e| match e {
        ssh_key::Error::AlgorithmUnknown => {
            KeyParseError::InvalidKey("ECDSA", "curve does not match the key type".to_string())
        }
        _ => KeyParseError::Malformed,
    })?;
    Ok(key.key_data().clone())
}

/// The RustCrypto verifying key of decoded key data. RSA keys are built
/// here (not by ssh-key) to keep accepting 1024-bit moduli.
fn key_material(key_data: &ssh_key::public::KeyData) -> Result<KeyMaterial, KeyParseError> {
    use ssh_key::public::{EcdsaPublicKey, KeyData};
    let material = match key_data {
        KeyData::Rsa(rsa_key) => {
            let e = positive(rsa_key.e())?;
            let n = positive(rsa_key.n())?;
            let key = rsa::PublicKey::new_with_size_limits(
                rsa::BoxedUint::from_be_slice_vartime(n),
                rsa::BoxedUint::from_be_slice_vartime(e),
                RSA_MIN_BITS..=RSA_MAX_BITS,
            )
            .map_err(|e| KeyParseError::InvalidKey("RSA", e.to_string()))?;
            KeyMaterial::Rsa(key)
        }
        KeyData::Dsa(dsa_key_data) => KeyMaterial::Dsa(dsa_key(
            positive(dsa_key_data.p())?,
            positive(dsa_key_data.q())?,
            positive(dsa_key_data.g())?,
            positive(dsa_key_data.y())?,
        )?),
        KeyData::Ecdsa(ecdsa_key) => {
            let bad = |_| KeyParseError::InvalidKey("ECDSA", "invalid curve point".into());
            let point = ecdsa_key.as_sec1_bytes();
            match ecdsa_key {
                EcdsaPublicKey::NistP256(_) => KeyMaterial::EcdsaP256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
                ),
                EcdsaPublicKey::NistP384(_) => KeyMaterial::EcdsaP384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
                ),
                EcdsaPublicKey::NistP521(_) => KeyMaterial::EcdsaP521(
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
                ),
            }
        }
        KeyData::Ed25519(ed25519_key) => KeyMaterial::Ed25519(
            ed25519_dalek::VerifyingKey::from_bytes(&ed25519_key.0)
                .map_err(|e| KeyParseError::InvalidKey("Ed25519", e.to_string()))?,
        ),
        other => {
            return Err(KeyParseError::UnsupportedType(
                other.algorithm().as_str().to_string(),
            ))
        }
    };
    Ok(material)
}

/// The big-endian magnitude of a positive, non-zero mpint.
fn positive(value: &ssh_key::Mpint) -> Result<&[u8], KeyParseError> {
    value
        .as_positive_bytes()
        .filter(|bytes| !bytes.is_empty())
        .ok_or(KeyParseError::Malformed)
}

/// Build a DSA key. `g` and `y` get `p`'s precision (the dsa crate's modular
/// arithmetic needs equal precisions); `q`'s precision selects the key size.
fn dsa_key(p: &[u8], q: &[u8], g: &[u8], y: &[u8]) -> Result<dsa::VerifyingKey, KeyParseError> {
    let bad = |what: &str| KeyParseError::InvalidKey("DSA", what.to_string());
    let p = dsa::BoxedUint::from_be_slice_vartime(p);
    let q = dsa::BoxedUint::from_be_slice_vartime(q);
    let g = dsa::BoxedUint::from_be_slice(g, p.bits_precision()).map_err(|_| bad("g too large"))?;
    let y = dsa::BoxedUint::from_be_slice(y, p.bits_precision()).map_err(|_| bad("y too large"))?;
    let components =
        dsa::Components::from_components(p, q, g).map_err(|_| bad("unsupported parameters"))?;
    dsa::VerifyingKey::from_components(components, y).map_err(|_| bad("invalid public value"))
}

/// username → keys; one immutable snapshot.
pub type KeyMap = HashMap<String, Vec<Arc<PublicKey>>>;

/// What a (re)load found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Users with at least one usable key.
    pub users: usize,
    /// Usable keys in total.
    pub keys: usize,
    /// Lines (or config entries) skipped because they did not parse.
    pub skipped: usize,
}

/// The registered keys, swappable at run time.
pub struct AuthKeys {
    config: BTreeMap<String, Vec<String>>,
    dir: Option<PathBuf>,
    current: RwLock<Arc<KeyMap>>,
}

impl fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthKeys")
            .field("dir", &self.dir)
            .field("users", &self.snapshot().len())
            .finish()
    }
}

impl AuthKeys {
    /// Build the store from the config table and the optional directory and
    /// load it once. A missing directory counts as empty (with a warning);
    /// an unreadable one is an error.
    pub fn load(
        config: BTreeMap<String, Vec<String>>,
        dir: Option<PathBuf>,
    ) -> std::io::Result<(Self, LoadStats)> {
        let keys = AuthKeys {
            config,
            dir,
            current: RwLock::new(Arc::new(KeyMap::new())),
        };
        let stats = keys.reload()?;
        Ok((keys, stats))
    }

    /// A store holding exactly `map` (for tests and embedding).
    pub fn from_map(map: KeyMap) -> Self {
        AuthKeys {
            config: BTreeMap::new(),
            dir: None,
            current: RwLock::new(Arc::new(map)),
        }
    }

    /// Re-read the config table and the directory and swap the new set in.
    /// On an I/O error reading the directory the old set stays in force.
    pub fn reload(&self) -> std::io::Result<LoadStats> {
        let mut map = KeyMap::new();
        let mut skipped = 0;
        for (user, lines) in &self.config {
            for (i, line) in lines.iter().enumerate() {
                let source = format!("config auth_keys.{user}[{i}]");
                skipped += add_line(&mut map, user, line, &source);
            }
        }
        if let Some(dir) = &self.dir {
            skipped += load_dir(&mut map, dir)?;
        }
        map.retain(|_, keys| !keys.is_empty());
        let stats = LoadStats {
            users: map.len(),
            keys: map.values().map(Vec::len).sum(),
            skipped,
        };
        let new = Arc::new(map);
        match self.current.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        tracing::info!(
            users = stats.users,
            keys = stats.keys,
            skipped = stats.skipped,
            "auth keys loaded"
        );
        Ok(stats)
    }

    /// The current set (cheap: one `Arc` clone).
    pub fn snapshot(&self) -> Arc<KeyMap> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The keys registered for `username` (`None` for an unknown user).
    pub fn keys_for(&self, username: &str) -> Option<Vec<Arc<PublicKey>>> {
        self.snapshot().get(username).cloned()
    }
}

/// Parse `line` for `user`; returns 1 if it was skipped, else 0.
fn add_line(map: &mut KeyMap, user: &str, line: &str, source: &str) -> usize {
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return 0;
    }
    match parse_public_key(trimmed) {
        Ok(key) => {
            map.entry(user.to_string()).or_default().push(Arc::new(key));
            0
        }
        Err(e) => {
            tracing::warn!(user, source, error = %e, "skipping bad auth key");
            1
        }
    }
}

/// Load every `<username>.keys` file of `dir`; returns the skipped count.
fn load_dir(map: &mut KeyMap, dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), "auth keys directory does not exist");
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(user) = name.strip_suffix(".keys") else {
            continue;
        };
        if user.is_empty() || user.starts_with('.') {
            continue;
        }
        files.push((user.to_string(), path));
    }
    files.sort(); // deterministic key order per user
    let mut skipped = 0;
    for (user, path) in files {
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping unreadable auth keys file");
                skipped += 1;
                continue;
            }
        };
        if meta.len() > MAX_KEYS_FILE_BYTES {
            tracing::warn!(file = %path.display(), bytes = meta.len(), "skipping oversized auth keys file");
            skipped += 1;
            continue;
        }
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping unreadable auth keys file");
                skipped += 1;
                continue;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let source = format!("{}:{}", path.display(), i + 1);
            skipped += add_line(map, &user, line, &source);
        }
    }
    Ok(skipped)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::process::Command;

    /// `ssh-keygen` available? Prints a SKIP line when not.
    pub(crate) fn have_tool(tool: &str) -> bool {
        let ok = Command::new(tool)
            .arg("-h")
            .output()
            .map(|_| true)
            .unwrap_or(false);
        if !ok {
            eprintln!("SKIP: `{tool}` is not installed");
        }
        ok
    }

    /// Generate an OpenSSH key pair; returns the public key line, or None
    /// (with a SKIP message) when ssh-keygen refuses the type.
    pub(crate) fn keygen(dir: &Path, name: &str, args: &[&str]) -> Option<String> {
        let path = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(args)
            .args(["-N", "", "-q", "-C", name, "-f"])
            .arg(&path)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIP: ssh-keygen {args:?} refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        std::fs::read_to_string(path.with_extension("pub")).ok()
    }

    fn all_types() -> Vec<(&'static str, Vec<&'static str>, KeyKind)> {
        vec![
            ("rsa", vec!["-t", "rsa", "-b", "2048"], KeyKind::Rsa),
            ("rsa1024", vec!["-t", "rsa", "-b", "1024"], KeyKind::Rsa),
            ("dsa", vec!["-t", "dsa"], KeyKind::Dsa),
            ("ec256", vec!["-t", "ecdsa", "-b", "256"], KeyKind::Ecdsa),
            ("ec384", vec!["-t", "ecdsa", "-b", "384"], KeyKind::Ecdsa),
            ("ec521", vec!["-t", "ecdsa", "-b", "521"], KeyKind::Ecdsa),
            ("ed", vec!["-t", "ed25519"], KeyKind::Ed25519),
        ]
    }

    #[test]
    fn parses_every_ssh_keygen_type() {
        if !have_tool("ssh-keygen") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        for (name, args, kind) in all_types() {
            let Some(line) = keygen(tmp.path(), name, &args) else {
                continue;
            };
            let key = parse_public_key(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(key.material.kind(), kind, "{name}");
            assert_eq!(key.comment, name);
            // Same fingerprint as OpenSSH prints.
            let out = Command::new("ssh-keygen")
                .args(["-l", "-E", "sha256", "-f"])
                .arg(tmp.path().join(format!("{name}.pub")))
                .output()
                .unwrap();
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(
                printed.contains(&key.fingerprint),
                "{name}: {printed} vs {}",
                key.fingerprint
            );
        }
    }

    #[test]
    fn rejects_bad_lines() {
        let ed =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID83bqlVuKeECL0FRE7/Su8NqhN9hDt2903GE30nJAaa x";
        assert!(parse_public_key(ed).is_ok());
        assert_eq!(parse_public_key("").unwrap_err(), KeyParseError::Format);
        assert_eq!(
            parse_public_key("ssh-ed25519").unwrap_err(),
            KeyParseError::Format
        );
        assert_eq!(
            parse_public_key("ssh-ed25519 !!!").unwrap_err(),
            KeyParseError::Base64
        );
        // Line type disagrees with the blob.
        let swapped = ed.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(matches!(
            parse_public_key(&swapped).unwrap_err(),
            KeyParseError::TypeMismatch { .. }
        ));
        // Truncated blob.
        assert_eq!(
            parse_public_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID83bqlVuKeECL0FRE7/")
                .unwrap_err(),
            KeyParseError::Malformed
        );
        // Unsupported type.
        let blob = base64::engine::general_purpose::STANDARD.encode(b"\0\0\0\x07ssh-foo");
        assert_eq!(
            parse_public_key(&format!("ssh-foo {blob}")).unwrap_err(),
            KeyParseError::UnsupportedType("ssh-foo".into())
        );
        // Trailing bytes after the key.
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAID83bqlVuKeECL0FRE7/Su8NqhN9hDt2903GE30nJAaa")
            .unwrap();
        raw.push(0);
        let line = format!(
            "ssh-ed25519 {}",
            base64::engine::general_purpose::STANDARD.encode(&raw)
        );
        assert_eq!(
            parse_public_key(&line).unwrap_err(),
            KeyParseError::Malformed
        );
    }

    #[test]
    fn blob_parser_never_panics_on_garbage() {
        // Deterministic pseudo-random blobs plus length-prefix edge cases.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for key_type in [
            "ssh-rsa",
            "ssh-dss",
            "ecdsa-sha2-nistp256",
            "ecdsa-sha2-nistp521",
            "ssh-ed25519",
        ] {
            for _ in 0..300 {
                let mut blob = Vec::new();
                blob.extend_from_slice(&(key_type.len() as u32).to_be_bytes());
                blob.extend_from_slice(key_type.as_bytes());
                let fields = (next() % 5) as usize;
                for _ in 0..fields {
                    let len = match next() % 4 {
                        0 => 0,
                        1 => (next() % 600) as u32,
                        2 => u32::MAX,
                        _ => 32,
                    };
                    blob.extend_from_slice(&len.to_be_bytes());
                    let have = (len as usize).min(600);
                    for _ in 0..have {
                        blob.push(next() as u8);
                    }
                }
                let _ = parse_key_blob(key_type, &blob).and_then(|key| key_material(&key));
            }
        }
    }

    #[test]
    fn loads_config_and_directory_and_reloads() {
        if !have_tool("ssh-keygen") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let keydir = tmp.path().join("authkeys");
        std::fs::create_dir(&keydir).unwrap();
        let a = keygen(tmp.path(), "a", &["-t", "ed25519"]).unwrap();
        let b = keygen(tmp.path(), "b", &["-t", "ecdsa", "-b", "256"]).unwrap();
        let c = keygen(tmp.path(), "c", &["-t", "ed25519"]).unwrap();
        std::fs::write(
            keydir.join("alice.keys"),
            format!("# alice's keys\n\n{a}\nssh-rsa garbage\n   \n{b}"),
        )
        .unwrap();
        std::fs::write(keydir.join("ignored.txt"), &c).unwrap();
        let mut config = BTreeMap::new();
        config.insert("bob".to_string(), vec![c.clone(), "not a key".to_string()]);
        config.insert("alice".to_string(), vec![c.clone()]);
        let (keys, stats) = AuthKeys::load(config, Some(keydir.clone())).unwrap();
        assert_eq!(
            stats,
            LoadStats {
                users: 2,
                keys: 4,
                skipped: 2
            }
        );
        assert_eq!(keys.keys_for("alice").unwrap().len(), 3);
        assert_eq!(keys.keys_for("bob").unwrap().len(), 1);
        assert!(keys.keys_for("ignored").is_none());

        // A snapshot taken before a reload is unaffected by it.
        let before = keys.snapshot();
        std::fs::write(keydir.join("carol.keys"), &a).unwrap();
        std::fs::remove_file(keydir.join("alice.keys")).unwrap();
        let stats = keys.reload().unwrap();
        assert_eq!(
            stats,
            LoadStats {
                users: 3,
                keys: 3,
                skipped: 1
            }
        );
        assert_eq!(keys.keys_for("alice").unwrap().len(), 1);
        assert_eq!(keys.keys_for("carol").unwrap().len(), 1);
        assert_eq!(before.get("alice").map(Vec::len), Some(3));
        assert!(!before.contains_key("carol"));
    }

    #[test]
    fn missing_directory_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let (keys, stats) = AuthKeys::load(BTreeMap::new(), Some(tmp.path().join("nope"))).unwrap();
        assert_eq!(stats, LoadStats::default());
        assert!(keys.snapshot().is_empty());
    }
}
