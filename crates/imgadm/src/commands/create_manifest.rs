//! `create-manifest`: a v2 manifest for an image file, validated with the
//! same rules the server applies (imgapi-domain), ready for
//! `imgadm create -m OUT -f FILE` or `imgadm admin-import -m OUT -f FILE`.

use std::io::Read;
use std::path::Path;

use imgapi_client::{FieldError, Reporter};
use imgapi_domain::build::{build_record, BuildKind};
use imgapi_domain::validate::validate_raw;
use imgapi_domain::{DomainError, Mode, RuleContext};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use uuid::Uuid;

use super::{lxd_image, Failure};
use crate::cli::CreateManifestArgs;
use crate::reporters::Bar;
use crate::stdout::write_bytes;

/// The "unset" owner (api.md §1.4), used when `--owner` is not given.
const UNSET_OWNER: &str = "00000000-0000-0000-0000-000000000000";
const MIB: u64 = 1024 * 1024;
const CHUNK: usize = 256 * 1024;

pub fn run(json: bool, args: CreateManifestArgs) -> Result<(), Failure> {
    let file = &args.file;
    let meta = std::fs::metadata(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    if !meta.is_file() {
        return Err(Failure::usage(format!("{} is not a file", file.display())));
    }
    if meta.len() == 0 {
        return Err(Failure::usage(format!(
            "{} is empty (the server refuses empty image files)",
            file.display()
        )));
    }
    let compression = match &args.compression {
        Some(c) => c.clone(),
        None => sniff_compression(file)?.to_string(),
    };
    let lxd = match (&args.lxd_metadata, args.type_.as_deref()) {
        (Some(_), Some(t)) if t != "lxd" => {
            return Err(Failure::usage(format!(
                "--lxd-metadata is only for --type lxd (not {t})"
            )))
        }
        (Some(_), _) | (None, Some("lxd")) => true,
        (None, Some(_)) => false,
        (None, None) => lxd_image::is_combined_tarball(file),
    };
    let default_to = |given: &Option<String>, lxd_value: &str| {
        given
            .clone()
            .unwrap_or_else(|| if lxd { lxd_value } else { "other" }.to_string())
    };
    let type_ = default_to(&args.type_, "lxd");
    let os = default_to(&args.os, "linux");
    let zvol = type_ == "zvol";
    if !zvol {
        let zvol_only = [
            ("--image-size", args.image_size.is_some()),
            ("--nic-driver", args.nic_driver.is_some()),
            ("--disk-driver", args.disk_driver.is_some()),
            ("--cpu-type", args.cpu_type.is_some()),
        ];
        if let Some((flag, _)) = zvol_only.iter().find(|(_, given)| *given) {
            return Err(Failure::usage(format!(
                "{flag} is only for --type zvol (this image is of type {type_})"
            )));
        }
    }
    // Measure before hashing: a missing qemu-img should not cost a full read.
    let image_size = if zvol {
        Some(match args.image_size {
            Some(n) => n,
            None => measure_image_size(file, &compression)?,
        })
    } else {
        None
    };
    // An LXD image's fingerprint (sha256 of metadata ‖ rootfs, or of the
    // tarball) is computed in the same read as the sha1.
    let mut fingerprint = lxd.then(Sha256::new);
    let meta = match (&args.lxd_metadata, fingerprint.as_mut()) {
        (Some(meta), Some(hasher)) => {
            let ftype = lxd_image::rootfs_ftype(file)?;
            let (sha1, size) = hash_file_into(meta, Some(hasher))?;
            let sha256 = hex::encode(hasher.clone().finalize());
            Some((meta, sha1, size, sha256, ftype))
        }
        _ => None,
    };
    let (sha1, size) = hash_file_into(file, fingerprint.as_mut())?;

    // No uuid by default: CreateImage assigns one and the original server
    // refuses one in its body ("invalid extra parameters: uuid").
    let uuid = args.uuid.map(|given| given.unwrap_or_else(Uuid::new_v4));
    let mut m = Map::new();
    m.insert("v".into(), Value::from(2));
    if let Some(uuid) = uuid {
        m.insert("uuid".into(), Value::from(uuid.to_string()));
    }
    m.insert(
        "owner".into(),
        Value::from(
            args.owner
                .map(|o| o.to_string())
                .unwrap_or_else(|| UNSET_OWNER.to_string()),
        ),
    );
    m.insert("name".into(), Value::from(args.name.clone()));
    m.insert("version".into(), Value::from(args.version.clone()));
    if let Some(d) = &args.description {
        m.insert("description".into(), Value::from(d.clone()));
    }
    m.insert("type".into(), Value::from(type_.clone()));
    m.insert("os".into(), Value::from(os));
    m.insert("public".into(), Value::Bool(args.public));
    if let Some(n) = image_size {
        let driver = |given: &Option<String>, default: &str| {
            Value::from(given.clone().unwrap_or_else(|| default.to_string()))
        };
        m.insert("image_size".into(), Value::from(n));
        m.insert("nic_driver".into(), driver(&args.nic_driver, "virtio"));
        m.insert("disk_driver".into(), driver(&args.disk_driver, "virtio"));
        m.insert("cpu_type".into(), driver(&args.cpu_type, "host"));
    }
    let file_entry = |sha1: String, size: u64, compression: String| {
        let mut f = Map::new();
        f.insert("sha1".into(), Value::from(sha1));
        f.insert("size".into(), Value::from(size));
        f.insert("compression".into(), Value::from(compression));
        Value::Object(f)
    };
    let mut files = Vec::with_capacity(2);
    if let Some(fingerprint) = fingerprint {
        let fingerprint = hex::encode(fingerprint.finalize());
        let (first_sha256, ftype) = match meta {
            Some((meta, meta_sha1, meta_size, meta_sha256, ftype)) => {
                let compression = sniff_compression(meta)?.to_string();
                files.push(file_entry(meta_sha1, meta_size, compression));
                (meta_sha256, ftype)
            }
            None => (fingerprint.clone(), "lxd_combined.tar.gz"),
        };
        // A combined tarball carries its metadata.yaml; a split image's is in
        // the (xz) metadata tarball, not read here.
        let props = if args.lxd_metadata.is_none() {
            lxd_image::metadata_yaml(file)
                .map(|yaml| lxd_image::properties(&yaml))
                .unwrap_or_default()
        } else {
            lxd_image::Properties::default()
        };
        let (requirements, tags) = lxd_image::fields(&fingerprint, &first_sha256, ftype, &props);
        m.insert("requirements".into(), requirements);
        m.insert("tags".into(), Value::Object(tags));
    }
    files.push(file_entry(sha1, size, compression));
    m.insert("files".into(), Value::Array(files));
    validate(&m, args.public)?;

    let manifest = Value::Object(m);
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Failure::other(format!("cannot encode JSON: {e}")))?;
    match &args.output {
        None => write_bytes(format!("{text}\n").as_bytes()),
        Some(out) => {
            std::fs::write(out, format!("{text}\n"))
                .map_err(|e| Failure::other(format!("cannot write {}: {e}", out.display())))?;
            if json {
                write_bytes(format!("{text}\n").as_bytes())
            } else {
                let image = match uuid {
                    Some(uuid) => format!("image {uuid}"),
                    None => "a new image".to_string(),
                };
                write_bytes(
                    format!(
                        "Wrote manifest {} for {image} ({}@{})\n",
                        out.display(),
                        args.name,
                        args.version
                    )
                    .as_bytes(),
                )
            }
        }
    }
}

/// `gzip`, `bzip2` or `xz` from the file's magic bytes, else `none`.
fn sniff_compression(path: &Path) -> Result<&'static str, Failure> {
    let mut head = [0u8; 6];
    let mut f = std::fs::File::open(path)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure::usage(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok(compression_of(&head[..n]))
}

fn compression_of(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if head.starts_with(b"BZh") {
        "bzip2"
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        "xz"
    } else {
        "none"
    }
}

/// The virtual disk size in MiB (rounded up) from `qemu-img info`.
fn measure_image_size(path: &Path, compression: &str) -> Result<u64, Failure> {
    if compression != "none" {
        return Err(Failure::usage(format!(
            "cannot measure the virtual size of a {compression}-compressed file: \
             give --image-size MiB"
        )));
    }
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::usage(
                    "qemu-img is not installed (it measures a zvol's virtual size): \
                     install it (e.g. package qemu-utils) or give --image-size MiB",
                )
            } else {
                Failure::other(format!("cannot run qemu-img: {e}"))
            }
        })?;
    if !out.status.success() {
        return Err(Failure::usage(format!(
            "qemu-img info {} failed: {}; give --image-size MiB",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let info: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::other(format!("qemu-img info printed invalid JSON: {e}")))?;
    let bytes = info
        .get("virtual-size")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Failure::usage(format!(
                "qemu-img info {} reports no virtual size; give --image-size MiB",
                path.display()
            ))
        })?;
    Ok(bytes.div_ceil(MIB))
}

/// SHA-1 (hex) and size of the file, read once in chunks, with a progress
/// bar when stderr is a terminal.
pub(super) fn hash_file(path: &Path) -> Result<(String, u64), Failure> {
    hash_file_into(path, None)
}

/// [`hash_file`], also feeding the bytes to `also` (a running sha256).
fn hash_file_into(path: &Path, mut also: Option<&mut Sha256>) -> Result<(String, u64), Failure> {
    let io_err = |e: std::io::Error| Failure::other(format!("cannot read {}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let total = f.metadata().map_err(io_err)?.len();
    let bar = Bar::new("Hashing");
    bar.on_start(Some(total), 0);
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
        if let Some(sha256) = also.as_deref_mut() {
            sha256.update(&buf[..n]);
        }
        size += n as u64;
        bar.on_progress(n as u64);
    }
    bar.on_complete();
    Ok((hex::encode(hasher.finalize()), size))
}

/// Validate as the server would: AdminImportImage's record building (uuid
/// kept, no extra fields, field rules; a manifest without a uuid is checked
/// with a stand-in one), then the full rule set of an activated image (which
/// also checks `files`). The mode follows `public` (a public manifest for a
/// public server, a private one for a private server); channels are the
/// server's business.
fn validate(manifest: &Map<String, Value>, public: bool) -> Result<(), Failure> {
    let ctx = RuleContext {
        mode: if public { Mode::Public } else { Mode::Private },
        channels_enabled: false,
    };
    let mut with_uuid = manifest.clone();
    let uuid = match with_uuid.get("uuid").and_then(Value::as_str) {
        Some(given) => Uuid::parse_str(given)
            .map_err(|e| Failure::usage(format!("invalid uuid {given:?}: {e}")))?,
        None => {
            let stand_in = Uuid::new_v4();
            with_uuid.insert("uuid".into(), Value::from(stand_in.to_string()));
            stand_in
        }
    };
    build_record(with_uuid.clone(), BuildKind::Import, uuid, &ctx).map_err(domain_failure)?;
    let mut raw = with_uuid;
    raw.insert("disabled".into(), Value::Bool(false));
    raw.insert("activated".into(), Value::Bool(true));
    raw.insert("state".into(), Value::from("active"));
    raw.insert("published_at".into(), Value::from("2000-01-01T00:00:00Z"));
    let errors = validate_raw(&raw, &ctx);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(&errors))
    }
}

fn domain_failure(e: DomainError) -> Failure {
    match e {
        DomainError::ValidationFailed { errors, .. }
        | DomainError::InvalidParameter { errors, .. }
            if !errors.is_empty() =>
        {
            invalid(&errors)
        }
        other => Failure::usage(format!("invalid manifest: {other}")),
    }
}

fn invalid(errors: &[FieldError]) -> Failure {
    let text: Vec<String> = errors
        .iter()
        .map(|e| match &e.message {
            Some(m) => format!("{}: {m}", e.field),
            None => format!("{}: {}", e.field, e.code.as_str()),
        })
        .collect();
    Failure::usage(format!("invalid manifest: {}", text.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(compression_of(&[0x1f, 0x8b, 8, 0]), "gzip");
        assert_eq!(compression_of(b"BZh91AY"), "bzip2");
        assert_eq!(compression_of(&[0xfd, b'7', b'z', b'X', b'Z', 0]), "xz");
        assert_eq!(compression_of(b"QFI\xfb"), "none");
        assert_eq!(compression_of(b""), "none");
    }

    #[test]
    fn validation_reports_fields() {
        let uuid = Uuid::new_v4();
        let mut m = Map::new();
        m.insert("v".into(), Value::from(2));
        m.insert("uuid".into(), Value::from(uuid.to_string()));
        m.insert("owner".into(), Value::from(UNSET_OWNER));
        m.insert("name".into(), Value::from("ok-name"));
        m.insert("version".into(), Value::from("1.0"));
        m.insert("type".into(), Value::from("other"));
        m.insert("os".into(), Value::from("other"));
        m.insert("public".into(), Value::Bool(true));
        let file = serde_json::json!([{"sha1": "a".repeat(40), "size": 3, "compression": "none"}]);
        m.insert("files".into(), file);
        validate(&m, true).unwrap();
        m.shift_remove("uuid");
        validate(&m, true).unwrap();
        // A public manifest is not valid for a private server.
        let e = validate(&m, false).unwrap_err();
        assert!(e.message.contains("public"), "{}", e.message);
        m.insert("name".into(), Value::from("bad name!"));
        let e = validate(&m, true).unwrap_err();
        assert_eq!(e.exit, 2);
        assert!(
            e.message.contains("name: image name has invalid"),
            "{}",
            e.message
        );
    }
}
