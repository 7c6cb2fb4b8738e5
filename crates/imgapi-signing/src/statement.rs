//! The statement a publisher signs: a few lines of text naming what makes
//! the image this image. docs/signing.md gives it byte for byte; `printf`
//! reproduces it.
//!
//! ```text
//! imgapi-signed-image-v1
//! uuid <uuid>
//! owner <owner uuid>
//! name <name>
//! version <version>
//! type <type>
//! os <os>
//! origin <origin uuid, or ->
//! file <sha256, 64 lower-case hex digits> <size in bytes, decimal>
//! ```
//!
//! Every line ends with one `\n` (the last one too); there is one `file`
//! line per file, in the manifest's `files` order. A field may hold any
//! text but a control character (a line break would make two statements
//! read alike), and may not be empty.

use std::fmt;

/// The statement's first line; a new format gets a new one.
pub const HEADER: &str = "imgapi-signed-image-v1";

/// One file of the image as the statement names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub size: u64,
}

/// The signed facts of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub uuid: String,
    pub owner: String,
    pub name: String,
    pub version: String,
    pub image_type: String,
    pub os: String,
    /// `None` for an image without an origin.
    pub origin: Option<String>,
    pub files: Vec<FileDigest>,
}

/// Why an image has no statement, or a text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("the image has no file yet: add its file before signing it")]
    NoFile,
    #[error("file {index} has no SHA-256 (stored before SHA-256 was kept): upload it again to sign the image")]
    NoSha256 { index: usize },
    #[error("field \"{field}\" cannot be signed: {why}")]
    Field {
        field: &'static str,
        why: &'static str,
    },
    #[error("not an image statement: {0}")]
    Malformed(String),
}

impl Statement {
    /// Check that every field can be written on its line.
    pub fn validate(&self) -> Result<(), StatementError> {
        let fields: [(&'static str, &str); 6] = [
            ("uuid", &self.uuid),
            ("owner", &self.owner),
            ("name", &self.name),
            ("version", &self.version),
            ("type", &self.image_type),
            ("os", &self.os),
        ];
        for (field, value) in fields {
            check_value(field, value)?;
        }
        if let Some(origin) = &self.origin {
            check_value("origin", origin)?;
            if origin == "-" {
                return Err(StatementError::Field {
                    field: "origin",
                    why: "\"-\" means no origin",
                });
            }
        }
        if self.files.is_empty() {
            return Err(StatementError::NoFile);
        }
        for file in &self.files {
            if !is_sha256_hex(&file.sha256) {
                return Err(StatementError::Field {
                    field: "files.sha256",
                    why: "not 64 lower-case hex digits",
                });
            }
        }
        Ok(())
    }

    /// The statement's bytes, the message an SSHSIG signs.
    pub fn to_text(&self) -> Result<String, StatementError> {
        self.validate()?;
        Ok(self.to_string())
    }

    /// Read a statement written by [`Statement::to_text`]: exactly that text
    /// and nothing else (so a parsed statement writes back byte for byte).
    pub fn parse(text: &str) -> Result<Statement, StatementError> {
        let malformed = |why: &str| StatementError::Malformed(why.to_owned());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("it does not end with a line break"))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(malformed(&format!("the first line is not \"{HEADER}\"")));
        }
        let mut field = |key: &str| -> Result<String, StatementError> {
            let line = lines
                .next()
                .ok_or_else(|| malformed(&format!("no \"{key}\" line")))?;
            line.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| malformed(&format!("expected the \"{key}\" line")))
        };
        let uuid = field("uuid")?;
        let owner = field("owner")?;
        let name = field("name")?;
        let version = field("version")?;
        let image_type = field("type")?;
        let os = field("os")?;
        let origin = field("origin")?;
        let mut files = Vec::new();
        for line in lines {
            let rest = line
                .strip_prefix("file ")
                .ok_or_else(|| malformed("expected a \"file\" line"))?;
            let (sha256, size) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("a \"file\" line needs a SHA-256 and a size"))?;
            let size = parse_size(size).ok_or_else(|| malformed("bad file size"))?;
            files.push(FileDigest {
                sha256: sha256.to_owned(),
                size,
            });
        }
        let statement = Statement {
            uuid,
            owner,
            name,
            version,
            image_type,
            os,
            origin: (origin != "-").then_some(origin),
            files,
        };
        statement.validate()?;
        if statement.to_string() != text {
            return Err(malformed("it is not in the canonical form"));
        }
        Ok(statement)
    }
}

impl fmt::Display for Statement {
    /// The text without validation; use [`Statement::to_text`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{HEADER}")?;
        writeln!(f, "uuid {}", self.uuid)?;
        writeln!(f, "owner {}", self.owner)?;
        writeln!(f, "name {}", self.name)?;
        writeln!(f, "version {}", self.version)?;
        writeln!(f, "type {}", self.image_type)?;
        writeln!(f, "os {}", self.os)?;
        writeln!(f, "origin {}", self.origin.as_deref().unwrap_or("-"))?;
        for file in &self.files {
            writeln!(f, "file {} {}", file.sha256, file.size)?;
        }
        Ok(())
    }
}

fn check_value(field: &'static str, value: &str) -> Result<(), StatementError> {
    if value.is_empty() {
        return Err(StatementError::Field {
            field,
            why: "it is empty",
        });
    }
    if value.chars().any(char::is_control) {
        return Err(StatementError::Field {
            field,
            why: "it holds a control character",
        });
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A decimal size without sign or leading zeros (one spelling per number).
fn parse_size(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Statement {
        Statement {
            uuid: "2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11".into(),
            owner: "930896af-bf8c-48d4-885c-6573a94b1853".into(),
            name: "base-64".into(),
            version: "24.4.0".into(),
            image_type: "zone-dataset".into(),
            os: "smartos".into(),
            origin: None,
            files: vec![FileDigest {
                sha256: "ab".repeat(32),
                size: 1234,
            }],
        }
    }

    #[test]
    fn text_is_the_documented_lines() {
        let text = sample().to_text().unwrap();
        assert_eq!(
            text,
            format!(
                "imgapi-signed-image-v1\nuuid 2b9a4a1e-0f3c-4b55-9c39-4b2f8c1f5a11\n\
                 owner 930896af-bf8c-48d4-885c-6573a94b1853\nname base-64\nversion 24.4.0\n\
                 type zone-dataset\nos smartos\norigin -\nfile {} 1234\n",
                "ab".repeat(32)
            )
        );
        assert_eq!(Statement::parse(&text).unwrap(), sample());
    }

    #[test]
    fn origin_and_several_files_round_trip() {
        let mut s = sample();
        s.origin = Some("11111111-2222-3333-4444-555555555555".into());
        s.files.push(FileDigest {
            sha256: "0".repeat(64),
            size: 0,
        });
        let text = s.to_text().unwrap();
        assert!(text.contains("\norigin 11111111-2222-3333-4444-555555555555\n"));
        assert_eq!(Statement::parse(&text).unwrap(), s);
    }

    #[test]
    fn fields_that_cannot_be_written_are_refused() {
        let mut s = sample();
        s.name = "two\nlines".into();
        assert!(matches!(
            s.to_text(),
            Err(StatementError::Field { field: "name", .. })
        ));
        let mut s = sample();
        s.version = String::new();
        assert!(s.to_text().is_err());
        let mut s = sample();
        s.files.clear();
        assert_eq!(s.to_text(), Err(StatementError::NoFile));
        let mut s = sample();
        s.files[0].sha256 = "AB".repeat(32);
        assert!(s.to_text().is_err());
    }

    #[test]
    fn only_the_canonical_text_parses() {
        let text = sample().to_text().unwrap();
        for bad in [
            text.trim_end().to_owned(),
            format!("{text}\n"),
            text.replace("file ", "file  "),
            text.replace(" 1234\n", " 01234\n"),
            text.replace(" 1234\n", " +1234\n"),
            text.replace("name ", "name\t"),
            text.replace("imgapi-signed-image-v1", "imgapi-signed-image-v2"),
            text.replace("\r", "").replace('\n', "\r\n"),
        ] {
            assert!(Statement::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
