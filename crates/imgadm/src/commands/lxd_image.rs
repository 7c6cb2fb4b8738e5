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
/// its first entries. Reads only as far as that entry.
pub fn is_combined_tarball(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut tar = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut header = [0u8; BLOCK];
    for _ in 0..ENTRIES_SCANNED {
        if tar.read_exact(&mut header).is_err() || header.iter().all(|b| *b == 0) {
            return false;
        }
        let name = entry_name(&header);
        if name.trim_start_matches("./") == "metadata.yaml" {
            return true;
        }
        let Some(size) = entry_size(&header) else {
            return false;
        };
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        match std::io::copy(&mut (&mut tar).take(padded), &mut std::io::sink()) {
            Ok(n) if n == padded => {}
            _ => return false,
        }
    }
    false
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
/// ftype of the combined tarball or of the root filesystem.
pub fn fields(fingerprint: &str, first_sha256: &str, ftype: &str) -> (Value, Map<String, Value>) {
    let mut tags = Map::new();
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
        let plain = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(plain.path(), b"not gzip").unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_combined_tarball(plain.path()));
    }
}
