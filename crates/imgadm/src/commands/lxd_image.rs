//! Recognising an LXD image for `create-manifest`: a combined tarball
//! (`metadata.yaml` and `rootfs/` in one gzip'd tar), or a metadata
//! tarball given with `--lxd-metadata` plus a root filesystem. Its LXD
//! fingerprint is the sha256 of the tarball, or of metadata ‖ rootfs —
//! what `lxc image export` and AdminImportLxdImage check.

use std::io::Read;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::Failure;

const BLOCK: usize = 512;
/// Entries looked at for `metadata.yaml` (LXD writes it first).
const ENTRIES_SCANNED: usize = 64;

/// Whether `path` is a gzip'd tar with a top-level `metadata.yaml` among
/// its first entries.
pub fn is_combined_tarball(path: &Path) -> bool {
    metadata_yaml(path).is_some()
}

/// Largest `metadata.yaml` read (LXD's are a few hundred bytes).
const METADATA_MAX: u64 = 64 * 1024;

/// The text of the top-level `metadata.yaml` of a gzip'd tar, when it is
/// among its first entries (empty when larger than [`METADATA_MAX`]).
/// Reads only as far as that entry.
pub fn metadata_yaml(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut tar = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut header = [0u8; BLOCK];
    for _ in 0..ENTRIES_SCANNED {
        if tar.read_exact(&mut header).is_err() || header.iter().all(|b| *b == 0) {
            return None;
        }
        let name = entry_name(&header);
        let size = entry_size(&header)?;
        if name.trim_start_matches("./") == "metadata.yaml" {
            if size > METADATA_MAX {
                return Some(String::new());
            }
            let mut text = Vec::new();
            (&mut tar).take(size).read_to_end(&mut text).ok()?;
            return Some(String::from_utf8_lossy(&text).into_owned());
        }
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        match std::io::copy(&mut (&mut tar).take(padded), &mut std::io::sink()) {
            Ok(n) if n == padded => {}
            _ => return None,
        }
    }
    None
}

/// What `metadata.yaml` says of the image, as simplestreams names it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Properties {
    pub os: Option<String>,
    pub release: Option<String>,
    /// LXD's architecture name (`amd64`, `arm64`, ...).
    pub arch: Option<String>,
    pub variant: Option<String>,
}

/// The scalar `properties:` entries and the top-level `architecture` of
/// an LXD `metadata.yaml` (the flat layout LXD and distrobuilder write;
/// anything else is ignored, never an error).
pub fn properties(yaml: &str) -> Properties {
    let mut top_arch = None;
    let mut props = std::collections::BTreeMap::new();
    let mut in_properties = false;
    for line in yaml.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = scalar(value);
        if !indented {
            in_properties = key == "properties";
            if key == "architecture" {
                top_arch = value;
            }
        } else if in_properties {
            if let Some(v) = value {
                props.insert(key.trim().to_string(), v);
            }
        }
    }
    let arch = props
        .remove("architecture")
        .or_else(|| top_arch.map(|a| lxd_arch(&a).to_string()));
    Properties {
        os: props.remove("os"),
        release: props.remove("release"),
        arch,
        variant: props.remove("variant"),
    }
}

/// A plain YAML scalar, unquoted; `None` for an empty value or a block,
/// list or map.
fn scalar(raw: &str) -> Option<String> {
    let v = raw.trim();
    if v.is_empty() || v.starts_with(['|', '>', '[', '{', '&', '*']) {
        return None;
    }
    let unquoted = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
        .unwrap_or(v);
    Some(unquoted.to_string())
}

/// The kernel's architecture name as LXD's image servers name it.
fn lxd_arch(kernel: &str) -> &str {
    match kernel {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" => "armhf",
        "i686" => "i386",
        "ppc64le" => "ppc64el",
        other => other,
    }
}

/// The entry's path (ustar prefix included).
fn entry_name(header: &[u8; BLOCK]) -> String {
    let field = |range: std::ops::Range<usize>| {
        let bytes = &header[range];
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    };
    let name = field(0..100);
    let prefix = if &header[257..262] == b"ustar" {
        field(345..500)
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// The entry's size (octal; GNU base-256 for large ones).
fn entry_size(header: &[u8; BLOCK]) -> Option<u64> {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        return field[1..].iter().try_fold(0u64, |acc, b| {
            acc.checked_mul(256)?.checked_add(u64::from(*b))
        });
    }
    let text = String::from_utf8_lossy(field);
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The `ftype` of a root filesystem, from its first bytes.
pub fn rootfs_ftype(path: &Path) -> Result<&'static str, Failure> {
    let mut head = [0u8; 6];
    let mut f = std::fs::File::open(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let n = f.read(&mut head).unwrap_or(0);
    let head = &head[..n];
    if head.starts_with(b"hsqs") {
        Ok("squashfs")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Ok("root.tar.xz")
    } else {
        Err(Failure::usage(format!(
            "{} is neither a squashfs image nor an xz'd tar (root.tar.xz): not an LXD root filesystem",
            path.display()
        )))
    }
}

/// `requirements` and `tags` of an LXD image, as AdminImportLxdImage
/// fills them: `brand: lx`, the fingerprint, `files[0]`'s sha256, the
/// ftype of the combined tarball or of the root filesystem, and what
/// `metadata.yaml` says (os, release, arch, variant: the names a
/// simplestreams listing of this registry gives it).
pub fn fields(
    fingerprint: &str,
    first_sha256: &str,
    ftype: &str,
    props: &Properties,
) -> (Value, Map<String, Value>) {
    let mut tags = Map::new();
    for (key, value) in [
        ("lxd:arch", &props.arch),
        ("lxd:os", &props.os),
        ("lxd:release", &props.release),
        ("lxd:variant", &props.variant),
    ] {
        if let Some(v) = value {
            tags.insert(key.into(), json!(v));
        }
    }
    tags.insert("lxd:fingerprint".into(), json!(fingerprint));
    tags.insert("lxd:ftype".into(), json!(ftype));
    tags.insert("lxd:sha256".into(), json!(first_sha256));
    (json!({"brand": "lx"}), tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: u64) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{size:011o}\0");
        h[124..136].copy_from_slice(size.as_bytes());
        h[257..262].copy_from_slice(b"ustar");
        h
    }

    fn gz_tar(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut tar = Vec::new();
        for (name, data) in entries {
            tar.extend_from_slice(&header(name, data.len() as u64));
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        tar.extend_from_slice(&[0u8; 2 * BLOCK]);
        let file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        let mut gz = flate2::write::GzEncoder::new(
            file.reopen().unwrap_or_else(|e| panic!("{e}")),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut gz, &tar).unwrap_or_else(|e| panic!("{e}"));
        gz.finish().unwrap_or_else(|e| panic!("{e}"));
        file
    }

    #[test]
    fn recognises_metadata_yaml_after_other_entries() {
        let lxd = gz_tar(&[
            ("rootfs/", b""),
            ("rootfs/x", &[7u8; 700]),
            ("./metadata.yaml", b"a: 1\n"),
        ]);
        assert!(is_combined_tarball(lxd.path()));
        let other = gz_tar(&[("etc/hostname", b"x\n")]);
        assert!(!is_combined_tarball(other.path()));
        assert_eq!(metadata_yaml(lxd.path()).as_deref(), Some("a: 1\n"));
        let plain = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(plain.path(), b"not gzip").unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_combined_tarball(plain.path()));
    }

    #[test]
    fn reads_the_properties_lxd_writes() {
        let yaml = "architecture: aarch64\ncreation_date: 1700000000\nproperties:\n  description: Alpine 3.18\n  os: Alpine\n  release: \"3.18\"\n  variant: 'default'\ntemplates:\n  /etc/hostname:\n    when:\n    - create\n";
        assert_eq!(
            properties(yaml),
            Properties {
                os: Some("Alpine".into()),
                release: Some("3.18".into()),
                arch: Some("arm64".into()),
                variant: Some("default".into()),
            }
        );
        let explicit = "architecture: x86_64\nproperties:\n  architecture: amd64\n";
        assert_eq!(properties(explicit).arch.as_deref(), Some("amd64"));
        assert_eq!(properties("not: [yaml").os, None);
        assert_eq!(properties(""), Properties::default());
    }
}
