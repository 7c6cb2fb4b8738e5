//! OpenSSH `allowed_signers` files (ssh-keygen(1), "ALLOWED SIGNERS"): the
//! trust a consumer gives publishers' keys, in the format `ssh-keygen -Y
//! verify -f` reads, so one file serves both.
//!
//! Each line: `principals [options] keytype base64-key [comment]`.
//! Principals are comma-separated (patterns allowed; quoted when they hold
//! spaces). Options are comma-separated: `namespaces="a,b"` (the key is
//! trusted only for those namespaces: it must include `imgapi`),
//! `valid-after="YYYYMMDD[HHMM[SS]][Z]"`, `valid-before=...` and
//! `cert-authority`. Certificate authorities are not supported: such lines
//! are skipped and reported, never trusted. Blank lines and `#` comments are
//! ignored.

use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use ssh_key::PublicKey;

use crate::verify::VerifiedSignature;
use crate::NAMESPACE;

/// Largest trust file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One trusted key.
#[derive(Debug, Clone)]
pub struct TrustedSigner {
    /// The principals of its line, as written (e.g. `alice@example.com`).
    pub principals: String,
    pub key: PublicKey,
    /// `namespaces="..."`, when the line restricts them.
    pub namespaces: Option<Vec<String>>,
    pub valid_after: Option<DateTime<Utc>>,
    pub valid_before: Option<DateTime<Utc>>,
    /// 1-based line number, for messages.
    pub line: usize,
}

/// The keys of one trust file.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    pub signers: Vec<TrustedSigner>,
    /// Lines skipped (`cert-authority` keys), with why, for warnings.
    pub skipped: Vec<String>,
}

/// Why a trust file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {why}")]
    Read { path: String, why: String },
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
}

impl AllowedSigners {
    /// Read and parse the file at `path`.
    pub fn read(path: &Path) -> Result<AllowedSigners, TrustError> {
        let read_error = |why: String| TrustError::Read {
            path: path.display().to_string(),
            why,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| read_error(e.to_string()))?
            .len();
        if len > MAX_FILE_BYTES {
            return Err(read_error(format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
        AllowedSigners::parse(&text).map_err(|e| read_error(e.to_string()))
    }

    /// Parse the text of a trust file; any bad line fails the whole file
    /// (a typo must not silently drop a trusted key, nor add one).
    pub fn parse(text: &str) -> Result<AllowedSigners, TrustError> {
        let mut out = AllowedSigners::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fail = |why: &str| TrustError::Line {
                line,
                why: why.to_owned(),
            };
            let tokens = split_tokens(trimmed).map_err(&fail)?;
            let mut rest = tokens.iter().map(String::as_str);
            let principals = rest.next().ok_or_else(|| fail("no principals"))?;
            let second = rest.next().ok_or_else(|| fail("no key"))?;
            let (options, key_type) = if is_key_type(second) {
                (None, second)
            } else {
                (
                    Some(second),
                    rest.next()
                        .ok_or_else(|| fail("no key after the options"))?,
                )
            };
            let key_base64 = rest.next().ok_or_else(|| fail("no key data"))?;
            let mut signer_options = SignerOptions::default();
            if let Some(options) = options {
                signer_options = parse_options(options).map_err(|why| fail(&why))?;
            }
            let key = PublicKey::from_openssh(&format!("{key_type} {key_base64}"))
                .map_err(|e| fail(&format!("bad public key: {e}")))?;
            if signer_options.cert_authority {
                out.skipped.push(format!(
                    "line {line}: cert-authority keys are not supported (only plain keys are trusted)"
                ));
                continue;
            }
            out.signers.push(TrustedSigner {
                principals: principals.to_owned(),
                key,
                namespaces: signer_options.namespaces,
                valid_after: signer_options.valid_after,
                valid_before: signer_options.valid_before,
                line,
            });
        }
        Ok(out)
    }

    /// The trusted signer whose key made `signature`, if it is trusted for
    /// the `imgapi` namespace at `now`.
    pub fn trusted(
        &self,
        signature: &VerifiedSignature,
        now: DateTime<Utc>,
    ) -> Option<&TrustedSigner> {
        self.trusts_key(signature.key.key_data(), now)
    }

    /// The trusted signer holding `key`, if it is trusted for the `imgapi`
    /// namespace at `now`.
    pub fn trusts_key(
        &self,
        key: &ssh_key::public::KeyData,
        now: DateTime<Utc>,
    ) -> Option<&TrustedSigner> {
        self.signers.iter().find(|s| {
            s.key.key_data() == key
                && s.namespaces
                    .as_ref()
                    .is_none_or(|ns| ns.iter().any(|n| n == NAMESPACE))
                && s.valid_after.is_none_or(|t| now >= t)
                && s.valid_before.is_none_or(|t| now <= t)
        })
    }
}

#[derive(Default)]
struct SignerOptions {
    cert_authority: bool,
    namespaces: Option<Vec<String>>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

fn is_key_type(token: &str) -> bool {
    token.starts_with("ssh-")
        || token.starts_with("ecdsa-sha2-")
        || token.starts_with("sk-")
        || token.starts_with("rsa-sha2-")
}

/// Split on blanks outside double quotes; quotes stay in the tokens.
fn split_tokens(line: &str) -> Result<Vec<String>, &'static str> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ' ' | '\t' if !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote");
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

/// Split `options` on commas outside double quotes.
fn parse_options(options: &str) -> Result<SignerOptions, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in options.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    let mut out = SignerOptions::default();
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (name, Some(unquote(value)?)),
            None => (part.as_str(), None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("cert-authority", None) => out.cert_authority = true,
            ("namespaces", Some(v)) => {
                out.namespaces = Some(v.split(',').map(|n| n.trim().to_owned()).collect())
            }
            ("valid-after", Some(v)) => out.valid_after = Some(parse_time(&v)?),
            ("valid-before", Some(v)) => out.valid_before = Some(parse_time(&v)?),
            (other, _) => return Err(format!("unknown or malformed option \"{other}\"")),
        }
    }
    Ok(out)
}

fn unquote(value: &str) -> Result<String, String> {
    match value.strip_prefix('"') {
        Some(inner) => inner
            .strip_suffix('"')
            .map(str::to_owned)
            .ok_or_else(|| format!("bad quoting in {value}")),
        None => Ok(value.to_owned()),
    }
}

/// `YYYYMMDD[HHMM[SS]][Z]`: UTC with `Z`, else local time (as ssh-keygen).
fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    let bad = || format!("bad time \"{value}\" (expected YYYYMMDD[HHMM[SS]][Z])");
    let (digits, utc) = match value.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (value, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let naive: NaiveDateTime = match digits.len() {
        8 => NaiveDate::parse_from_str(digits, "%Y%m%d")
            .map_err(|_| bad())?
            .and_hms_opt(0, 0, 0)
            .ok_or_else(bad)?,
        12 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M").map_err(|_| bad())?,
        14 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    if utc {
        return Ok(Utc.from_utc_datetime(&naive));
    }
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(bad)
}
