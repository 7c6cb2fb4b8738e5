//! Image signatures (docs/signing.md) on imgadm's side, shared by `sign`,
//! `create --sign`, `verify` and `import` from a source with a trust file.
//!
//! imgadm never takes a server's word for a signature: the statement the
//! server serves is checked against the manifest imgadm sees (so a
//! signature over one image cannot vouch for another manifest), and every
//! signature is verified here with the verifier the server uses
//! (`imgapi_signing::verify`), ignoring the server's `valid`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use imgapi_client::{Client, ClientError, Image, ImageSignature, ImageSignatures, ImageSigner};
use imgapi_signing::{AllowedSigners, SignatureError, Statement, VerifiedSignature};
use sha2::{Digest as _, Sha256};

use super::Failure;

/// What a server without the extension means for the user.
pub const UNSUPPORTED: &str = "this source does not support image signatures";

/// Why an image's signatures do not vouch for it.
#[derive(Debug)]
pub enum Refusal {
    /// The server has no `/images/:uuid/signatures`.
    Unsupported,
    /// The image has no file, so nothing could be signed.
    NoStatement,
    /// The served statement is not about the served manifest.
    Disagrees(Vec<String>),
    NoSignatures,
    /// Every signature failed to verify (fingerprint or id: why).
    Invalid(Vec<String>),
    /// Valid signatures, none by a key of the trust file.
    Untrusted {
        fingerprints: Vec<String>,
        trust: PathBuf,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unsupported => write!(f, "{UNSUPPORTED}"),
            Refusal::NoStatement => {
                write!(f, "the image has no file, so it has no signed statement")
            }
            Refusal::Disagrees(fields) => write!(
                f,
                "the manifest served differs from the statement its signatures sign ({})",
                fields.join("; ")
            ),
            Refusal::NoSignatures => write!(f, "it has no signatures"),
            Refusal::Invalid(why) => write!(f, "no valid signature ({})", why.join("; ")),
            Refusal::Untrusted {
                fingerprints,
                trust,
            } => write!(
                f,
                "signed only by keys not trusted by {} ({})",
                trust.display(),
                fingerprints.join(", ")
            ),
        }
    }
}

/// ListImageSignatures, a server without the extension being [`Refusal::Unsupported`].
pub async fn fetch(client: &Client, uuid: &uuid::Uuid) -> Result<ImageSignatures, FetchError> {
    client.list_image_signatures(uuid, None).await.map_err(|e| {
        if e.is_signatures_unsupported() {
            FetchError::Refused(Refusal::Unsupported)
        } else {
            FetchError::Client(e)
        }
    })
}

/// Why [`fetch`] failed.
#[derive(Debug)]
pub enum FetchError {
    Refused(Refusal),
    Client(ClientError),
}

impl FetchError {
    /// For publisher verbs: a failure naming the server.
    pub fn into_failure(self, client: &Client) -> Failure {
        match self {
            FetchError::Refused(r) => Failure::other(format!("{}: {r}", source_name(client))),
            FetchError::Client(e) => Failure::from(e),
        }
    }
}

/// The server's URL without a trailing slash, for messages.
pub fn source_name(client: &Client) -> String {
    client.base_url().as_str().trim_end_matches('/').to_string()
}

/// The statement `signatures` serve, checked against `image` (the
/// manifest GetImage served): every field the statement names must be the
/// manifest's, each file's size too, and its SHA-256 when the manifest
/// gives one. The statement carries the SHA-256s the manifest may lack.
pub fn checked_statement(
    image: &Image,
    signatures: &ImageSignatures,
) -> Result<Statement, Refusal> {
    let Some(text) = &signatures.statement else {
        return Err(Refusal::NoStatement);
    };
    let statement =
        Statement::parse(text).map_err(|e| Refusal::Disagrees(vec![format!("statement: {e}")]))?;
    let mut differ = Vec::new();
    let mut field = |name: &str, signed: &str, served: &str| {
        if signed != served {
            differ.push(format!("{name}: signed \"{signed}\", served \"{served}\""));
        }
    };
    field("uuid", &statement.uuid, &image.uuid.to_string());
    if signatures.uuid != image.uuid {
        field(
            "uuid",
            &signatures.uuid.to_string(),
            &image.uuid.to_string(),
        );
    }
    field("owner", &statement.owner, &image.owner.to_string());
    field("name", &statement.name, &image.name);
    field("version", &statement.version, &image.version);
    field(
        "type",
        &statement.image_type,
        image.image_type.as_deref().unwrap_or(""),
    );
    field("os", &statement.os, image.os.as_deref().unwrap_or(""));
    let origin = image.origin.map(|o| o.to_string());
    field(
        "origin",
        statement.origin.as_deref().unwrap_or("-"),
        origin.as_deref().unwrap_or("-"),
    );
    if statement.files.len() != image.files.len() {
        differ.push(format!(
            "files: signed {}, served {}",
            statement.files.len(),
            image.files.len()
        ));
    }
    for (i, (signed, served)) in statement.files.iter().zip(&image.files).enumerate() {
        if signed.size != served.size {
            differ.push(format!(
                "files[{i}].size: signed {}, served {}",
                signed.size, served.size
            ));
        }
        if let Some(sha256) = &served.sha256 {
            if !sha256.eq_ignore_ascii_case(&signed.sha256) {
                differ.push(format!(
                    "files[{i}].sha256: signed {}, served {sha256}",
                    signed.sha256
                ));
            }
        }
    }
    if differ.is_empty() {
        Ok(statement)
    } else {
        Err(Refusal::Disagrees(differ))
    }
}

/// One signature and what verifying it here said.
pub struct Checked<'a> {
    pub signature: &'a ImageSignature,
    pub result: Result<VerifiedSignature, SignatureError>,
}

/// Verify every signature over `statement` (a checked one).
pub fn verify_all<'a>(statement: &Statement, signatures: &'a [ImageSignature]) -> Vec<Checked<'a>> {
    let text = statement.to_string();
    signatures
        .iter()
        .map(|signature| Checked {
            signature,
            result: imgapi_signing::verify(text.as_bytes(), &signature.signature),
        })
        .collect()
}

/// The principals of the first valid signature by a key `trust` trusts, or
/// why there is none.
pub fn trusted_by(
    checked: &[Checked],
    trust: &AllowedSigners,
    trust_path: &Path,
) -> Result<String, Refusal> {
    if checked.is_empty() {
        return Err(Refusal::NoSignatures);
    }
    let now = chrono::Utc::now();
    let mut untrusted = Vec::new();
    let mut invalid = Vec::new();
    for c in checked {
        match &c.result {
            Ok(verified) => match trust.trusted(verified, now) {
                Some(signer) => return Ok(signer.principals.clone()),
                None => untrusted.push(verified.fingerprint.clone()),
            },
            Err(e) => invalid.push(format!("{}: {e}", display_fingerprint(c.signature))),
        }
    }
    if untrusted.is_empty() {
        Err(Refusal::Invalid(invalid))
    } else {
        Err(Refusal::Untrusted {
            fingerprints: untrusted,
            trust: trust_path.to_path_buf(),
        })
    }
}

/// The fingerprint a server gave a signature, for messages (its `id` when
/// it gave none).
pub fn display_fingerprint(signature: &ImageSignature) -> String {
    if signature.fingerprint.is_empty() {
        signature.id.clone()
    } else {
        signature.fingerprint.clone()
    }
}

/// Read a trust file (an OpenSSH allowed_signers file), warning about the
/// lines it skips.
pub fn read_trust(path: &Path) -> Result<AllowedSigners, Failure> {
    let trust = AllowedSigners::read(path)
        .map_err(|e| Failure::usage(format!("cannot use trust file: {e}")))?;
    for skipped in &trust.skipped {
        eprintln!("imgadm: warning: {}: {skipped}", path.display());
    }
    Ok(trust)
}

/// SHA-256 (lower-case hex) and size of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<(String, u64), Failure> {
    let io_err = |e: std::io::Error| Failure::other(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The key that signs images, from the options of request signing: the
/// ssh-agent of `$SSH_AUTH_SOCK` when it holds the key (`--key`, or
/// without it its first key of a supported type), else the private key
/// file `--key` (default `~/.ssh/id_ed25519`), decrypted with
/// `$IMGAPI_KEY_PASSPHRASE` or a passphrase asked on the terminal.
pub fn image_signer(key: Option<&Path>) -> Result<ImageSigner, Failure> {
    use std::io::IsTerminal as _;

    let mut agent_note = String::new();
    if let Some(socket) = imgapi_client::agent::socket_from_env() {
        match ImageSigner::from_agent(&socket, key) {
            Ok(signer) => return Ok(signer),
            Err(e) => agent_note = format!(" (not signing through ssh-agent: {e})"),
        }
    }
    let key = match key {
        Some(k) => k.to_path_buf(),
        None => match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(".ssh").join("id_ed25519"),
            None => {
                return Err(Failure::usage(format!(
                    "no --key to sign the image with and $HOME is not set (cannot find ~/.ssh/id_ed25519){agent_note}"
                )))
            }
        },
    };
    let fail = |e: ClientError| {
        Failure::usage(format!("cannot sign images with this key: {e}{agent_note}"))
    };
    let passphrase = match std::env::var_os("IMGAPI_KEY_PASSPHRASE") {
        None => None,
        Some(p) => Some(
            p.into_string()
                .map_err(|_| Failure::usage("IMGAPI_KEY_PASSPHRASE is not valid UTF-8"))?,
        ),
    };
    match ImageSigner::from_key_file(&key, passphrase.as_deref()) {
        Ok(signer) => return Ok(signer),
        Err(ClientError::KeyEncrypted { .. }) if std::io::stdin().is_terminal() => {}
        Err(ClientError::KeyEncrypted { key: name }) => {
            return Err(Failure::usage(format!(
            "{name}: the private key to sign the image with is encrypted (passphrase-protected): \
                 set IMGAPI_KEY_PASSPHRASE, or load the key into ssh-agent (ssh-add) and set \
                 SSH_AUTH_SOCK{agent_note}"
        )))
        }
        Err(e) => return Err(fail(e)),
    }
    let mut attempt = 1;
    loop {
        let pass = rpassword::prompt_password(format!("Enter passphrase for {}: ", key.display()))
            .map_err(|e| Failure::usage(format!("cannot read the passphrase: {e}")))?;
        match ImageSigner::from_key_file(&key, Some(&pass)) {
            Ok(signer) => return Ok(signer),
            Err(ClientError::KeyPassphrase { .. }) if attempt < 3 => {
                eprintln!("Bad passphrase, try again.");
                attempt += 1;
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        serde_json::from_value(serde_json::json!({
            "v": 2, "uuid": "2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11",
            "owner": "930896af-bf8c-48d4-885c-6573a94b1853", "name": "base-64",
            "version": "24.4.0", "state": "active", "disabled": false, "public": true,
            "type": "zone-dataset", "os": "smartos",
            "files": [{"sha1": "00", "size": 1234, "compression": "none"}]
        }))
        .unwrap()
    }

    fn signatures(statement: &str) -> ImageSignatures {
        ImageSignatures {
            uuid: "2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11".parse().unwrap(),
            statement: Some(statement.to_string()),
            signatures: Vec::new(),
        }
    }

    fn statement() -> String {
        format!(
            "imgapi-signed-image-v1\nuuid 2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11\n\
             owner 930896af-bf8c-48d4-885c-6573a94b1853\nname base-64\nversion 24.4.0\n\
             type zone-dataset\nos smartos\norigin -\nfile {} 1234\n",
            "ab".repeat(32)
        )
    }

    #[test]
    fn statement_matching_the_manifest_is_taken() {
        let s = checked_statement(&image(), &signatures(&statement())).unwrap();
        assert_eq!(s.to_string(), statement());
    }

    #[test]
    fn every_differing_field_is_named() {
        let mut m = image();
        m.name = "other".into();
        m.files[0].size = 1235;
        m.files[0].sha256 = Some("cd".repeat(32));
        m.origin = Some("11111111-2222-3333-4444-555555555555".parse().unwrap());
        let Err(Refusal::Disagrees(fields)) = checked_statement(&m, &signatures(&statement()))
        else {
            panic!("accepted");
        };
        let text = fields.join("\n");
        for f in ["name:", "files[0].size", "files[0].sha256", "origin:"] {
            assert!(text.contains(f), "{f} in {text}");
        }
        assert!(matches!(
            checked_statement(
                &image(),
                &ImageSignatures {
                    statement: None,
                    ..signatures("")
                }
            ),
            Err(Refusal::NoStatement)
        ));
        assert!(matches!(
            checked_statement(&image(), &signatures("not a statement")),
            Err(Refusal::Disagrees(_))
        ));
    }
}
